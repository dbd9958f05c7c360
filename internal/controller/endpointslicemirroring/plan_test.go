package endpointslicemirroring

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func endpoints(subsets ...corev1.EndpointSubset) *corev1.Endpoints {
	return &corev1.Endpoints{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "db", UID: "ep-uid",
			Labels:      map[string]string{"app": "db"},
			Annotations: map[string]string{"note": "x", corev1.EndpointsLastChangeTriggerTime: "2024-01-01T00:00:00Z"}},
		Subsets: subsets,
	}
}

func addrs(ips ...string) []corev1.EndpointAddress {
	out := make([]corev1.EndpointAddress, len(ips))
	for i, ip := range ips {
		out[i] = corev1.EndpointAddress{IP: ip}
	}
	return out
}

func port(n int32) []corev1.EndpointPort {
	return []corev1.EndpointPort{{Name: "sql", Port: n, Protocol: corev1.ProtocolTCP}}
}

// applyPlan plays the API server and returns the slices afterwards.
func applyPlan(existing []*discoveryv1.EndpointSlice, p Plan) []*discoveryv1.EndpointSlice {
	byName := map[string]*discoveryv1.EndpointSlice{}
	var order []string
	for _, s := range existing {
		byName[s.Name] = s
		order = append(order, s.Name)
	}
	for _, s := range p.Delete {
		delete(byName, s.Name)
	}
	for _, s := range p.Update {
		byName[s.Name] = s.DeepCopy()
	}
	for i, s := range p.Create {
		c := s.DeepCopy()
		c.Name = fmt.Sprintf("%s%d", s.GenerateName, len(order)+i)
		byName[c.Name] = c
		order = append(order, c.Name)
	}
	var out []*discoveryv1.EndpointSlice
	for _, n := range order {
		if s, ok := byName[n]; ok {
			out = append(out, s)
		}
	}
	return out
}

func mirror(t *testing.T, ep *corev1.Endpoints, existing []*discoveryv1.EndpointSlice, max int) (Plan, []*discoveryv1.EndpointSlice) {
	t.Helper()
	p := PlanMirror(ep, existing, max)
	after := applyPlan(existing, p)
	if again := PlanMirror(ep, after, max); !again.Empty() {
		t.Fatalf("mirroring does not converge: %d creates, %d updates, %d deletes", len(again.Create), len(again.Update), len(again.Delete))
	}
	return p, after
}

func TestPlanMirror(t *testing.T) {
	ep := endpoints(corev1.EndpointSubset{Addresses: addrs("10.0.0.1", "10.0.0.2"), NotReadyAddresses: addrs("10.0.0.3"), Ports: port(5432)})
	p, after := mirror(t, ep, nil, 1000)
	if len(p.Create) != 1 || len(after) != 1 {
		t.Fatalf("want one slice, got %d", len(after))
	}
	s := after[0]
	if s.GenerateName != "db-" || s.AddressType != discoveryv1.AddressTypeIPv4 || len(s.Endpoints) != 3 {
		t.Errorf("slice %s %s with %d endpoints", s.GenerateName, s.AddressType, len(s.Endpoints))
	}
	want := map[string]string{"app": "db", discoveryv1.LabelServiceName: "db", discoveryv1.LabelManagedBy: ControllerName}
	if fmt.Sprint(s.Labels) != fmt.Sprint(want) {
		t.Errorf("labels %v, want %v", s.Labels, want)
	}
	if fmt.Sprint(s.Annotations) != "map[note:x]" {
		t.Errorf("annotations %v: the trigger time is not mirrored", s.Annotations)
	}
	if o := s.OwnerReferences; len(o) != 1 || o[0].Kind != "Endpoints" || o[0].UID != "ep-uid" {
		t.Errorf("owner %+v", o)
	}
	for _, e := range s.Endpoints {
		wantReady := e.Addresses[0] != "10.0.0.3"
		if *e.Conditions.Ready != wantReady {
			t.Errorf("%s ready=%v, want %v", e.Addresses[0], *e.Conditions.Ready, wantReady)
		}
	}

	// A changed address updates the same slice.
	ep2 := endpoints(corev1.EndpointSubset{Addresses: addrs("10.0.0.1", "10.0.0.4"), Ports: port(5432)})
	p, after2 := mirror(t, ep2, after, 1000)
	if len(p.Update) != 1 || len(p.Create)+len(p.Delete) != 0 || after2[0].Name != s.Name {
		t.Errorf("want one in-place update, got %d creates, %d updates, %d deletes", len(p.Create), len(p.Update), len(p.Delete))
	}
	// A new port: the slice is reused for the new port list.
	ep3 := endpoints(corev1.EndpointSubset{Addresses: addrs("10.0.0.1"), Ports: port(5433)})
	p, after3 := mirror(t, ep3, after2, 1000)
	if len(p.Update) != 1 || len(p.Create)+len(p.Delete) != 0 || after3[0].Name != s.Name || *after3[0].Ports[0].Port != 5433 {
		t.Errorf("want the slice reused, got %d creates, %d updates, %d deletes", len(p.Create), len(p.Update), len(p.Delete))
	}
	// Labels follow the Endpoints.
	ep4 := ep3.DeepCopy()
	ep4.Labels["tier"] = "data"
	if p, _ := mirror(t, ep4, after3, 1000); len(p.Update) != 1 || p.Update[0].Labels["tier"] != "data" {
		t.Errorf("label change not mirrored")
	}
	// No addresses: no slices.
	if p, after := mirror(t, endpoints(), after3, 1000); len(p.Delete) != 1 || len(after) != 0 {
		t.Errorf("empty endpoints must delete the mirror")
	}
}

func TestPlanMirrorGrouping(t *testing.T) {
	ep := endpoints(
		corev1.EndpointSubset{Addresses: addrs("10.0.0.1"), Ports: port(5432)},
		corev1.EndpointSubset{Addresses: addrs("10.0.0.2", "fd00::2"), Ports: port(5432)},
		corev1.EndpointSubset{Addresses: addrs("10.0.0.3", "not-an-ip"), Ports: port(6432)},
	)
	p, after := mirror(t, ep, nil, 1000)
	got := map[string]int{}
	for _, s := range after {
		got[fmt.Sprintf("%s/%d", s.AddressType, *s.Ports[0].Port)] = len(s.Endpoints)
	}
	if fmt.Sprint(got) != "map[IPv4/5432:2 IPv4/6432:1 IPv6/5432:1]" {
		t.Errorf("slices %v", got)
	}
	if p.Invalid != 1 || p.Skipped != 1 {
		t.Errorf("invalid %d skipped %d, want 1 and 1", p.Invalid, p.Skipped)
	}
}

func TestPlanMirrorLimit(t *testing.T) {
	var ips []string
	for i := range 12 {
		ips = append(ips, fmt.Sprintf("10.0.0.%d", i+1))
	}
	p, after := mirror(t, endpoints(corev1.EndpointSubset{Addresses: addrs(ips...), Ports: port(5432)}), nil, 10)
	if len(after) != 1 || len(after[0].Endpoints) != 10 || p.Skipped != 2 || p.Invalid != 0 {
		t.Errorf("want 10 mirrored, 2 skipped; got %d slices, skipped %d", len(after), p.Skipped)
	}
}

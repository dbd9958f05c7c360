package endpointslice

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func testService(mod func(*corev1.Service)) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "kuard", UID: "svc-uid", Labels: map[string]string{"app": "kuard"}},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"run": "kuard"}, ClusterIP: "10.96.0.20", IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol},
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http"), Protocol: corev1.ProtocolTCP}},
		},
	}
	if mod != nil {
		mod(s)
	}
	return s
}

func testPod(i int, ready bool, mod func(*corev1.Pod)) *corev1.Pod {
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	ip := fmt.Sprintf("10.244.%d.%d", i/250, i%250+1)
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: fmt.Sprintf("kuard-%03d", i), UID: types.UID(fmt.Sprintf("pod-%d", i)),
			Labels: map[string]string{"run": "kuard"}},
		Spec: corev1.PodSpec{NodeName: fmt.Sprintf("node-%d", i%2), Containers: []corev1.Container{{Name: "app",
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}}}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}},
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: status}}},
	}
	if mod != nil {
		mod(p)
	}
	return p
}

func pods(n int, mod func(int, *corev1.Pod)) []*corev1.Pod {
	out := make([]*corev1.Pod, n)
	for i := range out {
		out[i] = testPod(i, true, func(p *corev1.Pod) {
			if mod != nil {
				mod(i, p)
			}
		})
	}
	return out
}

// nodes knows node-0 (zone a) and node-1 (no zone).
func nodes(name string) (*corev1.Node, error) {
	switch name {
	case "node-0":
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{corev1.LabelTopologyZone: "zone-a"}}}, nil
	case "node-1":
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}, nil
	}
	return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "nodes"}, name)
}

// apply plays the API server: creates get names, updates replace, deletes
// remove. It returns the slices that exist afterwards.
func apply(existing []*discoveryv1.EndpointSlice, p Plan) []*discoveryv1.EndpointSlice {
	byName := map[string]*discoveryv1.EndpointSlice{}
	for _, s := range existing {
		byName[s.Name] = s
	}
	for _, s := range p.Delete {
		delete(byName, s.Name)
	}
	for _, s := range p.Update {
		byName[s.Name] = s.DeepCopy()
	}
	for i, s := range p.Create {
		c := s.DeepCopy()
		c.Name = fmt.Sprintf("%s%05d", s.GenerateName, len(byName)+i)
		byName[c.Name] = c
	}
	out := make([]*discoveryv1.EndpointSlice, 0, len(byName))
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for k := range byName {
			if !yield(k) {
				return
			}
		}
	}) {
		out = append(out, byName[name])
	}
	return out
}

func sizes(ss []*discoveryv1.EndpointSlice) []int {
	var out []int
	for _, s := range ss {
		out = append(out, len(s.Endpoints))
	}
	slices.Sort(out)
	return out
}

func names(ss []*discoveryv1.EndpointSlice) string {
	var out []string
	for _, s := range ss {
		out = append(out, s.Name)
	}
	return strings.Join(out, ",")
}

// plan runs PlanSlices and checks that applying the plan converges: a
// second plan over the result writes nothing.
func plan(t *testing.T, svc *corev1.Service, ps []*corev1.Pod, existing []*discoveryv1.EndpointSlice, max int) (Plan, []*discoveryv1.EndpointSlice) {
	t.Helper()
	p, err := PlanSlices(svc, ps, existing, nodes, max)
	if err != nil {
		t.Fatal(err)
	}
	after := apply(existing, p)
	if again, err := PlanSlices(svc, ps, after, nodes, max); err != nil || !again.Empty() {
		t.Fatalf("plan does not converge: second plan creates %d, updates %s, deletes %s (err %v)",
			len(again.Create), names(again.Update), names(again.Delete), err)
	}
	return p, after
}

func TestPlanSlicesFresh(t *testing.T) {
	p, after := plan(t, testService(nil), pods(250, nil), nil, 100)
	if len(p.Create) != 3 || len(p.Update)+len(p.Delete) != 0 {
		t.Fatalf("want 3 creates, got %d creates %d updates %d deletes", len(p.Create), len(p.Update), len(p.Delete))
	}
	if got := sizes(after); fmt.Sprint(got) != "[50 100 100]" {
		t.Errorf("slice sizes %v, want [50 100 100]", got)
	}
	s := p.Create[0]
	if s.GenerateName != "kuard-" || s.AddressType != discoveryv1.AddressTypeIPv4 {
		t.Errorf("generateName %q addressType %q", s.GenerateName, s.AddressType)
	}
	wantLabels := map[string]string{"app": "kuard", discoveryv1.LabelServiceName: "kuard", discoveryv1.LabelManagedBy: ControllerName}
	if !labelsEqual(s.Labels, wantLabels) {
		t.Errorf("labels %v, want %v", s.Labels, wantLabels)
	}
	if len(s.OwnerReferences) != 1 || s.OwnerReferences[0].UID != "svc-uid" || s.OwnerReferences[0].Kind != "Service" ||
		!*s.OwnerReferences[0].Controller || !*s.OwnerReferences[0].BlockOwnerDeletion {
		t.Errorf("owner references %+v", s.OwnerReferences)
	}
	if len(s.Ports) != 1 || *s.Ports[0].Name != "http" || *s.Ports[0].Port != 8080 || *s.Ports[0].Protocol != corev1.ProtocolTCP {
		t.Errorf("ports %+v", s.Ports)
	}
}

func TestPodToEndpoint(t *testing.T) {
	svc := testService(nil)
	node0, _ := nodes("node-0")
	tests := []struct {
		name                        string
		pod                         *corev1.Pod
		svc                         *corev1.Service
		ready, serving, terminating bool
		zone, hostname              string
	}{
		{name: "ready", pod: testPod(0, true, nil), svc: svc, ready: true, serving: true, zone: "zone-a"},
		{name: "not ready", pod: testPod(0, false, nil), svc: svc, zone: "zone-a"},
		{name: "terminating, still passing its probe", pod: testPod(0, true, func(p *corev1.Pod) { now := metav1.Now(); p.DeletionTimestamp = &now }),
			svc: svc, serving: true, terminating: true, zone: "zone-a"},
		{name: "publishNotReadyAddresses", pod: testPod(0, false, nil), svc: testService(func(s *corev1.Service) { s.Spec.PublishNotReadyAddresses = true }),
			ready: true, zone: "zone-a"},
		{name: "hostname for the service's subdomain", pod: testPod(0, true, func(p *corev1.Pod) { p.Spec.Hostname, p.Spec.Subdomain = "web-0", "kuard" }),
			svc: svc, ready: true, serving: true, zone: "zone-a", hostname: "web-0"},
		{name: "no hostname for another subdomain", pod: testPod(0, true, func(p *corev1.Pod) { p.Spec.Hostname, p.Spec.Subdomain = "web-0", "other" }),
			svc: svc, ready: true, serving: true, zone: "zone-a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ep := PodToEndpoint(tt.pod, node0, tt.svc, discoveryv1.AddressTypeIPv4)
			c := ep.Conditions
			if *c.Ready != tt.ready || *c.Serving != tt.serving || *c.Terminating != tt.terminating {
				t.Errorf("ready/serving/terminating = %v/%v/%v, want %v/%v/%v", *c.Ready, *c.Serving, *c.Terminating, tt.ready, tt.serving, tt.terminating)
			}
			if fmt.Sprint(ep.Addresses) != "[10.244.0.1]" || *ep.NodeName != "node-0" {
				t.Errorf("addresses %v nodeName %v", ep.Addresses, *ep.NodeName)
			}
			if ep.TargetRef == nil || *ep.TargetRef != (corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: "kuard-000", UID: "pod-0"}) {
				t.Errorf("targetRef %+v", ep.TargetRef)
			}
			if got := deref(ep.Zone); got != tt.zone {
				t.Errorf("zone %q, want %q", got, tt.zone)
			}
			if got := deref(ep.Hostname); got != tt.hostname {
				t.Errorf("hostname %q, want %q", got, tt.hostname)
			}
		})
	}
	if ep := PodToEndpoint(testPod(0, true, nil), nil, svc, discoveryv1.AddressTypeIPv6); len(ep.Addresses) != 0 {
		t.Errorf("an IPv4 pod has no IPv6 address, got %v", ep.Addresses)
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func TestPlanSlicesMinimalChurn(t *testing.T) {
	svc := testService(nil)
	_, existing := plan(t, svc, pods(250, nil), nil, 100)

	t.Run("a readiness change updates the one slice holding the pod", func(t *testing.T) {
		ps := pods(250, func(i int, p *corev1.Pod) {
			if i == 7 {
				p.Status.Conditions[0].Status = corev1.ConditionFalse
			}
		})
		p, _ := plan(t, svc, ps, existing, 100)
		if len(p.Create) != 0 || len(p.Delete) != 0 || len(p.Update) != 1 {
			t.Fatalf("want one update, got %d creates, %d updates, %d deletes", len(p.Create), len(p.Update), len(p.Delete))
		}
		holder := ""
		for _, s := range existing {
			for _, ep := range s.Endpoints {
				if ep.TargetRef.Name == "kuard-007" {
					holder = s.Name
				}
			}
		}
		if p.Update[0].Name != holder {
			t.Errorf("updated %s, but kuard-007 is in %s", p.Update[0].Name, holder)
		}
	})

	t.Run("a new pod goes into the slice with room", func(t *testing.T) {
		p, after := plan(t, svc, pods(251, nil), existing, 100)
		if len(p.Create) != 0 || len(p.Delete) != 0 || len(p.Update) != 1 || len(p.Update[0].Endpoints) != 51 {
			t.Fatalf("want one update to the 50-endpoint slice, got %d creates, %d updates, %d deletes", len(p.Create), len(p.Update), len(p.Delete))
		}
		if fmt.Sprint(sizes(after)) != "[51 100 100]" {
			t.Errorf("sizes %v", sizes(after))
		}
	})

	t.Run("removed pods leave their slices in place", func(t *testing.T) {
		p, after := plan(t, svc, pods(240, nil), existing, 100)
		if len(p.Create) != 0 || len(p.Delete) != 0 || len(p.Update) != 1 {
			t.Fatalf("want one update, got %d creates, %d updates, %d deletes", len(p.Create), len(p.Update), len(p.Delete))
		}
		if got := sizes(after); len(got) != 3 || got[0]+got[1]+got[2] != 240 {
			t.Errorf("sizes %v, want 3 slices holding 240", got)
		}
	})

	t.Run("a slice emptied while another must be made is reused", func(t *testing.T) {
		// All pods switch to a new port number: every endpoint moves to a
		// new port group; the old slices are recycled, not recreated.
		ps := pods(250, func(_ int, p *corev1.Pod) { p.Spec.Containers[0].Ports[0].ContainerPort = 9090 })
		p, after := plan(t, svc, ps, existing, 100)
		if len(p.Create) != 0 || len(p.Delete) != 0 || len(p.Update) != 3 {
			t.Fatalf("want 3 updates, got %d creates, %d updates, %d deletes", len(p.Create), len(p.Update), len(p.Delete))
		}
		if names(after) != names(existing) {
			t.Errorf("slice names changed: %s → %s", names(existing), names(after))
		}
	})

	t.Run("service labels are copied", func(t *testing.T) {
		svc2 := testService(func(s *corev1.Service) { s.Labels["tier"] = "web" })
		p, _ := plan(t, svc2, pods(250, nil), existing, 100)
		if len(p.Update) != 3 || p.Update[0].Labels["tier"] != "web" {
			t.Fatalf("want 3 label updates, got %d", len(p.Update))
		}
	})
}

func TestPlanSlicesNamedPortsSplit(t *testing.T) {
	ps := pods(10, func(i int, p *corev1.Pod) {
		if i%2 == 1 {
			p.Spec.Containers[0].Ports[0].ContainerPort = 9090
		}
	})
	p, _ := plan(t, testService(nil), ps, nil, 100)
	if len(p.Create) != 2 {
		t.Fatalf("pods resolving the named port to 8080 and 9090 need 2 slices, got %d", len(p.Create))
	}
	for _, s := range p.Create {
		want := int32(8080)
		if s.Endpoints[0].TargetRef.Name[len(s.Endpoints[0].TargetRef.Name)-1]%2 == 1 {
			want = 9090
		}
		if len(s.Endpoints) != 5 || *s.Ports[0].Port != want {
			t.Errorf("slice with %d endpoints on port %d, want 5 on %d", len(s.Endpoints), *s.Ports[0].Port, want)
		}
	}
}

func TestPlanSlicesPlaceholder(t *testing.T) {
	svc := testService(nil)
	p, after := plan(t, svc, nil, nil, 100)
	if len(p.Create) != 1 || len(p.Create[0].Endpoints) != 0 || len(p.Create[0].Ports) != 0 {
		t.Fatalf("a service without pods gets one empty placeholder slice, got %+v", p)
	}
	// Pods arrive: the placeholder becomes the real slice.
	p, after = plan(t, svc, pods(3, nil), after, 100)
	if len(p.Create) != 0 || len(p.Update) != 1 || len(p.Delete) != 0 || len(after) != 1 || len(after[0].Endpoints) != 3 {
		t.Fatalf("placeholder not reused: %d creates, %d updates, %d deletes", len(p.Create), len(p.Update), len(p.Delete))
	}
	// And back.
	p, after = plan(t, svc, nil, after, 100)
	if len(after) != 1 || len(after[0].Endpoints) != 0 || len(p.Create) != 0 {
		t.Fatalf("back to a placeholder: %d creates, %d updates, %d deletes", len(p.Create), len(p.Update), len(p.Delete))
	}
}

func TestPlanSlicesForeignOwner(t *testing.T) {
	svc := testService(nil)
	_, existing := plan(t, svc, pods(3, nil), nil, 100)
	// The Service was deleted and created again: new UID.
	svc2 := testService(func(s *corev1.Service) { s.UID = "svc-uid-2" })
	p, after := plan(t, svc2, pods(3, nil), existing, 100)
	if len(p.Create) != 1 || len(p.Delete) != 1 || len(p.Update) != 0 {
		t.Fatalf("a slice of an earlier service is deleted, not taken over: %d creates, %d updates, %d deletes", len(p.Create), len(p.Update), len(p.Delete))
	}
	if after[0].OwnerReferences[0].UID != "svc-uid-2" {
		t.Errorf("owner %s", after[0].OwnerReferences[0].UID)
	}
}

func TestPlanSlicesMissingNode(t *testing.T) {
	ps := pods(3, func(i int, p *corev1.Pod) {
		if i == 0 {
			p.Spec.NodeName = "node-gone"
		}
	})
	p, err := PlanSlices(testService(nil), ps, nil, nodes, 100)
	if err == nil || !strings.Contains(err.Error(), "node-gone") {
		t.Errorf("want an error naming the missing node, got %v", err)
	}
	if len(p.Create) != 1 || len(p.Create[0].Endpoints) != 2 {
		t.Fatalf("the other pods are still published: %+v", p.Create)
	}
	svc := testService(func(s *corev1.Service) { s.Spec.PublishNotReadyAddresses = true })
	p, err = PlanSlices(svc, ps, nil, nodes, 100)
	if err != nil || len(p.Create[0].Endpoints) != 3 {
		t.Errorf("publishNotReadyAddresses publishes pods on unknown nodes too: err %v", err)
	}
}

func TestPlanSlicesHeadlessAndDualStack(t *testing.T) {
	headless := testService(func(s *corev1.Service) { s.Spec.ClusterIP, s.Spec.Ports = corev1.ClusterIPNone, nil })
	p, _ := plan(t, headless, pods(2, nil), nil, 100)
	if len(p.Create) != 1 || len(p.Create[0].Ports) != 0 || len(p.Create[0].Endpoints) != 2 {
		t.Fatalf("headless service without ports: %+v", p.Create)
	}
	if _, ok := p.Create[0].Labels[corev1.IsHeadlessService]; !ok {
		t.Error("headless label missing")
	}
	dual := testService(func(s *corev1.Service) {
		s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}
	})
	ps := pods(2, func(i int, p *corev1.Pod) {
		p.Status.PodIPs = append(p.Status.PodIPs, corev1.PodIP{IP: fmt.Sprintf("fd00::%d", i+1)})
	})
	p, _ = plan(t, dual, ps, nil, 100)
	if len(p.Create) != 2 || p.Create[0].AddressType == p.Create[1].AddressType {
		t.Fatalf("dual-stack service gets an IPv4 and an IPv6 slice, got %d", len(p.Create))
	}
}

func TestPlanSlicesSkipsPodsNotEligible(t *testing.T) {
	ps := []*corev1.Pod{
		testPod(0, true, nil),
		testPod(1, true, func(p *corev1.Pod) { p.Status.PodIP, p.Status.PodIPs = "", nil }),
		testPod(2, false, func(p *corev1.Pod) { p.Status.Phase = corev1.PodFailed }),
		testPod(3, true, func(p *corev1.Pod) { now := metav1.Now(); p.DeletionTimestamp = &now }),
	}
	p, _ := plan(t, testService(nil), ps, nil, 100)
	if len(p.Create) != 1 || len(p.Create[0].Endpoints) != 2 {
		t.Fatalf("want the ready pod and the terminating one, got %+v", p.Create)
	}
}

package dns

import (
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Conventions: services in 10.96.0.0/16 and fd00:10:96::/64, pods in
// 10.244.0.0/16; upstream fakes listen on 127.0.0.2–127.0.0.9 inside the
// test's network namespace (TestMain).

func clusterIPService(ns, name string, ips []string, ports ...corev1.ServicePort) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, ClusterIP: ips[0], ClusterIPs: ips, Ports: ports},
	}
}

func headlessService(ns, name string, ports ...corev1.ServicePort) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, ClusterIP: corev1.ClusterIPNone, ClusterIPs: []string{corev1.ClusterIPNone}, Ports: ports},
	}
}

func externalNameService(ns, name, target string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: target},
	}
}

func port(name string, proto corev1.Protocol, p int32) corev1.ServicePort {
	return corev1.ServicePort{Name: name, Protocol: proto, Port: p}
}

// ep is an endpoint: address, hostname ("" for none), ready.
type ep struct {
	addr, host string
	ready      bool
}

func slice(ns, svc, name string, eps ...ep) *discoveryv1.EndpointSlice {
	s := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4,
	}
	for _, e := range eps {
		d := discoveryv1.Endpoint{Addresses: []string{e.addr}, Conditions: discoveryv1.EndpointConditions{Ready: &e.ready}}
		if e.host != "" {
			d.Hostname = &e.host
		}
		s.Endpoints = append(s.Endpoints, d)
	}
	return s
}

// storeOf builds a store from API objects the way the informers do.
func storeOf(t testing.TB, objs ...any) *Store {
	t.Helper()
	s := NewStore()
	for _, o := range objs {
		apply(t, s, o)
	}
	return s
}

func apply(t testing.TB, s *Store, o any) {
	t.Helper()
	switch o := o.(type) {
	case *corev1.Service:
		s.SetService(ServiceRecord(o))
	case *discoveryv1.EndpointSlice:
		ns, svc, ok := SliceService(o)
		if !ok {
			t.Fatalf("slice %s/%s has no service label", o.Namespace, o.Name)
		}
		s.SetEndpoints(ns, svc, o.Name, EndpointRecords(o))
	default:
		t.Fatalf("unexpected object %T", o)
	}
}

// zoneFile renders records as zone-file lines, single-spaced and sorted,
// so that tables compare them as text.
func zoneFile(rrs []dns.RR) []string {
	out := make([]string, 0, len(rrs))
	for _, rr := range rrs {
		out = append(out, strings.Join(strings.Fields(rr.String()), " "))
	}
	slices.Sort(out)
	return out
}

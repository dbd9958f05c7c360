package lb

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Conventions: the underlay is 10.77.0.0/24 (.1 client, .2-.4 nodes, .9
// the LB), the pool 10.77.0.200/29. Only the kernel test sends traffic,
// and only inside the namespaces it makes.

func node(name, ip string, ready bool, labels ...string) *corev1.Node {
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{}},
		Status: corev1.NodeStatus{
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: st}},
			Addresses: []corev1.NodeAddress{{Type: corev1.NodeHostName, Address: name},
				{Type: corev1.NodeInternalIP, Address: ip}},
		}}
	for _, l := range labels {
		n.Labels[l] = ""
	}
	return n
}

type svcOpt func(*corev1.Service)

func lbService(name string, ingress string, opts ...svcOpt) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer,
			ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyCluster,
			Ports:                 []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP, NodePort: 30080}}},
	}
	if ingress != "" {
		s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: ingress}}
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

func ports(ps ...corev1.ServicePort) svcOpt { return func(s *corev1.Service) { s.Spec.Ports = ps } }
func class(c string) svcOpt                 { return func(s *corev1.Service) { s.Spec.LoadBalancerClass = &c } }
func local(hc int32) svcOpt {
	return func(s *corev1.Service) {
		s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
		s.Spec.HealthCheckNodePort = hc
	}
}

func allUp(Target) Health { return Up }

func frontends(st State) []string {
	var out []string
	for _, f := range st.Frontends {
		out = append(out, fmt.Sprintf("%s %s:%d/%s -> %v:%d", f.Service, f.IP, f.Port, f.Protocol, f.Nodes, f.NodePort))
	}
	return out
}

func TestReadyNodes(t *testing.T) {
	got := ReadyNodes([]*corev1.Node{
		node("b", "10.77.0.3", true),
		node("a", "10.77.0.2", true),
		node("not-ready", "10.77.0.4", false),
		node("excluded", "10.77.0.5", true, LabelExcludeFromLB),
		node("v6-only", "fd00::5", true),
		{ObjectMeta: metav1.ObjectMeta{Name: "no-status"}},
	})
	want := []Node{{"a", netip.MustParseAddr("10.77.0.2")}, {"b", netip.MustParseAddr("10.77.0.3")}}
	if !slices.Equal(got, want) {
		t.Errorf("ReadyNodes = %v, want %v", got, want)
	}
}

func TestDesired(t *testing.T) {
	nodes := ReadyNodes([]*corev1.Node{node("n1", "10.77.0.2", true), node("n2", "10.77.0.3", true), node("n3", "10.77.0.4", true)})
	pool := []netip.Prefix{netip.MustParsePrefix("10.77.0.200/29")}
	down := map[Target]bool{
		{IP: netip.MustParseAddr("10.77.0.3"), Port: 30080}:             true,
		{IP: netip.MustParseAddr("10.77.0.4"), Port: 31999, HTTP: true}: true,
	}
	health := func(t Target) Health {
		if down[t] {
			return Down
		}
		return Unknown // counts as up
	}
	svcs := []*corev1.Service{
		lbService("web", "10.77.0.200"),
		lbService("dns", "10.77.0.201", ports(
			corev1.ServicePort{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP, NodePort: 30053},
			corev1.ServicePort{Name: "dns-tcp", Port: 53, Protocol: corev1.ProtocolTCP, NodePort: 30054})),
		lbService("local", "10.77.0.202", local(31999), ports(corev1.ServicePort{Port: 8080, Protocol: corev1.ProtocolTCP, NodePort: 30090})),
		lbService("pending", ""),
		lbService("other-class", "10.77.0.203", class("example.com/other")),
		lbService("ours", "10.77.0.204", class(DefaultClass), ports(corev1.ServicePort{Port: 81, NodePort: 30081})),
		lbService("no-nodeport", "10.77.0.205", ports(corev1.ServicePort{Port: 82})),
		func() *corev1.Service {
			s := lbService("cluster-ip", "10.77.0.206")
			s.Spec.Type = corev1.ServiceTypeClusterIP
			return s
		}(),
	}
	st, targets := Desired(svcs, nodes, DefaultClass, pool, health)
	want := []string{
		"default/web 10.77.0.200:80/tcp -> [10.77.0.2 10.77.0.4]:30080",
		"default/dns 10.77.0.201:53/tcp -> [10.77.0.2 10.77.0.3 10.77.0.4]:30054",
		"default/dns 10.77.0.201:53/udp -> [10.77.0.2 10.77.0.3 10.77.0.4]:30053",
		"default/local 10.77.0.202:8080/tcp -> [10.77.0.2 10.77.0.3]:30090",
		"default/ours 10.77.0.204:81/tcp -> [10.77.0.2 10.77.0.3 10.77.0.4]:30081",
	}
	if got := frontends(st); !slices.Equal(got, want) {
		t.Errorf("frontends:\n%q\nwant\n%q", got, want)
	}
	var addrs []string
	for _, a := range st.Addrs {
		addrs = append(addrs, a.String())
	}
	if want := []string{"10.77.0.200", "10.77.0.201", "10.77.0.202", "10.77.0.204", "10.77.0.205"}; !slices.Equal(addrs, want) {
		t.Errorf("addresses %v, want %v", addrs, want)
	}
	// Checks: TCP NodePorts per node for Cluster policy, the health check
	// node port over HTTP for Local; none for UDP.
	var ts []string
	for _, tg := range targets {
		ts = append(ts, tg.String())
	}
	wantTargets := []string{}
	for _, n := range []string{"10.77.0.2", "10.77.0.3", "10.77.0.4"} {
		wantTargets = append(wantTargets, "tcp:"+n+":30054", "tcp:"+n+":30080", "tcp:"+n+":30081", "http://"+n+":31999/")
	}
	if !slices.Equal(ts, wantTargets) {
		t.Errorf("targets:\n%v\nwant\n%v", ts, wantTargets)
	}
}

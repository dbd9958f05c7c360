package proxy

import (
	"fmt"
	"net/netip"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Test address conventions (unit tests; nothing is sent): node "node-a"
// at 192.168.50.1, pod CIDR 10.244.0.0/16 with node-a's pods in
// 10.244.1.0/24 and node-b's in 10.244.2.0/24, Services in 10.96.0.0/16,
// external and load-balancer IPs in 192.168.60.0/24, outside clients in
// 192.168.70.0/24.
const (
	thisNode  = "node-a"
	otherNode = "node-b"
)

var (
	testClusterCIDR = netip.MustParsePrefix("10.244.0.0/16")
	testNodeIP      = netip.MustParseAddr("192.168.50.1")
)

func testConfig(mode string) Config {
	return Config{NodeName: thisNode, NodeIPs: []netip.Addr{testNodeIP}, ClusterCIDR: testClusterCIDR, Mode: mode}
}

type svcOpt func(*v1.Service)

func service(ns, name, clusterIP string, ports []v1.ServicePort, opts ...svcOpt) *v1.Service {
	s := &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1.ServiceSpec{Type: v1.ServiceTypeClusterIP, ClusterIP: clusterIP, ClusterIPs: []string{clusterIP},
			Ports: ports, SessionAffinity: v1.ServiceAffinityNone},
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

func port(name string, proto v1.Protocol, p int32, target intstr.IntOrString, nodePort int32) v1.ServicePort {
	return v1.ServicePort{Name: name, Protocol: proto, Port: p, TargetPort: target, NodePort: nodePort}
}

func nodePortType(s *v1.Service) {
	s.Spec.Type = v1.ServiceTypeNodePort
	s.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyCluster
}

func loadBalancer(ips ...string) svcOpt {
	return func(s *v1.Service) {
		s.Spec.Type = v1.ServiceTypeLoadBalancer
		if s.Spec.ExternalTrafficPolicy == "" {
			s.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyCluster
		}
		for _, ip := range ips {
			s.Status.LoadBalancer.Ingress = append(s.Status.LoadBalancer.Ingress, v1.LoadBalancerIngress{IP: ip})
		}
	}
}

func externalIPs(ips ...string) svcOpt {
	return func(s *v1.Service) { s.Spec.ExternalIPs = ips }
}

func externalLocal(hcPort int32) svcOpt {
	return func(s *v1.Service) {
		s.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal
		s.Spec.HealthCheckNodePort = hcPort
	}
}

func internalLocal(s *v1.Service) {
	p := v1.ServiceInternalTrafficPolicyLocal
	s.Spec.InternalTrafficPolicy = &p
}

func affinity(seconds int32) svcOpt {
	return func(s *v1.Service) {
		s.Spec.SessionAffinity = v1.ServiceAffinityClientIP
		s.Spec.SessionAffinityConfig = &v1.SessionAffinityConfig{ClientIP: &v1.ClientIPConfig{TimeoutSeconds: &seconds}}
	}
}

// ep is an endpoint for slice(): "ip@node", with conditions.
type ep struct {
	ip, node                    string
	ready, serving, terminating bool
}

func readyEP(ip, node string) ep { return ep{ip: ip, node: node, ready: true, serving: true} }

type slicePort struct {
	name  string
	proto v1.Protocol
	port  int32
}

func slice(ns, svc, name string, ports []slicePort, eps ...ep) *discovery.EndpointSlice {
	s := &discovery.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{discovery.LabelServiceName: svc}},
		AddressType: discovery.AddressTypeIPv4,
	}
	for _, p := range ports {
		s.Ports = append(s.Ports, discovery.EndpointPort{Name: ptr(p.name), Protocol: ptr(p.proto), Port: ptr(p.port)})
	}
	for _, e := range eps {
		s.Endpoints = append(s.Endpoints, discovery.Endpoint{
			Addresses:  []string{e.ip},
			NodeName:   ptr(e.node),
			Conditions: discovery.EndpointConditions{Ready: ptr(e.ready), Serving: ptr(e.serving), Terminating: ptr(e.terminating)},
			TargetRef:  &v1.ObjectReference{Kind: "Pod", Namespace: ns, Name: fmt.Sprintf("%s-%s", svc, e.ip)},
		})
	}
	return s
}

func ptr[T any](v T) *T { return &v }

var httpPort = []slicePort{{"http", v1.ProtocolTCP, 8080}}

// scenario is one cluster state every backend test uses.
type scenario struct {
	name     string
	services []*v1.Service
	slices   []*discovery.EndpointSlice
}

func (s scenario) model() *Model {
	return BuildModel(ModelInput{NodeName: thisNode, ClusterCIDR: testClusterCIDR, Services: s.services, Slices: s.slices})
}

// scenarios are the cluster states of the golden and packet-flow tests.
func scenarios() []scenario {
	http := []v1.ServicePort{port("http", v1.ProtocolTCP, 80, intstr.FromString("http"), 0)}
	return []scenario{
		{
			name:     "clusterip",
			services: []*v1.Service{service("default", "kuard", "10.96.0.20", http)},
			slices: []*discovery.EndpointSlice{slice("default", "kuard", "kuard-1", httpPort,
				readyEP("10.244.1.5", thisNode), readyEP("10.244.2.5", otherNode), readyEP("10.244.2.6", otherNode))},
		},
		{
			name: "nodeport-lb-externalip",
			services: []*v1.Service{service("default", "web", "10.96.0.30",
				[]v1.ServicePort{port("", v1.ProtocolTCP, 80, intstr.FromInt32(8080), 30361)},
				nodePortType, loadBalancer("192.168.60.10"), externalIPs("192.168.60.20"))},
			slices: []*discovery.EndpointSlice{slice("default", "web", "web-1", []slicePort{{"", v1.ProtocolTCP, 8080}},
				readyEP("10.244.1.7", thisNode), readyEP("10.244.2.7", otherNode))},
		},
		{
			name: "external-local",
			services: []*v1.Service{service("default", "local", "10.96.0.40",
				[]v1.ServicePort{port("", v1.ProtocolTCP, 80, intstr.FromInt32(8080), 30400)},
				loadBalancer("192.168.60.40"), externalLocal(32000))},
			slices: []*discovery.EndpointSlice{slice("default", "local", "local-1", []slicePort{{"", v1.ProtocolTCP, 8080}},
				readyEP("10.244.1.8", thisNode), readyEP("10.244.2.8", otherNode))},
		},
		{
			name: "no-endpoints",
			services: []*v1.Service{service("default", "empty", "10.96.0.50",
				[]v1.ServicePort{port("", v1.ProtocolTCP, 80, intstr.FromInt32(8080), 30500)}, nodePortType)},
			slices: []*discovery.EndpointSlice{slice("default", "empty", "empty-1", []slicePort{{"", v1.ProtocolTCP, 8080}},
				ep{ip: "10.244.1.9", node: thisNode})}, // not ready, not serving
		},
		{
			name:     "affinity",
			services: []*v1.Service{service("default", "sticky", "10.96.0.60", http, affinity(60))},
			slices: []*discovery.EndpointSlice{slice("default", "sticky", "sticky-1", httpPort,
				readyEP("10.244.1.10", thisNode), readyEP("10.244.2.10", otherNode))},
		},
		{
			name: "dns-udp-tcp",
			services: []*v1.Service{service("kube-system", "kube-dns", "10.96.0.10", []v1.ServicePort{
				port("dns", v1.ProtocolUDP, 53, intstr.FromString("dns"), 0),
				port("dns-tcp", v1.ProtocolTCP, 53, intstr.FromString("dns-tcp"), 0)})},
			slices: []*discovery.EndpointSlice{slice("kube-system", "kube-dns", "kube-dns-1",
				[]slicePort{{"dns", v1.ProtocolUDP, 5353}, {"dns-tcp", v1.ProtocolTCP, 5354}},
				readyEP("10.244.1.11", thisNode), readyEP("10.244.2.11", otherNode))},
		},
		{
			name:     "internal-local",
			services: []*v1.Service{service("default", "node-local", "10.96.0.70", http, internalLocal)},
			slices: []*discovery.EndpointSlice{slice("default", "node-local", "node-local-1", httpPort,
				readyEP("10.244.2.12", otherNode))},
		},
		{
			name:     "terminating",
			services: []*v1.Service{service("default", "draining", "10.96.0.80", http)},
			slices: []*discovery.EndpointSlice{slice("default", "draining", "draining-1", httpPort,
				ep{ip: "10.244.1.13", node: thisNode, serving: true, terminating: true},
				ep{ip: "10.244.2.13", node: otherNode, terminating: true})},
		},
	}
}

func scenarioNamed(name string) scenario {
	for _, s := range scenarios() {
		if s.name == name {
			return s
		}
	}
	panic("no scenario " + name)
}

package printers

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

func testService(typ corev1.ServiceType, clusterIP string, ports ...corev1.ServicePort) *corev1.Service {
	s := &corev1.Service{ObjectMeta: objectMeta("web"), Spec: corev1.ServiceSpec{Type: typ, Ports: ports, Selector: map[string]string{"app": "web"}}}
	if clusterIP != "" {
		s.Spec.ClusterIP, s.Spec.ClusterIPs = clusterIP, []string{clusterIP}
	}
	return s
}

func port(p, nodePort int32, proto corev1.Protocol) corev1.ServicePort {
	return corev1.ServicePort{Port: p, NodePort: nodePort, Protocol: proto}
}

func TestServiceRows(t *testing.T) {
	dns := testService(corev1.ServiceTypeClusterIP, "10.96.0.10", port(53, 0, corev1.ProtocolUDP), port(53, 0, corev1.ProtocolTCP), port(9153, 0, corev1.ProtocolTCP))
	dns.Spec.Selector = map[string]string{"k8s-app": "kube-dns", "tier": "control-plane"}

	headless := testService(corev1.ServiceTypeClusterIP, "None")
	headless.Spec.Selector = nil

	withExternal := testService(corev1.ServiceTypeNodePort, "10.96.5.6", port(80, 30080, corev1.ProtocolTCP))
	withExternal.Spec.ExternalIPs = []string{"203.0.113.7", "203.0.113.8"}

	lbReady := testService(corev1.ServiceTypeLoadBalancer, "10.96.7.8", port(443, 31443, corev1.ProtocolTCP))
	lbReady.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{Hostname: "lb.example.com"}, {IP: "203.0.113.20"}, {IP: "203.0.113.20"}}

	lbMixed := testService(corev1.ServiceTypeLoadBalancer, "10.96.7.9", port(443, 31444, corev1.ProtocolTCP))
	lbMixed.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "203.0.113.21"}}
	lbMixed.Spec.ExternalIPs = []string{"203.0.113.9"}

	lbExternalOnly := testService(corev1.ServiceTypeLoadBalancer, "10.96.7.10", port(443, 31445, corev1.ProtocolTCP))
	lbExternalOnly.Spec.ExternalIPs = []string{"203.0.113.10"}

	// kube-apiserver prints in wide mode, so long lists are not clipped.
	lbMany := testService(corev1.ServiceTypeLoadBalancer, "10.96.7.11", port(80, 31080, corev1.ProtocolTCP))
	for i := 1; i <= 4; i++ {
		lbMany.Status.LoadBalancer.Ingress = append(lbMany.Status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{IP: fmt.Sprintf("203.0.113.%d", 100+i)})
	}

	external := testService(corev1.ServiceTypeExternalName, "")
	external.Spec.ExternalName = "db.example.com"
	external.Spec.Selector = nil

	// Not defaulted: no type, clusterIP without clusterIPs, no protocol.
	undefaulted := testService("", "", port(8080, 0, ""))
	undefaulted.Spec.ClusterIP = "10.96.9.9"

	dualStack := testService(corev1.ServiceTypeClusterIP, "10.96.3.3", port(80, 0, corev1.ProtocolTCP))
	dualStack.Spec.ClusterIPs = []string{"10.96.3.3", "fd00:10:96::3"}

	runRowCases(t, servicesGR, []rowCase{
		{"cluster IP", dns,
			"web | ClusterIP | 10.96.0.10 | <none> | 53/UDP,53/TCP,9153/TCP | 10m | k8s-app=kube-dns,tier=control-plane"},
		{"headless without ports", headless,
			"web | ClusterIP | None | <none> | <none> | 10m | <none>"},
		{"node port", testService(corev1.ServiceTypeNodePort, "10.96.1.2", port(80, 30361, corev1.ProtocolTCP), port(443, 0, corev1.ProtocolTCP)),
			"web | NodePort | 10.96.1.2 | <none> | 80:30361/TCP,443/TCP | 10m | app=web"},
		{"node port with external IPs", withExternal,
			"web | NodePort | 10.96.5.6 | 203.0.113.7,203.0.113.8 | 80:30080/TCP | 10m | app=web"},
		{"load balancer pending", testService(corev1.ServiceTypeLoadBalancer, "10.96.7.7", port(80, 31000, corev1.ProtocolTCP)),
			"web | LoadBalancer | 10.96.7.7 | <pending> | 80:31000/TCP | 10m | app=web"},
		{"load balancer with ingress", lbReady,
			"web | LoadBalancer | 10.96.7.8 | 203.0.113.20,lb.example.com | 443:31443/TCP | 10m | app=web"},
		{"load balancer with ingress and external IPs", lbMixed,
			"web | LoadBalancer | 10.96.7.9 | 203.0.113.21,203.0.113.9 | 443:31444/TCP | 10m | app=web"},
		{"load balancer with external IPs only", lbExternalOnly,
			"web | LoadBalancer | 10.96.7.10 | 203.0.113.10 | 443:31445/TCP | 10m | app=web"},
		{"load balancer with many ingress points", lbMany,
			"web | LoadBalancer | 10.96.7.11 | 203.0.113.101,203.0.113.102,203.0.113.103,203.0.113.104 | 80:31080/TCP | 10m | app=web"},
		{"external name", external,
			"web | ExternalName | <none> | db.example.com | <none> | 10m | <none>"},
		{"unset fields read as defaults", undefaulted,
			"web | ClusterIP | 10.96.9.9 | <none> | 8080/TCP | 10m | app=web"},
		{"dual stack shows the primary IP", dualStack,
			"web | ClusterIP | 10.96.3.3 | <none> | 80/TCP | 10m | app=web"},
	})
}

func addresses(ips ...string) []corev1.EndpointAddress {
	out := make([]corev1.EndpointAddress, len(ips))
	for i, ip := range ips {
		out[i] = corev1.EndpointAddress{IP: ip}
	}
	return out
}

func podIPs(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("10.244.0.%d", i+1)
	}
	return out
}

func testEndpoints(subsets ...corev1.EndpointSubset) *corev1.Endpoints {
	return &corev1.Endpoints{ObjectMeta: objectMeta("web"), Subsets: subsets}
}

func TestEndpointsRows(t *testing.T) {
	http := []corev1.EndpointPort{{Name: "http", Port: 8080}}
	twoPorts := []corev1.EndpointPort{{Name: "http", Port: 80}, {Name: "https", Port: 443}}

	runRowCases(t, endpointsGR, []rowCase{
		{"no subsets", testEndpoints(),
			"web | <none> | 10m"},
		{"two addresses", testEndpoints(corev1.EndpointSubset{Addresses: addresses("10.244.0.1", "10.244.0.2"), Ports: http}),
			"web | 10.244.0.1:8080,10.244.0.2:8080 | 10m"},
		{"three addresses, none left over", testEndpoints(corev1.EndpointSubset{Addresses: addresses(podIPs(3)...), Ports: http}),
			"web | 10.244.0.1:8080,10.244.0.2:8080,10.244.0.3:8080 | 10m"},
		{"ten addresses", testEndpoints(corev1.EndpointSubset{Addresses: addresses(podIPs(10)...), Ports: http}),
			"web | 10.244.0.1:8080,10.244.0.2:8080,10.244.0.3:8080 + 7 more... | 10m"},
		{"each port counts per address", testEndpoints(corev1.EndpointSubset{Addresses: addresses(podIPs(5)...), Ports: twoPorts}),
			"web | 10.244.0.1:80,10.244.0.2:80,10.244.0.3:80 + 7 more... | 10m"},
		{"headless without ports", testEndpoints(corev1.EndpointSubset{Addresses: addresses("10.244.0.1", "10.244.0.2")}),
			"web | 10.244.0.1,10.244.0.2 | 10m"},
		{"several subsets", testEndpoints(
			corev1.EndpointSubset{Addresses: addresses("10.244.0.1"), Ports: http},
			corev1.EndpointSubset{Addresses: addresses("10.244.0.2", "10.244.0.3", "10.244.0.4"), Ports: twoPorts}),
			"web | 10.244.0.1:8080,10.244.0.2:80,10.244.0.3:80 + 4 more... | 10m"},
		{"IPv6", testEndpoints(corev1.EndpointSubset{Addresses: addresses("fd00::1"), Ports: http}),
			"web | [fd00::1]:8080 | 10m"},
		{"only not-ready addresses", testEndpoints(corev1.EndpointSubset{NotReadyAddresses: addresses("10.244.0.1"), Ports: http}),
			"web |  | 10m"},
	})
}

func testSlice(ports []discoveryv1.EndpointPort, addrs ...[]string) *discoveryv1.EndpointSlice {
	s := &discoveryv1.EndpointSlice{ObjectMeta: objectMeta("web-abcde"), AddressType: discoveryv1.AddressTypeIPv4, Ports: ports}
	for _, a := range addrs {
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{Addresses: a})
	}
	return s
}

func TestEndpointSliceRows(t *testing.T) {
	httpAndTLS := []discoveryv1.EndpointPort{{Name: ptr("http"), Port: ptr(int32(80))}, {Name: ptr("https"), Port: ptr(int32(443))}}
	manyPorts := []discoveryv1.EndpointPort{{Port: ptr(int32(1))}, {Port: ptr(int32(2))}, {Port: ptr(int32(3))}, {Port: ptr(int32(4))}}
	odd := []discoveryv1.EndpointPort{{Name: ptr("metrics")}, {}}
	ipv6 := testSlice(httpAndTLS, []string{"fd00::1"})
	ipv6.AddressType = discoveryv1.AddressTypeIPv6

	runRowCases(t, endpointSlicesGR, []rowCase{
		{"two endpoints", testSlice(httpAndTLS, []string{"10.244.0.1"}, []string{"10.244.0.2"}),
			"web-abcde | IPv4 | 80,443 | 10.244.0.1,10.244.0.2 | 10m"},
		{"empty", testSlice(nil),
			"web-abcde | IPv4 | <unset> | <unset> | 10m"},
		{"five endpoints", testSlice(httpAndTLS, podIPs(2), podIPs(5)[2:]),
			"web-abcde | IPv4 | 80,443 | 10.244.0.1,10.244.0.2,10.244.0.3 + 2 more... | 10m"},
		{"four ports", testSlice(manyPorts, []string{"10.244.0.1"}),
			"web-abcde | IPv4 | 1,2,3 + 1 more... | 10.244.0.1 | 10m"},
		{"port without number, port without anything", testSlice(odd, []string{"10.244.0.1"}),
			"web-abcde | IPv4 | metrics,* | 10.244.0.1 | 10m"},
		{"IPv6", ipv6,
			"web-abcde | IPv6 | 80,443 | fd00::1 | 10m"},
	})
}

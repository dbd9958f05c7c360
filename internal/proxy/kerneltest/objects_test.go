package kerneltest

import (
	"fmt"
	"net/netip"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"kite/internal/proxy"
)

// svc is a Service "default/<name>" with one TCP port 80 → "http" and one
// UDP port 53 → "dns"; opts adjust it.
func svc(name, clusterIP string, opts ...func(*v1.Service)) *v1.Service {
	s := &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
		Spec: v1.ServiceSpec{Type: v1.ServiceTypeClusterIP, ClusterIP: clusterIP, ClusterIPs: []string{clusterIP},
			Ports: []v1.ServicePort{
				{Name: "http", Protocol: v1.ProtocolTCP, Port: 80, TargetPort: intstr.FromString("http")},
				{Name: "dns", Protocol: v1.ProtocolUDP, Port: 53, TargetPort: intstr.FromString("dns")},
			}},
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

func withNodePort(tcp int32) func(*v1.Service) {
	return func(s *v1.Service) {
		s.Spec.Type = v1.ServiceTypeNodePort
		s.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyCluster
		s.Spec.Ports[0].NodePort = tcp
	}
}

func withLoadBalancer(ip string, hcPort int32) func(*v1.Service) {
	return func(s *v1.Service) {
		s.Spec.Type = v1.ServiceTypeLoadBalancer
		s.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal
		s.Spec.HealthCheckNodePort = hcPort
		s.Status.LoadBalancer.Ingress = []v1.LoadBalancerIngress{{IP: ip}}
	}
}

// endpoints is the EndpointSlice of default/<name> listing pods (by name)
// as ready endpoints on this node.
func endpoints(name string, podNames ...string) *discovery.EndpointSlice {
	s := &discovery.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "default", Name: name + "-1", Labels: map[string]string{discovery.LabelServiceName: name}},
		AddressType: discovery.AddressTypeIPv4,
		Ports: []discovery.EndpointPort{
			{Name: ptr("http"), Protocol: ptr(v1.ProtocolTCP), Port: ptr(int32(tcpPort))},
			{Name: ptr("dns"), Protocol: ptr(v1.ProtocolUDP), Port: ptr(int32(udpPort))},
		},
	}
	for _, p := range podNames {
		s.Endpoints = append(s.Endpoints, discovery.Endpoint{
			Addresses:  []string{pods[p]},
			NodeName:   ptr(nodeName),
			Conditions: discovery.EndpointConditions{Ready: ptr(true)},
			TargetRef:  &v1.ObjectReference{Kind: "Pod", Namespace: "default", Name: p},
		})
	}
	return s
}

func ptr[T any](v T) *T { return &v }

func config(mode string) proxy.Config {
	return proxy.Config{
		NodeName:    nodeName,
		NodeIPs:     []netip.Addr{mustAddr(nodeIP)},
		ClusterCIDR: netip.MustParsePrefix(clusterCIDR),
		Mode:        mode,
	}
}

// model is the Model for these objects (pairs of Service, slice).
func model(objs ...any) *proxy.Model {
	in := proxy.ModelInput{NodeName: nodeName, ClusterCIDR: netip.MustParsePrefix(clusterCIDR)}
	for _, o := range objs {
		switch o := o.(type) {
		case *v1.Service:
			in.Services = append(in.Services, o)
		case *discovery.EndpointSlice:
			in.Slices = append(in.Slices, o)
		default:
			panic(fmt.Sprintf("model: %T", o))
		}
	}
	return proxy.BuildModel(in)
}

var modes = []string{proxy.ModeNFTables, proxy.ModeIPTables}

package validation

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"kite/internal/apiserver/defaults"
)

func TestValidateService(t *testing.T) {
	tests := []struct {
		name string
		edit func(*corev1.Service)
		want []string
	}{
		{"valid", func(*corev1.Service) {}, nil},
		{"name is a DNS-1035 label", func(s *corev1.Service) { s.Name = "1web" }, []string{"Invalid metadata.name"}},
		{"type", func(s *corev1.Service) { s.Spec.Type = "Magic" }, []string{"NotSupported spec.type"}},
		{"no ports", func(s *corev1.Service) { s.Spec.Ports = nil }, []string{"Required spec.ports"}},
		{"headless needs no ports", func(s *corev1.Service) { s.Spec.Ports, s.Spec.ClusterIP = nil, "None" }, nil},
		{"port range", func(s *corev1.Service) { s.Spec.Ports[0].Port = 0 }, []string{"Invalid spec.ports[0].port"}},
		{"port protocol", func(s *corev1.Service) { s.Spec.Ports[0].Protocol = "ICMP" }, []string{"NotSupported spec.ports[0].protocol"}},
		{"target port name", func(s *corev1.Service) { s.Spec.Ports[0].TargetPort = intstr.FromString("Not_IANA") }, []string{"Invalid spec.ports[0].targetPort"}},
		{"target port number", func(s *corev1.Service) { s.Spec.Ports[0].TargetPort = intstr.FromInt32(70000) }, []string{"Invalid spec.ports[0].targetPort"}},
		{"names required with many ports", func(s *corev1.Service) {
			s.Spec.Ports = append(s.Spec.Ports, corev1.ServicePort{Name: "https", Port: 443, Protocol: "TCP", TargetPort: intstr.FromInt32(443)})
		}, []string{"Required spec.ports[0].name"}},
		{"duplicate port names and ports", func(s *corev1.Service) {
			s.Spec.Ports[0].Name = "http"
			s.Spec.Ports = append(s.Spec.Ports, s.Spec.Ports[0])
		}, []string{"Duplicate spec.ports[1].name", "Duplicate spec.ports[1]"}},
		{"same port, other protocol", func(s *corev1.Service) {
			s.Spec.Ports[0].Name = "tcp"
			udp := s.Spec.Ports[0]
			udp.Name, udp.Protocol = "udp", corev1.ProtocolUDP
			s.Spec.Ports = append(s.Spec.Ports, udp)
		}, nil},
		{"node port on ClusterIP", func(s *corev1.Service) { s.Spec.Ports[0].NodePort = 30080 }, []string{"Forbidden spec.ports[0].nodePort"}},
		{"node port out of range is the allocator's", func(s *corev1.Service) {
			s.Spec.Type = corev1.ServiceTypeNodePort
			s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster
			s.Spec.Ports[0].NodePort = 80
		}, nil},
		{"cluster IP", func(s *corev1.Service) { s.Spec.ClusterIP = "10.96.0.300" }, []string{"Invalid spec.clusterIPs[0]"}},
		{"cluster IPs must start with cluster IP", func(s *corev1.Service) {
			s.Spec.ClusterIP, s.Spec.ClusterIPs = "10.96.0.10", []string{"10.96.0.11"}
		}, []string{"Invalid spec.clusterIPs"}},
		{"dual stack", func(s *corev1.Service) {
			s.Spec.ClusterIP, s.Spec.ClusterIPs = "10.96.0.10", []string{"10.96.0.10", "fd00::10"}
			s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}
			s.Spec.IPFamilyPolicy = ptrTo(corev1.IPFamilyPolicyRequireDualStack)
		}, nil},
		{"two of one family", func(s *corev1.Service) {
			s.Spec.ClusterIP, s.Spec.ClusterIPs = "10.96.0.10", []string{"10.96.0.10", "10.96.0.11"}
		}, []string{"Invalid spec.clusterIPs"}},
		{"family mismatch", func(s *corev1.Service) {
			s.Spec.ClusterIP, s.Spec.IPFamilies = "10.96.0.10", []corev1.IPFamily{corev1.IPv6Protocol}
		}, []string{"Invalid spec.clusterIPs[0]"}},
		{"ip families", func(s *corev1.Service) {
			s.Spec.IPFamilies = []corev1.IPFamily{"IPv5", corev1.IPv4Protocol, corev1.IPv4Protocol}
			s.Spec.IPFamilyPolicy = ptrTo(corev1.IPFamilyPolicy("Whatever"))
		}, []string{"NotSupported spec.ipFamilies[0]", "Duplicate spec.ipFamilies[2]", "NotSupported spec.ipFamilyPolicy"}},
		{"None with more", func(s *corev1.Service) { s.Spec.ClusterIP, s.Spec.ClusterIPs = "None", []string{"None", "10.96.0.1"} },
			[]string{"Invalid spec.clusterIPs"}},
		{"headless NodePort", func(s *corev1.Service) {
			s.Spec.Type, s.Spec.ClusterIP = corev1.ServiceTypeNodePort, "None"
			s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster
		}, []string{"Invalid spec.clusterIPs[0]"}},
		{"selector", func(s *corev1.Service) { s.Spec.Selector = map[string]string{"app": "a b"} }, []string{"Invalid spec.selector"}},
		{"session affinity", func(s *corev1.Service) { s.Spec.SessionAffinity = "Sticky" }, []string{"NotSupported spec.sessionAffinity"}},
		{"affinity config without ClientIP", func(s *corev1.Service) {
			s.Spec.SessionAffinityConfig = &corev1.SessionAffinityConfig{}
		}, []string{"Forbidden spec.sessionAffinityConfig"}},
		{"affinity timeout", func(s *corev1.Service) {
			s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
			s.Spec.SessionAffinityConfig = &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: ptrTo(int32(86401))}}
		}, []string{"Invalid spec.sessionAffinityConfig.clientIP.timeoutSeconds"}},
		{"external traffic policy on ClusterIP", func(s *corev1.Service) { s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal },
			[]string{"Invalid spec.externalTrafficPolicy"}},
		{"external traffic policy value", func(s *corev1.Service) {
			s.Spec.Type, s.Spec.ExternalTrafficPolicy = corev1.ServiceTypeNodePort, "Global"
		}, []string{"NotSupported spec.externalTrafficPolicy"}},
		{"internal traffic policy", func(s *corev1.Service) { s.Spec.InternalTrafficPolicy = nil }, []string{"Required spec.internalTrafficPolicy"}},
		{"health check port without Local", func(s *corev1.Service) { s.Spec.HealthCheckNodePort = 30000 }, []string{"Invalid spec.healthCheckNodePort"}},
		{"external IPs", func(s *corev1.Service) { s.Spec.ExternalIPs = []string{"192.0.2.1", "127.0.0.1", "nope"} },
			[]string{"Invalid spec.externalIPs[1]", "Invalid spec.externalIPs[2]", "Required spec.externalTrafficPolicy"}},
		{"source ranges off LoadBalancer", func(s *corev1.Service) { s.Spec.LoadBalancerSourceRanges = []string{"10.0.0.0/8", "x"} },
			[]string{"Forbidden spec.LoadBalancerSourceRanges", "Invalid spec.LoadBalancerSourceRanges[1]"}},
		{"load balancer class off LoadBalancer", func(s *corev1.Service) { s.Spec.LoadBalancerClass = ptrTo("example.com/lb") },
			[]string{"Forbidden spec.loadBalancerClass"}},
		{"traffic distribution", func(s *corev1.Service) { s.Spec.TrafficDistribution = ptrTo("Anywhere") },
			[]string{"NotSupported spec.trafficDistribution"}},
		{"ExternalName", func(s *corev1.Service) {
			s.Spec = corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "db.example.com."}
			defaults.Service(s)
		}, nil},
		{"ExternalName without a name", func(s *corev1.Service) {
			s.Spec = corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName}
			defaults.Service(s)
		}, []string{"Required spec.externalName"}},
		{"ExternalName bad name and a cluster IP", func(s *corev1.Service) {
			s.Spec = corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "Not A Host", ClusterIP: "10.96.0.1",
				IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol}}
			defaults.Service(s)
		}, []string{"Invalid spec.externalName", "Forbidden spec.clusterIPs", "Forbidden spec.ipFamilies"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc := validService()
			tt.edit(svc)
			expectErrors(t, ValidateService(svc), tt.want...)
		})
	}
}

func TestValidateLoadBalancerService(t *testing.T) {
	svc := validService()
	svc.Spec.Type = corev1.ServiceTypeLoadBalancer
	defaults.Service(svc)
	expectErrors(t, ValidateService(svc))

	svc.Spec.AllocateLoadBalancerNodePorts = nil
	svc.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	svc.Spec.HealthCheckNodePort = 70000
	svc.Spec.LoadBalancerClass = ptrTo("not a class")
	// allocateLoadBalancerNodePorts without "spec.", as upstream.
	expectErrors(t, ValidateService(svc), "Required allocateLoadBalancerNodePorts",
		"Invalid spec.healthCheckNodePort", "Invalid spec.loadBalancerClass")
}

func TestServicePortMessage(t *testing.T) {
	svc := validService()
	svc.Spec.Ports[0].Port = 0
	expectMessage(t, ValidateService(svc), "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive")
}

func TestValidateServiceUpdate(t *testing.T) {
	tests := []struct {
		name string
		edit func(svc, old *corev1.Service)
		want []string
	}{
		{"unchanged", func(_, _ *corev1.Service) {}, nil},
		{"change cluster IP", func(s, _ *corev1.Service) {
			s.Spec.ClusterIP, s.Spec.ClusterIPs = "10.96.0.11", []string{"10.96.0.11"}
		}, []string{"Invalid spec.clusterIPs[0]"}},
		{"unset cluster IP", func(s, _ *corev1.Service) { s.Spec.ClusterIP, s.Spec.ClusterIPs = "", nil },
			[]string{"Invalid spec.clusterIPs[0]"}},
		{"to ExternalName drops the IP", func(s, _ *corev1.Service) {
			s.Spec = corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "example.com"}
			defaults.Service(s)
		}, nil},
		{"add secondary", func(s, _ *corev1.Service) {
			s.Spec.ClusterIPs = []string{"10.96.0.10", "fd00::10"}
			s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}
			s.Spec.IPFamilyPolicy = ptrTo(corev1.IPFamilyPolicyPreferDualStack)
		}, nil},
		{"release secondary without SingleStack", func(s, old *corev1.Service) {
			old.Spec.ClusterIPs = []string{"10.96.0.10", "fd00::10"}
			old.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}
			s.Spec.IPFamilyPolicy = ptrTo(corev1.IPFamilyPolicyPreferDualStack)
		}, []string{"Invalid spec.ipFamilyPolicy", "Invalid spec.ipFamilyPolicy"}},
		{"change family", func(s, _ *corev1.Service) { s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol} },
			[]string{"Invalid spec.ipFamilies[0]", "Invalid spec.clusterIPs[0]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			old := validService()
			old.Spec.ClusterIP, old.Spec.ClusterIPs = "10.96.0.10", []string{"10.96.0.10"}
			old.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol}
			old.Spec.IPFamilyPolicy = ptrTo(corev1.IPFamilyPolicySingleStack)
			svc := old.DeepCopy()
			tt.edit(svc, old)
			expectErrors(t, ValidateServiceUpdate(svc, old), tt.want...)
		})
	}
}

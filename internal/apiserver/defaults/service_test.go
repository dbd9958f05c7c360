package defaults

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func TestService(t *testing.T) {
	cluster := corev1.ServiceInternalTrafficPolicyCluster
	tests := []struct {
		name string
		in   corev1.ServiceSpec
		want corev1.ServiceSpec
	}{{
		name: "empty type is ClusterIP",
		in:   corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}},
		want: corev1.ServiceSpec{
			Type:                  corev1.ServiceTypeClusterIP,
			SessionAffinity:       corev1.ServiceAffinityNone,
			InternalTrafficPolicy: &cluster,
			Ports:                 []corev1.ServicePort{{Port: 80, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(80)}},
		},
	}, {
		name: "named target port and UDP are kept",
		in: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, Ports: []corev1.ServicePort{
			{Port: 53, Protocol: corev1.ProtocolUDP, TargetPort: intstr.FromString("dns")}}},
		want: corev1.ServiceSpec{
			Type:                  corev1.ServiceTypeClusterIP,
			SessionAffinity:       corev1.ServiceAffinityNone,
			InternalTrafficPolicy: &cluster,
			Ports:                 []corev1.ServicePort{{Port: 53, Protocol: corev1.ProtocolUDP, TargetPort: intstr.FromString("dns")}},
		},
	}, {
		name: "NodePort gets externalTrafficPolicy",
		in:   corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort},
		want: corev1.ServiceSpec{
			Type:                  corev1.ServiceTypeNodePort,
			SessionAffinity:       corev1.ServiceAffinityNone,
			ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyCluster,
			InternalTrafficPolicy: &cluster,
		},
	}, {
		name: "ClusterIP with externalIPs is externally accessible",
		in:   corev1.ServiceSpec{ExternalIPs: []string{"192.0.2.1"}},
		want: corev1.ServiceSpec{
			Type:                  corev1.ServiceTypeClusterIP,
			ExternalIPs:           []string{"192.0.2.1"},
			SessionAffinity:       corev1.ServiceAffinityNone,
			ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyCluster,
			InternalTrafficPolicy: &cluster,
		},
	}, {
		name: "LoadBalancer allocates node ports",
		in:   corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer},
		want: corev1.ServiceSpec{
			Type:                          corev1.ServiceTypeLoadBalancer,
			SessionAffinity:               corev1.ServiceAffinityNone,
			ExternalTrafficPolicy:         corev1.ServiceExternalTrafficPolicyCluster,
			InternalTrafficPolicy:         &cluster,
			AllocateLoadBalancerNodePorts: ptrTo(true),
		},
	}, {
		name: "ExternalName has no traffic policies",
		in:   corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "example.com"},
		want: corev1.ServiceSpec{
			Type:            corev1.ServiceTypeExternalName,
			ExternalName:    "example.com",
			SessionAffinity: corev1.ServiceAffinityNone,
		},
	}, {
		name: "ClientIP affinity gets a timeout",
		in:   corev1.ServiceSpec{SessionAffinity: corev1.ServiceAffinityClientIP},
		want: corev1.ServiceSpec{
			Type:                  corev1.ServiceTypeClusterIP,
			SessionAffinity:       corev1.ServiceAffinityClientIP,
			SessionAffinityConfig: &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: ptrTo(int32(10800))}},
			InternalTrafficPolicy: &cluster,
		},
	}, {
		name: "None affinity drops its config",
		in: corev1.ServiceSpec{SessionAffinityConfig: &corev1.SessionAffinityConfig{
			ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: ptrTo(int32(5))}}},
		want: corev1.ServiceSpec{
			Type:                  corev1.ServiceTypeClusterIP,
			SessionAffinity:       corev1.ServiceAffinityNone,
			InternalTrafficPolicy: &cluster,
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc := &corev1.Service{Spec: tt.in}
			Service(svc)
			if d := cmp.Diff(tt.want, svc.Spec); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

func TestServiceLoadBalancerIngressIPMode(t *testing.T) {
	svc := &corev1.Service{Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer}}
	svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "192.0.2.10"}, {Hostname: "lb.example"}}
	Service(svc)
	if m := svc.Status.LoadBalancer.Ingress[0].IPMode; m == nil || *m != corev1.LoadBalancerIPModeVIP {
		t.Errorf("ingress[0].ipMode = %v, want VIP", m)
	}
	if m := svc.Status.LoadBalancer.Ingress[1].IPMode; m != nil {
		t.Errorf("ingress[1].ipMode = %v, want unset for a hostname", *m)
	}
}

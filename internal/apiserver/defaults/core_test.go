package defaults

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestNamespace(t *testing.T) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a"}}
	Namespace(ns)
	if got := ns.Labels["kubernetes.io/metadata.name"]; got != "team-a" {
		t.Errorf("name label = %q, want team-a", got)
	}
	if ns.Status.Phase != corev1.NamespaceActive {
		t.Errorf("phase = %q, want Active", ns.Status.Phase)
	}
	unnamed := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "tmp-"}}
	Namespace(unnamed)
	if unnamed.Labels != nil {
		t.Errorf("unnamed namespace got labels %v", unnamed.Labels)
	}
}

func TestNode(t *testing.T) {
	tests := []struct {
		name                string
		podCIDR             string
		podCIDRs            []string
		wantCIDR            string
		wantCIDRs           []string
		capacity, wantAlloc corev1.ResourceList
		allocatable         corev1.ResourceList
	}{
		{name: "singular fills plural", podCIDR: "10.244.1.0/24", wantCIDR: "10.244.1.0/24", wantCIDRs: []string{"10.244.1.0/24"}},
		{name: "plural fills singular", podCIDRs: []string{"10.244.1.0/24", "fd00::/64"}, wantCIDR: "10.244.1.0/24", wantCIDRs: []string{"10.244.1.0/24", "fd00::/64"}},
		{name: "singular wins a disagreement", podCIDR: "10.0.0.0/24", podCIDRs: []string{"10.244.1.0/24", "fd00::/64"}, wantCIDR: "10.0.0.0/24", wantCIDRs: []string{"10.0.0.0/24"}},
		{name: "allocatable from capacity",
			capacity:  corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("4"), corev1.ResourcePods: resource.MustParse("110")},
			wantAlloc: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("4"), corev1.ResourcePods: resource.MustParse("110")}},
		{name: "explicit allocatable kept",
			capacity:    corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("4")},
			allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("3500m")},
			wantAlloc:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("3500m")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := &corev1.Node{Spec: corev1.NodeSpec{PodCIDR: tt.podCIDR, PodCIDRs: tt.podCIDRs},
				Status: corev1.NodeStatus{Capacity: tt.capacity, Allocatable: tt.allocatable}}
			Node(n)
			if n.Spec.PodCIDR != tt.wantCIDR || !cmp.Equal(n.Spec.PodCIDRs, tt.wantCIDRs) {
				t.Errorf("podCIDR, podCIDRs = %q, %q; want %q, %q", n.Spec.PodCIDR, n.Spec.PodCIDRs, tt.wantCIDR, tt.wantCIDRs)
			}
			if len(n.Status.Allocatable) != len(tt.wantAlloc) {
				t.Fatalf("allocatable = %v, want %v", n.Status.Allocatable, tt.wantAlloc)
			}
			for k, want := range tt.wantAlloc {
				if got := n.Status.Allocatable[k]; got.Cmp(want) != 0 {
					t.Errorf("allocatable[%s] = %s, want %s", k, got.String(), want.String())
				}
			}
		})
	}
}

func TestEndpointsAndSlices(t *testing.T) {
	ep := &corev1.Endpoints{Subsets: []corev1.EndpointSubset{{Ports: []corev1.EndpointPort{{Port: 80}, {Port: 53, Protocol: corev1.ProtocolUDP}}}}}
	Endpoints(ep)
	if got := []corev1.Protocol{ep.Subsets[0].Ports[0].Protocol, ep.Subsets[0].Ports[1].Protocol}; !cmp.Equal(got, []corev1.Protocol{"TCP", "UDP"}) {
		t.Errorf("endpoints protocols = %v", got)
	}

	es := &discoveryv1.EndpointSlice{Ports: []discoveryv1.EndpointPort{{Port: ptrTo(int32(80))}}}
	EndpointSlice(es)
	p := es.Ports[0]
	if p.Name == nil || *p.Name != "" || p.Protocol == nil || *p.Protocol != corev1.ProtocolTCP {
		t.Errorf("slice port = name %v protocol %v, want \"\" and TCP", p.Name, p.Protocol)
	}
}

func TestSecret(t *testing.T) {
	s := &corev1.Secret{
		Data:       map[string][]byte{"a": []byte("old"), "b": []byte("kept")},
		StringData: map[string]string{"a": "new", "c": "added"},
	}
	Secret(s)
	if s.Type != corev1.SecretTypeOpaque {
		t.Errorf("type = %q, want Opaque", s.Type)
	}
	want := map[string][]byte{"a": []byte("new"), "b": []byte("kept"), "c": []byte("added")}
	if d := cmp.Diff(want, s.Data); d != "" || s.StringData != nil {
		t.Errorf("data (-want +got):\n%s\nstringData = %v", d, s.StringData)
	}
	typed := &corev1.Secret{Type: corev1.SecretTypeTLS}
	Secret(typed)
	if typed.Type != corev1.SecretTypeTLS {
		t.Errorf("explicit type changed to %q", typed.Type)
	}
}

func TestObjectDispatch(t *testing.T) {
	d := &appsv1.Deployment{}
	Object(d)
	if d.Spec.Replicas == nil {
		t.Errorf("Object did not default a Deployment")
	}
	cm := &corev1.ConfigMap{}
	Object(cm)
	if cm.Data == nil {
		t.Errorf("Object did not default a ConfigMap")
	}
	Object(&corev1.Event{}) // no defaults, no panic
}

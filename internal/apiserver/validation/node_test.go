package validation

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kite/internal/apiserver/defaults"
)

func validNode() *corev1.Node {
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "node-1", ResourceVersion: "1"},
		Spec:       corev1.NodeSpec{PodCIDR: "10.244.1.0/24", ProviderID: "kind://node-1"},
		Status: corev1.NodeStatus{Capacity: corev1.ResourceList{
			corev1.ResourceCPU: resource.MustParse("4"), corev1.ResourcePods: resource.MustParse("110")}},
	}
	defaults.Node(n)
	return n
}

func TestValidateNode(t *testing.T) {
	tests := []struct {
		name string
		edit func(*corev1.Node)
		want []string
	}{
		{"valid", func(*corev1.Node) {}, nil},
		{"namespaced", func(n *corev1.Node) { n.Namespace = "default" }, []string{"Forbidden metadata.namespace"}},
		{"pod CIDR", func(n *corev1.Node) { n.Spec.PodCIDRs = []string{"10.244.1.0/33"} }, []string{"Invalid spec.podCIDRs[0]"}},
		{"dual-stack pod CIDRs", func(n *corev1.Node) { n.Spec.PodCIDRs = []string{"10.244.1.0/24", "fd00:10:244:1::/64"} }, nil},
		{"two IPv4 pod CIDRs", func(n *corev1.Node) { n.Spec.PodCIDRs = []string{"10.244.1.0/24", "10.244.2.0/24"} },
			[]string{"Invalid spec.podCIDRs"}},
		{"taints", func(n *corev1.Node) {
			n.Spec.Taints = []corev1.Taint{
				{Key: "node-role.kubernetes.io/control-plane", Effect: corev1.TaintEffectNoSchedule},
				{Key: "a", Value: "-bad", Effect: "Sometimes"},
				{Key: "", Effect: ""},
				{Key: "node-role.kubernetes.io/control-plane", Effect: corev1.TaintEffectNoSchedule},
			}
		}, []string{
			// Upstream reports node taints under metadata.
			"Invalid metadata.taints[1].value", "NotSupported metadata.taints[1].effect",
			"Invalid metadata.taints[2].key", "Invalid metadata.taints[2].key", "Required metadata.taints[2].effect",
			"Duplicate metadata.taints[3]",
		}},
		{"negative capacity", func(n *corev1.Node) { n.Status.Capacity[corev1.ResourceMemory] = resource.MustParse("-1") },
			[]string{"Invalid status.capacity.memory"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := validNode()
			tt.edit(n)
			expectErrors(t, ValidateNode(n), tt.want...)
		})
	}
}

func TestValidateNodeUpdate(t *testing.T) {
	tests := []struct {
		name string
		edit func(n, old *corev1.Node)
		want []string
	}{
		{"taint and unschedulable", func(n, _ *corev1.Node) {
			n.Spec.Unschedulable = true
			n.Spec.Taints = []corev1.Taint{{Key: "node.kubernetes.io/unschedulable", Effect: corev1.TaintEffectNoSchedule}}
		}, nil},
		{"set pod CIDR once", func(n, old *corev1.Node) { old.Spec.PodCIDR, old.Spec.PodCIDRs = "", nil }, nil},
		{"change pod CIDR", func(n, _ *corev1.Node) { n.Spec.PodCIDR, n.Spec.PodCIDRs = "10.244.2.0/24", []string{"10.244.2.0/24"} },
			[]string{"Forbidden spec.podCIDRs"}},
		{"change provider ID", func(n, _ *corev1.Node) { n.Spec.ProviderID = "kind://other" }, []string{"Forbidden spec.providerID"}},
		{"duplicate address", func(n, _ *corev1.Node) {
			a := corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "172.18.0.2"}
			n.Status.Addresses = []corev1.NodeAddress{a, a}
		}, []string{"Duplicate status.addresses[1]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			old := validNode()
			n := old.DeepCopy()
			tt.edit(n, old)
			expectErrors(t, ValidateNodeUpdate(n, old), tt.want...)
		})
	}
}

package lab

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestDesiredPodRoutes(t *testing.T) {
	node := func(name, ip string, cidrs ...string) corev1.Node {
		n := corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.NodeSpec{PodCIDRs: cidrs}}
		if len(cidrs) > 0 {
			n.Spec.PodCIDR = cidrs[0]
		}
		if ip != "" {
			n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeHostName, Address: name}, {Type: corev1.NodeInternalIP, Address: ip}}
		}
		return n
	}
	got := desiredPodRoutes(netip.MustParsePrefix("172.30.0.0/24"), []corev1.Node{
		node("a", "172.30.0.2", "10.244.0.0/24"),
		node("b", "172.30.0.3", "10.244.1.0/24", "fd00:10:244:1::/64"), // IPv6 left out
		node("c", "172.30.0.4"),                                        // no pod CIDR yet
		node("d", "", "10.244.3.0/24"),                                 // no address yet
		node("e", "192.168.1.9", "10.244.4.0/24"),                      // not on the underlay
	})
	want := map[netip.Prefix]netip.Addr{
		netip.MustParsePrefix("10.244.0.0/24"): netip.MustParseAddr("172.30.0.2"),
		netip.MustParsePrefix("10.244.1.0/24"): netip.MustParseAddr("172.30.0.3"),
	}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b }), cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("desiredPodRoutes (-want +got):\n%s", diff)
	}
}

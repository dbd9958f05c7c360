package nodeipam

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// node is a Node created at second age with podCIDRs.
func node(name string, age int, cidrs ...string) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name,
		CreationTimestamp: metav1.NewTime(time.Unix(1_700_000_000+int64(age), 0))}}
	n.Spec.PodCIDRs = cidrs
	if len(cidrs) > 0 {
		n.Spec.PodCIDR = cidrs[0]
	}
	return n
}

func TestAssessAndChoose(t *testing.T) {
	v4 := mustRange(t, "10.244.0.0/16", 24)
	small := mustRange(t, "10.244.0.0/23", 24)
	v6 := mustRange(t, "fd00:10:244::/56", 64)
	for _, tc := range []struct {
		name         string
		ranges       []subnetRange
		nodes        []*corev1.Node
		reserved     [][]int
		inFlight     []string
		wantProblems map[string]string
		want         []string // next allocation; nil means full
	}{
		{name: "empty cluster gets the first subnet", ranges: []subnetRange{v4}, want: []string{"10.244.0.0/24"}},
		{name: "kept CIDRs are taken, lowest free next", ranges: []subnetRange{v4},
			nodes: []*corev1.Node{node("a", 1, "10.244.0.0/24"), node("b", 2, "10.244.2.0/24"), node("c", 3)},
			want:  []string{"10.244.1.0/24"}},
		{name: "in flight counts as taken", ranges: []subnetRange{v4},
			nodes: []*corev1.Node{node("a", 1, "10.244.0.0/24")}, inFlight: []string{"10.244.1.0/24"},
			want: []string{"10.244.2.0/24"}},
		{name: "reserved (service range) is skipped", ranges: []subnetRange{v4}, reserved: [][]int{{0, 1}},
			want: []string{"10.244.2.0/24"}},
		{name: "outside the range: a problem, not taken", ranges: []subnetRange{v4},
			nodes:        []*corev1.Node{node("a", 1, "10.0.0.0/24")},
			wantProblems: map[string]string{"a": "podCIDR 10.0.0.0/24 is outside the cluster CIDR 10.244.0.0/16"},
			want:         []string{"10.244.0.0/24"}},
		{name: "duplicate: the older node keeps it", ranges: []subnetRange{v4},
			nodes:        []*corev1.Node{node("young", 2, "10.244.0.0/24"), node("old", 1, "10.244.0.0/24")},
			wantProblems: map[string]string{"young": "podCIDR 10.244.0.0/24 is already used by node old"},
			want:         []string{"10.244.1.0/24"}},
		{name: "overlapping larger claim", ranges: []subnetRange{v4},
			nodes:        []*corev1.Node{node("a", 1, "10.244.0.0/24"), node("b", 2, "10.244.0.0/23")},
			wantProblems: map[string]string{"b": "podCIDR 10.244.0.0/23 is already used by node a"},
			want:         []string{"10.244.1.0/24"}},
		{name: "garbage", ranges: []subnetRange{v4}, nodes: []*corev1.Node{node("a", 1, "nonsense")},
			wantProblems: map[string]string{"a": `podCIDR "nonsense" is not a CIDR`}, want: []string{"10.244.0.0/24"}},
		{name: "other family not configured", ranges: []subnetRange{v4}, nodes: []*corev1.Node{node("a", 1, "fd00::/64")},
			wantProblems: map[string]string{"a": "podCIDR fd00::/64: no cluster CIDR of its IP family"}, want: []string{"10.244.0.0/24"}},
		{name: "full", ranges: []subnetRange{small},
			nodes: []*corev1.Node{node("a", 1, "10.244.0.0/24"), node("b", 2, "10.244.1.0/24")}},
		{name: "a deleted node's subnet is free again", ranges: []subnetRange{small},
			nodes: []*corev1.Node{node("b", 2, "10.244.1.0/24")}, want: []string{"10.244.0.0/24"}},
		{name: "dual-stack", ranges: []subnetRange{v4, v6},
			nodes: []*corev1.Node{node("a", 1, "10.244.0.0/24", "fd00:10:244::/64")},
			want:  []string{"10.244.1.0/24", "fd00:10:244:1::/64"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl := assess(tc.ranges, tc.nodes)
			if len(cl.problems) != len(tc.wantProblems) {
				t.Errorf("problems = %v, want %v", cl.problems, tc.wantProblems)
			}
			for n, msg := range tc.wantProblems {
				if cl.problems[n] != msg {
					t.Errorf("problem of %s = %q, want %q", n, cl.problems[n], msg)
				}
			}
			var inFlight []netip.Prefix
			for _, s := range tc.inFlight {
				inFlight = append(inFlight, netip.MustParsePrefix(s))
			}
			got, ok := choose(tc.ranges, cl, tc.reserved, inFlight)
			if tc.want == nil {
				if ok {
					t.Errorf("choose = %v, want full", got)
				}
				return
			}
			var gotS []string
			for _, p := range got {
				gotS = append(gotS, p.String())
			}
			if !ok || !slices.Equal(gotS, tc.want) {
				t.Errorf("choose = %v, %v; want %v", gotS, ok, tc.want)
			}
		})
	}
}

package scheduler

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

func TestSchedulePicks(t *testing.T) {
	const rs = types.UID("rs-1")
	preferZone := func(zone string, weight int32) func(*corev1.Pod) {
		return func(p *corev1.Pod) {
			p.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
				PreferredDuringSchedulingIgnoredDuringExecution: []corev1.PreferredSchedulingTerm{{Weight: weight,
					Preference: corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "zone", Operator: corev1.NodeSelectorOpIn, Values: []string{zone}}}}}},
			}}
		}
	}
	for _, tc := range []struct {
		name  string
		nodes []*corev1.Node
		pods  []*corev1.Pod
		pod   *corev1.Pod
		want  string
	}{
		{name: "tie goes to the first node by name", nodes: []*corev1.Node{testNode("b"), testNode("a")}, pod: testPod("p"), want: "a"},
		{name: "fewest pods", nodes: []*corev1.Node{testNode("a"), testNode("b")},
			pods: []*corev1.Pod{testPod("x", onNode("a"))}, pod: testPod("p"), want: "b"},
		{name: "fewest pods of the same owner beats fewest pods",
			nodes: []*corev1.Node{testNode("a"), testNode("b")},
			pods: []*corev1.Pod{
				testPod("o1", onNode("a"), ownedBy(rs)),
				testPod("x1", onNode("b")), testPod("x2", onNode("b")),
			},
			pod: testPod("p", ownedBy(rs)), want: "b"},
		{name: "other owners' pods count only as pods",
			nodes: []*corev1.Node{testNode("a"), testNode("b")},
			pods:  []*corev1.Pod{testPod("o1", onNode("a"), ownedBy("rs-other"))},
			pod:   testPod("p", ownedBy(rs)), want: "b"},
		{name: "terminating pods of the owner do not count for spreading",
			nodes: []*corev1.Node{testNode("a"), testNode("b")},
			pods: []*corev1.Pod{
				testPod("o1", onNode("a"), ownedBy(rs), func(p *corev1.Pod) { p.DeletionTimestamp = ptr(metaNow()) }),
				testPod("o2", onNode("b"), ownedBy(rs)),
			},
			pod: testPod("p", ownedBy(rs)), want: "a"},
		{name: "untolerated PreferNoSchedule is avoided",
			nodes: []*corev1.Node{testNode("a", withTaint("x", "y", corev1.TaintEffectPreferNoSchedule)), testNode("b")},
			pods:  []*corev1.Pod{testPod("x1", onNode("b")), testPod("x2", onNode("b"))},
			pod:   testPod("p"), want: "b"},
		{name: "tolerated PreferNoSchedule is not",
			nodes: []*corev1.Node{testNode("a", withTaint("x", "y", corev1.TaintEffectPreferNoSchedule)), testNode("b")},
			pods:  []*corev1.Pod{testPod("x1", onNode("b"))},
			pod:   testPod("p", tolerate("x", "y", corev1.TaintEffectPreferNoSchedule)), want: "a"},
		{name: "preferred affinity",
			nodes: []*corev1.Node{testNode("a", withLabels("zone", "1")), testNode("b", withLabels("zone", "2"))},
			pod:   testPod("p", preferZone("2", 10)), want: "b"},
		{name: "only feasible nodes are ranked",
			nodes: []*corev1.Node{testNode("a", withTaint("x", "y", corev1.TaintEffectNoSchedule)), testNode("b")},
			pods:  []*corev1.Pod{testPod("x1", onNode("b"))},
			pod:   testPod("p"), want: "b"},
		{name: "assumed pods count", nodes: []*corev1.Node{testNode("a"), testNode("b")},
			pods: []*corev1.Pod{testPod("assumed-on-a", ownedBy(rs))}, pod: testPod("p", ownedBy(rs)), want: "b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assumed := map[types.UID]string{"uid-assumed-on-a": "a"}
			got, fitErr := schedule(tc.pod, buildSnapshot(tc.nodes, tc.pods, assumed))
			if fitErr != nil {
				t.Fatalf("unschedulable: %v", fitErr)
			}
			if got != tc.want {
				t.Errorf("schedule = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestSpreadTenPods schedules ten pods of one owner one after another onto
// two empty nodes: 5/5.
func TestSpreadTenPods(t *testing.T) {
	nodes := []*corev1.Node{testNode("kite-worker"), testNode("kite-worker2")}
	var pods []*corev1.Pod
	count := map[string]int{}
	for i := range 10 {
		p := testPod(fmt.Sprintf("kuard-%d", i), ownedBy("rs"))
		host, fitErr := schedule(p, buildSnapshot(nodes, pods, nil))
		if fitErr != nil {
			t.Fatal(fitErr)
		}
		p.Spec.NodeName = host
		pods = append(pods, p)
		count[host]++
	}
	if count["kite-worker"] != 5 || count["kite-worker2"] != 5 {
		t.Errorf("spread = %v, want 5/5", count)
	}
}

func TestFitErrorMessage(t *testing.T) {
	for _, tc := range []struct {
		name  string
		nodes []*corev1.Node
		pod   *corev1.Pod
		want  string
	}{
		{name: "no nodes", pod: testPod("p"), want: "no nodes available to schedule pods"},
		{name: "taint and selector, sorted as upstream",
			nodes: []*corev1.Node{testNode("a", withTaint("dedicated", "gpu", corev1.TaintEffectNoSchedule)), testNode("b")},
			pod:   testPod("p", nodeSelector("disk", "ssd")),
			want:  "0/2 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 1 node(s) had untolerated taint {dedicated: gpu}."},
		{name: "same reason counted",
			nodes: []*corev1.Node{testNode("a"), testNode("b"), testNode("c", cordoned)},
			pod:   testPod("p", nodeSelector("disk", "ssd")),
			want:  "0/3 nodes are available: 1 node(s) were unschedulable, 2 node(s) didn't match Pod's node affinity/selector."},
		{name: "resources",
			nodes: []*corev1.Node{testNode("a", withMaxPods("0"))},
			pod:   testPod("p", requests("8", "1Gi")),
			want:  "0/1 nodes are available: 1 Insufficient cpu, 1 Too many pods."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, fitErr := schedule(tc.pod, buildSnapshot(tc.nodes, nil, nil))
			if fitErr == nil {
				t.Fatal("scheduled, want a fit error")
			}
			if got := fitErr.Error(); got != tc.want {
				t.Errorf("message\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

package scheduler

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestFilter(t *testing.T) {
	in := func(key string, values ...string) corev1.NodeSelectorRequirement {
		return corev1.NodeSelectorRequirement{Key: key, Operator: corev1.NodeSelectorOpIn, Values: values}
	}
	notIn := func(key string, values ...string) corev1.NodeSelectorRequirement {
		return corev1.NodeSelectorRequirement{Key: key, Operator: corev1.NodeSelectorOpNotIn, Values: values}
	}
	exists := func(key string) corev1.NodeSelectorRequirement {
		return corev1.NodeSelectorRequirement{Key: key, Operator: corev1.NodeSelectorOpExists}
	}
	doesNotExist := func(key string) corev1.NodeSelectorRequirement {
		return corev1.NodeSelectorRequirement{Key: key, Operator: corev1.NodeSelectorOpDoesNotExist}
	}
	for _, tc := range []struct {
		name     string
		node     *corev1.Node
		existing []*corev1.Pod
		pod      *corev1.Pod
		want     []string
	}{
		{name: "plain pod on a Ready node", node: testNode("n"), pod: testPod("p")},

		{name: "cordoned", node: testNode("n", cordoned), pod: testPod("p"), want: []string{reasonUnschedulable}},
		{name: "cordoned, tolerated", node: testNode("n", cordoned),
			pod: testPod("p", tolerate(corev1.TaintNodeUnschedulable, "", corev1.TaintEffectNoSchedule))},
		{name: "cordoned is reported before taints", node: testNode("n", cordoned, withTaint("a", "b", corev1.TaintEffectNoSchedule)),
			pod: testPod("p"), want: []string{reasonUnschedulable}},

		{name: "NoSchedule taint", node: testNode("n", withTaint("dedicated", "gpu", corev1.TaintEffectNoSchedule)),
			pod: testPod("p"), want: []string{"node(s) had untolerated taint {dedicated: gpu}"}},
		{name: "NoExecute taint", node: testNode("n", withTaint("dedicated", "gpu", corev1.TaintEffectNoExecute)),
			pod: testPod("p"), want: []string{"node(s) had untolerated taint {dedicated: gpu}"}},
		{name: "PreferNoSchedule taint does not filter", node: testNode("n", withTaint("dedicated", "gpu", corev1.TaintEffectPreferNoSchedule)),
			pod: testPod("p")},
		{name: "taint tolerated by value", node: testNode("n", withTaint("dedicated", "gpu", corev1.TaintEffectNoSchedule)),
			pod: testPod("p", tolerate("dedicated", "gpu", corev1.TaintEffectNoSchedule))},
		{name: "taint tolerated by Exists with any effect", node: testNode("n", withTaint("dedicated", "gpu", corev1.TaintEffectNoExecute)),
			pod: testPod("p", tolerate("dedicated", "", ""))},
		{name: "toleration for another value", node: testNode("n", withTaint("dedicated", "gpu", corev1.TaintEffectNoSchedule)),
			pod: testPod("p", tolerate("dedicated", "db", corev1.TaintEffectNoSchedule)), want: []string{"node(s) had untolerated taint {dedicated: gpu}"}},
		{name: "toleration for another effect", node: testNode("n", withTaint("dedicated", "gpu", corev1.TaintEffectNoExecute)),
			pod: testPod("p", tolerate("dedicated", "gpu", corev1.TaintEffectNoSchedule)), want: []string{"node(s) had untolerated taint {dedicated: gpu}"}},
		{name: "first untolerated taint is named", node: testNode("n", withTaint("a", "1", corev1.TaintEffectNoSchedule), withTaint("b", "2", corev1.TaintEffectNoSchedule)),
			pod: testPod("p", tolerate("a", "1", corev1.TaintEffectNoSchedule)), want: []string{"node(s) had untolerated taint {b: 2}"}},

		{name: "not Ready counts as the not-ready taint", node: testNode("n", withReady(corev1.ConditionFalse)),
			pod: testPod("p"), want: []string{"node(s) had untolerated taint {node.kubernetes.io/not-ready: }"}},
		{name: "Ready Unknown counts as the unreachable taint", node: testNode("n", withReady(corev1.ConditionUnknown)),
			pod: testPod("p"), want: []string{"node(s) had untolerated taint {node.kubernetes.io/unreachable: }"}},
		{name: "not Ready, tolerated", node: testNode("n", withReady(corev1.ConditionFalse)),
			pod: testPod("p", tolerate(corev1.TaintNodeNotReady, "", corev1.TaintEffectNoSchedule))},
		{name: "not Ready with the taint already", node: testNode("n", withReady(corev1.ConditionFalse), withTaint(corev1.TaintNodeNotReady, "", corev1.TaintEffectNoSchedule)),
			pod: testPod("p"), want: []string{"node(s) had untolerated taint {node.kubernetes.io/not-ready: }"}},

		{name: "nodeSelector matches", node: testNode("n", withLabels("disk", "ssd")), pod: testPod("p", nodeSelector("disk", "ssd"))},
		{name: "nodeSelector does not match", node: testNode("n", withLabels("disk", "hdd")), pod: testPod("p", nodeSelector("disk", "ssd")),
			want: []string{reasonAffinity}},
		{name: "taint is reported before affinity", node: testNode("n", withTaint("a", "b", corev1.TaintEffectNoSchedule)),
			pod: testPod("p", nodeSelector("disk", "ssd")), want: []string{"node(s) had untolerated taint {a: b}"}},
		{name: "affinity In", node: testNode("n", withLabels("zone", "b")), pod: testPod("p", requireNode(in("zone", "a", "b")))},
		{name: "affinity In, no match", node: testNode("n", withLabels("zone", "c")), pod: testPod("p", requireNode(in("zone", "a", "b"))),
			want: []string{reasonAffinity}},
		{name: "affinity NotIn", node: testNode("n", withLabels("zone", "c")), pod: testPod("p", requireNode(notIn("zone", "a", "b")))},
		{name: "affinity NotIn, excluded", node: testNode("n", withLabels("zone", "a")), pod: testPod("p", requireNode(notIn("zone", "a"))),
			want: []string{reasonAffinity}},
		{name: "affinity NotIn, label absent", node: testNode("n"), pod: testPod("p", requireNode(notIn("zone", "a")))},
		{name: "affinity Exists", node: testNode("n", withLabels("gpu", "")), pod: testPod("p", requireNode(exists("gpu")))},
		{name: "affinity Exists, absent", node: testNode("n"), pod: testPod("p", requireNode(exists("gpu"))), want: []string{reasonAffinity}},
		{name: "affinity DoesNotExist", node: testNode("n"), pod: testPod("p", requireNode(doesNotExist("gpu")))},
		{name: "affinity DoesNotExist, present", node: testNode("n", withLabels("gpu", "x")), pod: testPod("p", requireNode(doesNotExist("gpu"))),
			want: []string{reasonAffinity}},
		{name: "nodeSelector and affinity must both match", node: testNode("n", withLabels("zone", "a")),
			pod: testPod("p", nodeSelector("disk", "ssd"), requireNode(in("zone", "a"))), want: []string{reasonAffinity}},

		{name: "host port free", node: testNode("n"), existing: []*corev1.Pod{testPod("q", hostPortOn(8080, ""))}, pod: testPod("p", hostPortOn(9090, ""))},
		{name: "host port taken", node: testNode("n"), existing: []*corev1.Pod{testPod("q", hostPortOn(8080, ""))}, pod: testPod("p", hostPortOn(8080, "")),
			want: []string{reasonPorts}},
		{name: "host port on another IP", node: testNode("n"), existing: []*corev1.Pod{testPod("q", hostPortOn(8080, "10.0.0.1"))},
			pod: testPod("p", hostPortOn(8080, "10.0.0.2"))},
		{name: "host port wildcard against an IP", node: testNode("n"), existing: []*corev1.Pod{testPod("q", hostPortOn(8080, "10.0.0.1"))},
			pod: testPod("p", hostPortOn(8080, "")), want: []string{reasonPorts}},

		{name: "pod count full", node: testNode("n", withMaxPods("1")), existing: []*corev1.Pod{testPod("q")}, pod: testPod("p"),
			want: []string{reasonTooManyPods}},
		{name: "pod count with room", node: testNode("n", withMaxPods("2")), existing: []*corev1.Pod{testPod("q")}, pod: testPod("p")},
		{name: "finished pods hold no room", node: testNode("n", withMaxPods("1")),
			existing: []*corev1.Pod{testPod("q", func(p *corev1.Pod) { p.Status.Phase = corev1.PodSucceeded })}, pod: testPod("p")},
		{name: "no allocatable pods", node: testNode("n", func(n *corev1.Node) { delete(n.Status.Allocatable, corev1.ResourcePods) }),
			pod: testPod("p"), want: []string{reasonTooManyPods}},
		{name: "cpu and memory fit", node: testNode("n"), existing: []*corev1.Pod{testPod("q", requests("3", "4Gi"))}, pod: testPod("p", requests("1", "4Gi"))},
		{name: "cpu and memory short", node: testNode("n"), existing: []*corev1.Pod{testPod("q", requests("3", "6Gi"))}, pod: testPod("p", requests("2", "4Gi")),
			want: []string{"Insufficient cpu", "Insufficient memory"}},
		{name: "pods and cpu short together", node: testNode("n", withMaxPods("1")), existing: []*corev1.Pod{testPod("q", requests("4", "1Gi"))},
			pod: testPod("p", requests("1", "1Gi")), want: []string{reasonTooManyPods, "Insufficient cpu"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, p := range tc.existing {
				p.Spec.NodeName = tc.node.Name
			}
			ni := buildSnapshot([]*corev1.Node{tc.node}, tc.existing, nil)[0]
			if got := filter(tc.pod, ni); !slices.Equal(got, tc.want) {
				t.Errorf("filter = %q, want %q", got, tc.want)
			}
		})
	}
}

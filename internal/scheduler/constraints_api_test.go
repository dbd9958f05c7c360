package scheduler

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestAPIConstraints: nodeSelector, node affinity, taints and tolerations,
// cordon and host ports decide where pods go, through the real API.
func TestAPIConstraints(t *testing.T) {
	h := startScheduler(t, Config{})
	h.createNode(testNode("plain", withLabels("disk", "hdd")))
	h.createNode(testNode("gpu", withLabels("accel", "gpu", "disk", "ssd"), withTaint("dedicated", "gpu", corev1.TaintEffectNoSchedule)))
	h.createNode(testNode("cordoned", withLabels("disk", "ssd"), cordoned))
	h.createNode(testNode("soft", withLabels("disk", "ssd"), withTaint("spare", "", corev1.TaintEffectPreferNoSchedule)))

	for _, tc := range []struct {
		pod  *corev1.Pod
		want string
	}{
		{testPod("selector-and-toleration", nodeSelector("accel", "gpu"), tolerate("dedicated", "gpu", corev1.TaintEffectNoSchedule)), "gpu"},
		{testPod("affinity-notin", requireNode(corev1.NodeSelectorRequirement{Key: "disk", Operator: corev1.NodeSelectorOpNotIn, Values: []string{"ssd"}})), "plain"},
		{testPod("affinity-exists", requireNode(corev1.NodeSelectorRequirement{Key: "accel", Operator: corev1.NodeSelectorOpExists}),
			tolerate("dedicated", "", "")), "gpu"},
		// ssd nodes: gpu is tainted, cordoned is cordoned, soft only prefers not.
		{testPod("ssd", nodeSelector("disk", "ssd")), "soft"},
		{testPod("tolerates-cordon", nodeSelector("disk", "ssd"),
			tolerate(corev1.TaintNodeUnschedulable, "", corev1.TaintEffectNoSchedule), tolerate("spare", "", "")), "cordoned"},
	} {
		h.createPod(tc.pod)
		if got := h.waitBound(tc.pod.Name); got != tc.want {
			t.Errorf("pod %s on %q, want %q", tc.pod.Name, got, tc.want)
		}
	}

	// Host ports: the first pod taking 8080 goes somewhere; a second pod
	// pinned by selector to the same node cannot have it.
	h.createPod(testPod("port-a", nodeSelector("disk", "hdd"), hostPortOn(8080, "")))
	if got := h.waitBound("port-a"); got != "plain" {
		t.Fatalf("port-a on %q", got)
	}
	h.createPod(testPod("port-b", nodeSelector("disk", "hdd"), hostPortOn(8080, "")))
	msg := h.waitUnschedulable("port-b")
	// Each node reports the first check it fails, in upstream's order:
	// cordoned before taints before affinity before ports.
	want := "0/4 nodes are available: 1 node(s) didn't have free ports for the requested pod ports, 1 node(s) didn't match Pod's node affinity/selector, 1 node(s) had untolerated taint {dedicated: gpu}, 1 node(s) were unschedulable."
	if msg != want {
		t.Errorf("port-b message\n got %q\nwant %q", msg, want)
	}
	// Deleting the holder frees the port.
	zero := int64(0)
	if err := h.client.CoreV1().Pods("default").Delete(h.ctx, "port-a", metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		t.Fatal(err)
	}
	if got := h.waitBound("port-b"); got != "plain" {
		t.Errorf("port-b on %q after port-a left", got)
	}
}

// TestAPIPodCount: a node takes no more pods than its allocatable "pods".
func TestAPIPodCount(t *testing.T) {
	h := startScheduler(t, Config{})
	h.createNode(testNode("small", withMaxPods("2")))
	for _, name := range []string{"p1", "p2", "p3"} {
		h.createPod(testPod(name))
	}
	h.waitBound("p1")
	h.waitBound("p2")
	if msg := h.waitUnschedulable("p3"); msg != "0/1 nodes are available: 1 Too many pods." {
		t.Errorf("p3 message %q", msg)
	}
}

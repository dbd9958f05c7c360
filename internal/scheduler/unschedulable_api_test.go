package scheduler

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// TestAPIUnschedulableThenFits: a pod that fits nowhere gets
// PodScheduled=False/Unschedulable with upstream's message and a
// FailedScheduling event; when a fitting node appears (first not Ready,
// then Ready) it is scheduled there.
func TestAPIUnschedulableThenFits(t *testing.T) {
	h := startScheduler(t, Config{})
	h.createNode(testNode("kite-worker", withTaint("team", "a", corev1.TaintEffectNoSchedule)))
	h.createNode(testNode("kite-worker2", withLabels("disk", "hdd")))

	h.createPod(testPod("needs-ssd", nodeSelector("disk", "ssd")))
	const want = "0/2 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 1 node(s) had untolerated taint {team: a}."
	if msg := h.waitUnschedulable("needs-ssd"); msg != want {
		t.Errorf("condition message\n got %q\nwant %q", msg, want)
	}
	ev := h.waitEvent("needs-ssd", "FailedScheduling")
	if ev.Type != corev1.EventTypeWarning || ev.Message != want {
		t.Errorf("FailedScheduling event = %s %q, want Warning %q", ev.Type, ev.Message, want)
	}

	// A fitting node that is not Ready yet: still unschedulable, now for
	// three nodes.
	h.createNode(testNode("kite-worker3", withLabels("disk", "ssd"), withReady(corev1.ConditionFalse)))
	const want3 = "0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }, 1 node(s) had untolerated taint {team: a}."
	apitestWaitMessage(h, "needs-ssd", want3)

	// Ready: the pod goes there.
	h.setReady("kite-worker3", corev1.ConditionTrue)
	if got := h.waitBound("needs-ssd"); got != "kite-worker3" {
		t.Errorf("bound to %q, want kite-worker3", got)
	}
	if c := podCondition(h.getPod("needs-ssd"), corev1.PodScheduled); c == nil || c.Status != corev1.ConditionTrue {
		t.Errorf("PodScheduled = %+v after binding, want True", c)
	}
	h.waitEvent("needs-ssd", "Scheduled")
}

// apitestWaitMessage waits for the pod's PodScheduled message to be want.
func apitestWaitMessage(h *harness, pod, want string) {
	h.t.Helper()
	var got string
	waitFor(h, "PodScheduled message of "+pod, func() bool {
		if c := podCondition(h.getPod(pod), corev1.PodScheduled); c != nil {
			got = c.Message
		}
		return got == want
	}, func() string { return got })
}

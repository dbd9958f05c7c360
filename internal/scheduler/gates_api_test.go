package scheduler

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
)

// TestAPISchedulingGates: a gated pod is not scheduled; once its gates are
// removed it is.
func TestAPISchedulingGates(t *testing.T) {
	h := startScheduler(t, Config{})
	h.createNode(testNode("kite-worker"))
	h.createPod(testPod("gated", func(p *corev1.Pod) {
		p.Spec.SchedulingGates = []corev1.PodSchedulingGate{{Name: "example.com/wait"}}
	}))
	h.createPod(testPod("marker"))
	h.waitBound("marker") // the scheduler has run since "gated" was created
	if got := h.getPod("gated").Spec.NodeName; got != "" {
		t.Fatalf("gated pod bound to %q", got)
	}
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		p := h.getPod("gated")
		p.Spec.SchedulingGates = nil
		_, err := h.client.CoreV1().Pods("default").Update(h.ctx, p, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	h.waitBound("gated")
}

// TestAPIServerGatedCondition asserts upstream's API server behaviour the
// scheduler relies on for `kubectl get pods` to say SchedulingGated: a pod
// created with scheduling gates gets PodScheduled=False, reason
// SchedulingGated, from the API server itself (upstream's pod strategy,
// PrepareForCreate).
func TestAPIServerGatedCondition(t *testing.T) {
	h := startScheduler(t, Config{})
	p := h.createPod(testPod("gated", func(p *corev1.Pod) {
		p.Spec.SchedulingGates = []corev1.PodSchedulingGate{{Name: "example.com/wait"}}
	}))
	c := podCondition(p, corev1.PodScheduled)
	if c == nil || c.Status != corev1.ConditionFalse || c.Reason != corev1.PodReasonSchedulingGated ||
		c.Message != "Scheduling is blocked due to non-empty scheduling gates" {
		t.Errorf("PodScheduled = %+v, want False/SchedulingGated %q", c, "Scheduling is blocked due to non-empty scheduling gates")
	}
}

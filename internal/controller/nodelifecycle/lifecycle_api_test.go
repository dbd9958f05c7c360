package nodelifecycle

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"kite/internal/testutil/apitest"
)

// TestAPILeaseStopsAndResumes: a node whose Lease stops being renewed goes
// Ready=Unknown after the grace period, gets the unreachable taints, its
// pods turn Ready=False at once and are evicted when their toleration runs
// out (the default, or their own; never for a pod tolerating for ever);
// the other node and its pods are untouched; when the agent is back the
// taints go.
func TestAPILeaseStopsAndResumes(t *testing.T) {
	h := startController(t)
	worker := h.startAgent("kite-worker")
	h.startAgent("kite-worker2")
	h.runPod("default-toleration", "kite-worker")
	h.runPod("tolerates-forever", "kite-worker", corev1.Toleration{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute})
	h.runPod("elsewhere", "kite-worker2")

	worker.Stop()
	stopped := time.Now()

	var ready *corev1.NodeCondition
	apitest.WaitFor(t, waitTime, "kite-worker Ready=Unknown", func() bool {
		ready = readyCondition(h.node("kite-worker"))
		return ready != nil && ready.Status == corev1.ConditionUnknown
	})
	if silent := time.Since(stopped); silent < testGrace {
		t.Errorf("Ready=Unknown after %v of silence, before the %v grace period", silent, testGrace)
	}
	if ready.Reason != "NodeStatusUnknown" || ready.Message != "Kubelet stopped posting node status." {
		t.Errorf("Ready = %s %q, want NodeStatusUnknown %q", ready.Reason, ready.Message, "Kubelet stopped posting node status.")
	}
	for _, c := range h.node("kite-worker").Status.Conditions {
		if c.Status != corev1.ConditionUnknown {
			t.Errorf("condition %s = %s, want Unknown", c.Type, c.Status)
		}
	}
	h.waitEvent("kite-worker", "NodeNotReady")

	var noExec *corev1.Taint
	apitest.WaitFor(t, waitTime, "unreachable taints", func() bool {
		n := h.node("kite-worker")
		noExec = hasTaint(n, corev1.TaintNodeUnreachable, corev1.TaintEffectNoExecute)
		return noExec != nil && hasTaint(n, corev1.TaintNodeUnreachable, corev1.TaintEffectNoSchedule) != nil
	})
	if noExec.TimeAdded == nil {
		t.Fatal("unreachable:NoExecute has no timeAdded")
	}

	apitest.WaitFor(t, waitTime, "pods on kite-worker Ready=False", func() bool {
		for _, name := range []string{"default-toleration", "tolerates-forever"} {
			p := h.pod(name)
			if podCondition(p, corev1.PodReady) != corev1.ConditionFalse || podCondition(p, corev1.ContainersReady) != corev1.ConditionFalse {
				return false
			}
		}
		return true
	})

	apitest.WaitFor(t, waitTime, "default-toleration evicted", func() bool { return h.evicted("default-toleration") })
	if early := noExec.TimeAdded.Add(testToleration * time.Second).Sub(time.Now()); early > time.Second {
		// timeAdded has second precision; allow for it.
		t.Errorf("evicted %v before its %ds toleration ran out", early, testToleration)
	}
	if p := h.pod("default-toleration"); p != nil && podCondition(p, corev1.DisruptionTarget) != corev1.ConditionTrue {
		t.Errorf("evicted pod has no DisruptionTarget condition: %+v", p.Status.Conditions)
	}
	ev := h.waitEvent("default-toleration", "TaintManagerEviction")
	if ev.Message != "Marking for deletion Pod default/default-toleration" {
		t.Errorf("eviction event %q", ev.Message)
	}
	if h.evicted("tolerates-forever") {
		t.Error("pod tolerating unreachable for ever was evicted")
	}
	if p := h.pod("elsewhere"); h.evicted("elsewhere") || podCondition(p, corev1.PodReady) != corev1.ConditionTrue {
		t.Error("pod on the healthy node was touched")
	}
	if r := readyCondition(h.node("kite-worker2")); r == nil || r.Status != corev1.ConditionTrue {
		t.Errorf("kite-worker2 Ready = %+v, want True (its lease is renewed)", r)
	}

	// The agent is back: it renews its Lease and posts Ready.
	h.startAgent("kite-worker")
	apitest.WaitFor(t, waitTime, "unreachable taints removed", func() bool { return len(h.node("kite-worker").Spec.Taints) == 0 })
	if r := readyCondition(h.node("kite-worker")); r.Status != corev1.ConditionTrue {
		t.Errorf("Ready = %s after the agent came back", r.Status)
	}
}

// TestAPINotReady: a node that reports Ready=False (its agent alive) gets
// the not-ready taints, and pods without their own toleration are evicted
// after the default; Ready again removes the taints.
func TestAPINotReady(t *testing.T) {
	h := startController(t)
	h.startAgent("kite-worker")
	h.startAgent("kite-worker2")
	h.runPod("victim", "kite-worker")

	h.postStatus("kite-worker", corev1.ConditionFalse)
	var noExec *corev1.Taint
	apitest.WaitFor(t, waitTime, "not-ready taints", func() bool {
		n := h.node("kite-worker")
		noExec = hasTaint(n, corev1.TaintNodeNotReady, corev1.TaintEffectNoExecute)
		return noExec != nil && hasTaint(n, corev1.TaintNodeNotReady, corev1.TaintEffectNoSchedule) != nil
	})
	if noExec.TimeAdded == nil {
		t.Error("not-ready:NoExecute has no timeAdded")
	}
	if r := readyCondition(h.node("kite-worker")); r.Status != corev1.ConditionFalse {
		t.Errorf("Ready = %s, want the agent's False kept", r.Status)
	}
	apitest.WaitFor(t, waitTime, "victim evicted", func() bool { return h.evicted("victim") })

	h.postStatus("kite-worker", corev1.ConditionTrue)
	apitest.WaitFor(t, waitTime, "not-ready taints removed", func() bool { return len(h.node("kite-worker").Spec.Taints) == 0 })
}

// TestAPIAllNodesDown: when no node is Ready the controller blames itself
// (or the network) rather than the nodes: NoSchedule taints and Ready=False
// pods, but no NoExecute taint and no eviction.
func TestAPIAllNodesDown(t *testing.T) {
	h := startController(t)
	only := h.startAgent("kite-worker")
	h.runPod("survivor", "kite-worker")
	only.Stop()
	apitest.WaitFor(t, waitTime, "unreachable:NoSchedule", func() bool {
		return hasTaint(h.node("kite-worker"), corev1.TaintNodeUnreachable, corev1.TaintEffectNoSchedule) != nil
	})
	apitest.WaitFor(t, waitTime, "survivor Ready=False", func() bool { return podCondition(h.pod("survivor"), corev1.PodReady) == corev1.ConditionFalse })
	consistently(t, (testToleration+1)*time.Second, "no NoExecute taint and no eviction", func() bool {
		return hasTaint(h.node("kite-worker"), corev1.TaintNodeUnreachable, corev1.TaintEffectNoExecute) == nil && !h.evicted("survivor")
	})
}

// TestAPIRestart: a controller restarted while a node is unreachable keeps
// its taints (a fresh grace period does not clear them) and evicts on the
// original schedule, counted from the taint's timeAdded.
func TestAPIRestart(t *testing.T) {
	api := apitest.Start(t, apitest.Options{DefaultTolerationSeconds: testToleration})
	h := &harness{t: t, ctx: t.Context(), client: api.Client}
	stop := h.runController()
	worker := h.startAgent("kite-worker")
	h.startAgent("kite-worker2")
	h.runPod("victim", "kite-worker", corev1.Toleration{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists,
		Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr(int64(4))})
	worker.Stop()
	var noExec *corev1.Taint
	apitest.WaitFor(t, waitTime, "unreachable:NoExecute", func() bool {
		noExec = hasTaint(h.node("kite-worker"), corev1.TaintNodeUnreachable, corev1.TaintEffectNoExecute)
		return noExec != nil
	})
	stop()

	h.runController()
	consistently(t, 2*testMonitor+testGrace/2, "taints kept across the restart", func() bool {
		n := h.node("kite-worker")
		taint := hasTaint(n, corev1.TaintNodeUnreachable, corev1.TaintEffectNoExecute)
		return taint != nil && taint.TimeAdded.Equal(noExec.TimeAdded) && !h.evicted("victim")
	})
	apitest.WaitFor(t, waitTime, "victim evicted", func() bool { return h.evicted("victim") })
	// Evicted 4 s after timeAdded (second precision), not 4 s after the restart.
	if late := time.Since(noExec.TimeAdded.Add(4 * time.Second)); late > 2*time.Second {
		t.Errorf("evicted %v after its toleration ran out", late)
	}
}

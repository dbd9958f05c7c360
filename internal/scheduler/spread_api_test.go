package scheduler

import (
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/rand"
)

// TestAPISpreadsReplicaSetPods: two Ready nodes, ten pods of one
// ReplicaSet-like owner → 5/5, each with PodScheduled=True and a Scheduled
// event; a bare pod is scheduled too.
func TestAPISpreadsReplicaSetPods(t *testing.T) {
	h := startScheduler(t, Config{})
	h.createNode(testNode("kite-worker"))
	h.createNode(testNode("kite-worker2"))

	var names []string
	for range 10 {
		p := testPod("kuard-5d8f7c9b4-"+rand.String(5), ownedBy("6f1c0a52-0000-4000-8000-000000000001"))
		p.Labels = map[string]string{"run": "kuard", "pod-template-hash": "5d8f7c9b4"}
		p.OwnerReferences[0].Name = "kuard-5d8f7c9b4"
		h.createPod(p)
		names = append(names, p.Name)
	}
	count := map[string]int{}
	for _, name := range names {
		count[h.waitBound(name)]++
	}
	if count["kite-worker"] != 5 || count["kite-worker2"] != 5 {
		t.Errorf("pods per node = %v, want 5 on each", count)
	}

	p := h.getPod(names[0])
	if c := podCondition(p, corev1.PodScheduled); c == nil || c.Status != corev1.ConditionTrue {
		t.Errorf("PodScheduled = %+v, want True", c)
	}
	ev := h.waitEvent(p.Name, "Scheduled")
	if want := fmt.Sprintf("Successfully assigned default/%s to %s", p.Name, p.Spec.NodeName); ev.Message != want || ev.Type != corev1.EventTypeNormal {
		t.Errorf("Scheduled event = %s %q, want Normal %q", ev.Type, ev.Message, want)
	}
	if ev.Source.Component != "default-scheduler" {
		t.Errorf("event source = %q, want default-scheduler", ev.Source.Component)
	}

	h.createPod(testPod("bare"))
	if node := h.waitBound("bare"); !strings.HasPrefix(node, "kite-worker") {
		t.Errorf("bare pod on %q", node)
	}
}

// TestAPIOtherSchedulersPodsAreLeftAlone: a pod naming another scheduler
// stays pending and untouched.
func TestAPIOtherSchedulersPodsAreLeftAlone(t *testing.T) {
	h := startScheduler(t, Config{})
	h.createNode(testNode("kite-worker"))
	h.createPod(testPod("mine"))
	h.createPod(testPod("theirs", func(p *corev1.Pod) { p.Spec.SchedulerName = "other-scheduler" }))
	h.waitBound("mine")
	p := h.getPod("theirs")
	if p.Spec.NodeName != "" || len(p.Status.Conditions) != 0 {
		t.Errorf("other scheduler's pod touched: node %q, conditions %+v", p.Spec.NodeName, p.Status.Conditions)
	}
	// A pod bound by its creator (spec.nodeName set) is not rebound.
	h.createPod(testPod("pinned", onNode("elsewhere")))
	if got := h.getPod("pinned").Spec.NodeName; got != "elsewhere" {
		t.Errorf("pinned pod on %q", got)
	}
}

package nodelifecycle

import (
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// taintsString renders taints as "key=value:Effect@timeAdded" for
// comparison; timeAdded is shown as the offset from t0.
func taintsString(taints []corev1.Taint, t0 time.Time) string {
	var parts []string
	for _, t := range taints {
		s := t.Key
		if t.Value != "" {
			s += "=" + t.Value
		}
		s += ":" + string(t.Effect)
		if t.TimeAdded != nil {
			s += fmt.Sprintf("@%v", t.TimeAdded.Sub(t0))
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, " ")
}

func nodeWith(ready corev1.ConditionStatus, taints ...corev1.Taint) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n"}, Spec: corev1.NodeSpec{Taints: taints}}
	if ready != "" {
		n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: ready}}
	}
	return n
}

func TestReconcileTaints(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	now := metav1.NewTime(t0.Add(time.Minute))
	earlier := metav1.NewTime(t0)
	unreachableNoExec := corev1.Taint{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoExecute, TimeAdded: &earlier}
	unreachableNoSched := corev1.Taint{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoSchedule}
	user := corev1.Taint{Key: "dedicated", Value: "gpu", Effect: corev1.TaintEffectNoSchedule}
	for _, tc := range []struct {
		name      string
		node      *corev1.Node
		evictions bool
		want      string
		changed   bool
	}{
		{name: "Ready: nothing", node: nodeWith(corev1.ConditionTrue), evictions: true, want: ""},
		{name: "no Ready condition yet: nothing", node: nodeWith(""), evictions: true, want: ""},
		{name: "Unknown: unreachable NoSchedule and NoExecute with timeAdded", node: nodeWith(corev1.ConditionUnknown), evictions: true,
			want: "node.kubernetes.io/unreachable:NoSchedule node.kubernetes.io/unreachable:NoExecute@1m0s", changed: true},
		{name: "False: not-ready taints", node: nodeWith(corev1.ConditionFalse), evictions: true,
			want: "node.kubernetes.io/not-ready:NoSchedule node.kubernetes.io/not-ready:NoExecute@1m0s", changed: true},
		{name: "existing taints keep their timeAdded", node: nodeWith(corev1.ConditionUnknown, unreachableNoSched, unreachableNoExec), evictions: true,
			want: "node.kubernetes.io/unreachable:NoSchedule node.kubernetes.io/unreachable:NoExecute@0s"},
		{name: "back Ready: managed taints go, others stay", node: nodeWith(corev1.ConditionTrue, user, unreachableNoSched, unreachableNoExec), evictions: true,
			want: "dedicated=gpu:NoSchedule", changed: true},
		{name: "unreachable becomes not-ready", node: nodeWith(corev1.ConditionFalse, unreachableNoSched, unreachableNoExec), evictions: true,
			want: "node.kubernetes.io/not-ready:NoSchedule node.kubernetes.io/not-ready:NoExecute@1m0s", changed: true},
		{name: "all nodes down: NoSchedule only", node: nodeWith(corev1.ConditionUnknown, unreachableNoExec), evictions: false,
			want: "node.kubernetes.io/unreachable:NoSchedule", changed: true},
		{name: "cordon", node: func() *corev1.Node { n := nodeWith(corev1.ConditionTrue); n.Spec.Unschedulable = true; return n }(), evictions: true,
			want: "node.kubernetes.io/unschedulable:NoSchedule", changed: true},
		{name: "pressure", node: func() *corev1.Node {
			n := nodeWith(corev1.ConditionTrue)
			n.Status.Conditions = append(n.Status.Conditions,
				corev1.NodeCondition{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionTrue},
				corev1.NodeCondition{Type: corev1.NodeDiskPressure, Status: corev1.ConditionFalse})
			return n
		}(), evictions: true, want: "node.kubernetes.io/memory-pressure:NoSchedule", changed: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, changed := reconcileTaints(tc.node, tc.evictions, now)
			if s := taintsString(got, t0); s != tc.want || changed != tc.changed {
				t.Errorf("got %q changed=%v, want %q changed=%v", s, changed, tc.want, tc.changed)
			}
		})
	}
}

func TestUnknownConditions(t *testing.T) {
	created := metav1.NewTime(time.Unix(1_700_000_000, 0))
	hb := metav1.NewTime(created.Add(10 * time.Second))
	now := metav1.NewTime(created.Add(time.Minute))
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n", CreationTimestamp: created}}
	n.Status.Conditions = []corev1.NodeCondition{
		{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", LastHeartbeatTime: hb, LastTransitionTime: created},
		{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse, LastHeartbeatTime: hb},
		{Type: corev1.NodeNetworkUnavailable, Status: corev1.ConditionFalse, Reason: "RouteCreated", LastHeartbeatTime: hb, LastTransitionTime: created},
	}
	got, changed := unknownConditions(n, now)
	if !changed {
		t.Fatal("not changed")
	}
	want := map[corev1.NodeConditionType]string{
		corev1.NodeReady:              "Unknown NodeStatusUnknown Kubelet stopped posting node status. hb=10s tt=1m0s",
		corev1.NodeMemoryPressure:     "Unknown NodeStatusUnknown Kubelet stopped posting node status. hb=10s tt=1m0s",
		corev1.NodeDiskPressure:       "Unknown NodeStatusNeverUpdated Kubelet never posted node status. hb=0s tt=1m0s",
		corev1.NodePIDPressure:        "Unknown NodeStatusNeverUpdated Kubelet never posted node status. hb=0s tt=1m0s",
		corev1.NodeNetworkUnavailable: "False RouteCreated  hb=10s tt=0s",
	}
	if len(got) != len(want) {
		t.Errorf("%d conditions, want %d", len(got), len(want))
	}
	for _, c := range got {
		s := fmt.Sprintf("%s %s %s hb=%v tt=%v", c.Status, c.Reason, c.Message, c.LastHeartbeatTime.Sub(created.Time), c.LastTransitionTime.Sub(created.Time))
		if s != want[c.Type] {
			t.Errorf("%s: %q, want %q", c.Type, s, want[c.Type])
		}
	}
	n.Status.Conditions = got
	if _, changed := unknownConditions(n, now); changed {
		t.Error("changed again")
	}
}

func TestAllNotReady(t *testing.T) {
	for _, tc := range []struct {
		nodes []*corev1.Node
		want  bool
	}{
		{nil, false},
		{[]*corev1.Node{nodeWith(corev1.ConditionUnknown)}, true},
		{[]*corev1.Node{nodeWith(corev1.ConditionUnknown), nodeWith(corev1.ConditionFalse), nodeWith("")}, true},
		{[]*corev1.Node{nodeWith(corev1.ConditionUnknown), nodeWith(corev1.ConditionTrue)}, false},
	} {
		if got := allNotReady(tc.nodes); got != tc.want {
			t.Errorf("allNotReady(%d nodes) = %v, want %v", len(tc.nodes), got, tc.want)
		}
	}
}

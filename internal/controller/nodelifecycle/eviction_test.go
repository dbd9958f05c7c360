package nodelifecycle

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestEvictionTime(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	at := func(d time.Duration) *metav1.Time { m := metav1.NewTime(t0.Add(d)); return &m }
	secs := func(s int64) *int64 { return &s }
	unreachable := corev1.Taint{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoExecute, TimeAdded: at(0)}
	notReady := corev1.Taint{Key: corev1.TaintNodeNotReady, Effect: corev1.TaintEffectNoExecute, TimeAdded: at(10 * time.Second)}
	custom := corev1.Taint{Key: "maintenance", Value: "now", Effect: corev1.TaintEffectNoExecute, TimeAdded: at(0)}
	noSchedule := corev1.Taint{Key: "dedicated", Effect: corev1.TaintEffectNoSchedule}
	withoutTime := corev1.Taint{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoExecute}
	tol := func(key string, seconds *int64) corev1.Toleration {
		return corev1.Toleration{Key: key, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: seconds}
	}
	defaults := defaultTolerations{notReady: 300, unreachable: 300}
	for _, tc := range []struct {
		name        string
		tolerations []corev1.Toleration
		taints      []corev1.Taint
		want        time.Duration // after t0; -1 means never, 0 with immediate means now
		immediate   bool
	}{
		{name: "default toleration: 300s after the taint", taints: []corev1.Taint{unreachable}, want: 300 * time.Second},
		{name: "default for not-ready counts from its own taint", taints: []corev1.Taint{notReady}, want: 310 * time.Second},
		{name: "earliest of two taints", taints: []corev1.Taint{notReady, unreachable}, want: 300 * time.Second},
		{name: "own toleration replaces the default", tolerations: []corev1.Toleration{tol(corev1.TaintNodeUnreachable, secs(5))},
			taints: []corev1.Taint{unreachable}, want: 5 * time.Second},
		{name: "own toleration for ever", tolerations: []corev1.Toleration{tol(corev1.TaintNodeUnreachable, nil)},
			taints: []corev1.Taint{unreachable}, want: -1},
		{name: "tolerate everything (empty key, Exists) for ever", tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
			taints: []corev1.Taint{unreachable, custom}, want: -1},
		{name: "shortest matching toleration wins", tolerations: []corev1.Toleration{
			tol(corev1.TaintNodeUnreachable, nil), tol(corev1.TaintNodeUnreachable, secs(30)), tol(corev1.TaintNodeUnreachable, secs(60))},
			taints: []corev1.Taint{unreachable}, want: 30 * time.Second},
		{name: "negative seconds mean at once", tolerations: []corev1.Toleration{tol(corev1.TaintNodeUnreachable, secs(-5))},
			taints: []corev1.Taint{unreachable}, want: 0},
		{name: "untolerated custom taint: now", taints: []corev1.Taint{custom}, immediate: true},
		{name: "NoSchedule taints do not evict", taints: []corev1.Taint{noSchedule}, want: -1},
		{name: "no timeAdded: when first seen", taints: []corev1.Taint{withoutTime}, want: 20*time.Second + 300*time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := &corev1.Pod{Spec: corev1.PodSpec{Tolerations: tc.tolerations}}
			added := func(taint corev1.Taint) time.Time {
				if taint.TimeAdded != nil {
					return taint.TimeAdded.Time
				}
				return t0.Add(20 * time.Second)
			}
			got, ok := evictionTime(pod, tc.taints, defaults, added)
			switch {
			case tc.immediate:
				if !ok || !got.IsZero() {
					t.Errorf("got %v, %v; want now", got, ok)
				}
			case tc.want < 0:
				if ok {
					t.Errorf("got %v, want never", got.Sub(t0))
				}
			default:
				if !ok || got.Sub(t0) != tc.want {
					t.Errorf("got %v, %v; want %v", got.Sub(t0), ok, tc.want)
				}
			}
		})
	}
}

func TestEffectiveTolerations(t *testing.T) {
	secs := int64(60)
	for _, tc := range []struct {
		name  string
		own   []corev1.Toleration
		added int
	}{
		{name: "none: both defaults", added: 2},
		{name: "own unreachable: not-ready default only",
			own: []corev1.Toleration{{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: &secs}}, added: 1},
		{name: "own with no effect counts", own: []corev1.Toleration{{Key: corev1.TaintNodeNotReady, Operator: corev1.TolerationOpExists}}, added: 1},
		{name: "own NoSchedule does not", own: []corev1.Toleration{{Key: corev1.TaintNodeNotReady, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}, added: 2},
		{name: "tolerate-all", own: []corev1.Toleration{{Operator: corev1.TolerationOpExists}}, added: 0},
	} {
		pod := &corev1.Pod{Spec: corev1.PodSpec{Tolerations: tc.own}}
		if got := len(effectiveTolerations(pod, defaultTolerations{300, 300})) - len(tc.own); got != tc.added {
			t.Errorf("%s: %d added, want %d", tc.name, got, tc.added)
		}
	}
}

package nodelifecycle

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
)

// defaultTolerations are the seconds upstream's DefaultTolerationSeconds
// admission plugin writes into pods without their own toleration for the
// not-ready and unreachable NoExecute taints.
type defaultTolerations struct {
	notReady, unreachable int64
}

// effectiveTolerations are the pod's tolerations plus those the admission
// plugin would have added: for not-ready and unreachable NoExecute, each
// unless a toleration with that key (or no key) and NoExecute (or no
// effect) is already there.
func effectiveTolerations(pod *corev1.Pod, d defaultTolerations) []corev1.Toleration {
	out := append([]corev1.Toleration(nil), pod.Spec.Tolerations...)
	has := func(key string) bool {
		for _, t := range pod.Spec.Tolerations {
			if (t.Key == key || t.Key == "") && (t.Effect == corev1.TaintEffectNoExecute || t.Effect == "") {
				return true
			}
		}
		return false
	}
	for _, def := range []struct {
		key     string
		seconds int64
	}{{corev1.TaintNodeNotReady, d.notReady}, {corev1.TaintNodeUnreachable, d.unreachable}} {
		if !has(def.key) {
			secs := def.seconds
			out = append(out, corev1.Toleration{Key: def.key, Operator: corev1.TolerationOpExists,
				Effect: corev1.TaintEffectNoExecute, TolerationSeconds: &secs})
		}
	}
	return out
}

// evictionTime says when a pod must leave a node with the given NoExecute
// taints, as upstream's taint eviction does: at once (the zero time) if
// it does not tolerate one of them; otherwise, for each taint, when it was
// added plus the shortest tolerationSeconds among the tolerations matching
// it, and the earliest of those. ok is false if the pod tolerates every
// taint for ever. added says when a taint was put on the node.
func evictionTime(pod *corev1.Pod, taints []corev1.Taint, d defaultTolerations, added func(corev1.Taint) time.Time) (at time.Time, ok bool) {
	tolerations := effectiveTolerations(pod, d)
	for _, taint := range taints {
		if taint.Effect != corev1.TaintEffectNoExecute {
			continue
		}
		matched, bounded := false, false
		var minSecs int64
		for i := range tolerations {
			t := &tolerations[i]
			if !t.ToleratesTaint(klog.Background(), &taint, true) {
				continue
			}
			matched = true
			if t.TolerationSeconds == nil {
				continue
			}
			secs := max(*t.TolerationSeconds, 0)
			if !bounded || secs < minSecs {
				minSecs, bounded = secs, true
			}
		}
		if !matched {
			return time.Time{}, true
		}
		if !bounded {
			continue // tolerated for ever
		}
		deadline := added(taint).Add(time.Duration(minSecs) * time.Second)
		if !ok || deadline.Before(at) {
			at, ok = deadline, true
		}
	}
	return at, ok
}

package nodelifecycle

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// conditionTaints maps a node condition in a given status to the
// NoSchedule taint it implies (upstream's TaintNodesByCondition).
var conditionTaints = map[corev1.NodeConditionType]map[corev1.ConditionStatus]string{
	corev1.NodeReady: {
		corev1.ConditionFalse:   corev1.TaintNodeNotReady,
		corev1.ConditionUnknown: corev1.TaintNodeUnreachable,
	},
	corev1.NodeMemoryPressure:     {corev1.ConditionTrue: corev1.TaintNodeMemoryPressure},
	corev1.NodeDiskPressure:       {corev1.ConditionTrue: corev1.TaintNodeDiskPressure},
	corev1.NodeNetworkUnavailable: {corev1.ConditionTrue: corev1.TaintNodeNetworkUnavailable},
	corev1.NodePIDPressure:        {corev1.ConditionTrue: corev1.TaintNodePIDPressure},
}

// managed reports whether the controller owns a taint: it adds and removes
// these, and leaves every other taint alone.
func managed(t corev1.Taint) bool {
	switch t.Effect {
	case corev1.TaintEffectNoSchedule:
		switch t.Key {
		case corev1.TaintNodeNotReady, corev1.TaintNodeUnreachable, corev1.TaintNodeMemoryPressure,
			corev1.TaintNodeDiskPressure, corev1.TaintNodeNetworkUnavailable, corev1.TaintNodePIDPressure,
			corev1.TaintNodeUnschedulable:
			return true
		}
	case corev1.TaintEffectNoExecute:
		return t.Key == corev1.TaintNodeNotReady || t.Key == corev1.TaintNodeUnreachable
	}
	return false
}

// desiredTaints are the taints the controller wants on the node: a
// NoSchedule taint per condition that implies one and for a cordoned node,
// and, when evictions are on, the NoExecute not-ready or unreachable taint
// for a node whose Ready is False or Unknown.
func desiredTaints(node *corev1.Node, evictions bool) []corev1.Taint {
	var out []corev1.Taint
	for _, c := range node.Status.Conditions {
		if key, ok := conditionTaints[c.Type][c.Status]; ok {
			out = append(out, corev1.Taint{Key: key, Effect: corev1.TaintEffectNoSchedule})
		}
	}
	if node.Spec.Unschedulable {
		out = append(out, corev1.Taint{Key: corev1.TaintNodeUnschedulable, Effect: corev1.TaintEffectNoSchedule})
	}
	if evictions {
		switch readyStatus(node) {
		case corev1.ConditionFalse:
			out = append(out, corev1.Taint{Key: corev1.TaintNodeNotReady, Effect: corev1.TaintEffectNoExecute})
		case corev1.ConditionUnknown:
			out = append(out, corev1.Taint{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoExecute})
		}
	}
	return out
}

// reconcileTaints returns the node's taints with the managed ones made
// desired: others stay as they are, in order; a managed taint that should
// stay keeps its value and timeAdded; one that should go goes; a new one
// is appended, a NoExecute one with timeAdded now (as upstream, NoSchedule
// taints get no timeAdded). changed is false if the result equals the
// node's taints.
func reconcileTaints(node *corev1.Node, evictions bool, now metav1.Time) (out []corev1.Taint, changed bool) {
	want := desiredTaints(node, evictions)
	wanted := func(t corev1.Taint) bool {
		for _, w := range want {
			if w.MatchTaint(&t) {
				return true
			}
		}
		return false
	}
	for _, t := range node.Spec.Taints {
		if managed(t) && !wanted(t) {
			changed = true
			continue
		}
		out = append(out, t)
	}
	for _, w := range want {
		present := false
		for _, t := range out {
			if t.MatchTaint(&w) {
				present = true
				break
			}
		}
		if present {
			continue
		}
		if w.Effect == corev1.TaintEffectNoExecute {
			w.TimeAdded = &now
		}
		out = append(out, w)
		changed = true
	}
	return out, changed
}

package nodelifecycle

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Reasons and messages of conditions the controller sets to Unknown, as
// upstream's.
const (
	reasonStatusUnknown      = "NodeStatusUnknown"
	messageStatusUnknown     = "Kubelet stopped posting node status."
	reasonStatusNeverUpdated = "NodeStatusNeverUpdated"
	messageNeverUpdated      = "Kubelet never posted node status."
)

// agentConditions are the conditions the node's agent posts and the
// controller declares Unknown when the agent goes silent (upstream leaves
// NetworkUnavailable to the network plugin).
var agentConditions = []corev1.NodeConditionType{
	corev1.NodeReady, corev1.NodeMemoryPressure, corev1.NodeDiskPressure, corev1.NodePIDPressure,
}

// unknownConditions returns the node's conditions with every agent
// condition Unknown: an existing one keeps its last heartbeat and gets
// NodeStatusUnknown; a missing one is added as NodeStatusNeverUpdated with
// the node's creation as heartbeat. changed is false if nothing differs.
func unknownConditions(node *corev1.Node, now metav1.Time) (out []corev1.NodeCondition, changed bool) {
	out = append([]corev1.NodeCondition(nil), node.Status.Conditions...)
	for _, t := range agentConditions {
		i := conditionIndex(out, t)
		if i < 0 {
			out = append(out, corev1.NodeCondition{
				Type: t, Status: corev1.ConditionUnknown, Reason: reasonStatusNeverUpdated, Message: messageNeverUpdated,
				LastHeartbeatTime: node.CreationTimestamp, LastTransitionTime: now,
			})
			changed = true
			continue
		}
		if out[i].Status == corev1.ConditionUnknown {
			continue
		}
		out[i].Status = corev1.ConditionUnknown
		out[i].Reason = reasonStatusUnknown
		out[i].Message = messageStatusUnknown
		out[i].LastTransitionTime = now
		changed = true
	}
	return out, changed
}

func conditionIndex(conds []corev1.NodeCondition, t corev1.NodeConditionType) int {
	for i := range conds {
		if conds[i].Type == t {
			return i
		}
	}
	return -1
}

// readyCondition returns the node's Ready condition, or nil.
func readyCondition(node *corev1.Node) *corev1.NodeCondition {
	if i := conditionIndex(node.Status.Conditions, corev1.NodeReady); i >= 0 {
		return &node.Status.Conditions[i]
	}
	return nil
}

// readyStatus is the status of the node's Ready condition, "" if none.
func readyStatus(node *corev1.Node) corev1.ConditionStatus {
	if c := readyCondition(node); c != nil {
		return c.Status
	}
	return ""
}

// allNotReady reports whether no node is Ready while some exist: upstream's
// "full disruption", in which the controller assumes the fault is its own
// (or the network's) and stops evicting. Zones are not told apart: the
// cluster is one zone.
func allNotReady(nodes []*corev1.Node) bool {
	for _, n := range nodes {
		if readyStatus(n) == corev1.ConditionTrue {
			return false
		}
	}
	return len(nodes) > 0
}

package scheduler

import (
	"fmt"
	"sort"

	corev1 "k8s.io/api/core/v1"
	v1helper "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
	"k8s.io/klog/v2"
)

// The reasons a node does not fit, worded as upstream's filter plugins word
// them: "0/3 nodes are available: ..." is built from these.
const (
	reasonUnschedulable = "node(s) were unschedulable"
	reasonAffinity      = "node(s) didn't match Pod's node affinity/selector"
	reasonPorts         = "node(s) didn't have free ports for the requested pod ports"
	reasonTooManyPods   = "Too many pods"
)

// reasonTaint is TaintToleration's reason for the first taint a pod does
// not tolerate.
func reasonTaint(t corev1.Taint) string {
	return fmt.Sprintf("node(s) had untolerated taint {%s: %s}", t.Key, t.Value)
}

// reasonInsufficient is NodeResourcesFit's reason for one resource.
func reasonInsufficient(name corev1.ResourceName) string { return "Insufficient " + string(name) }

// A check is one of upstream's filter plugins: the reasons pod cannot run
// on the node, none if it can.
type check func(pod *corev1.Pod, ni *nodeInfo) []string

// checks run in upstream's default plugin order; a node's first failing
// check is its reason, as in upstream, where filtering a node stops at the
// first plugin that rejects it.
var checks = []check{checkUnschedulable, checkTaints, checkNodeAffinity, checkHostPorts, checkResources}

// filter returns why pod cannot run on the node, or nil if it can.
func filter(pod *corev1.Pod, ni *nodeInfo) []string {
	for _, c := range checks {
		if reasons := c(pod, ni); len(reasons) > 0 {
			return reasons
		}
	}
	return nil
}

// checkUnschedulable is NodeUnschedulable: a cordoned node takes only pods
// that tolerate the unschedulable taint.
func checkUnschedulable(pod *corev1.Pod, ni *nodeInfo) []string {
	if !ni.node.Spec.Unschedulable {
		return nil
	}
	t := corev1.Taint{Key: corev1.TaintNodeUnschedulable, Effect: corev1.TaintEffectNoSchedule}
	if v1helper.TolerationsTolerateTaint(klog.Background(), pod.Spec.Tolerations, &t, true) {
		return nil
	}
	return []string{reasonUnschedulable}
}

// checkTaints is TaintToleration: every NoSchedule and NoExecute taint must
// be tolerated. A node that is not Ready counts as carrying the taint the
// node lifecycle controller gives it (not-ready, or unreachable when its
// Ready condition is Unknown), so a node is never chosen before that
// controller has caught up, and pods that tolerate the taint (as
// DaemonSet pods do) may still go there.
func checkTaints(pod *corev1.Pod, ni *nodeInfo) []string {
	filterHard := func(t *corev1.Taint) bool {
		return t.Effect == corev1.TaintEffectNoSchedule || t.Effect == corev1.TaintEffectNoExecute
	}
	if t, bad := v1helper.FindMatchingUntoleratedTaint(klog.Background(), effectiveTaints(ni.node), pod.Spec.Tolerations, filterHard, true); bad {
		return []string{reasonTaint(t)}
	}
	return nil
}

// effectiveTaints are the node's taints plus the NoSchedule taint its Ready
// condition implies, if the node does not carry it already.
func effectiveTaints(node *corev1.Node) []corev1.Taint {
	key := ""
	switch readyStatus(node) {
	case corev1.ConditionTrue:
		return node.Spec.Taints
	case corev1.ConditionUnknown:
		key = corev1.TaintNodeUnreachable
	default: // False, or no Ready condition yet
		key = corev1.TaintNodeNotReady
	}
	for _, t := range node.Spec.Taints {
		if t.Key == key && t.Effect == corev1.TaintEffectNoSchedule {
			return node.Spec.Taints
		}
	}
	return append(append([]corev1.Taint{}, node.Spec.Taints...), corev1.Taint{Key: key, Effect: corev1.TaintEffectNoSchedule})
}

// readyStatus is the status of the node's Ready condition, "" if it has
// none.
func readyStatus(node *corev1.Node) corev1.ConditionStatus {
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status
		}
	}
	return ""
}

// checkNodeAffinity is NodeAffinity: spec.nodeSelector and
// requiredDuringSchedulingIgnoredDuringExecution (matchExpressions with
// In, NotIn, Exists, DoesNotExist, Gt, Lt, and matchFields on
// metadata.name). A term that cannot be parsed matches nothing.
func checkNodeAffinity(pod *corev1.Pod, ni *nodeInfo) []string {
	if ok, err := nodeaffinity.GetRequiredNodeAffinity(pod).Match(ni.node); !ok || err != nil {
		return []string{reasonAffinity}
	}
	return nil
}

// checkHostPorts is NodePorts: the pod's host ports must be free on the
// node.
func checkHostPorts(pod *corev1.Pod, ni *nodeInfo) []string {
	for _, want := range podHostPorts(pod) {
		for _, used := range ni.ports {
			if want.conflicts(used) {
				return []string{reasonPorts}
			}
		}
	}
	return nil
}

// checkResources is NodeResourcesFit: one more pod must fit the node's
// allocatable pod count, and the pod's requests what is left of each
// allocatable resource. A resource the node does not list is zero, as
// upstream counts it.
func checkResources(pod *corev1.Pod, ni *nodeInfo) []string {
	var reasons []string
	alloc := ni.node.Status.Allocatable
	if maxPods := alloc.Pods().Value(); int64(ni.pods+1) > maxPods {
		reasons = append(reasons, reasonTooManyPods)
	}
	req := podRequests(pod)
	for _, name := range resourceOrder(req) {
		want := req[name]
		if want.IsZero() {
			continue
		}
		free := alloc[name].DeepCopy()
		used := ni.requested[name]
		free.Sub(used)
		if want.Cmp(free) > 0 {
			reasons = append(reasons, reasonInsufficient(name))
		}
	}
	return reasons
}

// resourceOrder lists the resources in req as upstream reports them: cpu,
// memory, ephemeral-storage, then the rest by name. Pods are counted, not
// requested.
func resourceOrder(req corev1.ResourceList) []corev1.ResourceName {
	first := []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourceEphemeralStorage}
	var out, rest []corev1.ResourceName
	for _, n := range first {
		if _, ok := req[n]; ok {
			out = append(out, n)
		}
	}
	for n := range req {
		if n != corev1.ResourceCPU && n != corev1.ResourceMemory && n != corev1.ResourceEphemeralStorage && n != corev1.ResourcePods {
			rest = append(rest, n)
		}
	}
	sort.Slice(rest, func(i, j int) bool { return rest[i] < rest[j] })
	return append(out, rest...)
}

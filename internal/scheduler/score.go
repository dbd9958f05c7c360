package scheduler

import (
	corev1 "k8s.io/api/core/v1"
	v1helper "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
	"k8s.io/klog/v2"
)

// score ranks a feasible node for a pod. Fields compare in order, which
// approximates upstream's weighted sum of plugin scores where it matters:
// TaintToleration (weight 3) outweighs NodeAffinity and spreading (2 each),
// and spreading by owner outweighs spreading of all pods.
type score struct {
	// preferNoSchedule counts PreferNoSchedule taints the pod does not
	// tolerate: fewer is better.
	preferNoSchedule int
	// affinity sums the weights of the pod's preferred node affinity
	// terms the node matches: more is better.
	affinity int64
	// sameOwner counts the node's pods with the pod's controller: fewer is
	// better, so one owner's pods spread evenly.
	sameOwner int
	// pods counts all the node's pods: fewer is better.
	pods int
}

// better reports whether a ranks above b. Equal scores are not better: the
// caller keeps the first node in name order, so ties break
// deterministically, by node name.
func (a score) better(b score) bool {
	switch {
	case a.preferNoSchedule != b.preferNoSchedule:
		return a.preferNoSchedule < b.preferNoSchedule
	case a.affinity != b.affinity:
		return a.affinity > b.affinity
	case a.sameOwner != b.sameOwner:
		return a.sameOwner < b.sameOwner
	}
	return a.pods < b.pods
}

// scoreNode scores a node the pod fits on.
func scoreNode(pod *corev1.Pod, ni *nodeInfo) score {
	s := score{pods: ni.pods}
	for i := range ni.node.Spec.Taints {
		t := &ni.node.Spec.Taints[i]
		if t.Effect == corev1.TaintEffectPreferNoSchedule && !v1helper.TolerationsTolerateTaint(klog.Background(), pod.Spec.Tolerations, t, true) {
			s.preferNoSchedule++
		}
	}
	if a := pod.Spec.Affinity; a != nil && a.NodeAffinity != nil && len(a.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution) > 0 {
		if terms, err := nodeaffinity.NewPreferredSchedulingTerms(a.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution); err == nil {
			s.affinity = terms.Score(ni.node)
		}
	}
	if uid := ownerUID(pod); uid != "" {
		s.sameOwner = ni.byOwner[uid]
	}
	return s
}

// schedule picks the node for pod among nodes (sorted by name), or says
// why none fits.
func schedule(pod *corev1.Pod, nodes []*nodeInfo) (string, *fitError) {
	var (
		best      *nodeInfo
		bestScore score
		diagnosis = map[string]int{}
	)
	for _, ni := range nodes {
		if reasons := filter(pod, ni); len(reasons) > 0 {
			for _, r := range reasons {
				diagnosis[r]++
			}
			continue
		}
		s := scoreNode(pod, ni)
		if best == nil || s.better(bestScore) {
			best, bestScore = ni, s
		}
	}
	if best == nil {
		return "", &fitError{numNodes: len(nodes), reasons: diagnosis}
	}
	return best.node.Name, nil
}

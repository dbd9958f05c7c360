package replicaset

import (
	"math"
	"slices"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// DeletionCostAnnotation on a pod: among otherwise equal pods, the one with
// the lower cost is deleted first (an int32, default 0).
const DeletionCostAnnotation = "controller.kubernetes.io/pod-deletion-cost"

// podsToDelete picks the n pods, among pods, that a ReplicaSet scaling down
// deletes: the ones furthest from serving. related are the pods of every
// ReplicaSet with the same owner (a Deployment's old and new ReplicaSets);
// a pod sharing its node with more of them goes first, spreading what
// remains.
//
// The order, as upstream's (each rule decides only if the earlier ones tie):
//  1. not scheduled before scheduled;
//  2. Pending before Unknown before Running;
//  3. not ready before ready;
//  4. lower pod-deletion-cost before higher;
//  5. more related pods on its node before fewer;
//  6. ready for less time before longer (both ready);
//  7. more container restarts before fewer;
//  8. created later before earlier.
//
// Times in 6 and 8 compare on a log2 scale of their age at now, ties broken
// by uid, so that pods of about the same age go in a pseudo-random order.
func podsToDelete(pods, related []*corev1.Pod, n int, now time.Time) []*corev1.Pod {
	if n >= len(pods) {
		return pods
	}
	onNode := map[string]int{}
	for _, p := range related {
		if isPodActive(p) {
			onNode[p.Spec.NodeName]++
		}
	}
	ranked := make([]rankedPod, len(pods))
	for i, p := range pods {
		ranked[i] = rankedPod{pod: p, colocated: onNode[p.Spec.NodeName]}
	}
	slices.SortFunc(ranked, func(a, b rankedPod) int {
		switch {
		case deleteBefore(a, b, now):
			return -1
		case deleteBefore(b, a, now):
			return 1
		}
		return 0
	})
	out := make([]*corev1.Pod, n)
	for i := range out {
		out[i] = ranked[i].pod
	}
	return out
}

type rankedPod struct {
	pod       *corev1.Pod
	colocated int
}

// phaseOrder: earlier phases of startup are deleted first.
var phaseOrder = map[corev1.PodPhase]int{corev1.PodPending: 0, corev1.PodUnknown: 1, corev1.PodRunning: 2}

// deleteBefore reports whether a should be deleted before b.
func deleteBefore(a, b rankedPod, now time.Time) bool {
	pa, pb := a.pod, b.pod
	if (pa.Spec.NodeName == "") != (pb.Spec.NodeName == "") {
		return pa.Spec.NodeName == ""
	}
	if oa, ob := phaseOrder[pa.Status.Phase], phaseOrder[pb.Status.Phase]; oa != ob {
		return oa < ob
	}
	ra, rb := isPodReady(pa), isPodReady(pb)
	if ra != rb {
		return !ra
	}
	if ca, cb := deletionCost(pa), deletionCost(pb); ca != cb {
		return ca < cb
	}
	if a.colocated != b.colocated {
		return a.colocated > b.colocated
	}
	if ra && rb {
		ta, tb := podReadyCondition(pa).LastTransitionTime.Time, podReadyCondition(pb).LastTransitionTime.Time
		if !ta.Equal(tb) {
			return newerFirst(ta, tb, pa, pb, now)
		}
	}
	if ma, mb := maxRestarts(pa), maxRestarts(pb); ma != mb {
		return ma > mb
	}
	ta, tb := pa.CreationTimestamp.Time, pb.CreationTimestamp.Time
	if !ta.Equal(tb) {
		return newerFirst(ta, tb, pa, pb, now)
	}
	return false
}

// newerFirst orders two different times: a zero time first, then the more
// recent, compared by the log2 of their ages (equal buckets: by uid).
func newerFirst(ta, tb time.Time, pa, pb *corev1.Pod, now time.Time) bool {
	if ta.IsZero() || tb.IsZero() || now.IsZero() {
		if ta.IsZero() || tb.IsZero() {
			return ta.IsZero()
		}
		return ta.After(tb)
	}
	ba, bb := ageBucket(ta, now), ageBucket(tb, now)
	if ba == bb {
		return pa.UID < pb.UID
	}
	return ba < bb
}

// ageBucket is floor(log2(age in ns)), or -1 for a time not in the past.
func ageBucket(t, now time.Time) int64 {
	age := now.Sub(t)
	if age <= 0 {
		return -1
	}
	return int64(math.Log2(float64(age)))
}

func deletionCost(pod *corev1.Pod) int32 {
	v, ok := pod.Annotations[DeletionCostAnnotation]
	if !ok {
		return 0
	}
	n, err := strconv.ParseInt(v, 10, 32)
	if err != nil {
		return 0
	}
	return int32(n)
}

func maxRestarts(pod *corev1.Pod) int32 {
	var m int32
	for _, c := range pod.Status.ContainerStatuses {
		m = max(m, c.RestartCount)
	}
	return m
}

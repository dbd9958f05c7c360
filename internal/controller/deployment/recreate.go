package deployment

import (
	"context"
	"slices"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// rolloutRecreate makes one step of a Recreate rollout: old ReplicaSets to
// zero; once none of their pods is left running, the new ReplicaSet
// (created only then) to replicas.
func (c *Controller) rolloutRecreate(ctx context.Context, d *appsv1.Deployment, rss []*appsv1.ReplicaSet) error {
	// No new ReplicaSet yet: it must not start before the old pods stop.
	newRS, olds, err := c.replicaSetsAndSyncRevision(ctx, d, rss, false)
	if err != nil {
		return err
	}
	all := append(slices.Clone(olds), newRS)

	scaled := false
	for _, rs := range active(olds) {
		did, _, err := c.scaleReplicaSetAndRecord(ctx, rs, 0, d)
		if err != nil {
			return err
		}
		scaled = scaled || did
	}
	if scaled {
		return c.syncRolloutStatus(ctx, d, newRS, all)
	}
	pods, err := c.podsByReplicaSet(d, rss)
	if err != nil {
		return err
	}
	if oldPodsRunning(newRS, olds, pods) {
		return c.syncRolloutStatus(ctx, d, newRS, all)
	}
	if newRS == nil {
		if newRS, olds, err = c.replicaSetsAndSyncRevision(ctx, d, rss, true); err != nil {
			return err
		}
		all = append(slices.Clone(olds), newRS)
	}
	if _, _, err := c.scaleReplicaSetAndRecord(ctx, newRS, replicas(d), d); err != nil {
		return err
	}
	if complete(d, &d.Status) {
		if err := c.cleanup(ctx, d, olds); err != nil {
			return err
		}
	}
	return c.syncRolloutStatus(ctx, d, newRS, all)
}

// oldPodsRunning: an old ReplicaSet still reports pods, or a pod of one is
// not finished yet (an Unknown one may be running somewhere).
func oldPodsRunning(newRS *appsv1.ReplicaSet, olds []*appsv1.ReplicaSet, pods map[types.UID][]*corev1.Pod) bool {
	if sumStatusReplicas(olds) > 0 {
		return true
	}
	for uid, list := range pods {
		if newRS != nil && uid == newRS.UID {
			continue
		}
		for _, p := range list {
			if p.Status.Phase != corev1.PodFailed && p.Status.Phase != corev1.PodSucceeded {
				return true
			}
		}
	}
	return false
}

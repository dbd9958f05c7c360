package deployment

import (
	"context"
	"fmt"
	"slices"

	appsv1 "k8s.io/api/apps/v1"
)

// rolloutRolling makes one step of a rolling update: grow the new
// ReplicaSet as far as maxSurge allows, else shrink old ones as far as
// maxUnavailable allows; once complete, prune old ReplicaSets.
//
// The bounds hold on ReplicaSet sizes (spec.replicas) and on available
// pods as the ReplicaSets report them: at every step the sizes add up to
// at most replicas+maxSurge, and old ReplicaSets shrink only while at
// least replicas-maxUnavailable pods stay available.
func (c *Controller) rolloutRolling(ctx context.Context, d *appsv1.Deployment, rss []*appsv1.ReplicaSet) error {
	newRS, olds, err := c.replicaSetsAndSyncRevision(ctx, d, rss, true)
	if err != nil {
		return err
	}
	all := append(slices.Clone(olds), newRS)

	grown, err := c.reconcileNewReplicaSet(ctx, d, newRS, all)
	if err != nil {
		return err
	}
	if grown {
		return c.syncRolloutStatus(ctx, d, newRS, all)
	}
	shrunk, err := c.reconcileOldReplicaSets(ctx, d, newRS, active(olds), all)
	if err != nil {
		return err
	}
	if shrunk {
		return c.syncRolloutStatus(ctx, d, newRS, all)
	}
	if complete(d, &d.Status) {
		if err := c.cleanup(ctx, d, olds); err != nil {
			return err
		}
	}
	return c.syncRolloutStatus(ctx, d, newRS, all)
}

// reconcileNewReplicaSet sizes the new ReplicaSet: down to replicas if it
// is above, else up as far as the surge allows.
func (c *Controller) reconcileNewReplicaSet(ctx context.Context, d *appsv1.Deployment, newRS *appsv1.ReplicaSet, all []*appsv1.ReplicaSet) (bool, error) {
	switch cur := rsReplicas(newRS); {
	case cur == replicas(d):
		return false, nil
	case cur > replicas(d):
		scaled, _, err := c.scaleReplicaSetAndRecord(ctx, newRS, replicas(d), d)
		return scaled, err
	}
	scaled, _, err := c.scaleReplicaSetAndRecord(ctx, newRS, newRSReplicas(d, all, newRS), d)
	return scaled, err
}

// reconcileOldReplicaSets shrinks old ReplicaSets as far as availability
// allows: first their unavailable pods (which serve no one), then
// available ones down to replicas-maxUnavailable available in all.
func (c *Controller) reconcileOldReplicaSets(ctx context.Context, d *appsv1.Deployment, newRS *appsv1.ReplicaSet, olds, all []*appsv1.ReplicaSet) (bool, error) {
	if sumSpecReplicas(olds) == 0 {
		return false, nil
	}
	minAvailable := replicas(d) - maxUnavailable(d)
	newUnavailable := max(0, rsReplicas(newRS)-newRS.Status.AvailableReplicas)
	// Pods that may go: the total beyond the minimum, less the new pods
	// that are not available yet (they may never become so).
	maxScaledDown := sumSpecReplicas(all) - minAvailable - newUnavailable
	if maxScaledDown <= 0 {
		return false, nil
	}
	// Unhealthy old replicas first, or they could block the rollout.
	olds, cleaned, err := c.cleanupUnhealthyReplicas(ctx, d, olds, maxScaledDown)
	if err != nil {
		return false, err
	}
	all = append(slices.Clone(olds), newRS)
	scaled, err := c.scaleDownOldReplicaSets(ctx, d, olds, all, maxScaledDown-cleaned)
	if err != nil {
		return false, err
	}
	return cleaned+scaled > 0, nil
}

// cleanupUnhealthyReplicas removes, oldest ReplicaSet first, up to limit
// old replicas that are not available. It returns the ReplicaSets as they
// now are and how many replicas went.
func (c *Controller) cleanupUnhealthyReplicas(ctx context.Context, d *appsv1.Deployment, olds []*appsv1.ReplicaSet, limit int32) ([]*appsv1.ReplicaSet, int32, error) {
	olds = slices.Clone(olds)
	slices.SortFunc(olds, byCreation)
	var total int32
	for i, rs := range olds {
		if total >= limit {
			break
		}
		unhealthy := rsReplicas(rs) - rs.Status.AvailableReplicas
		if rsReplicas(rs) == 0 || unhealthy <= 0 {
			continue
		}
		n := min(limit-total, unhealthy)
		size := rsReplicas(rs) - n
		if size > rsReplicas(rs) {
			return nil, 0, fmt.Errorf("scaling down %s/%s would grow it from %d to %d", rs.Namespace, rs.Name, rsReplicas(rs), size)
		}
		_, updated, err := c.scaleReplicaSetAndRecord(ctx, rs, size, d)
		if err != nil {
			return nil, total, err
		}
		total += n
		olds[i] = updated
	}
	return olds, total, nil
}

// scaleDownOldReplicaSets shrinks old ReplicaSets, oldest first, by as many
// replicas as are available beyond replicas-maxUnavailable, and by no more
// than limit. A ReplicaSet's status may still count pods it is deleting (it
// was computed before its last scale-down), so availability counts at most
// its desired replicas: otherwise a stale status lets the rollout dip below
// maxUnavailable.
func (c *Controller) scaleDownOldReplicaSets(ctx context.Context, d *appsv1.Deployment, olds, all []*appsv1.ReplicaSet, limit int32) (int32, error) {
	minAvailable := replicas(d) - maxUnavailable(d)
	available := sum(all, func(rs *appsv1.ReplicaSet) int32 { return min(rs.Status.AvailableReplicas, rsReplicas(rs)) })
	if available <= minAvailable || limit <= 0 {
		return 0, nil
	}
	olds = slices.Clone(olds)
	slices.SortFunc(olds, byCreation)
	want := min(available-minAvailable, limit)
	var total int32
	for _, rs := range olds {
		if total >= want {
			break
		}
		if rsReplicas(rs) == 0 {
			continue
		}
		n := min(rsReplicas(rs), want-total)
		if _, _, err := c.scaleReplicaSetAndRecord(ctx, rs, rsReplicas(rs)-n, d); err != nil {
			return total, err
		}
		total += n
	}
	return total, nil
}

package deployment

import (
	"context"
	"slices"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
)

// ReasonScalingReplicaSet is the reason of the events recording each resize.
const ReasonScalingReplicaSet = "ScalingReplicaSet"

// scale resizes the Deployment's ReplicaSets after its replicas changed.
// With one active ReplicaSet (or none), that one (or the newest) gets all
// replicas. A saturated new ReplicaSet takes everything from the old ones.
// Mid-rollout, the difference between replicas+maxSurge and the current
// total is shared among the active ReplicaSets in proportion to their size.
func (c *Controller) scale(ctx context.Context, d *appsv1.Deployment, newRS *appsv1.ReplicaSet, olds []*appsv1.ReplicaSet) error {
	if rs := activeOrLatest(newRS, olds); rs != nil {
		if rsReplicas(rs) == replicas(d) {
			return nil
		}
		_, _, err := c.scaleReplicaSetAndRecord(ctx, rs, replicas(d), d)
		return err
	}
	if isSaturated(d, newRS) {
		for _, old := range active(olds) {
			if _, _, err := c.scaleReplicaSetAndRecord(ctx, old, 0, d); err != nil {
				return err
			}
		}
		return nil
	}
	if !isRollingUpdate(d) {
		return nil
	}

	all, sizes, op := proportionalSizes(klog.FromContext(ctx), d, active(append(slices.Clone(olds), newRS)))
	for i, rs := range all {
		if _, _, err := c.scaleReplicaSet(ctx, rs, sizes[i], d, op); err != nil {
			return err // the next sync carries on
		}
	}
	return nil
}

// proportionalSizes shares out, among rss (the active ReplicaSets), the
// difference between replicas+maxSurge (0 for 0 replicas) and what they
// want now, in proportion to their sizes. It returns them in the order they
// are to be resized (largest first; among equals, newest first when
// growing, oldest first when shrinking), their new sizes, and "up" or
// "down".
func proportionalSizes(log klog.Logger, d *appsv1.Deployment, rss []*appsv1.ReplicaSet) ([]*appsv1.ReplicaSet, []int32, string) {
	all := slices.Clone(rss)
	var allowed int32
	if replicas(d) > 0 {
		allowed = replicas(d) + maxSurge(d)
	}
	toAdd := allowed - sumSpecReplicas(all)
	op := ""
	switch {
	case toAdd > 0:
		slices.SortFunc(all, bySizeNewer)
		op = "up"
	case toAdd < 0:
		slices.SortFunc(all, bySizeOlder)
		op = "down"
	}
	sizes := make([]int32, len(all))
	var added int32
	for i, rs := range all {
		sizes[i] = rsReplicas(rs)
		if toAdd != 0 {
			p := proportion(log, rs, d, toAdd, added)
			sizes[i] += p
			added += p
		}
	}
	// Rounding leftovers go to the largest.
	if len(all) > 0 && toAdd != 0 {
		sizes[0] = max(sizes[0]+toAdd-added, 0)
	}
	return all, sizes, op
}

// scaleReplicaSetAndRecord resizes the ReplicaSet if its size differs.
func (c *Controller) scaleReplicaSetAndRecord(ctx context.Context, rs *appsv1.ReplicaSet, size int32, d *appsv1.Deployment) (bool, *appsv1.ReplicaSet, error) {
	if rsReplicas(rs) == size {
		return false, rs, nil
	}
	op := "down"
	if rsReplicas(rs) < size {
		op = "up"
	}
	return c.scaleReplicaSet(ctx, rs, size, d, op)
}

// scaleReplicaSet sets the ReplicaSet's replicas to size and its replica
// annotations to the Deployment's current size, and records a
// ScalingReplicaSet event when the size changed.
func (c *Controller) scaleReplicaSet(ctx context.Context, rs *appsv1.ReplicaSet, size int32, d *appsv1.Deployment, op string) (bool, *appsv1.ReplicaSet, error) {
	resize := rsReplicas(rs) != size
	maxReplicas := replicas(d) + maxSurge(d)
	if !resize && !replicasAnnotationsNeedUpdate(rs, replicas(d), maxReplicas) {
		return false, rs, nil
	}
	from := rsReplicas(rs)
	cp := rs.DeepCopy()
	cp.Spec.Replicas = &size
	setReplicasAnnotations(cp, replicas(d), maxReplicas)
	out, err := c.client.AppsV1().ReplicaSets(cp.Namespace).Update(ctx, cp, metav1.UpdateOptions{})
	if err != nil {
		return false, rs, err
	}
	if resize {
		klog.FromContext(ctx).V(2).Info("Scaled replica set", "replicaSet", klog.KObj(rs), "from", from, "to", size)
		c.recorder.Eventf(d, corev1.EventTypeNormal, ReasonScalingReplicaSet, "Scaled %s replica set %s from %d to %d", op, rs.Name, from, size)
	}
	return resize, out, nil
}

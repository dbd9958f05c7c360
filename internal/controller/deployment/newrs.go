package deployment

import (
	"context"
	"fmt"
	"maps"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
)

// replicaSetsAndSyncRevision splits the Deployment's ReplicaSets into the
// new one (running its template; created, sized for the rollout, when
// create is set and there is none) and the old ones, and brings the
// revision annotations of the new ReplicaSet and the Deployment up to date.
// newRS is nil when there is none and create is false.
func (c *Controller) replicaSetsAndSyncRevision(ctx context.Context, d *appsv1.Deployment, rss []*appsv1.ReplicaSet, create bool) (newRS *appsv1.ReplicaSet, olds []*appsv1.ReplicaSet, err error) {
	olds = oldReplicaSets(d, rss)
	newRS, err = c.newReplicaSet(ctx, d, rss, olds, create)
	return newRS, olds, err
}

// newReplicaSet returns the Deployment's new ReplicaSet, updating its
// annotations and minReadySeconds, or creates it.
func (c *Controller) newReplicaSet(ctx context.Context, d *appsv1.Deployment, rss, olds []*appsv1.ReplicaSet, create bool) (*appsv1.ReplicaSet, error) {
	log := klog.FromContext(ctx)
	existing := findNewReplicaSet(d, rss)
	newRevision := strconv.FormatInt(maxRevision(log, olds)+1, 10)

	if existing != nil {
		rs := existing.DeepCopy()
		annotated := setNewReplicaSetAnnotations(log, d, rs, newRevision, true)
		if annotated || rs.Spec.MinReadySeconds != d.Spec.MinReadySeconds {
			rs.Spec.MinReadySeconds = d.Spec.MinReadySeconds
			return c.client.AppsV1().ReplicaSets(rs.Namespace).Update(ctx, rs, metav1.UpdateOptions{})
		}
		// The Deployment's revision is the new ReplicaSet's.
		changed := setDeploymentRevision(d, rs.Annotations[RevisionAnnotation])
		if hasProgressDeadline(d) && getCondition(d.Status, appsv1.DeploymentProgressing) == nil {
			// Progress is measured from when the new ReplicaSet was found.
			msg := fmt.Sprintf("Found new replica set %q", rs.Name)
			setCondition(&d.Status, newCondition(appsv1.DeploymentProgressing, corev1.ConditionTrue, ReasonFoundNewReplicaSet, msg, c.now()))
			changed = true
		}
		if changed {
			if err := c.updateStatus(ctx, d); err != nil {
				return nil, err
			}
		}
		return rs, nil
	}
	if !create {
		return nil, nil
	}
	return c.createNewReplicaSet(ctx, d, olds, newRevision)
}

// createNewReplicaSet creates the ReplicaSet for the Deployment's current
// template, named <deployment>-<hash>, with as many replicas as the
// rollout allows now.
func (c *Controller) createNewReplicaSet(ctx context.Context, d *appsv1.Deployment, olds []*appsv1.ReplicaSet, newRevision string) (*appsv1.ReplicaSet, error) {
	log := klog.FromContext(ctx)
	template := *d.Spec.Template.DeepCopy()
	hash := PodTemplateHash(&template, d.Status.CollisionCount)
	template.Labels = withLabel(d.Spec.Template.Labels, PodTemplateHashLabel, hash)
	selector := d.Spec.Selector.DeepCopy()
	selector.MatchLabels = withLabel(selector.MatchLabels, PodTemplateHashLabel, hash)
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{
			Name:            d.Name + "-" + hash,
			Namespace:       d.Namespace,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(d, controllerKind)},
			Labels:          template.Labels,
		},
		Spec: appsv1.ReplicaSetSpec{
			Replicas:        new(int32),
			MinReadySeconds: d.Spec.MinReadySeconds,
			Selector:        selector,
			Template:        template,
		},
	}
	n := newRSReplicas(d, append(olds, rs), rs)
	*rs.Spec.Replicas = n
	setNewReplicaSetAnnotations(log, d, rs, newRevision, false)

	created, err := c.client.AppsV1().ReplicaSets(d.Namespace).Create(ctx, rs, metav1.CreateOptions{})
	existed := false
	switch {
	case apierrors.IsAlreadyExists(err):
		existed = true
		cur, getErr := c.rsLister.ReplicaSets(d.Namespace).Get(rs.Name)
		if getErr != nil {
			return nil, getErr
		}
		// Ours and of this template: a previous sync made it and the
		// cache had not shown it yet.
		if ref := metav1.GetControllerOfNoCopy(cur); ref != nil && ref.UID == d.UID && equalIgnoreHash(&d.Spec.Template, &cur.Spec.Template) {
			created, err = cur, nil
			break
		}
		// A hash collision: another template holds the name. Bump the
		// collision count so that the next sync computes another name.
		if d.Status.CollisionCount == nil {
			d.Status.CollisionCount = new(int32)
		}
		before := *d.Status.CollisionCount
		*d.Status.CollisionCount++
		if uerr := c.updateStatus(ctx, d); uerr == nil {
			log.V(2).Info("Hash collision; bumped the collision count", "replicaSet", rs.Name, "from", before, "to", *d.Status.CollisionCount)
		}
		return nil, err
	case apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause):
		return nil, err
	case err != nil:
		msg := fmt.Sprintf("Failed to create new replica set %q: %v", rs.Name, err)
		if hasProgressDeadline(d) {
			setCondition(&d.Status, newCondition(appsv1.DeploymentProgressing, corev1.ConditionFalse, ReasonReplicaSetCreateError, msg, c.now()))
			_ = c.updateStatus(ctx, d) // the create error is what matters
		}
		c.recorder.Event(d, corev1.EventTypeWarning, ReasonReplicaSetCreateError, msg)
		return nil, err
	}
	if !existed && n > 0 {
		c.recorder.Eventf(d, corev1.EventTypeNormal, ReasonScalingReplicaSet, "Scaled up replica set %s from 0 to %d", created.Name, n)
	}
	changed := setDeploymentRevision(d, newRevision)
	if !existed && hasProgressDeadline(d) {
		msg := fmt.Sprintf("Created new replica set %q", created.Name)
		setCondition(&d.Status, newCondition(appsv1.DeploymentProgressing, corev1.ConditionTrue, ReasonNewReplicaSetCreated, msg, c.now()))
		changed = true
	}
	if changed {
		if err := c.updateStatus(ctx, d); err != nil {
			return created, err
		}
	}
	return created, nil
}

// withLabel is a copy of m with key=value added.
func withLabel(m map[string]string, key, value string) map[string]string {
	out := maps.Clone(m)
	if out == nil {
		out = map[string]string{}
	}
	out[key] = value
	return out
}

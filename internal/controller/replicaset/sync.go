package replicaset

import (
	"context"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"kite/internal/controller/controllerref"
)

// sync brings the ReplicaSet named by key to its desired pod count and
// publishes its status.
func (c *Controller) sync(ctx context.Context, key string) error {
	log := klog.FromContext(ctx).WithValues("replicaSet", key)
	ctx = klog.NewContext(ctx, log)
	start := c.now()
	defer func() { log.V(4).Info("Finished syncing", "duration", time.Since(start)) }()

	namespace, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return err
	}
	rs, err := c.rsLister.ReplicaSets(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		c.exp.forget(key)
		return nil
	}
	if err != nil {
		return err
	}
	// Read expectations before the pods: a pod observed in between is
	// then both counted and in the cache.
	mayResize := c.exp.satisfied(key)
	selector, err := metav1.LabelSelectorAsSelector(rs.Spec.Selector)
	if err != nil {
		log.Error(err, "Invalid selector; nothing to do")
		return nil
	}

	candidates := c.candidatePods(rs)
	var active, terminating []*corev1.Pod
	for _, p := range candidates {
		switch {
		case isPodActive(p):
			active = append(active, p)
		case isPodTerminating(p) && ownedBy(p, rs) && selector.Matches(labels.Set(p.Labels)):
			terminating = append(terminating, p)
		}
	}
	active, err = c.claimPods(ctx, rs, selector, active)
	if err != nil {
		return err
	}

	var manageErr error
	if mayResize && rs.DeletionTimestamp == nil {
		manageErr = c.manageReplicas(ctx, active, rs)
	}
	now := c.now()
	status := calculateStatus(rs, active, terminating, manageErr, now)
	updated, err := c.updateStatus(ctx, rs, status)
	if err != nil {
		return err
	}
	// A ready pod becomes available minReadySeconds after it turned ready,
	// and nothing tells us when: come back then.
	if manageErr == nil && updated.Spec.MinReadySeconds > 0 && updated.Status.AvailableReplicas != updated.Status.ReadyReplicas {
		if d := nextAvailable(active, updated.Spec.MinReadySeconds, now); d > 0 {
			c.queue.AddAfter(key, d)
		}
	}
	return manageErr
}

// candidatePods are the pods a ReplicaSet may own: those it controls and
// the orphans of its namespace (any of which its selector might match).
func (c *Controller) candidatePods(rs *appsv1.ReplicaSet) []*corev1.Pod {
	var out []*corev1.Pod
	for _, key := range []string{controllerIndexKey(rs.Namespace, &metav1.OwnerReference{UID: rs.UID}), controllerIndexKey(rs.Namespace, nil)} {
		objs, _ := c.podIndex.ByIndex(controllerIndex, key)
		for _, o := range objs {
			out = append(out, o.(*corev1.Pod))
		}
	}
	return out
}

func ownedBy(pod *corev1.Pod, rs *appsv1.ReplicaSet) bool {
	ref := metav1.GetControllerOfNoCopy(pod)
	return ref != nil && ref.UID == rs.UID
}

// claimPods adopts and releases pods by the selector and returns those the
// ReplicaSet now controls.
func (c *Controller) claimPods(ctx context.Context, rs *appsv1.ReplicaSet, selector labels.Selector, pods []*corev1.Pod) ([]*corev1.Pod, error) {
	m := &controllerref.Manager{
		Owner: rs, Kind: controllerKind, Selector: selector,
		CanAdopt: controllerref.RecheckOwner(rs.UID, func(ctx context.Context) (metav1.Object, error) {
			return c.client.AppsV1().ReplicaSets(rs.Namespace).Get(ctx, rs.Name, metav1.GetOptions{})
		}),
		Patch: func(ctx context.Context, namespace, name string, patch []byte) error {
			_, err := c.client.CoreV1().Pods(namespace).Patch(ctx, name, "application/strategic-merge-patch+json", patch, metav1.PatchOptions{})
			return err
		},
	}
	return controllerref.Claim(ctx, m, pods)
}

// nextAvailable is how long until the first ready-but-not-available pod
// becomes available (zero if none will).
func nextAvailable(pods []*corev1.Pod, minReadySeconds int32, now time.Time) time.Duration {
	var next time.Duration
	for _, p := range pods {
		if d := untilAvailable(p, minReadySeconds, now); d > 0 && (next == 0 || d < next) {
			next = d
		}
	}
	if next > 0 {
		next += 100 * time.Millisecond // ready times are whole seconds; be past the edge
	}
	return next
}

// relatedPods are the active pods of every ReplicaSet that has the same
// controller as rs (a Deployment's ReplicaSets), rs included; none for a
// ReplicaSet without a controller (as upstream: no co-location ranking).
func (c *Controller) relatedPods(rs *appsv1.ReplicaSet) []*corev1.Pod {
	ref := metav1.GetControllerOfNoCopy(rs)
	if ref == nil {
		return nil
	}
	siblings, _ := c.rsIndex.ByIndex(controllerIndex, controllerIndexKey(rs.Namespace, ref))
	var out []*corev1.Pod
	for _, o := range siblings {
		out = append(out, c.ownedPods(o.(*appsv1.ReplicaSet))...)
	}
	return out
}

func (c *Controller) ownedPods(rs *appsv1.ReplicaSet) []*corev1.Pod {
	objs, _ := c.podIndex.ByIndex(controllerIndex, controllerIndexKey(rs.Namespace, &metav1.OwnerReference{UID: rs.UID}))
	out := make([]*corev1.Pod, 0, len(objs))
	for _, o := range objs {
		if p := o.(*corev1.Pod); isPodActive(p) {
			out = append(out, p)
		}
	}
	return out
}

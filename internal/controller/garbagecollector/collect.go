package garbagecollector

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
)

// ownerState is what an owner reference points at.
type ownerState int

const (
	ownerSolid   ownerState = iota // exists, not being deleted in the foreground
	ownerAbsent                    // gone (or replaced by another object of that name)
	ownerWaiting                   // being deleted in the foreground, waiting for dependents
)

// attemptToDelete looks at one object: if it is being deleted in the
// foreground, at its dependents; otherwise at its owners. An object whose
// owners are all absent or waiting is deleted; references to absent or
// waiting owners are removed from an object that keeps a solid owner.
func (c *Collector) attemptToDelete(ctx context.Context, uid types.UID) error {
	n := c.graph.get(uid)
	if n == nil || (!n.deleting && c.graph.ownersSolid(n)) {
		return nil // gone, or every owner is known and not going
	}
	latest, err := c.live(ctx, n)
	if err != nil || latest == nil {
		return err
	}
	if latest.DeletionTimestamp != nil {
		if hasFinalizer(latest, metav1.FinalizerDeleteDependents) {
			return c.processDeletingDependents(ctx, n, latest)
		}
		return nil
	}
	if len(latest.OwnerReferences) == 0 {
		return nil
	}
	var solid, absent, waiting []metav1.OwnerReference
	for _, ref := range latest.OwnerReferences {
		state, err := c.ownerState(ctx, latest.Namespace, ref)
		if err != nil {
			return err
		}
		switch state {
		case ownerSolid:
			solid = append(solid, ref)
		case ownerAbsent:
			absent = append(absent, ref)
		case ownerWaiting:
			waiting = append(waiting, ref)
		}
	}
	log := klog.FromContext(ctx).WithValues("object", describe(n))
	switch {
	case len(solid) > 0:
		if len(absent) == 0 && len(waiting) == 0 {
			return nil
		}
		// Still owned: drop the references that no longer hold it.
		drop := map[types.UID]bool{}
		for _, r := range append(absent, waiting...) {
			drop[r.UID] = true
		}
		log.V(2).Info("removing references to owners that are gone", "owners", len(drop))
		return c.patchOwners(ctx, n, latest, func(r metav1.OwnerReference) *metav1.OwnerReference {
			if drop[r.UID] {
				return nil
			}
			return &r
		})
	case len(waiting) > 0 && len(c.graph.dependentsOf(uid)) > 0:
		// An owner waits for us, and we have dependents: go in the
		// foreground too. If a dependent of ours is itself waiting on us
		// in the foreground we might wait in a circle; stop blocking the
		// waiting owners first, as upstream does.
		for _, dep := range c.graph.dependentsOf(uid) {
			if dep.deletingDependents() {
				unblock := map[types.UID]bool{}
				for _, r := range waiting {
					unblock[r.UID] = true
				}
				f := false
				if err := c.patchOwners(ctx, n, latest, func(r metav1.OwnerReference) *metav1.OwnerReference {
					if unblock[r.UID] {
						r.BlockOwnerDeletion = &f
					}
					return &r
				}); err != nil {
					return err
				}
				break
			}
		}
		log.V(2).Info("deleting in the foreground: its owners are being deleted in the foreground")
		return c.delete(ctx, n, metav1.DeletePropagationForeground)
	default:
		// No owner left: delete it, propagating as its finalizers ask.
		policy := metav1.DeletePropagationBackground
		switch {
		case hasFinalizer(latest, metav1.FinalizerOrphanDependents):
			policy = metav1.DeletePropagationOrphan
		case hasFinalizer(latest, metav1.FinalizerDeleteDependents):
			policy = metav1.DeletePropagationForeground
		}
		log.V(2).Info("deleting: all its owners are gone", "propagation", policy)
		return c.delete(ctx, n, policy)
	}
}

// processDeletingDependents handles an owner being deleted in the
// foreground: once no dependent blocks it, its finalizer goes; until then
// the blocking dependents are queued for deletion.
func (c *Collector) processDeletingDependents(ctx context.Context, n *node, latest *metav1.PartialObjectMetadata) error {
	if !c.monitorsSynced() {
		return fmt.Errorf("%s: not every resource is watched yet; cannot tell its dependents", describe(n))
	}
	blocking := 0
	for _, dep := range c.graph.dependentsOf(n.uid) {
		if !dep.blocks(n.uid) {
			continue
		}
		blocking++
		if !dep.deletingDependents() {
			c.queue.Add(work{uid: dep.uid})
		}
	}
	if blocking > 0 {
		klog.FromContext(ctx).V(3).Info("waiting for dependents", "object", describe(n), "blocking", blocking)
		return nil
	}
	klog.FromContext(ctx).V(2).Info("dependents gone; removing the foregroundDeletion finalizer", "object", describe(n))
	return c.removeFinalizer(ctx, n, latest, metav1.FinalizerDeleteDependents)
}

// orphanDependents handles an owner being deleted with the orphan
// finalizer: its references are removed from its dependents, then the
// finalizer from it.
func (c *Collector) orphanDependents(ctx context.Context, uid types.UID) error {
	n := c.graph.get(uid)
	if n == nil {
		return nil
	}
	latest, err := c.live(ctx, n)
	if err != nil || latest == nil {
		return err
	}
	if latest.DeletionTimestamp == nil || !hasFinalizer(latest, metav1.FinalizerOrphanDependents) {
		return nil
	}
	if !c.monitorsSynced() {
		return fmt.Errorf("%s: not every resource is watched yet; cannot tell its dependents", describe(n))
	}
	for _, dep := range c.graph.dependentsOf(uid) {
		depLatest, err := c.live(ctx, dep)
		if err != nil {
			return err
		}
		if depLatest == nil {
			continue
		}
		if err := c.patchOwners(ctx, dep, depLatest, func(r metav1.OwnerReference) *metav1.OwnerReference {
			if r.UID == uid {
				return nil
			}
			return &r
		}); err != nil {
			return fmt.Errorf("orphan %s: %w", describe(dep), err)
		}
	}
	klog.FromContext(ctx).V(2).Info("dependents orphaned; removing the orphan finalizer", "object", describe(n))
	return c.removeFinalizer(ctx, n, latest, metav1.FinalizerOrphanDependents)
}

// ownerState finds out what ref (from an object in namespace) points at:
// from the graph if the owner was seen, else with a live GET.
func (c *Collector) ownerState(ctx context.Context, namespace string, ref metav1.OwnerReference) (ownerState, error) {
	if o := c.graph.get(ref.UID); o != nil && o.name == ref.Name {
		if o.deletingDependents() {
			return ownerWaiting, nil
		}
		return ownerSolid, nil
	}
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	if err != nil {
		klog.FromContext(ctx).V(2).Info("owner reference with a bad apiVersion kept", "apiVersion", ref.APIVersion)
		return ownerSolid, nil
	}
	mapping, err := c.mapper.RESTMapping(schema.GroupKind{Group: gv.Group, Kind: ref.Kind}, gv.Version)
	if meta.IsNoMatchError(err) {
		c.mapper.Reset()
		mapping, err = c.mapper.RESTMapping(schema.GroupKind{Group: gv.Group, Kind: ref.Kind}, gv.Version)
	}
	if err != nil {
		// An owner of a kind the API does not serve cannot be checked;
		// never delete on a guess.
		klog.FromContext(ctx).V(2).Info("owner of unknown kind kept", "apiVersion", ref.APIVersion, "kind", ref.Kind, "err", err.Error())
		return ownerSolid, nil
	}
	ns := ""
	if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
		ns = namespace
	}
	owner, err := c.cfg.Metadata.Resource(mapping.Resource).Namespace(ns).Get(ctx, ref.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return ownerAbsent, nil
	case err != nil:
		return ownerSolid, fmt.Errorf("get owner %s %s/%s: %w", ref.Kind, ns, ref.Name, err)
	case owner.UID != ref.UID:
		return ownerAbsent, nil
	case owner.DeletionTimestamp != nil && hasFinalizer(owner, metav1.FinalizerDeleteDependents):
		return ownerWaiting, nil
	}
	return ownerSolid, nil
}

// live reads n from the API; nil if it is gone or was replaced.
func (c *Collector) live(ctx context.Context, n *node) (*metav1.PartialObjectMetadata, error) {
	m, err := c.cfg.Metadata.Resource(n.gvr).Namespace(n.namespace).Get(ctx, n.name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", describe(n), err)
	}
	if m.UID != n.uid {
		return nil, nil
	}
	return m, nil
}

func (c *Collector) delete(ctx context.Context, n *node, policy metav1.DeletionPropagation) error {
	uid := n.uid
	err := c.cfg.Metadata.Resource(n.gvr).Namespace(n.namespace).Delete(ctx, n.name, metav1.DeleteOptions{
		Preconditions: &metav1.Preconditions{UID: &uid}, PropagationPolicy: &policy})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("delete %s: %w", describe(n), err)
	}
	if err == nil {
		c.cfg.Recorder.Eventf(objectRef(n), corev1.EventTypeNormal, "GarbageCollected", "Deleted %s: its owners are gone", describe(n))
	}
	return nil
}

func hasFinalizer(m *metav1.PartialObjectMetadata, f string) bool {
	for _, x := range m.Finalizers {
		if x == f {
			return true
		}
	}
	return false
}

func describe(n *node) string {
	if n.namespace == "" {
		return fmt.Sprintf("%s %s", n.gvr.GroupResource(), n.name)
	}
	return fmt.Sprintf("%s %s/%s", n.gvr.GroupResource(), n.namespace, n.name)
}

// objectRef is a reference for events about n.
func objectRef(n *node) *corev1.ObjectReference {
	return &corev1.ObjectReference{APIVersion: n.kind.GroupVersion().String(), Kind: n.kind.Kind,
		Namespace: n.namespace, Name: n.name, UID: n.uid}
}

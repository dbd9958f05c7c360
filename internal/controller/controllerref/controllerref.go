// Package controllerref decides which objects a controller owns. An object
// belongs to the controller named by its controller ownerReference
// (controller=true); a controller adopts orphans its selector matches and
// releases objects it owns that its selector no longer matches, by patching
// their ownerReferences. This is the contract of upstream's
// ControllerRefManager, used by the ReplicaSet controller for pods and by
// the Deployment controller for ReplicaSets.
package controllerref

import (
	"context"
	"encoding/json"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
)

// Manager claims objects for one controller object during one sync (it
// remembers whether adoption was allowed).
type Manager struct {
	// Owner is the controller (a ReplicaSet, a Deployment) as last seen.
	Owner metav1.Object
	// Kind is the owner's group, version and kind, for the ownerReference.
	Kind schema.GroupVersionKind
	// Selector is the owner's selector.
	Selector labels.Selector
	// CanAdopt is called once, before the first adoption. It should read
	// the owner from the API server (not a cache) and fail if it is gone or
	// being deleted, so that a controller on its way out adopts nothing.
	CanAdopt func(ctx context.Context) error
	// Patch applies a strategic merge patch to the owned object's kind.
	Patch func(ctx context.Context, namespace, name string, patch []byte) error

	adoptChecked bool
	adoptErr     error
}

// Claim returns the objects, among objs, that m's owner controls once
// adoptions and releases are done: those it already controlled and still
// selects, and the orphans it selects and could adopt. Objects controlled
// by another controller are left alone. Errors of individual adoptions or
// releases are aggregated; the claimed list is valid regardless.
func Claim[T metav1.Object](ctx context.Context, m *Manager, objs []T) ([]T, error) {
	var claimed []T
	var errs []error
	for _, obj := range objs {
		ok, err := m.claim(ctx, obj)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if ok {
			claimed = append(claimed, obj)
		}
	}
	return claimed, utilerrors.NewAggregate(errs)
}

func (m *Manager) claim(ctx context.Context, obj metav1.Object) (bool, error) {
	matches := m.Selector.Matches(labels.Set(obj.GetLabels()))
	if ref := metav1.GetControllerOfNoCopy(obj); ref != nil {
		if ref.UID != m.Owner.GetUID() {
			return false, nil
		}
		if matches {
			return true, nil
		}
		// Ours, but no longer selected: let go, unless the owner is being
		// deleted (the garbage collector will take the object with it).
		if m.Owner.GetDeletionTimestamp() != nil {
			return false, nil
		}
		return false, m.release(ctx, obj)
	}
	if !matches || m.Owner.GetDeletionTimestamp() != nil || obj.GetDeletionTimestamp() != nil ||
		obj.GetNamespace() != m.Owner.GetNamespace() {
		return false, nil
	}
	if err := m.adopt(ctx, obj); err != nil {
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return false, err
	}
	return true, nil
}

func (m *Manager) adopt(ctx context.Context, obj metav1.Object) error {
	if !m.adoptChecked {
		m.adoptChecked = true
		if m.CanAdopt != nil {
			m.adoptErr = m.CanAdopt(ctx)
		}
	}
	if m.adoptErr != nil {
		return fmt.Errorf("cannot adopt %s/%s: %w", obj.GetNamespace(), obj.GetName(), m.adoptErr)
	}
	patch, err := AdoptPatch(m.Owner, m.Kind, obj.GetUID())
	if err != nil {
		return err
	}
	if err := m.Patch(ctx, obj.GetNamespace(), obj.GetName(), patch); err != nil {
		return fmt.Errorf("adopt %s/%s: %w", obj.GetNamespace(), obj.GetName(), err)
	}
	return nil
}

func (m *Manager) release(ctx context.Context, obj metav1.Object) error {
	patch, err := ReleasePatch(m.Owner.GetUID(), obj.GetUID())
	if err != nil {
		return err
	}
	err = m.Patch(ctx, obj.GetNamespace(), obj.GetName(), patch)
	// Gone, or no longer carrying our reference (Invalid: the uid
	// precondition failed because the object was recreated): nothing to
	// release.
	if err == nil || apierrors.IsNotFound(err) || apierrors.IsInvalid(err) {
		return nil
	}
	return fmt.Errorf("release %s/%s: %w", obj.GetNamespace(), obj.GetName(), err)
}

// RecheckOwner returns a Manager.CanAdopt check: get reads the owner live
// from the API server; adoption is refused if it is another object now
// (its uid changed) or is being deleted.
func RecheckOwner(uid types.UID, get func(ctx context.Context) (metav1.Object, error)) func(context.Context) error {
	return func(ctx context.Context) error {
		fresh, err := get(ctx)
		if err != nil {
			return err
		}
		if fresh.GetUID() != uid {
			return fmt.Errorf("%s/%s is gone: its uid is now %s, not %s", fresh.GetNamespace(), fresh.GetName(), fresh.GetUID(), uid)
		}
		if fresh.GetDeletionTimestamp() != nil {
			return fmt.Errorf("%s/%s is being deleted", fresh.GetNamespace(), fresh.GetName())
		}
		return nil
	}
}

// patchMeta is the metadata part of an ownership patch. The object's uid is
// a precondition: the patch fails if the name now means another object.
type patchMeta struct {
	OwnerReferences []any     `json:"ownerReferences"`
	UID             types.UID `json:"uid"`
}

// AdoptPatch is the strategic merge patch that makes owner the controller of
// the object with uid objUID (ownerReferences merge by uid).
func AdoptPatch(owner metav1.Object, kind schema.GroupVersionKind, objUID types.UID) ([]byte, error) {
	ref := metav1.NewControllerRef(owner, kind)
	return json.Marshal(map[string]patchMeta{"metadata": {OwnerReferences: []any{ref}, UID: objUID}})
}

// ReleasePatch is the strategic merge patch that removes the ownerReference
// to ownerUID from the object with uid objUID.
func ReleasePatch(ownerUID, objUID types.UID) ([]byte, error) {
	del := map[string]any{"$patch": "delete", "uid": ownerUID}
	return json.Marshal(map[string]patchMeta{"metadata": {OwnerReferences: []any{del}, UID: objUID}})
}

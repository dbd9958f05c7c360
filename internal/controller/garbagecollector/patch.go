package garbagecollector

import (
	"context"
	"encoding/json"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// The collector changes objects with JSON merge patches of their metadata
// that carry the resourceVersion it read: lists in a merge patch replace
// the whole list, and the resourceVersion makes the write fail with a
// conflict (and the work item retry) if the object changed meanwhile.
// Merge patches work for every resource, built-in or not.

type metadataPatch struct {
	Metadata patchMeta `json:"metadata"`
}

type patchMeta struct {
	ResourceVersion string                   `json:"resourceVersion"`
	OwnerReferences *[]metav1.OwnerReference `json:"ownerReferences,omitempty"`
	Finalizers      *[]string                `json:"finalizers,omitempty"`
}

// patchOwners rewrites the owner references of latest (n's live copy):
// edit returns the reference to keep (possibly changed) or nil to drop it.
func (c *Collector) patchOwners(ctx context.Context, n *node, latest *metav1.PartialObjectMetadata, edit func(metav1.OwnerReference) *metav1.OwnerReference) error {
	refs := []metav1.OwnerReference{}
	for _, r := range latest.OwnerReferences {
		if k := edit(r); k != nil {
			refs = append(refs, *k)
		}
	}
	p := metadataPatch{Metadata: patchMeta{ResourceVersion: latest.ResourceVersion, OwnerReferences: &refs}}
	return c.patch(ctx, n, p)
}

// removeFinalizer removes finalizer from latest (n's live copy).
func (c *Collector) removeFinalizer(ctx context.Context, n *node, latest *metav1.PartialObjectMetadata, finalizer string) error {
	fins := []string{}
	for _, f := range latest.Finalizers {
		if f != finalizer {
			fins = append(fins, f)
		}
	}
	p := metadataPatch{Metadata: patchMeta{ResourceVersion: latest.ResourceVersion, Finalizers: &fins}}
	return c.patch(ctx, n, p)
}

func (c *Collector) patch(ctx context.Context, n *node, p metadataPatch) error {
	data, err := json.Marshal(p)
	if err != nil {
		return err
	}
	_, err = c.cfg.Metadata.Resource(n.gvr).Namespace(n.namespace).Patch(ctx, n.name, types.MergePatchType, data, metav1.PatchOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("patch %s: %w", describe(n), err)
	}
	return nil
}

package endpointutil

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	discoveryclient "k8s.io/client-go/kubernetes/typed/discovery/v1"
)

// WriteSlices writes a slice plan — creates (unless noCreate: the owner is
// being deleted), updates, deletes — and records each write in tracker.
// owner names what the slices are for in errors ("service ns/name"). A
// create refused because the namespace is terminating ends the write
// without error: there is nothing left to do there.
func WriteSlices(ctx context.Context, client discoveryclient.EndpointSliceInterface, tracker *SliceTracker, owner string,
	create, update, del []*discoveryv1.EndpointSlice, noCreate bool) error {
	if !noCreate {
		for _, s := range create {
			created, err := client.Create(ctx, s, metav1.CreateOptions{})
			if err != nil {
				if apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
					return nil
				}
				return fmt.Errorf("create EndpointSlice for %s: %w", owner, err)
			}
			tracker.Update(created)
		}
	}
	for _, s := range update {
		updated, err := client.Update(ctx, s, metav1.UpdateOptions{})
		if err != nil {
			return fmt.Errorf("update EndpointSlice %s/%s: %w", s.Namespace, s.Name, err)
		}
		tracker.Update(updated)
	}
	for _, s := range del {
		if err := client.Delete(ctx, s.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete EndpointSlice %s/%s: %w", s.Namespace, s.Name, err)
		}
		tracker.ExpectDeletion(s)
	}
	return nil
}

package endpoints

import (
	"context"
	"fmt"
	"maps"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"kite/internal/controller/internal/endpointutil"
)

var everything = labels.Everything()

// syncService makes the Endpoints of one Service match its pods.
func (c *Controller) syncService(ctx context.Context, key string) error {
	log := klog.FromContext(ctx)
	namespace, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil // not a key we made; nothing to retry
	}
	svc, err := c.services.Services(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		// The Service is gone: so are its Endpoints. (A selector-less
		// Service's user-written Endpoints go too, as upstream.)
		if err := c.cfg.Client.CoreV1().Endpoints(namespace).Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete endpoints %s: %w", key, err)
		}
		c.triggers.Delete(namespace, name)
		c.stale.forget(key)
		return nil
	}
	if err != nil {
		return err
	}
	if svc.Spec.Type == corev1.ServiceTypeExternalName || svc.Spec.Selector == nil {
		return nil
	}
	pods, err := c.pods.Pods(namespace).List(labels.Set(svc.Spec.Selector).AsSelectorPreValidated())
	if err != nil {
		return err
	}
	// Always computed, so the tracker is current even when nothing is written.
	triggerTime := c.triggers.Compute(svc, pods)
	subsets, ready, notReady := DesiredSubsets(svc, pods)
	truncated := Truncate(subsets)

	current, err := c.endpoints.Endpoints(namespace).Get(name)
	switch {
	case apierrors.IsNotFound(err):
		current = nil
	case err != nil:
		return err
	case c.stale.isStale(current):
		return fmt.Errorf("endpoints %s: informer cache is behind our last write (resourceVersion %s)", key, current.ResourceVersion)
	}

	wantLabels := desiredLabels(svc)
	if current != nil && SubsetsEqual(current.Subsets, subsets) &&
		maps.Equal(current.Labels, wantLabels) && hasTruncatedAnnotation(current) == truncated {
		return nil
	}

	var next *corev1.Endpoints
	if current == nil {
		next = &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace}}
	} else {
		next = current.DeepCopy()
	}
	next.Subsets = subsets
	next.Labels = wantLabels
	next.Annotations = maps.Clone(next.Annotations)
	if next.Annotations == nil {
		next.Annotations = map[string]string{}
	}
	endpointutil.SetTriggerTime(next.Annotations, triggerTime)
	if truncated {
		next.Annotations[corev1.EndpointsOverCapacity] = overCapacityTruncated
	} else {
		delete(next.Annotations, corev1.EndpointsOverCapacity)
	}

	log.V(4).Info("writing endpoints", "service", klog.KObj(svc), "ready", ready, "notReady", notReady, "create", current == nil)
	eps := c.cfg.Client.CoreV1().Endpoints(namespace)
	if current == nil {
		_, err = eps.Create(ctx, next, metav1.CreateOptions{})
		if err != nil {
			if apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
				return nil
			}
			c.recorder.Eventf(svc, corev1.EventTypeWarning, "FailedToCreateEndpoint", "Failed to create endpoint for service %s: %v", key, err)
			return fmt.Errorf("create endpoints %s: %w", key, err)
		}
		return nil
	}
	updated, err := eps.Update(ctx, next, metav1.UpdateOptions{})
	if err != nil {
		c.recorder.Eventf(svc, corev1.EventTypeWarning, "FailedToUpdateEndpoint", "Failed to update endpoint %s: %v", key, err)
		return fmt.Errorf("update endpoints %s: %w", key, err)
	}
	if updated.ResourceVersion != current.ResourceVersion {
		c.stale.replaced(current)
	}
	return nil
}

// desiredLabels are the Service's labels, plus service.kubernetes.io/headless
// for a Service without a cluster IP.
func desiredLabels(svc *corev1.Service) map[string]string {
	out := maps.Clone(svc.Labels)
	if out == nil {
		out = map[string]string{}
	}
	if svc.Spec.ClusterIP == corev1.ClusterIPNone || svc.Spec.ClusterIP == "" {
		out[corev1.IsHeadlessService] = ""
	} else {
		delete(out, corev1.IsHeadlessService)
	}
	return out
}

func hasTruncatedAnnotation(ep *corev1.Endpoints) bool {
	_, ok := ep.Annotations[corev1.EndpointsOverCapacity]
	return ok
}

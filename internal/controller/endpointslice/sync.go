package endpointslice

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"kite/internal/controller/internal/endpointutil"
)

var everything = labels.Everything()

// syncService brings the slices of one Service to the desired state.
func (c *Controller) syncService(ctx context.Context, key string) error {
	namespace, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	svc, err := c.services.Services(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		c.triggers.Delete(namespace, name)
		// The garbage collector removes the slices through their owner
		// reference; deleting them here too makes the controller stand
		// on its own.
		return c.deleteOrphanedSlices(ctx, namespace, name)
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
	existing, err := c.managedSlices(namespace, name)
	if err != nil {
		return err
	}
	if c.tracker.Stale(namespace, name, existing) {
		return fmt.Errorf("service %s: EndpointSlice cache is behind our writes", key)
	}
	triggerTime := c.triggers.Compute(svc, pods)
	plan, planErr := PlanSlices(svc, pods, existing, c.nodes.Get, c.cfg.MaxEndpointsPerSlice)
	if err := c.apply(ctx, svc, plan, triggerTime); err != nil {
		c.recorder.Eventf(svc, corev1.EventTypeWarning, "FailedToUpdateEndpointSlices",
			"Error updating Endpoint Slices for Service %s: %v", key, err)
		return errors.Join(err, planErr)
	}
	return planErr
}

// managedSlices are the cached slices of a Service that this controller
// manages and that are not being deleted.
func (c *Controller) managedSlices(namespace, name string) ([]*discoveryv1.EndpointSlice, error) {
	sel := labels.Set{discoveryv1.LabelServiceName: name, discoveryv1.LabelManagedBy: ControllerName}.AsSelectorPreValidated()
	list, err := c.slices.EndpointSlices(namespace).List(sel)
	if err != nil {
		return nil, err
	}
	out := list[:0:0]
	for _, s := range list {
		if s.DeletionTimestamp == nil {
			out = append(out, s)
		}
	}
	return out, nil
}

// apply writes a plan: creates (unless the Service is being deleted),
// updates, deletes, recording each write in the tracker.
func (c *Controller) apply(ctx context.Context, svc *corev1.Service, plan Plan, triggerTime time.Time) error {
	if plan.Empty() {
		return nil
	}
	log := klog.FromContext(ctx)
	log.V(4).Info("writing endpoint slices", "service", klog.KObj(svc), "create", len(plan.Create), "update", len(plan.Update), "delete", len(plan.Delete))
	for _, sl := range append(slices.Clone(plan.Create), plan.Update...) {
		setTriggerTime(sl, triggerTime)
	}
	return endpointutil.WriteSlices(ctx, c.cfg.Client.DiscoveryV1().EndpointSlices(svc.Namespace), c.tracker,
		"service "+svc.Namespace+"/"+svc.Name, plan.Create, plan.Update, plan.Delete, svc.DeletionTimestamp != nil)
}

func (c *Controller) deleteOrphanedSlices(ctx context.Context, namespace, name string) error {
	existing, err := c.managedSlices(namespace, name)
	if err != nil {
		return err
	}
	for _, s := range existing {
		err := c.cfg.Client.DiscoveryV1().EndpointSlices(namespace).Delete(ctx, s.Name, metav1.DeleteOptions{
			Preconditions: &metav1.Preconditions{UID: &s.UID}})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return fmt.Errorf("delete EndpointSlice %s/%s of deleted service: %w", namespace, s.Name, err)
		}
	}
	c.tracker.DeleteService(namespace, name)
	return nil
}

func setTriggerTime(s *discoveryv1.EndpointSlice, ts time.Time) {
	if s.Annotations == nil {
		s.Annotations = map[string]string{}
	}
	endpointutil.SetTriggerTime(s.Annotations, ts)
}

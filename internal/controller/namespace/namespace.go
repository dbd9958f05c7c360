// Package namespace deletes what a namespace holds when the namespace is
// deleted, then releases the namespace's "kubernetes" finalizer so the API
// server removes it (upstream's namespace controller, smaller).
package namespace

import (
	"context"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
)

// Config wires the controller.
type Config struct {
	Client     kubernetes.Interface
	Dynamic    dynamic.Interface
	Namespaces coreinformers.NamespaceInformer
}

// Controller empties and finalizes namespaces being deleted.
type Controller struct {
	cfg   Config
	queue workqueue.TypedRateLimitingInterface[string]
}

// New returns a controller; Run starts it.
func New(cfg Config) (*Controller, error) {
	if cfg.Client == nil || cfg.Dynamic == nil || cfg.Namespaces == nil {
		return nil, fmt.Errorf("namespace controller: client, dynamic client and informer are required")
	}
	c := &Controller{cfg: cfg, queue: workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.NewTypedItemExponentialFailureRateLimiter[string](50*time.Millisecond, 30*time.Second),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: "namespace"})}
	enqueue := func(obj interface{}) {
		if ns, ok := obj.(*corev1.Namespace); ok && ns.DeletionTimestamp != nil {
			c.queue.Add(ns.Name)
		}
	}
	_, err := cfg.Namespaces.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj interface{}) { enqueue(obj) },
	})
	return c, err
}

// Run works the queue until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	defer c.queue.ShutDown()
	if !cache.WaitForCacheSync(ctx.Done(), c.cfg.Namespaces.Informer().HasSynced) {
		return ctx.Err()
	}
	go func() {
		<-ctx.Done()
		c.queue.ShutDown()
	}()
	log := klog.FromContext(ctx).WithName("namespace-controller")
	for {
		name, quit := c.queue.Get()
		if quit {
			return nil
		}
		err := c.sync(ctx, name)
		switch {
		case err == nil:
			c.queue.Forget(name)
		case ctx.Err() != nil:
		default:
			log.V(2).Info("namespace not empty yet", "namespace", name, "reason", err.Error())
			c.queue.AddRateLimited(name)
		}
		c.queue.Done(name)
	}
}

// errNotEmpty: content remains (graceful pods, finalizers); try again.
type errNotEmpty struct{ remaining []string }

func (e errNotEmpty) Error() string { return fmt.Sprintf("content remains: %v", e.remaining) }

func (c *Controller) sync(ctx context.Context, name string) error {
	ns, err := c.cfg.Namespaces.Lister().Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if ns.DeletionTimestamp == nil || !slices.Contains(ns.Spec.Finalizers, corev1.FinalizerKubernetes) {
		return nil
	}
	resources, err := namespacedResources(c.cfg.Client.Discovery())
	if err != nil {
		return err
	}
	var remaining []string
	for _, gvr := range resources {
		ri := c.cfg.Dynamic.Resource(gvr).Namespace(name)
		if err := ri.DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil && !apierrors.IsNotFound(err) && !apierrors.IsMethodNotSupported(err) {
			return fmt.Errorf("delete %s in %s: %w", gvr.Resource, name, err)
		}
		list, err := ri.List(ctx, metav1.ListOptions{Limit: 1})
		if err != nil {
			return fmt.Errorf("list %s in %s: %w", gvr.Resource, name, err)
		}
		if len(list.Items) > 0 {
			remaining = append(remaining, gvr.Resource)
		}
	}
	if len(remaining) > 0 {
		return errNotEmpty{remaining}
	}
	ns = ns.DeepCopy()
	ns.Spec.Finalizers = slices.DeleteFunc(ns.Spec.Finalizers, func(f corev1.FinalizerName) bool { return f == corev1.FinalizerKubernetes })
	if _, err := c.cfg.Client.CoreV1().Namespaces().Finalize(ctx, ns, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	return nil
}

// namespacedResources are the namespaced resources that can be listed and
// deleted as collections.
func namespacedResources(d discovery.DiscoveryInterface) ([]schema.GroupVersionResource, error) {
	lists, err := d.ServerPreferredNamespacedResources()
	if err != nil {
		return nil, err
	}
	var out []schema.GroupVersionResource
	for _, l := range lists {
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		if err != nil {
			continue
		}
		for _, r := range l.APIResources {
			if slices.Contains(r.Verbs, "deletecollection") && slices.Contains(r.Verbs, "list") {
				out = append(out, gv.WithResource(r.Name))
			}
		}
	}
	return out, nil
}

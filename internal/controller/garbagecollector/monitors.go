package garbagecollector

import (
	"context"
	"errors"
	"fmt"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
)

// deletableResources are the preferred versions of the resources that can
// be listed, watched and deleted, with their kinds.
func (c *Collector) deletableResources() (map[schema.GroupVersionResource]schema.GroupVersionKind, error) {
	lists, err := c.cfg.Client.Discovery().ServerPreferredResources()
	if err != nil && len(lists) == 0 {
		return nil, fmt.Errorf("discover resources: %w", err)
	}
	// A group that failed discovery is skipped this round; the next
	// resync tries again.
	out := map[schema.GroupVersionResource]schema.GroupVersionKind{}
	for _, l := range lists {
		gv, perr := schema.ParseGroupVersion(l.GroupVersion)
		if perr != nil {
			continue
		}
		for _, r := range l.APIResources {
			if !hasVerbs(r, "delete", "list", "watch") {
				continue
			}
			gvr := gv.WithResource(r.Name)
			if slices.Contains(c.cfg.Ignored, gvr.GroupResource()) {
				continue
			}
			out[gvr] = gv.WithKind(r.Kind)
		}
	}
	var groupErr *discovery.ErrGroupDiscoveryFailed
	if err != nil && !errors.As(err, &groupErr) {
		return out, err
	}
	return out, nil
}

func hasVerbs(r metav1.APIResource, verbs ...string) bool {
	for _, v := range verbs {
		if !slices.Contains(r.Verbs, v) {
			return false
		}
	}
	return true
}

// syncMonitors starts a metadata informer for every deletable resource not
// yet watched. Informers of resources that went away are kept: they only
// fail to list until the resource returns.
func (c *Collector) syncMonitors(ctx context.Context) error {
	resources, err := c.deletableResources()
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	added := 0
	for gvr, gvk := range resources {
		c.kinds[gvr] = gvk
		if _, ok := c.monitors[gvr]; ok {
			continue
		}
		inf := c.cfg.MetadataInformers.ForResource(gvr).Informer()
		if _, err := inf.AddEventHandler(c.handlerFor(gvr)); err != nil {
			return fmt.Errorf("watch %s: %w", gvr, err)
		}
		c.monitors[gvr] = inf
		added++
	}
	if added > 0 {
		klog.FromContext(ctx).V(2).Info("watching resources", "added", added, "total", len(c.monitors))
		c.cfg.MetadataInformers.Start(ctx.Done())
	}
	return nil
}

// monitorsSynced reports whether every watched resource has been listed,
// so that the graph knows every dependent.
func (c *Collector) monitorsSynced() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, inf := range c.monitors {
		if !inf.HasSynced() {
			return false
		}
	}
	return true
}

func (c *Collector) kindOf(gvr schema.GroupVersionResource) schema.GroupVersionKind {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.kinds[gvr]
}

func (c *Collector) handlerFor(gvr schema.GroupVersionResource) cache.ResourceEventHandler {
	return cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if m, ok := obj.(*metav1.PartialObjectMetadata); ok {
				c.observe(gvr, m)
			}
		},
		UpdateFunc: func(_, cur any) {
			if m, ok := cur.(*metav1.PartialObjectMetadata); ok {
				c.observe(gvr, m)
			}
		},
		DeleteFunc: func(obj any) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if m, ok := obj.(*metav1.PartialObjectMetadata); ok {
				c.forget(m)
			}
		},
	}
}

// observe records an added or updated object and queues the work it makes.
func (c *Collector) observe(gvr schema.GroupVersionResource, m *metav1.PartialObjectMetadata) {
	n := nodeFromMeta(gvr, c.kindOf(gvr), m)
	for _, w := range c.graph.upsert(n) {
		c.queue.Add(w)
	}
}

// forget removes a deleted object: its dependents may now be garbage, and
// an owner waiting in the foreground for it may now be done.
func (c *Collector) forget(m *metav1.PartialObjectMetadata) {
	for _, w := range c.graph.remove(m.UID) {
		c.queue.Add(w)
	}
}

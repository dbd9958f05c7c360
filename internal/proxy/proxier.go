package proxy

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
)

// Proxier keeps one node's service rules in step with the API: informers
// on Services, EndpointSlices and Nodes trigger syncs, coalesced to at most
// one per MinSyncInterval. As kube-proxy's change trackers do, it notes
// which Services the events touched: a sync recomputes only their ports
// (UpdateModel) and tells the Dataplane which they are (ApplyChanged), so
// its cost follows the change, not the number of Services. Full syncs —
// the whole Model built from the caches, the kernel's table re-read — run
// at start, every SyncPeriod and after a failure.
type Proxier struct {
	cfg     Config
	client  kubernetes.Interface
	dp      *Dataplane
	health  *healthServers
	metrics *metrics

	trigger chan struct{}

	mu sync.Mutex
	// triggerTimes are the EndpointSlice change times not yet programmed.
	triggerTimes []time.Time
	// changed are the Services touched by events since the last sync.
	changed map[ServiceKey]bool
	// nodeCIDR is this Node's spec.podCIDR (the cluster CIDR fallback).
	nodeCIDR netip.Prefix
	lastSync time.Time

	// model is the last applied Model (nil: build the next one whole).
	// Only the sync loop touches it.
	model *Model

	// afterSync, when set (tests), sees every successfully applied Model.
	afterSync func(*Model, SyncResult)
}

// sliceServiceIndex indexes EndpointSlices by their Service's key.
const sliceServiceIndex = "service"

// New checks cfg and the kernel tools of its mode. Call Run to start.
func New(cfg Config, client kubernetes.Interface) (*Proxier, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if client == nil {
		return nil, errors.New("proxy: a Kubernetes client is required")
	}
	dp, err := NewDataplane(cfg)
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Metrics, cfg.Mode)
	if err != nil {
		return nil, fmt.Errorf("proxy: metrics: %w", err)
	}
	return &Proxier{cfg: cfg, client: client, dp: dp, health: newHealthServers(cfg.HealthCheckAddress),
		metrics: m, trigger: make(chan struct{}, 1), changed: map[ServiceKey]bool{}}, nil
}

// LastSync is when the rules were last applied successfully (zero before
// the first sync): a liveness signal for the agent's /healthz.
func (p *Proxier) LastSync() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lastSync
}

// Run starts the informers, programs the rules once the caches are
// synced, and keeps them in step until ctx ends. The rules stay in the
// kernel when Run returns: a restarted proxy adopts them, and established
// connections never notice.
func (p *Proxier) Run(ctx context.Context) error {
	log := klog.FromContext(ctx).WithName("proxy")
	ctx = klog.NewContext(ctx, log)
	defer p.health.Close()

	factory := informers.NewSharedInformerFactory(p.client, 0)
	services := factory.Core().V1().Services()
	slices := factory.Discovery().V1().EndpointSlices()
	nodes := factory.Core().V1().Nodes()
	if err := slices.Informer().AddIndexers(cache.Indexers{sliceServiceIndex: func(obj any) ([]string, error) {
		if k, ok := sliceService(obj); ok {
			return []string{k.String()}, nil
		}
		return nil, nil
	}}); err != nil {
		return fmt.Errorf("proxy: endpointslice index: %w", err)
	}
	for _, inf := range []cache.SharedIndexInformer{services.Informer(), slices.Informer(), nodes.Informer()} {
		if _, err := inf.AddEventHandler(p.handler()); err != nil {
			return fmt.Errorf("proxy: informer handler: %w", err)
		}
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	for typ, ok := range factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("proxy: %v cache did not sync", typ)
		}
	}
	log.Info("caches synced", "mode", p.cfg.Mode, "node", p.cfg.NodeName)

	resync := time.NewTicker(p.cfg.SyncPeriod)
	defer resync.Stop()
	full, failures := true, 0
	var last time.Time
	for {
		// Coalesce: whatever arrives within MinSyncInterval of the last
		// sync is applied together.
		if wait := time.Until(last.Add(p.cfg.MinSyncInterval)); wait > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(wait):
			}
		}
		select { // what this sync reads includes whatever triggered it
		case <-p.trigger:
		default:
		}
		last = time.Now()
		err := p.sync(ctx, services.Lister(), slices.Informer().GetIndexer(), full)
		if err != nil {
			failures++
			p.metrics.syncFailures.Inc()
			backoff := min(p.cfg.MinSyncInterval<<min(failures, 10), maxRetryInterval)
			log.Error(err, "sync failed; retrying with a full sync", "in", backoff, "failures", failures)
			full = true
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
			continue
		}
		full, failures = false, 0
		select {
		case <-ctx.Done():
			return nil
		case <-p.trigger:
		case <-resync.C:
			full = true
		}
	}
}

func (p *Proxier) sync(ctx context.Context, svcLister corelisters.ServiceLister, sliceIndex cache.Indexer, full bool) error {
	start := time.Now()
	p.mu.Lock()
	cidr := p.cfg.ClusterCIDR
	if !cidr.IsValid() {
		cidr = p.nodeCIDR
	}
	pending := p.triggerTimes
	p.triggerTimes = nil
	changed := slices.Collect(maps.Keys(p.changed))
	clear(p.changed)
	p.mu.Unlock()

	var m *Model
	var res SyncResult
	var err error
	if full || p.model == nil || p.model.ClusterCIDR != cidr {
		if m, err = p.buildModel(svcLister, sliceIndex, cidr); err == nil {
			res, err = p.dp.Apply(ctx, m, full)
		}
	} else {
		if m, err = p.updateModel(svcLister, sliceIndex, changed); err == nil {
			res, err = p.dp.ApplyChanged(ctx, m, changed)
		}
	}
	if err != nil {
		// The next sync is a full one: it rebuilds the Model from the
		// caches, so the changed set need not be kept.
		p.model = nil
		p.mu.Lock()
		p.triggerTimes = append(pending, p.triggerTimes...)
		p.mu.Unlock()
		return err
	}
	p.model = m
	p.health.Sync(ctx, m)
	done := time.Now()
	p.metrics.syncDuration.WithLabelValues(fmt.Sprint(res.Full)).Observe(done.Sub(start).Seconds())
	for _, t := range pending {
		p.metrics.programmingLatency.Observe(done.Sub(t).Seconds())
		if p.cfg.ProgrammingLatencyHook != nil {
			p.cfg.ProgrammingLatencyHook(done.Sub(t))
		}
	}
	p.metrics.objects.WithLabelValues("chains").Set(float64(res.Chains))
	p.metrics.objects.WithLabelValues("rules").Set(float64(res.Rules))
	p.metrics.objects.WithLabelValues("elements").Set(float64(res.Elements))
	p.metrics.objects.WithLabelValues("service_ports").Set(float64(len(m.Ports)))
	p.metrics.lastSync.Set(float64(done.Unix()))
	p.metrics.staleFlows.Add(float64(res.StaleFlows))
	p.mu.Lock()
	p.lastSync = done
	p.mu.Unlock()
	klog.FromContext(ctx).V(2).Info("synced", "full", res.Full, "servicePorts", len(m.Ports), "changedServices", len(changed),
		"operations", res.Operations, "staleFlows", res.StaleFlows, "took", done.Sub(start))
	if p.afterSync != nil {
		p.afterSync(m, res)
	}
	return nil
}

// buildModel is the whole Model from the caches.
func (p *Proxier) buildModel(svcLister corelisters.ServiceLister, sliceIndex cache.Indexer, cidr netip.Prefix) (*Model, error) {
	svcs, err := svcLister.List(labels.Everything())
	if err != nil {
		return nil, fmt.Errorf("list services: %w", err)
	}
	in := ModelInput{NodeName: p.cfg.NodeName, ClusterCIDR: cidr, Services: svcs}
	for _, obj := range sliceIndex.List() {
		if s, ok := obj.(*discovery.EndpointSlice); ok {
			in.Slices = append(in.Slices, s)
		}
	}
	return BuildModel(in), nil
}

// updateModel is the last Model with the changed Services' ports
// computed again from the caches.
func (p *Proxier) updateModel(svcLister corelisters.ServiceLister, sliceIndex cache.Indexer, changed []ServiceKey) (*Model, error) {
	in := ModelInput{NodeName: p.cfg.NodeName, ClusterCIDR: p.model.ClusterCIDR}
	for _, k := range changed {
		svc, err := svcLister.Services(k.Namespace).Get(k.Name)
		switch {
		case apierrors.IsNotFound(err):
			continue // deleted: its ports go
		case err != nil:
			return nil, fmt.Errorf("service %s: %w", k, err)
		}
		in.Services = append(in.Services, svc)
		objs, err := sliceIndex.ByIndex(sliceServiceIndex, k.String())
		if err != nil {
			return nil, fmt.Errorf("endpointslices of %s: %w", k, err)
		}
		for _, obj := range objs {
			if s, ok := obj.(*discovery.EndpointSlice); ok {
				in.Slices = append(in.Slices, s)
			}
		}
	}
	return UpdateModel(p.model, in, changed), nil
}

// sliceService is the Service an EndpointSlice belongs to (its
// kubernetes.io/service-name label).
func sliceService(obj any) (ServiceKey, bool) {
	s, ok := obj.(*discovery.EndpointSlice)
	if !ok || s.Labels[discovery.LabelServiceName] == "" {
		return ServiceKey{}, false
	}
	return ServiceKey{s.Namespace, s.Labels[discovery.LabelServiceName]}, true
}

// markChanged notes the Service an object (a Service or one of its
// EndpointSlices; nil and Nodes are ignored) belongs to.
func (p *Proxier) markChanged(obj any) {
	var k ServiceKey
	switch o := obj.(type) {
	case *v1.Service:
		k = ServiceKey{o.Namespace, o.Name}
	case *discovery.EndpointSlice:
		var ok bool
		if k, ok = sliceService(o); !ok {
			return
		}
	default:
		return
	}
	p.mu.Lock()
	p.changed[k] = true
	p.mu.Unlock()
}

// handler turns every informer event into a sync request, noting the
// EndpointSlice trigger time and this Node's pod CIDR on the way.
func (p *Proxier) handler() cache.ResourceEventHandler {
	note := func(old, obj any) {
		p.markChanged(old)
		p.markChanged(obj)
		switch o := obj.(type) {
		case *discovery.EndpointSlice:
			trigger := o.Annotations[v1.EndpointsLastChangeTriggerTime]
			if prev, ok := old.(*discovery.EndpointSlice); ok && prev.Annotations[v1.EndpointsLastChangeTriggerTime] == trigger {
				break // a resync or a status-only change: no new trigger
			}
			if t, err := time.Parse(time.RFC3339Nano, trigger); err == nil {
				p.mu.Lock()
				p.triggerTimes = append(p.triggerTimes, t)
				p.mu.Unlock()
			}
		case *v1.Node:
			if o.Name != p.cfg.NodeName {
				return // other nodes change nothing here
			}
			cidr, _ := netip.ParsePrefix(o.Spec.PodCIDR)
			p.mu.Lock()
			changed := cidr != p.nodeCIDR
			p.nodeCIDR = cidr
			p.mu.Unlock()
			if !changed {
				return
			}
		}
		select {
		case p.trigger <- struct{}{}:
		default:
		}
	}
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { note(nil, obj) },
		UpdateFunc: note,
		DeleteFunc: func(obj any) {
			// A deleted slice's trigger time is history, and a deleted
			// Node is not ours to follow: just sync.
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			p.markChanged(obj)
			select {
			case p.trigger <- struct{}{}:
			default:
			}
		},
	}
}

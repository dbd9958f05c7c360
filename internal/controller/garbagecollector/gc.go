// Package garbagecollector deletes objects whose owners are gone, as
// kube-controller-manager's garbage collector does, for every resource the
// API serves that can be listed, watched and deleted:
//
//   - Background: an object all of whose owners are gone (or being
//     deleted in the foreground) is deleted; owner references to missing
//     owners are removed from objects that still have a live owner.
//   - Foreground: an owner being deleted with the foregroundDeletion
//     finalizer has its dependents deleted, and keeps the finalizer until
//     the dependents whose reference says blockOwnerDeletion are gone.
//   - Orphan: an owner being deleted with the orphan finalizer has its
//     references removed from its dependents, then loses the finalizer.
//
// The API server adds those finalizers when DeleteOptions ask for them.
// The collector watches object metadata only (metadata informers over
// PartialObjectMetadata), keeps an owner→dependents graph of what it saw,
// and acts on events plus a periodic sweep; before it deletes or changes
// anything it reads the object live, and it checks an owner it has not
// seen with a live GET, so a cache that lags never gets something deleted.
package garbagecollector

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"

	"kite/internal/controller/internal/ctrlutil"
)

// Defaults.
const (
	DefaultWorkers      = 10
	DefaultResyncPeriod = 30 * time.Second
)

// Config wires the collector.
type Config struct {
	// Client's discovery lists the resources to watch and maps owner kinds
	// to resources. Required.
	Client kubernetes.Interface
	// Metadata reads, patches and deletes objects as metadata. Required.
	Metadata metadata.Interface
	// MetadataInformers supplies the per-resource metadata informers; nil
	// makes a factory over Metadata (shut down when Run returns). Run
	// starts what it registered.
	MetadataInformers metadatainformer.SharedInformerFactory
	// Recorder records events; nil discards them.
	Recorder record.EventRecorder
	// Workers is how many objects are processed in parallel (default 10).
	Workers int
	// ResyncPeriod is how often the collector re-reads discovery (to watch
	// new resources) and sweeps its whole graph for work that events may
	// have missed (default 30s).
	ResyncPeriod time.Duration
	// Ignored resources are not watched (default: events, which have no
	// owners and are many).
	Ignored []schema.GroupResource
}

// Validate reports a Config that cannot work.
func (c *Config) Validate() error {
	var errs []error
	if c.Client == nil {
		errs = append(errs, errors.New("client is required"))
	}
	if c.Metadata == nil {
		errs = append(errs, errors.New("metadata client is required"))
	}
	if c.Workers < 0 || c.ResyncPeriod < 0 {
		errs = append(errs, errors.New("workers and resync period must not be negative"))
	}
	return errors.Join(errs...)
}

func (c *Config) setDefaults() {
	if c.Workers == 0 {
		c.Workers = DefaultWorkers
	}
	if c.ResyncPeriod == 0 {
		c.ResyncPeriod = DefaultResyncPeriod
	}
	if c.Ignored == nil {
		c.Ignored = []schema.GroupResource{{Resource: "events"}, {Group: "events.k8s.io", Resource: "events"}}
	}
	if c.Recorder == nil {
		c.Recorder = &record.FakeRecorder{}
	}
}

// work is one queued task: check an object's owners (and, for an object
// being deleted in the foreground, its dependents), or orphan the
// dependents of an object being deleted with the orphan finalizer.
type work struct {
	uid    types.UID
	orphan bool
}

// Collector is the garbage collector.
type Collector struct {
	cfg        Config
	ownFactory bool
	graph      *graph
	queue      workqueue.TypedRateLimitingInterface[work]
	mapper     *restmapper.DeferredDiscoveryRESTMapper

	mu       sync.Mutex
	monitors map[schema.GroupVersionResource]cache.SharedIndexInformer
	kinds    map[schema.GroupVersionResource]schema.GroupVersionKind
}

// New checks cfg; Run discovers the resources and starts watching them.
func New(cfg Config) (*Collector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("garbage collector: %w", err)
	}
	cfg.setDefaults()
	ownFactory := cfg.MetadataInformers == nil
	if ownFactory {
		cfg.MetadataInformers = metadatainformer.NewSharedInformerFactory(cfg.Metadata, 0)
	}
	return &Collector{
		cfg:        cfg,
		ownFactory: ownFactory,
		graph:      newGraph(),
		queue:      ctrlutil.NewQueue[work]("garbage_collector", 10*time.Millisecond, 60*time.Second),
		mapper:     restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(cfg.Client.Discovery())),
		monitors:   map[schema.GroupVersionResource]cache.SharedIndexInformer{},
		kinds:      map[schema.GroupVersionResource]schema.GroupVersionKind{},
	}, nil
}

// Run watches every deletable resource, waits for the caches, then
// collects garbage until ctx ends.
func (c *Collector) Run(ctx context.Context) error {
	log := klog.FromContext(ctx).WithName("garbage-collector")
	ctx = klog.NewContext(ctx, log)
	if c.ownFactory {
		defer c.cfg.MetadataInformers.Shutdown()
	}
	for {
		err := c.syncMonitors(ctx)
		if err == nil {
			break
		}
		log.Error(err, "discovering resources; retrying")
		select {
		case <-ctx.Done():
			c.queue.ShutDown()
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	if !cache.WaitForCacheSync(ctx.Done(), c.monitorsSynced) {
		c.queue.ShutDown()
		return ctx.Err()
	}
	log.Info("starting", "resources", len(c.monitors), "workers", c.cfg.Workers)
	c.sweep()
	go c.resyncLoop(ctx)
	ctrlutil.Work(ctx, c.queue, c.cfg.Workers, c.process)
	return nil
}

// resyncLoop periodically re-reads discovery and sweeps the graph.
func (c *Collector) resyncLoop(ctx context.Context) {
	t := time.NewTicker(c.cfg.ResyncPeriod)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		c.mapper.Reset()
		if err := c.syncMonitors(ctx); err != nil {
			klog.FromContext(ctx).Error(err, "refreshing resources")
		}
		c.sweep()
	}
}

func (c *Collector) process(ctx context.Context, w work) error {
	if w.orphan {
		return c.orphanDependents(ctx, w.uid)
	}
	return c.attemptToDelete(ctx, w.uid)
}

// sweep queues every object the graph says may need work.
func (c *Collector) sweep() {
	for _, w := range c.graph.pendingWork() {
		c.queue.Add(w)
	}
}

// Package endpoints is the Endpoints controller: for every Service with a
// selector it keeps a v1 Endpoints object of the same name listing the
// selected pods — ready ones in addresses, others in notReadyAddresses —
// packed into subsets by port set, as kube-controller-manager's endpoint
// controller does. Services without a selector keep whatever Endpoints
// their users write (endpointslicemirroring turns those into slices).
package endpoints

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"

	"kite/internal/controller/internal/ctrlutil"
	"kite/internal/controller/internal/endpointutil"
)

// ControllerName names the controller in logs and events.
const ControllerName = "endpoint-controller"

// Config wires the controller.
type Config struct {
	// Client writes Endpoints. Required.
	Client kubernetes.Interface
	// Informers supplies the Service, Pod and Endpoints informers. Required;
	// Run starts the informers it registered.
	Informers informers.SharedInformerFactory
	// Recorder records events; nil records to the API as endpoint-controller.
	Recorder record.EventRecorder
	// Workers is how many Services sync in parallel (default 5).
	Workers int
	// BatchPeriod delays the sync after a pod change so that several
	// changes make one write (default 0: sync at once).
	BatchPeriod time.Duration
}

// Validate reports a Config that cannot work.
func (c *Config) Validate() error {
	var errs []error
	if c.Client == nil {
		errs = append(errs, errors.New("client is required"))
	}
	if c.Informers == nil {
		errs = append(errs, errors.New("informer factory is required"))
	}
	if c.Workers < 0 || c.BatchPeriod < 0 {
		errs = append(errs, errors.New("workers and batch period must not be negative"))
	}
	return errors.Join(errs...)
}

func (c *Config) setDefaults() {
	if c.Workers == 0 {
		c.Workers = 5
	}
}

// Controller keeps Endpoints in step with Services and pods.
type Controller struct {
	cfg       Config
	services  corelisters.ServiceLister
	pods      corelisters.PodLister
	endpoints corelisters.EndpointsLister
	synced    []cache.InformerSynced
	queue     workqueue.TypedRateLimitingInterface[string]
	triggers  *endpointutil.TriggerTimeTracker
	stale     *staleTracker
	recorder  record.EventRecorder
	stopRec   func()
}

// New checks cfg and registers the controller's informer handlers.
func New(cfg Config) (*Controller, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("endpoints controller: %w", err)
	}
	cfg.setDefaults()
	svcInf := cfg.Informers.Core().V1().Services()
	podInf := cfg.Informers.Core().V1().Pods()
	epInf := cfg.Informers.Core().V1().Endpoints()
	c := &Controller{
		cfg:       cfg,
		services:  svcInf.Lister(),
		pods:      podInf.Lister(),
		endpoints: epInf.Lister(),
		synced:    []cache.InformerSynced{svcInf.Informer().HasSynced, podInf.Informer().HasSynced, epInf.Informer().HasSynced},
		queue:     ctrlutil.NewQueue[string]("endpoint", 5*time.Millisecond, 100*time.Second),
		triggers:  endpointutil.NewTriggerTimeTracker(),
		stale:     &staleTracker{versions: map[string]string{}},
	}
	c.recorder, c.stopRec = ctrlutil.Recorder(cfg.Recorder, cfg.Client, ControllerName)
	enqueueObj := func(obj any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			c.queue.Add(key)
		}
	}
	if _, err := svcInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueueObj,
		UpdateFunc: func(_, cur any) { enqueueObj(cur) },
		DeleteFunc: enqueueObj,
	}); err != nil {
		return nil, err
	}
	if _, err := podInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) { c.enqueuePod(obj.(*corev1.Pod)) },
		UpdateFunc: func(old, cur any) {
			for key := range endpointutil.ServicesToUpdateOnPodChange(c.services, old.(*corev1.Pod), cur.(*corev1.Pod)) {
				c.queue.AddAfter(key, c.cfg.BatchPeriod)
			}
		},
		DeleteFunc: func(obj any) {
			if pod := endpointutil.PodFromDeleteAction(obj); pod != nil {
				c.enqueuePod(pod)
			}
		},
	}); err != nil {
		return nil, err
	}
	// A deleted Endpoints of a Service with a selector is written again.
	if _, err := epInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{DeleteFunc: enqueueObj}); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Controller) enqueuePod(pod *corev1.Pod) {
	for key := range endpointutil.PodServiceKeys(c.services, pod) {
		c.queue.AddAfter(key, c.cfg.BatchPeriod)
	}
}

// Run waits for the caches, then syncs Services until ctx ends. After the
// caches sync it queues every existing Endpoints once, so that those of
// Services deleted while the controller was away are removed.
func (c *Controller) Run(ctx context.Context) error {
	log := klog.FromContext(ctx).WithName(ControllerName)
	ctx = klog.NewContext(ctx, log)
	defer c.stopRec()
	c.cfg.Informers.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		c.queue.ShutDown()
		return ctx.Err()
	}
	log.Info("starting", "workers", c.cfg.Workers)
	if eps, err := c.endpoints.List(everything); err == nil {
		for _, ep := range eps {
			if _, leader := ep.Annotations[leaderElectionAnnotation]; !leader {
				c.queue.Add(ep.Namespace + "/" + ep.Name)
			}
		}
	}
	ctrlutil.Work(ctx, c.queue, c.cfg.Workers, c.syncService)
	return nil
}

// leaderElectionAnnotation marks Endpoints used as leader-election locks
// (they have no Service and must be left alone).
const leaderElectionAnnotation = "control-plane.alpha.kubernetes.io/leader"

// staleTracker remembers, per Endpoints, the resourceVersion our last
// update replaced: seeing it again in the cache means the cache is behind.
type staleTracker struct {
	mu       sync.Mutex
	versions map[string]string
}

func (t *staleTracker) isStale(ep *corev1.Endpoints) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	v, ok := t.versions[ep.Namespace+"/"+ep.Name]
	return ok && v == ep.ResourceVersion
}

func (t *staleTracker) replaced(ep *corev1.Endpoints) {
	t.mu.Lock()
	t.versions[ep.Namespace+"/"+ep.Name] = ep.ResourceVersion
	t.mu.Unlock()
}

func (t *staleTracker) forget(key string) {
	t.mu.Lock()
	delete(t.versions, key)
	t.mu.Unlock()
}

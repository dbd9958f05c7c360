// Package endpointslice is the EndpointSlice controller: for every Service
// with a selector it keeps discovery.k8s.io/v1 EndpointSlices listing the
// pods the selector matches, as kube-controller-manager's
// endpointslice-controller does — with ready/serving/terminating
// conditions, per-pod port resolution, at most MaxEndpointsPerSlice
// endpoints per slice, and as few writes as possible. PlanSlices is the
// pure core; the controller feeds it from informer caches and applies the
// plan. Services without a selector are left to endpointslicemirroring.
package endpointslice

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"

	"kite/internal/controller/internal/ctrlutil"
	"kite/internal/controller/internal/endpointutil"
)

// ControllerName is the endpointslice.kubernetes.io/managed-by value of the
// slices this controller owns.
const ControllerName = "endpointslice-controller.k8s.io"

// Defaults, as upstream.
const (
	DefaultMaxEndpointsPerSlice = 100
	DefaultWorkers              = 5
	// sliceChangeDelay batches the resync a foreign slice change causes.
	sliceChangeDelay = time.Second
)

// Config wires the controller.
type Config struct {
	// Client writes EndpointSlices. Required.
	Client kubernetes.Interface
	// Informers supplies the Service, Pod, Node and EndpointSlice informers.
	// Required; Run starts the informers it registered.
	Informers informers.SharedInformerFactory
	// Recorder records events; nil records to the API as
	// endpointslice-controller.
	Recorder record.EventRecorder
	// MaxEndpointsPerSlice caps a slice (default 100, at most 1000).
	MaxEndpointsPerSlice int
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
	if c.MaxEndpointsPerSlice < 0 || c.MaxEndpointsPerSlice > 1000 {
		errs = append(errs, fmt.Errorf("max endpoints per slice %d not in 1..1000", c.MaxEndpointsPerSlice))
	}
	if c.Workers < 0 || c.BatchPeriod < 0 {
		errs = append(errs, errors.New("workers and batch period must not be negative"))
	}
	return errors.Join(errs...)
}

func (c *Config) setDefaults() {
	if c.MaxEndpointsPerSlice == 0 {
		c.MaxEndpointsPerSlice = DefaultMaxEndpointsPerSlice
	}
	if c.Workers == 0 {
		c.Workers = DefaultWorkers
	}
}

// Controller keeps EndpointSlices in step with Services and pods.
type Controller struct {
	cfg      Config
	services corelisters.ServiceLister
	pods     corelisters.PodLister
	nodes    corelisters.NodeLister
	slices   discoverylisters.EndpointSliceLister
	synced   []cache.InformerSynced
	queue    workqueue.TypedRateLimitingInterface[string]
	tracker  *endpointutil.SliceTracker
	triggers *endpointutil.TriggerTimeTracker
	recorder record.EventRecorder
	stopRec  func()
}

// New checks cfg and registers the controller's informer handlers.
func New(cfg Config) (*Controller, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("endpointslice controller: %w", err)
	}
	cfg.setDefaults()
	svcInf := cfg.Informers.Core().V1().Services()
	podInf := cfg.Informers.Core().V1().Pods()
	nodeInf := cfg.Informers.Core().V1().Nodes()
	sliceInf := cfg.Informers.Discovery().V1().EndpointSlices()
	c := &Controller{
		cfg:      cfg,
		services: svcInf.Lister(),
		pods:     podInf.Lister(),
		nodes:    nodeInf.Lister(),
		slices:   sliceInf.Lister(),
		synced: []cache.InformerSynced{svcInf.Informer().HasSynced, podInf.Informer().HasSynced,
			nodeInf.Informer().HasSynced, sliceInf.Informer().HasSynced},
		queue:    ctrlutil.NewQueue[string]("endpoint_slice", 5*time.Millisecond, 100*time.Second),
		tracker:  endpointutil.NewSliceTracker(),
		triggers: endpointutil.NewTriggerTimeTracker(),
	}
	c.recorder, c.stopRec = ctrlutil.Recorder(cfg.Recorder, cfg.Client, "endpointslice-controller")
	if err := c.registerHandlers(svcInf.Informer(), podInf.Informer(), nodeInf.Informer(), sliceInf.Informer()); err != nil {
		return nil, err
	}
	return c, nil
}

// Run waits for the caches, then syncs Services until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	log := klog.FromContext(ctx).WithName("endpointslice-controller")
	ctx = klog.NewContext(ctx, log)
	defer c.stopRec()
	c.cfg.Informers.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		c.queue.ShutDown()
		return ctx.Err()
	}
	log.Info("starting", "workers", c.cfg.Workers, "maxEndpointsPerSlice", c.cfg.MaxEndpointsPerSlice)
	ctrlutil.Work(ctx, c.queue, c.cfg.Workers, c.syncService)
	return nil
}

func (c *Controller) registerHandlers(svcInf, podInf, nodeInf, sliceInf cache.SharedIndexInformer) error {
	enqueue := func(obj any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			c.queue.Add(key)
		}
	}
	if _, err := svcInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: enqueue, UpdateFunc: func(_, cur any) { enqueue(cur) }, DeleteFunc: enqueue,
	}); err != nil {
		return err
	}
	addPod := func(pod *corev1.Pod) {
		for key := range endpointutil.PodServiceKeys(c.services, pod) {
			c.queue.AddAfter(key, c.cfg.BatchPeriod)
		}
	}
	if _, err := podInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) { addPod(obj.(*corev1.Pod)) },
		UpdateFunc: func(old, cur any) {
			for key := range endpointutil.ServicesToUpdateOnPodChange(c.services, old.(*corev1.Pod), cur.(*corev1.Pod)) {
				c.queue.AddAfter(key, c.cfg.BatchPeriod)
			}
		},
		DeleteFunc: func(obj any) {
			if pod := endpointutil.PodFromDeleteAction(obj); pod != nil {
				addPod(pod)
			}
		},
	}); err != nil {
		return err
	}
	// Nodes: a pod is left out while its node is unknown, and an endpoint
	// shows its node's zone; resync the pods' Services when either changes.
	nodeChanged := func(node *corev1.Node) {
		pods, err := c.pods.List(everything)
		if err != nil {
			return
		}
		for _, pod := range pods {
			if pod.Spec.NodeName == node.Name {
				addPod(pod)
			}
		}
	}
	if _, err := nodeInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) { nodeChanged(obj.(*corev1.Node)) },
		UpdateFunc: func(old, cur any) {
			if old.(*corev1.Node).Labels[corev1.LabelTopologyZone] != cur.(*corev1.Node).Labels[corev1.LabelTopologyZone] {
				nodeChanged(cur.(*corev1.Node))
			}
		},
	}); err != nil {
		return err
	}
	_, err := sliceInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if s := obj.(*discoveryv1.EndpointSlice); managedByUs(s) && c.tracker.ShouldSync(s) {
				c.queueForSlice(s)
			}
		},
		UpdateFunc: func(old, cur any) {
			prev, s := old.(*discoveryv1.EndpointSlice), cur.(*discoveryv1.EndpointSlice)
			if prev.Labels[discoveryv1.LabelServiceName] != s.Labels[discoveryv1.LabelServiceName] {
				c.queueForSlice(prev)
				c.queueForSlice(s)
				return
			}
			if managedByUs(prev) != managedByUs(s) || (managedByUs(s) && c.tracker.ShouldSync(s)) {
				c.queueForSlice(s)
			}
		},
		DeleteFunc: func(obj any) {
			s := sliceFromDeleteAction(obj)
			if s != nil && managedByUs(s) && c.tracker.Has(s) && !c.tracker.HandleDeletion(s) {
				c.queueForSlice(s)
			}
		},
	})
	return err
}

// queueForSlice resyncs the Service of a slice someone else changed.
func (c *Controller) queueForSlice(s *discoveryv1.EndpointSlice) {
	name := s.Labels[discoveryv1.LabelServiceName]
	if name == "" {
		return
	}
	c.queue.AddAfter(s.Namespace+"/"+name, max(sliceChangeDelay, c.cfg.BatchPeriod))
}

func managedByUs(s *discoveryv1.EndpointSlice) bool {
	return s.Labels[discoveryv1.LabelManagedBy] == ControllerName
}

func sliceFromDeleteAction(obj any) *discoveryv1.EndpointSlice {
	switch o := obj.(type) {
	case *discoveryv1.EndpointSlice:
		return o
	case cache.DeletedFinalStateUnknown:
		s, _ := o.Obj.(*discoveryv1.EndpointSlice)
		return s
	}
	return nil
}

// Package endpointslicemirroring mirrors the Endpoints that users write for
// Services without a selector into EndpointSlices, as
// kube-controller-manager's endpointslicemirroring controller does, so that
// consumers of slices (the proxy, DNS) see them too. Endpoints of
// Services with a selector are the endpoints controller's and are not
// mirrored; neither are Endpoints labelled
// endpointslice.kubernetes.io/skip-mirror=true or used as leader-election
// locks. PlanMirror is the pure core.
package endpointslicemirroring

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
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

// ControllerName is the endpointslice.kubernetes.io/managed-by value of
// mirrored slices.
const ControllerName = "endpointslicemirroring-controller.k8s.io"

// Defaults, as upstream.
const (
	DefaultMaxEndpointsPerSubset = 1000
	DefaultWorkers               = 5
)

// Event reasons, as upstream.
const (
	reasonInvalidIPAddress         = "InvalidIPAddress"
	reasonTooManyAddressesToMirror = "TooManyAddressesToMirror"
)

const leaderElectionAnnotation = "control-plane.alpha.kubernetes.io/leader"

// Config wires the controller.
type Config struct {
	// Client writes EndpointSlices. Required.
	Client kubernetes.Interface
	// Informers supplies the Endpoints, Service and EndpointSlice informers.
	// Required; Run starts the informers it registered.
	Informers informers.SharedInformerFactory
	// Recorder records events; nil records to the API as
	// endpointslice-mirroring-controller.
	Recorder record.EventRecorder
	// MaxEndpointsPerSubset caps the addresses mirrored from one subset
	// (default 1000).
	MaxEndpointsPerSubset int
	// Workers is how many Endpoints sync in parallel (default 5).
	Workers int
	// BatchPeriod delays the sync after a slice change (default 0).
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
	if c.MaxEndpointsPerSubset < 0 || c.Workers < 0 || c.BatchPeriod < 0 {
		errs = append(errs, errors.New("limits, workers and batch period must not be negative"))
	}
	return errors.Join(errs...)
}

func (c *Config) setDefaults() {
	if c.MaxEndpointsPerSubset == 0 {
		c.MaxEndpointsPerSubset = DefaultMaxEndpointsPerSubset
	}
	if c.Workers == 0 {
		c.Workers = DefaultWorkers
	}
}

// Controller mirrors selector-less Services' Endpoints into slices.
type Controller struct {
	cfg       Config
	endpoints corelisters.EndpointsLister
	services  corelisters.ServiceLister
	slices    discoverylisters.EndpointSliceLister
	synced    []cache.InformerSynced
	queue     workqueue.TypedRateLimitingInterface[string]
	tracker   *endpointutil.SliceTracker
	recorder  record.EventRecorder
	stopRec   func()
}

// New checks cfg and registers the controller's informer handlers.
func New(cfg Config) (*Controller, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("endpointslicemirroring controller: %w", err)
	}
	cfg.setDefaults()
	epInf := cfg.Informers.Core().V1().Endpoints()
	svcInf := cfg.Informers.Core().V1().Services()
	sliceInf := cfg.Informers.Discovery().V1().EndpointSlices()
	c := &Controller{
		cfg:       cfg,
		endpoints: epInf.Lister(),
		services:  svcInf.Lister(),
		slices:    sliceInf.Lister(),
		synced:    []cache.InformerSynced{epInf.Informer().HasSynced, svcInf.Informer().HasSynced, sliceInf.Informer().HasSynced},
		queue:     ctrlutil.NewQueue[string]("endpoint_slice_mirroring", 5*time.Millisecond, 100*time.Second),
		tracker:   endpointutil.NewSliceTracker(),
	}
	c.recorder, c.stopRec = ctrlutil.Recorder(cfg.Recorder, cfg.Client, "endpoint-slice-mirroring-controller")
	enqueue := func(obj any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			c.queue.Add(key)
		}
	}
	if _, err := epInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if shouldMirror(obj.(*corev1.Endpoints)) {
				enqueue(obj)
			}
		},
		UpdateFunc: func(old, cur any) {
			if shouldMirror(old.(*corev1.Endpoints)) || shouldMirror(cur.(*corev1.Endpoints)) {
				enqueue(cur)
			}
		},
		DeleteFunc: func(obj any) {
			if ep := endpointsFromDeleteAction(obj); ep != nil && shouldMirror(ep) {
				enqueue(obj)
			}
		},
	}); err != nil {
		return nil, err
	}
	if _, err := svcInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if obj.(*corev1.Service).Spec.Selector == nil {
				enqueue(obj)
			}
		},
		UpdateFunc: func(old, cur any) {
			if (old.(*corev1.Service).Spec.Selector == nil) != (cur.(*corev1.Service).Spec.Selector == nil) {
				enqueue(cur)
			}
		},
		DeleteFunc: enqueue,
	}); err != nil {
		return nil, err
	}
	_, err := sliceInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
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
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Run waits for the caches, then mirrors until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	log := klog.FromContext(ctx).WithName("endpointslicemirroring-controller")
	ctx = klog.NewContext(ctx, log)
	defer c.stopRec()
	c.cfg.Informers.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		c.queue.ShutDown()
		return ctx.Err()
	}
	log.Info("starting", "workers", c.cfg.Workers)
	ctrlutil.Work(ctx, c.queue, c.cfg.Workers, c.sync)
	return nil
}

// sync mirrors one Endpoints (key namespace/name, shared with its Service).
func (c *Controller) sync(ctx context.Context, key string) error {
	namespace, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	ep, err := c.endpoints.Endpoints(namespace).Get(name)
	if apierrors.IsNotFound(err) || (err == nil && !shouldMirror(ep)) {
		return c.deleteMirrored(ctx, namespace, name)
	}
	if err != nil {
		return err
	}
	svc, err := c.services.Services(namespace).Get(name)
	if apierrors.IsNotFound(err) || (err == nil && svc.Spec.Selector != nil) {
		return c.deleteMirrored(ctx, namespace, name)
	}
	if err != nil {
		return err
	}
	existing, err := c.mirrored(namespace, name)
	if err != nil {
		return err
	}
	if c.tracker.Stale(namespace, name, existing) {
		return fmt.Errorf("endpoints %s: EndpointSlice cache is behind our writes", key)
	}
	plan := PlanMirror(ep, existing, c.cfg.MaxEndpointsPerSubset)
	if plan.Invalid > 0 {
		c.recorder.Eventf(ep, corev1.EventTypeWarning, reasonInvalidIPAddress,
			"Skipped %d invalid IP addresses when mirroring to EndpointSlices", plan.Invalid)
	}
	if plan.Skipped > plan.Invalid {
		c.recorder.Eventf(ep, corev1.EventTypeWarning, reasonTooManyAddressesToMirror,
			"A max of %d addresses can be mirrored to EndpointSlices per Endpoints subset. %d addresses were skipped",
			c.cfg.MaxEndpointsPerSubset, plan.Skipped-plan.Invalid)
	}
	return c.apply(ctx, ep, plan)
}

func (c *Controller) apply(ctx context.Context, ep *corev1.Endpoints, plan Plan) error {
	if plan.Empty() {
		return nil
	}
	klog.FromContext(ctx).V(4).Info("mirroring endpoints", "endpoints", klog.KObj(ep),
		"create", len(plan.Create), "update", len(plan.Update), "delete", len(plan.Delete))
	return endpointutil.WriteSlices(ctx, c.cfg.Client.DiscoveryV1().EndpointSlices(ep.Namespace), c.tracker,
		"endpoints "+ep.Namespace+"/"+ep.Name, plan.Create, plan.Update, plan.Delete, ep.DeletionTimestamp != nil)
}

// mirrored are the cached slices mirrored for namespace/name.
func (c *Controller) mirrored(namespace, name string) ([]*discoveryv1.EndpointSlice, error) {
	sel := labels.Set{discoveryv1.LabelServiceName: name, discoveryv1.LabelManagedBy: ControllerName}.AsSelectorPreValidated()
	return c.slices.EndpointSlices(namespace).List(sel)
}

func (c *Controller) deleteMirrored(ctx context.Context, namespace, name string) error {
	existing, err := c.mirrored(namespace, name)
	if err != nil {
		return err
	}
	c.tracker.DeleteService(namespace, name)
	var errs []error
	for _, s := range existing {
		if err := c.cfg.Client.DiscoveryV1().EndpointSlices(namespace).Delete(ctx, s.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete mirrored EndpointSlice %s/%s: %w", namespace, s.Name, err))
		}
	}
	return errors.Join(errs...)
}

func (c *Controller) queueForSlice(s *discoveryv1.EndpointSlice) {
	if name := s.Labels[discoveryv1.LabelServiceName]; name != "" {
		c.queue.AddAfter(s.Namespace+"/"+name, c.cfg.BatchPeriod)
	}
}

// shouldMirror: not opted out, not a leader-election lock.
func shouldMirror(ep *corev1.Endpoints) bool {
	if ep == nil || ep.Labels[discoveryv1.LabelSkipMirror] == "true" {
		return false
	}
	_, leader := ep.Annotations[leaderElectionAnnotation]
	return !leader
}

func managedByUs(s *discoveryv1.EndpointSlice) bool {
	return s.Labels[discoveryv1.LabelManagedBy] == ControllerName
}

func endpointsFromDeleteAction(obj any) *corev1.Endpoints {
	switch o := obj.(type) {
	case *corev1.Endpoints:
		return o
	case cache.DeletedFinalStateUnknown:
		ep, _ := o.Obj.(*corev1.Endpoints)
		return ep
	}
	return nil
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

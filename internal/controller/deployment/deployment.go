// Package deployment is the Deployment controller: each pod template of a
// Deployment runs in a ReplicaSet of its own, named
// <deployment>-<pod-template-hash>, and the controller moves replicas from
// the old ReplicaSets to the new one — RollingUpdate within maxSurge and
// maxUnavailable, or Recreate — scales them in proportion when the
// Deployment is resized mid-rollout, keeps revisionHistoryLimit old
// ReplicaSets, numbers revisions for kubectl rollout history/undo, and
// reports status and the Available and Progressing conditions that
// kubectl rollout status reads. It behaves as upstream's
// kube-controller-manager does, in less code.
//
// Every sync recomputes the whole plan from the informer caches (the
// Deployment, its ReplicaSets, their pods) and makes at most one step of
// it; the ReplicaSet controller then makes the pods. There is no other
// state.
package deployment

import (
	"context"
	"errors"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"

	"kite/internal/controller/internal/ctrlutil"
)

// Name is the controller's name: its event source and logger name.
const Name = "deployment-controller"

// DefaultWorkers is how many Deployments sync at once unless configured.
const DefaultWorkers = 5

// maxRetries: a Deployment failing this many syncs in a row is dropped
// from the queue until its next change.
const maxRetries = 15

var controllerKind = appsv1.SchemeGroupVersion.WithKind("Deployment")

// Config wires the controller.
type Config struct {
	// Client talks to the API server.
	Client kubernetes.Interface
	// Informers is the shared informer factory; the controller registers
	// its Deployment, ReplicaSet and Pod informers there. The caller
	// starts it.
	Informers informers.SharedInformerFactory
	// Recorder records events on Deployments. Nil: the controller makes a
	// broadcaster of its own that writes to Client as "deployment-controller".
	Recorder record.EventRecorder
	// Workers is how many Deployments sync at once (default 5).
	Workers int
}

// Validate reports what is missing or wrong in cfg.
func (cfg *Config) Validate() error {
	var errs []error
	if cfg.Client == nil {
		errs = append(errs, errors.New("a client is required"))
	}
	if cfg.Informers == nil {
		errs = append(errs, errors.New("an informer factory is required"))
	}
	if cfg.Workers < 0 {
		errs = append(errs, errors.New("workers must not be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("deployment controller: %w", err)
	}
	return nil
}

// Controller is the Deployment controller.
type Controller struct {
	client    kubernetes.Interface
	dLister   appslisters.DeploymentLister
	rsLister  appslisters.ReplicaSetLister
	podLister corelisters.PodLister
	synced    []cache.InformerSynced
	recorder  record.EventRecorder // nil until Run if Config had none
	queue     workqueue.TypedRateLimitingInterface[string]
	workers   int
	now       func() time.Time
}

// New returns a controller with its informer handlers registered; Run
// starts it.
func New(cfg Config) (*Controller, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	dInf := cfg.Informers.Apps().V1().Deployments()
	rsInf := cfg.Informers.Apps().V1().ReplicaSets()
	podInf := cfg.Informers.Core().V1().Pods()
	c := &Controller{
		client:    cfg.Client,
		dLister:   dInf.Lister(),
		rsLister:  rsInf.Lister(),
		podLister: podInf.Lister(),
		synced:    []cache.InformerSynced{dInf.Informer().HasSynced, rsInf.Informer().HasSynced, podInf.Informer().HasSynced},
		recorder:  cfg.Recorder,
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "deployment"}),
		workers: cfg.Workers,
		now:     time.Now,
	}
	if c.workers == 0 {
		c.workers = DefaultWorkers
	}
	handlers := []struct {
		inf cache.SharedIndexInformer
		h   cache.ResourceEventHandlerFuncs
	}{
		{dInf.Informer(), cache.ResourceEventHandlerFuncs{AddFunc: c.addDeployment, UpdateFunc: c.updateDeployment, DeleteFunc: c.deleteDeployment}},
		{rsInf.Informer(), cache.ResourceEventHandlerFuncs{AddFunc: c.addReplicaSet, UpdateFunc: c.updateReplicaSet, DeleteFunc: c.deleteReplicaSet}},
		{podInf.Informer(), cache.ResourceEventHandlerFuncs{DeleteFunc: c.deletePod}},
	}
	for _, h := range handlers {
		if _, err := h.inf.AddEventHandler(h.h); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Run waits for the caches and works the queue until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	log := klog.FromContext(ctx).WithName(Name)
	ctx = klog.NewContext(ctx, log)
	var stopRec func()
	c.recorder, stopRec = ctrlutil.Recorder(c.recorder, c.client, Name)
	defer stopRec()
	defer c.queue.ShutDown()
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		return nil // ctx ended first
	}
	log.Info("Started", "workers", c.workers)
	ctrlutil.WorkLimited(ctx, c.queue, c.workers, maxRetries, func(ctx context.Context, key string) error {
		err := c.sync(ctx, key)
		if apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
			return nil // nothing to do in a namespace going away
		}
		return err
	})
	return nil
}

func (c *Controller) enqueue(d *appsv1.Deployment) {
	c.queue.Add(d.Namespace + "/" + d.Name)
}

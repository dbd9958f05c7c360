// Package replicaset is the ReplicaSet controller: it keeps as many pods as
// a ReplicaSet asks for, made from its template, named <rs>-<5 random>, and
// owned through a controller ownerReference. It adopts orphan pods its
// selector matches, releases owned pods that stop matching, creates pods in
// slow-start batches (1, 2, 4, …), deletes the pods furthest from serving
// first, and publishes counts and a ReplicaFailure condition in the
// ReplicaSet's status — the behaviour of upstream's kube-controller-manager,
// written small.
//
// The controller is level-triggered: each sync of a ReplicaSet reads the
// informer caches, computes the difference with what the ReplicaSet wants,
// and applies it. The only other state is the expectations (creations and
// deletions asked for but not yet seen in the cache), which stop a second
// sync from acting on a stale cache.
package replicaset

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"

	"kite/internal/controller/internal/ctrlutil"
)

// Name is the controller's name: its event source and logger name.
const Name = "replicaset-controller"

// Defaults for Config.
const (
	DefaultWorkers = 5
	// DefaultBurstReplicas caps the pods created or deleted in one sync.
	DefaultBurstReplicas = 500
)

var controllerKind = appsv1.SchemeGroupVersion.WithKind("ReplicaSet")

// Config wires the controller.
type Config struct {
	// Client talks to the API server.
	Client kubernetes.Interface
	// Informers is the shared informer factory; the controller registers
	// its ReplicaSet and Pod informers there. The caller starts it.
	Informers informers.SharedInformerFactory
	// Recorder records events on ReplicaSets. Nil: the controller makes a
	// broadcaster of its own that writes to Client as "replicaset-controller".
	Recorder record.EventRecorder
	// Workers is how many ReplicaSets sync at once (default 5).
	Workers int
	// BurstReplicas caps the pods created or deleted by one sync (default 500).
	BurstReplicas int
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
	if cfg.Workers < 0 || cfg.BurstReplicas < 0 {
		errs = append(errs, errors.New("workers and burst replicas must not be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("replicaset controller: %w", err)
	}
	return nil
}

// Controller is the ReplicaSet controller.
type Controller struct {
	client   kubernetes.Interface
	rsLister appslisters.ReplicaSetLister
	rsIndex  cache.Indexer
	podIndex cache.Indexer
	synced   []cache.InformerSynced
	recorder record.EventRecorder // nil until Run if Config had none
	queue    workqueue.TypedRateLimitingInterface[string]
	exp      *expectations
	workers  int
	burst    int
	now      func() time.Time
}

// New returns a controller with its informer handlers registered; Run
// starts it.
func New(cfg Config) (*Controller, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	rsInf := cfg.Informers.Apps().V1().ReplicaSets()
	podInf := cfg.Informers.Core().V1().Pods()
	c := &Controller{
		client:   cfg.Client,
		rsLister: rsInf.Lister(),
		rsIndex:  rsInf.Informer().GetIndexer(),
		podIndex: podInf.Informer().GetIndexer(),
		synced:   []cache.InformerSynced{rsInf.Informer().HasSynced, podInf.Informer().HasSynced},
		recorder: cfg.Recorder,
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "replicaset"}),
		exp:     newExpectations(time.Now),
		workers: cmp.Or(cfg.Workers, DefaultWorkers),
		burst:   cmp.Or(cfg.BurstReplicas, DefaultBurstReplicas),
		now:     time.Now,
	}
	if err := addControllerIndex(rsInf.Informer()); err != nil {
		return nil, err
	}
	if err := addControllerIndex(podInf.Informer()); err != nil {
		return nil, err
	}
	if _, err := rsInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: c.addRS, UpdateFunc: c.updateRS, DeleteFunc: c.deleteRS,
	}); err != nil {
		return nil, err
	}
	if _, err := podInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: c.addPod, UpdateFunc: c.updatePod, DeleteFunc: c.deletePod,
	}); err != nil {
		return nil, err
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
	ctrlutil.Work(ctx, c.queue, c.workers, c.sync)
	return nil
}

// controllerIndex indexes objects by "<namespace>/<controller uid>", and
// orphans by "<namespace>/": a ReplicaSet finds its own pods and the pods
// it might adopt without scanning its namespace.
const controllerIndex = "kite.dev/controller-uid"

func addControllerIndex(inf cache.SharedIndexInformer) error {
	if _, ok := inf.GetIndexer().GetIndexers()[controllerIndex]; ok {
		return nil
	}
	return inf.AddIndexers(cache.Indexers{controllerIndex: func(obj any) ([]string, error) {
		m, ok := obj.(metav1.Object)
		if !ok {
			return nil, nil
		}
		return []string{controllerIndexKey(m.GetNamespace(), metav1.GetControllerOfNoCopy(m))}, nil
	}})
}

func controllerIndexKey(namespace string, ref *metav1.OwnerReference) string {
	if ref == nil {
		return namespace + "/"
	}
	return namespace + "/" + string(ref.UID)
}

// Package scheduler binds pending pods to nodes, as upstream's
// kube-scheduler does with its default plugins, smaller.
//
// One pod at a time: a snapshot of the nodes and the pods on them is built
// from the informer caches (plus the pods this scheduler bound whose binding
// the cache does not show yet), every node is filtered (NodeUnschedulable,
// TaintToleration, NodeAffinity, NodePorts, NodeResourcesFit, in upstream's
// order), the feasible nodes are ranked (untolerated PreferNoSchedule
// taints, preferred node affinity, then fewest pods of the pod's
// controller, then fewest pods; ties go to the first node by name), and the
// pod is bound through pods/binding. A pod that fits nowhere gets
// PodScheduled=False/Unschedulable with upstream's message and a
// FailedScheduling event, and is tried again when a node or a bound pod
// changes in a way that could make room, or after UnschedulableRetry.
//
// The pure core (snapshot.go, filter.go, score.go, fiterror.go) has no
// client; scheduler.go, handlers.go and bind.go connect it to the API.
package scheduler

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
)

// Scheduler places pending pods on nodes.
type Scheduler struct {
	cfg   Config
	pods  coreinformers.PodInformer
	nodes coreinformers.NodeInformer
	queue workqueue.TypedRateLimitingInterface[string]

	mu sync.Mutex
	// assumed maps pods bound by this scheduler, whose binding the cache
	// does not show yet, to their nodes, so the next decisions count them.
	assumed map[types.UID]string
	// unschedulable holds the keys of pods that fit nowhere at their last
	// attempt; cluster changes that could make room requeue them.
	unschedulable map[string]bool
}

// New returns a scheduler with its informer handlers registered; start the
// informer factory, then Run.
func New(cfg Config) (*Scheduler, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Scheduler{
		cfg:   cfg,
		pods:  cfg.Informers.Core().V1().Pods(),
		nodes: cfg.Informers.Core().V1().Nodes(),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[string](100*time.Millisecond, 10*time.Second),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "scheduler"}),
		assumed:       map[types.UID]string{},
		unschedulable: map[string]bool{},
	}
	if err := s.addHandlers(); err != nil {
		return nil, fmt.Errorf("scheduler: %w", err)
	}
	return s, nil
}

// Run schedules pods until ctx ends. It waits for the caches first, and
// schedules one pod at a time, so each decision sees the previous ones.
func (s *Scheduler) Run(ctx context.Context) error {
	defer s.queue.ShutDown()
	log := klog.FromContext(ctx).WithName("scheduler")
	ctx = klog.NewContext(ctx, log)
	if !cache.WaitForNamedCacheSync("scheduler", ctx.Done(), s.pods.Informer().HasSynced, s.nodes.Informer().HasSynced) {
		return ctx.Err()
	}
	go func() {
		<-ctx.Done()
		s.queue.ShutDown()
	}()
	log.Info("scheduling", "schedulerName", s.cfg.SchedulerName)
	for s.processNext(ctx) {
	}
	return nil
}

func (s *Scheduler) processNext(ctx context.Context) bool {
	key, quit := s.queue.Get()
	if quit {
		return false
	}
	defer s.queue.Done(key)
	err := s.scheduleOne(ctx, key)
	switch {
	case err == nil:
		s.queue.Forget(key)
	case ctx.Err() != nil:
	default:
		klog.FromContext(ctx).V(2).Info("scheduling failed, retrying", "pod", key, "err", err)
		s.queue.AddRateLimited(key)
	}
	return true
}

// scheduleOne places the pod named key, if it still needs placing.
func (s *Scheduler) scheduleOne(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	pod, err := s.pods.Lister().Pods(ns).Get(name)
	if apierrors.IsNotFound(err) {
		s.setUnschedulable(key, false)
		return nil
	}
	if err != nil {
		return err
	}
	if !s.responsibleFor(pod) || s.isAssumed(pod.UID) {
		s.setUnschedulable(key, false)
		return nil
	}
	nodes, err := s.nodes.Lister().List(labels.Everything())
	if err != nil {
		return err
	}
	pods, err := s.pods.Lister().List(labels.Everything())
	if err != nil {
		return err
	}
	host, fitErr := schedule(pod, buildSnapshot(nodes, pods, s.assumedCopy()))
	if fitErr != nil {
		return s.recordUnschedulable(ctx, key, pod, fitErr)
	}
	return s.bind(ctx, key, pod, host)
}

// responsibleFor reports whether pod waits for this scheduler: not bound,
// not being deleted, not finished, not gated, and naming this scheduler.
func (s *Scheduler) responsibleFor(pod *corev1.Pod) bool {
	name := pod.Spec.SchedulerName
	if name == "" {
		name = corev1.DefaultSchedulerName
	}
	return pod.Spec.NodeName == "" && pod.DeletionTimestamp == nil && !terminal(pod) &&
		len(pod.Spec.SchedulingGates) == 0 && name == s.cfg.SchedulerName
}

func (s *Scheduler) isAssumed(uid types.UID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.assumed[uid]
	return ok
}

func (s *Scheduler) assume(uid types.UID, node string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.assumed[uid] = node
}

func (s *Scheduler) forgetAssumed(uid types.UID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.assumed, uid)
}

func (s *Scheduler) assumedCopy() map[types.UID]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[types.UID]string, len(s.assumed))
	for k, v := range s.assumed {
		out[k] = v
	}
	return out
}

func (s *Scheduler) setUnschedulable(key string, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if on {
		s.unschedulable[key] = true
	} else {
		delete(s.unschedulable, key)
	}
}

func (s *Scheduler) isUnschedulable(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.unschedulable[key]
}

// retryUnschedulable queues every pod that fit nowhere at its last attempt.
func (s *Scheduler) retryUnschedulable() {
	s.mu.Lock()
	keys := make([]string, 0, len(s.unschedulable))
	for k := range s.unschedulable {
		keys = append(keys, k)
	}
	s.mu.Unlock()
	for _, k := range keys {
		s.queue.Add(k)
	}
}

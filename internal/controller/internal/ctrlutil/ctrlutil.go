// Package ctrlutil holds the plumbing kite's controllers share: the worker
// loop over a rate-limited workqueue, and a default event recorder.
// Everything that decides anything lives in the controllers themselves.
package ctrlutil

import (
	"context"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
)

// SyncFunc reconciles one key. An error requeues the key with backoff.
type SyncFunc[T comparable] func(ctx context.Context, key T) error

// Work runs workers goroutines that take keys from q and sync them until ctx
// ends; it shuts the queue down and returns when all workers have stopped.
// A failed key is retried with the queue's rate limiter, without a retry
// limit: the controllers are level-triggered, so retrying is always safe.
func Work[T comparable](ctx context.Context, q workqueue.TypedRateLimitingInterface[T], workers int, syncKey SyncFunc[T]) {
	WorkLimited(ctx, q, workers, 0, syncKey)
}

// WorkLimited is Work that drops a key after maxRetries failed syncs in a
// row (0: never), until it is added again: upstream's rule for controllers
// whose objects can fail forever (a Deployment with a bad template).
func WorkLimited[T comparable](ctx context.Context, q workqueue.TypedRateLimitingInterface[T], workers, maxRetries int, syncKey SyncFunc[T]) {
	log := klog.FromContext(ctx)
	go func() {
		<-ctx.Done()
		q.ShutDown()
	}()
	var wg sync.WaitGroup
	for range max(workers, 1) {
		wg.Go(func() {
			for {
				key, quit := q.Get()
				if quit {
					return
				}
				err := syncKey(ctx, key)
				switch {
				case err == nil:
					q.Forget(key)
				case ctx.Err() != nil:
				case maxRetries > 0 && q.NumRequeues(key) >= maxRetries:
					log.Error(err, "sync keeps failing; dropping the key until it changes", "key", key)
					q.Forget(key)
				default:
					log.V(2).Info("sync failed, will retry", "key", key, "retries", q.NumRequeues(key), "err", err.Error())
					q.AddRateLimited(key)
				}
				q.Done(key)
			}
		})
	}
	wg.Wait()
}

// NewQueue is a named rate-limited queue whose per-key backoff starts at
// base and doubles up to maxDelay.
func NewQueue[T comparable](name string, base, maxDelay time.Duration) workqueue.TypedRateLimitingInterface[T] {
	return workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.NewTypedItemExponentialFailureRateLimiter[T](base, maxDelay),
		workqueue.TypedRateLimitingQueueConfig[T]{Name: name})
}

// Recorder returns rec if set; otherwise a recorder that writes events to
// the API as component, and a function that stops it.
func Recorder(rec record.EventRecorder, client kubernetes.Interface, component string) (record.EventRecorder, func()) {
	if rec != nil {
		return rec, func() {}
	}
	b := record.NewBroadcaster()
	b.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
	return b.NewRecorder(scheme.Scheme, corev1.EventSource{Component: component}), b.Shutdown
}

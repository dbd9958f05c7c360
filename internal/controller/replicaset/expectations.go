package replicaset

import (
	"sync"
	"time"
)

// expectationsTimeout: expectations older than this are treated as met, so
// that a lost watch event delays a ReplicaSet at most this long.
const expectationsTimeout = 5 * time.Minute

// expectations remember, per ReplicaSet key, the pod creations and
// deletions the controller asked for and has not yet seen in its pod
// informer. Until they are seen, the ReplicaSet is not resized again: the
// cache would still show the old pod count and the controller would create
// or delete twice. This is the only state the controller keeps besides the
// informer caches, and losing it (a restart) is safe.
type expectations struct {
	mu  sync.Mutex
	now func() time.Time
	m   map[string]*expectation
}

type expectation struct {
	adds int                 // creations not yet observed
	dels map[string]struct{} // pod keys whose deletion is not yet observed
	at   time.Time
}

func newExpectations(now func() time.Time) *expectations {
	return &expectations{now: now, m: map[string]*expectation{}}
}

// satisfied reports whether the ReplicaSet key may be resized: nothing is
// pending, or what is pending has timed out.
func (e *expectations) satisfied(key string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	x, ok := e.m[key]
	if !ok {
		return true
	}
	return (x.adds <= 0 && len(x.dels) == 0) || e.now().Sub(x.at) > expectationsTimeout
}

// expectCreations records that n pods are about to be created for key.
func (e *expectations) expectCreations(key string, n int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.m[key] = &expectation{adds: n, at: e.now()}
}

// expectDeletions records that the pods with these keys are about to be
// deleted for key.
func (e *expectations) expectDeletions(key string, podKeys []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	dels := make(map[string]struct{}, len(podKeys))
	for _, k := range podKeys {
		dels[k] = struct{}{}
	}
	e.m[key] = &expectation{dels: dels, at: e.now()}
}

// creationObserved counts one pod of key created (or one creation that
// will never happen).
func (e *expectations) creationObserved(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if x, ok := e.m[key]; ok {
		x.adds--
	}
}

// deletionObserved notes that pod podKey of key is gone or going. A pod
// counts once, whether seen first with a deletion timestamp or deleted.
func (e *expectations) deletionObserved(key, podKey string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if x, ok := e.m[key]; ok {
		delete(x.dels, podKey)
	}
}

// forget drops what is expected for key (the ReplicaSet is gone).
func (e *expectations) forget(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.m, key)
}

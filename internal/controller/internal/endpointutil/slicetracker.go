package endpointutil

import (
	"strconv"
	"sync"

	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"
)

// SliceTracker remembers, per Service, the version of every EndpointSlice
// a controller wrote and the slices it deleted, as upstream's
// EndpointSliceTracker. It answers two questions: is the informer cache
// behind our own writes (then syncing now would act on old data and, for
// example, create a slice twice), and was an observed change made by
// someone else (then the Service needs a sync)?
//
// Upstream compares metadata.generation. kite compares resourceVersion,
// which kite's storage makes the etcd mod revision of the object, so it
// grows with every write to it; a resourceVersion that is not a number
// falls back to the generation.
type SliceTracker struct {
	mu        sync.Mutex
	byService map[types.NamespacedName]map[types.UID]trackedSlice
}

type trackedSlice struct {
	version  uint64
	deleting bool
}

// NewSliceTracker returns an empty tracker.
func NewSliceTracker() *SliceTracker {
	return &SliceTracker{byService: map[types.NamespacedName]map[types.UID]trackedSlice{}}
}

func sliceVersion(s *discoveryv1.EndpointSlice) uint64 {
	if v, err := strconv.ParseUint(s.ResourceVersion, 10, 64); err == nil {
		return v
	}
	return uint64(s.Generation)
}

func serviceOf(s *discoveryv1.EndpointSlice) (types.NamespacedName, bool) {
	name, ok := s.Labels[discoveryv1.LabelServiceName]
	return types.NamespacedName{Namespace: s.Namespace, Name: name}, ok && name != ""
}

// Update records a slice as written by us (from the API's answer).
func (t *SliceTracker) Update(s *discoveryv1.EndpointSlice) {
	key, ok := serviceOf(s)
	if !ok {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	m := t.byService[key]
	if m == nil {
		m = map[types.UID]trackedSlice{}
		t.byService[key] = m
	}
	m[s.UID] = trackedSlice{version: sliceVersion(s)}
}

// ExpectDeletion records that we deleted a slice.
func (t *SliceTracker) ExpectDeletion(s *discoveryv1.EndpointSlice) {
	key, ok := serviceOf(s)
	if !ok {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	m := t.byService[key]
	if m == nil {
		m = map[types.UID]trackedSlice{}
		t.byService[key] = m
	}
	m[s.UID] = trackedSlice{deleting: true}
}

// Has reports whether the slice is tracked.
func (t *SliceTracker) Has(s *discoveryv1.EndpointSlice) bool {
	key, ok := serviceOf(s)
	if !ok {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	_, has := t.byService[key][s.UID]
	return has
}

// ShouldSync reports whether an observed slice differs from what we wrote:
// unknown to us, or newer.
func (t *SliceTracker) ShouldSync(s *discoveryv1.EndpointSlice) bool {
	key, ok := serviceOf(s)
	if !ok {
		return true
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	tr, has := t.byService[key][s.UID]
	return !has || (!tr.deleting && sliceVersion(s) > tr.version)
}

// HandleDeletion forgets a deleted slice and reports whether we expected
// the deletion.
func (t *SliceTracker) HandleDeletion(s *discoveryv1.EndpointSlice) bool {
	key, ok := serviceOf(s)
	if !ok {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	m := t.byService[key]
	tr, has := m[s.UID]
	if has {
		delete(m, s.UID)
		if len(m) == 0 {
			delete(t.byService, key)
		}
	}
	return has && tr.deleting
}

// Stale reports whether the cached slices of a Service are behind our own
// writes: a slice we wrote is missing or older, or one we deleted is still
// there.
func (t *SliceTracker) Stale(namespace, name string, cached []*discoveryv1.EndpointSlice) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	m := t.byService[types.NamespacedName{Namespace: namespace, Name: name}]
	if len(m) == 0 {
		return false
	}
	seen := make(map[types.UID]bool, len(cached))
	for _, s := range cached {
		seen[s.UID] = true
		if tr, ok := m[s.UID]; ok && (tr.deleting || tr.version > sliceVersion(s)) {
			return true
		}
	}
	for uid, tr := range m {
		if !tr.deleting && !seen[uid] {
			return true
		}
	}
	return false
}

// DeleteService forgets a Service.
func (t *SliceTracker) DeleteService(namespace, name string) {
	t.mu.Lock()
	delete(t.byService, types.NamespacedName{Namespace: namespace, Name: name})
	t.mu.Unlock()
}

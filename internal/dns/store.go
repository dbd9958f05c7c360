package dns

import (
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
)

// Store indexes the slim records for lookup. Writers (the informer
// handlers) replace a Service's records whole; readers (every query) take
// a read lock for a few map lookups. It is safe for concurrent use.
type Store struct {
	mu sync.RWMutex
	// services by namespace, then name.
	services map[string]map[string]*serviceEntry
	// ptr holds the reverse names of cluster IPs and of headless
	// endpoints: which Service (and endpoint label) an address belongs to.
	ptr map[netip.Addr][]ptrRef
	// gen counts the writes; an answer computed at one generation is
	// good until the next (the fast path's cache checks it).
	gen atomic.Uint64
}

// serviceEntry is one Service and its endpoints, which may arrive before
// the Service does (slices are watched separately).
type serviceEntry struct {
	svc    *Service                // nil until the Service is seen
	slices map[string][]Endpoint   // by EndpointSlice name
	ready  []Endpoint              // the ready endpoints of all slices, one per address
	byHost map[string][]netip.Addr // ready endpoints by label (hostname or dashed IP)
	ptrs   []netip.Addr            // the addresses this entry put in Store.ptr
}

// ptrRef is one reverse name: <label.>name.namespace.svc.<zone>.
type ptrRef struct {
	namespace, name, label string
}

// NewStore returns an empty store.
func NewStore() *Store {
	return &Store{services: map[string]map[string]*serviceEntry{}, ptr: map[netip.Addr][]ptrRef{}}
}

// SetService adds or replaces a Service's records.
func (s *Store) SetService(svc Service) {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.gen.Add(1)
	e := s.entry(svc.Namespace, svc.Name, true)
	e.svc = &svc
	s.rebuild(svc.Namespace, svc.Name, e)
}

// DeleteService removes a Service's records (its endpoints stay until
// their slices go, as the API deletes those separately).
func (s *Store) DeleteService(namespace, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.gen.Add(1)
	if e := s.entry(namespace, name, false); e != nil {
		e.svc = nil
		s.rebuild(namespace, name, e)
	}
}

// SetEndpoints adds or replaces the endpoints of one EndpointSlice of a
// Service.
func (s *Store) SetEndpoints(namespace, service, slice string, eps []Endpoint) {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.gen.Add(1)
	e := s.entry(namespace, service, true)
	if e.slices == nil {
		e.slices = map[string][]Endpoint{}
	}
	e.slices[slice] = eps
	s.rebuild(namespace, service, e)
}

// DeleteEndpoints removes one EndpointSlice's endpoints.
func (s *Store) DeleteEndpoints(namespace, service, slice string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.gen.Add(1)
	if e := s.entry(namespace, service, false); e != nil {
		delete(e.slices, slice)
		s.rebuild(namespace, service, e)
	}
}

// Generation changes with every write to the store.
func (s *Store) Generation() uint64 { return s.gen.Load() }

// Len is the number of Services in the store.
func (s *Store) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	n := 0
	for _, m := range s.services {
		for _, e := range m {
			if e.svc != nil {
				n++
			}
		}
	}
	return n
}

func (s *Store) entry(namespace, name string, create bool) *serviceEntry {
	m := s.services[namespace]
	if m == nil {
		if !create {
			return nil
		}
		m = map[string]*serviceEntry{}
		s.services[namespace] = m
	}
	e := m[name]
	if e == nil && create {
		e = &serviceEntry{}
		m[name] = e
	}
	return e
}

// rebuild recomputes an entry's derived indexes and its reverse names,
// and forgets it when nothing is left. Called with mu held for writing.
func (s *Store) rebuild(namespace, name string, e *serviceEntry) {
	for _, a := range e.ptrs {
		refs := slices.DeleteFunc(s.ptr[a], func(r ptrRef) bool { return r.namespace == namespace && r.name == name })
		if len(refs) == 0 {
			delete(s.ptr, a)
		} else {
			s.ptr[a] = refs
		}
	}
	e.ptrs, e.ready, e.byHost = nil, nil, nil
	if e.svc == nil && len(e.slices) == 0 {
		delete(s.services[namespace], name)
		if len(s.services[namespace]) == 0 {
			delete(s.services, namespace)
		}
		return
	}
	if e.svc == nil {
		return // endpoints without their Service answer nothing yet
	}
	switch e.svc.Kind {
	case kindClusterIP:
		for _, a := range e.svc.ClusterIPs {
			s.addPTR(e, a, ptrRef{namespace: namespace, name: name})
		}
	case kindHeadless:
		// One record per address even when two slices list it (they may
		// briefly, while the controller moves an endpoint).
		seen := map[netip.Addr]bool{}
		for _, sliceName := range sortedKeys(e.slices) {
			for _, ep := range e.slices[sliceName] {
				if (!ep.Ready && !e.svc.PublishNotReady) || seen[ep.Addr] {
					continue
				}
				seen[ep.Addr] = true
				e.ready = append(e.ready, ep)
			}
		}
		if len(e.ready) > 0 {
			e.byHost = make(map[string][]netip.Addr, len(e.ready))
		}
		for _, ep := range e.ready {
			l := endpointLabel(ep)
			e.byHost[l] = append(e.byHost[l], ep.Addr)
			s.addPTR(e, ep.Addr, ptrRef{namespace: namespace, name: name, label: l})
		}
	}
}

func (s *Store) addPTR(e *serviceEntry, a netip.Addr, r ptrRef) {
	s.ptr[a] = append(s.ptr[a], r)
	e.ptrs = append(e.ptrs, a)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

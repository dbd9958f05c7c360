package ipam

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
)

// MemStore is a Store in memory, for tests. Its fields may be inspected
// when no allocator is using it.
type MemStore struct {
	mu       sync.Mutex
	Held     map[netip.Addr]Attachment
	Last     netip.Addr
	Locked   bool
	LockErr  error // returned by Lock when set, e.g. to simulate ErrBusy
	locks    int
	unlocked int
}

var _ Store = (*MemStore)(nil)

// NewMemStore returns an empty MemStore.
func NewMemStore() *MemStore { return &MemStore{Held: map[netip.Addr]Attachment{}} }

func (s *MemStore) Lock(ctx context.Context) error {
	if s.LockErr != nil {
		return s.LockErr
	}
	s.mu.Lock()
	s.Locked = true
	s.locks++
	return nil
}

func (s *MemStore) Unlock() error {
	if !s.Locked {
		return fmt.Errorf("memstore: unlock without lock")
	}
	s.Locked = false
	s.unlocked++
	s.mu.Unlock()
	return nil
}

// Balanced reports whether every Lock was matched by an Unlock.
func (s *MemStore) Balanced() bool { return !s.Locked && s.locks == s.unlocked }

func (s *MemStore) Reservations() (map[netip.Addr]Attachment, error) {
	out := make(map[netip.Addr]Attachment, len(s.Held))
	for k, v := range s.Held {
		out[k] = v
	}
	return out, nil
}

func (s *MemStore) Reserve(addr netip.Addr, a Attachment) error {
	if h, ok := s.Held[addr]; ok {
		return fmt.Errorf("%s is already reserved by %s", addr, h)
	}
	s.Held[addr] = a
	s.Last = addr
	return nil
}

func (s *MemStore) Release(addr netip.Addr) error {
	delete(s.Held, addr)
	return nil
}

func (s *MemStore) LastReserved() (netip.Addr, error) { return s.Last, nil }

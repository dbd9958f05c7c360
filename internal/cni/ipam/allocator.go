package ipam

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"
)

// ErrExhausted means every address of the range is reserved.
var ErrExhausted = errors.New("no free address")

// ErrBusy means the store's lock could not be taken in time: another
// invocation holds it. Trying again later may succeed.
var ErrBusy = errors.New("address store is busy")

// Attachment identifies what holds an address: one interface of one
// container, CNI's (CNI_CONTAINERID, CNI_IFNAME).
type Attachment struct {
	ContainerID string
	IfName      string
}

func (a Attachment) String() string { return a.ContainerID + "/" + a.IfName }

// Store keeps reservations. Lock serialises every user of the store, across
// processes for a store on disk; the other methods are called only with the
// lock held.
type Store interface {
	// Lock takes the store's lock, waiting at most until ctx is done; then
	// it fails with an error wrapping ErrBusy.
	Lock(ctx context.Context) error
	Unlock() error
	// Reservations returns every reserved address with its holder,
	// including addresses outside the current range.
	Reservations() (map[netip.Addr]Attachment, error)
	// Reserve records that a holds addr and remembers addr as the last one
	// reserved. It fails if addr is already reserved.
	Reserve(addr netip.Addr, a Attachment) error
	// Release forgets addr's reservation. An address not reserved is not
	// an error.
	Release(addr netip.Addr) error
	// LastReserved is the address most recently reserved, or the zero Addr.
	LastReserved() (netip.Addr, error)
}

// Allocator hands out the addresses of a Range, keeping reservations in a
// Store.
type Allocator struct {
	Range Range
	Store Store
}

// Allocate reserves an address for a. If a already holds an address of the
// range it gets that one back with existing = true (a retried ADD), and the
// caller must not release it when its own work fails. Otherwise the next
// free address after the last one reserved is reserved; when there is none
// the error wraps ErrExhausted.
func (al *Allocator) Allocate(ctx context.Context, a Attachment) (addr netip.Addr, existing bool, err error) {
	err = al.locked(ctx, func() error {
		held, err := al.Store.Reservations()
		if err != nil {
			return err
		}
		for ip, h := range held {
			if h == a && al.Range.Contains(ip) {
				addr, existing = ip, true
				return nil
			}
		}
		last, err := al.Store.LastReserved()
		if err != nil {
			return err
		}
		next, ok := Next(al.Range, last, func(ip netip.Addr) bool { _, used := held[ip]; return used })
		if !ok {
			return fmt.Errorf("%w in %s: all %d pod addresses are in use", ErrExhausted, al.Range, al.Range.Size())
		}
		if err := al.Store.Reserve(next, a); err != nil {
			return err
		}
		addr = next
		return nil
	})
	return addr, existing, err
}

// Lookup returns the address a holds in the range, if any.
func (al *Allocator) Lookup(ctx context.Context, a Attachment) (addr netip.Addr, ok bool, err error) {
	err = al.locked(ctx, func() error {
		held, err := al.Store.Reservations()
		if err != nil {
			return err
		}
		for ip, h := range held {
			if h == a && al.Range.Contains(ip) {
				addr, ok = ip, true
			}
		}
		return nil
	})
	return addr, ok, err
}

// Release frees every address a holds, in the range or not, and returns
// them. Releasing an attachment that holds nothing is not an error.
func (al *Allocator) Release(ctx context.Context, a Attachment) (freed []netip.Addr, err error) {
	err = al.locked(ctx, func() error {
		return al.releaseWhere(&freed, func(h Attachment) bool { return h == a })
	})
	return freed, err
}

// GC frees every address whose holder is not in valid and returns them.
func (al *Allocator) GC(ctx context.Context, valid []Attachment) (freed []netip.Addr, err error) {
	keep := make(map[Attachment]bool, len(valid))
	for _, a := range valid {
		keep[a] = true
	}
	err = al.locked(ctx, func() error {
		return al.releaseWhere(&freed, func(h Attachment) bool { return !keep[h] })
	})
	return freed, err
}

// Used returns how many addresses of the range are reserved.
func (al *Allocator) Used(ctx context.Context) (n int, err error) {
	err = al.locked(ctx, func() error {
		held, err := al.Store.Reservations()
		for ip := range held {
			if al.Range.Contains(ip) {
				n++
			}
		}
		return err
	})
	return n, err
}

func (al *Allocator) releaseWhere(freed *[]netip.Addr, match func(Attachment) bool) error {
	held, err := al.Store.Reservations()
	if err != nil {
		return err
	}
	var errs []error
	for ip, h := range held {
		if !match(h) {
			continue
		}
		if err := al.Store.Release(ip); err != nil {
			errs = append(errs, err)
			continue
		}
		*freed = append(*freed, ip)
	}
	sort.Slice(*freed, func(i, j int) bool { return (*freed)[i].Less((*freed)[j]) })
	return errors.Join(errs...)
}

func (al *Allocator) locked(ctx context.Context, fn func() error) error {
	if err := al.Store.Lock(ctx); err != nil {
		return err
	}
	err := fn()
	if uerr := al.Store.Unlock(); uerr != nil && err == nil {
		err = uerr
	}
	return err
}

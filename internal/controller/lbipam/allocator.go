package lbipam

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// PortProto is one port a Service listens on at its ingress IP.
type PortProto struct {
	Port     int32
	Protocol string // TCP, UDP, SCTP
}

func (p PortProto) String() string { return fmt.Sprintf("%d/%s", p.Port, p.Protocol) }

// Request is what one Service asks of the allocator.
type Request struct {
	// Service is the key (namespace/name) the address is held under.
	Service string
	// IP, if valid, is the only address the Service accepts.
	IP netip.Addr
	// Family is the address family wanted when IP is not given: 4 or 6.
	Family int
	// SharingKey, if not empty, lets Services with the same key share one
	// address when their ports do not clash.
	SharingKey string
	Ports      []PortProto
}

// Errors the allocator returns; test with errors.Is.
var (
	ErrNotInPool = errors.New("not in the pool")
	ErrInUse     = errors.New("already in use")
	ErrPortClash = errors.New("port clash")
	ErrExhausted = errors.New("pool exhausted")
)

// user is one Service holding an address.
type user struct {
	sharingKey string
	ports      []PortProto
}

// Allocator hands out pool addresses to Services. It is pure: the
// controller feeds it what the Services' status says and what they ask
// for; it never talks to Kubernetes. Not safe for concurrent use.
type Allocator struct {
	pool  Pool
	byIP  map[netip.Addr]map[string]user // address → Service key → its claim
	bySvc map[string]netip.Addr
}

// NewAllocator is an empty allocator over pool.
func NewAllocator(pool Pool) *Allocator {
	return &Allocator{pool: pool, byIP: map[netip.Addr]map[string]user{}, bySvc: map[string]netip.Addr{}}
}

// Pool is the allocator's pool.
func (a *Allocator) Pool() Pool { return a.pool }

// IPOf is the address the Service holds, if any.
func (a *Allocator) IPOf(svc string) (netip.Addr, bool) {
	ip, ok := a.bySvc[svc]
	return ip, ok
}

// Users lists the Services holding ip, sorted.
func (a *Allocator) Users(ip netip.Addr) []string {
	var out []string
	for k := range a.byIP[ip] {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// Release frees whatever the Service holds. Releasing nothing is fine.
func (a *Allocator) Release(svc string) {
	ip, ok := a.bySvc[svc]
	if !ok {
		return
	}
	delete(a.bySvc, svc)
	delete(a.byIP[ip], svc)
	if len(a.byIP[ip]) == 0 {
		delete(a.byIP, ip)
	}
}

// Assign gives ip to the request's Service if the pool has it and it is
// free or shareable; it first releases what the Service held, so it is
// also how a Service re-validates its address after a change.
func (a *Allocator) Assign(req Request, ip netip.Addr) error {
	a.Release(req.Service)
	if err := a.check(req, ip); err != nil {
		return err
	}
	a.take(req, ip)
	return nil
}

// Allocate gives the Service an address: the one it asks for (Request.IP),
// else its current one if still valid (current), else an address already
// shared under its sharing key where its ports fit, else the lowest free
// address of its family. On error the Service holds nothing.
func (a *Allocator) Allocate(req Request, current netip.Addr) (netip.Addr, error) {
	if req.IP.IsValid() {
		return req.IP, a.Assign(req, req.IP)
	}
	a.Release(req.Service)
	if current.IsValid() && current.BitLen() == familyBits(req.Family) && a.check(req, current) == nil {
		a.take(req, current)
		return current, nil
	}
	if req.SharingKey != "" {
		for _, ip := range a.sharedIPs() {
			if ip.BitLen() == familyBits(req.Family) && a.check(req, ip) == nil {
				a.take(req, ip)
				return ip, nil
			}
		}
	}
	for _, r := range a.pool.ranges {
		if r.first.BitLen() != familyBits(req.Family) {
			continue
		}
		// Bounded by the number of addresses in use: each step past one
		// that is taken, and a free one ends the walk.
		for ip := r.first; ip.IsValid() && r.contains(ip); ip = ip.Next() {
			if _, used := a.byIP[ip]; !used {
				a.take(req, ip)
				return ip, nil
			}
		}
	}
	return netip.Addr{}, fmt.Errorf("no free IPv%d address in pool %s: %w", req.Family, a.pool, ErrExhausted)
}

func familyBits(f int) int {
	if f == 6 {
		return 128
	}
	return 32
}

// sharedIPs are the addresses in use, sorted, for a deterministic choice.
func (a *Allocator) sharedIPs() []netip.Addr {
	out := make([]netip.Addr, 0, len(a.byIP))
	for ip := range a.byIP {
		out = append(out, ip)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// check says why req cannot have ip, or nil.
func (a *Allocator) check(req Request, ip netip.Addr) error {
	if !a.pool.Contains(ip) {
		return fmt.Errorf("%s is %w %s", ip, ErrNotInPool, a.pool)
	}
	users := a.byIP[ip]
	if len(users) == 0 {
		return nil
	}
	names := a.Users(ip)
	for _, name := range names {
		u := users[name]
		if req.SharingKey == "" || u.sharingKey != req.SharingKey {
			return fmt.Errorf("%s is %w by %s (sharing needs the same %s annotation on both)",
				ip, ErrInUse, name, AnnotationAllowSharedIP)
		}
		for _, p := range req.Ports {
			if slices.Contains(u.ports, p) {
				return fmt.Errorf("%s: %w: %s %s on it already", ip, ErrPortClash, name, p)
			}
		}
	}
	return nil
}

func (a *Allocator) take(req Request, ip netip.Addr) {
	if a.byIP[ip] == nil {
		a.byIP[ip] = map[string]user{}
	}
	a.byIP[ip][req.Service] = user{sharingKey: req.SharingKey, ports: slices.Clone(req.Ports)}
	a.bySvc[req.Service] = ip
}

// String lists the allocations, for tests and logs.
func (a *Allocator) String() string {
	var b strings.Builder
	for _, ip := range a.sharedIPs() {
		fmt.Fprintf(&b, "%s %s\n", ip, strings.Join(a.Users(ip), ","))
	}
	return b.String()
}

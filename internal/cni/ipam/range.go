// Package ipam is the kite CNI plugin's address allocator: it hands out the
// addresses of one IPv4 subnet (the node's podCIDR) to attachments, one
// address per (container ID, interface name), and remembers them in a
// Store.
//
// The allocator is pure logic over a Store. The real store keeps one file
// per address on disk under a lock (see DiskStore), so that many plugin
// processes running at once never hand out one address twice; MemStore is
// the in-memory store for tests.
//
// Allocation is sequential: the next address after the last one reserved,
// wrapping around at the end of the range, so an address that was just
// released is not handed out again until the range has come round. The
// network, gateway and broadcast addresses are never handed out.
package ipam

import (
	"fmt"
	"net/netip"
)

// Range is the set of addresses an allocator hands out: the addresses of
// Subnet less its network address, its broadcast address and Gateway.
type Range struct {
	Subnet  netip.Prefix
	Gateway netip.Addr
}

// NewRange checks that subnet is an IPv4 network address with at least one
// address to hand out besides the gateway, and that gateway lies inside it
// and is neither its network nor its broadcast address. An invalid gateway
// (the zero Addr) means the first address of the subnet.
func NewRange(subnet netip.Prefix, gateway netip.Addr) (Range, error) {
	if !subnet.IsValid() || !subnet.Addr().Is4() {
		return Range{}, fmt.Errorf("subnet %s: only IPv4 subnets are supported", subnet)
	}
	if subnet.Masked() != subnet {
		return Range{}, fmt.Errorf("subnet %s is not a network address (did you mean %s?)", subnet, subnet.Masked())
	}
	if subnet.Bits() > 30 {
		return Range{}, fmt.Errorf("subnet %s is too small: it needs a network, a gateway, a broadcast and at least one pod address (/30 or larger)", subnet)
	}
	r := Range{Subnet: subnet}
	if !gateway.IsValid() {
		gateway = r.network().Next()
	}
	if !subnet.Contains(gateway) || gateway == r.network() || gateway == r.broadcast() {
		return Range{}, fmt.Errorf("gateway %s is not a host address of subnet %s", gateway, subnet)
	}
	r.Gateway = gateway
	return r, nil
}

func (r Range) network() netip.Addr { return r.Subnet.Addr() }

func (r Range) broadcast() netip.Addr {
	a := r.Subnet.Addr().As4()
	hostBits := 32 - r.Subnet.Bits()
	n := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	n |= uint32(1)<<hostBits - 1
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
}

// Contains reports whether a is an address the range hands out.
func (r Range) Contains(a netip.Addr) bool {
	return r.Subnet.Contains(a) && a != r.network() && a != r.broadcast() && a != r.Gateway
}

// Size is how many addresses the range hands out.
func (r Range) Size() int {
	return 1<<(32-r.Subnet.Bits()) - 3
}

// GatewayPrefix is the gateway with the subnet's prefix length, the way it
// is configured on the bridge (e.g. 10.244.1.1/24).
func (r Range) GatewayPrefix() netip.Prefix {
	return netip.PrefixFrom(r.Gateway, r.Subnet.Bits())
}

// String is the subnet, and the gateway when it is not the first address.
func (r Range) String() string {
	if r.Gateway == r.network().Next() {
		return r.Subnet.String()
	}
	return fmt.Sprintf("%s (gateway %s)", r.Subnet, r.Gateway)
}

// Next returns the first address of r after last, in order and wrapping
// around, for which inUse is false; ok is false when every address of the
// range is in use. A last outside the range starts at the range's first
// address.
func Next(r Range, last netip.Addr, inUse func(netip.Addr) bool) (a netip.Addr, ok bool) {
	first := r.network().Next()
	start := first
	if r.Subnet.Contains(last) && last != r.broadcast() {
		start = last.Next()
	}
	a = start
	for range 1 << (32 - r.Subnet.Bits()) {
		if a == r.broadcast() {
			a = first
		}
		if r.Contains(a) && !inUse(a) {
			return a, true
		}
		a = a.Next()
	}
	return netip.Addr{}, false
}

package nodeipam

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// subnetRange is a cluster CIDR cut into node subnets of one prefix
// length, numbered from 0 at the bottom of the range. Pure: no client, no
// state.
type subnetRange struct {
	cluster netip.Prefix
	mask    int
}

func newSubnetRange(cluster netip.Prefix, mask int) (subnetRange, error) {
	cluster = cluster.Masked()
	if mask < cluster.Bits() || mask > cluster.Addr().BitLen() {
		return subnetRange{}, fmt.Errorf("node mask size /%d does not fit cluster CIDR %s (between /%d and /%d)", mask, cluster, cluster.Bits(), cluster.Addr().BitLen())
	}
	if mask-cluster.Bits() > maxSubnetBits {
		return subnetRange{}, fmt.Errorf("cluster CIDR %s holds more than 2^%d /%d subnets: use a shorter node mask or a longer cluster prefix", cluster, maxSubnetBits, mask)
	}
	return subnetRange{cluster: cluster, mask: mask}, nil
}

// count is how many node subnets the range holds.
func (r subnetRange) count() int { return 1 << (r.mask - r.cluster.Bits()) }

// hostBits is the number of address bits inside one node subnet.
func (r subnetRange) hostBits() uint { return uint(r.cluster.Addr().BitLen() - r.mask) }

// subnet is the i-th node subnet.
func (r subnetRange) subnet(i int) netip.Prefix {
	a := toU128(r.cluster.Addr()).add(u128{lo: uint64(i)}.shl(r.hostBits()))
	return netip.PrefixFrom(a.addr(r.cluster.Addr().Is4()), r.mask)
}

// span returns the indexes [first, last] of the node subnets that p
// covers or falls in; ok is false if p is not inside the cluster CIDR (or
// of the other IP family).
func (r subnetRange) span(p netip.Prefix) (first, last int, ok bool) {
	p = p.Masked()
	if p.Addr().Is4() != r.cluster.Addr().Is4() || p.Bits() < r.cluster.Bits() || !r.cluster.Contains(p.Addr()) {
		return 0, 0, false
	}
	first = r.index(p.Addr())
	if p.Bits() >= r.mask {
		return first, first, true
	}
	return first, first + 1<<(r.mask-p.Bits()) - 1, true
}

// index is the number of the node subnet holding a (inside the range).
func (r subnetRange) index(a netip.Addr) int {
	return int(toU128(a).sub(toU128(r.cluster.Addr())).shr(r.hostBits()).lo)
}

// overlapping returns the indexes of the node subnets that share any
// address with p: all of them if p contains the cluster CIDR.
func (r subnetRange) overlapping(p netip.Prefix) []int {
	p = p.Masked()
	if !p.Overlaps(r.cluster) {
		return nil
	}
	first, last := 0, r.count()-1
	if p.Bits() > r.cluster.Bits() {
		first, last, _ = r.span(p)
	}
	out := make([]int, 0, last-first+1)
	for i := first; i <= last; i++ {
		out = append(out, i)
	}
	return out
}

// lowestFree returns the lowest subnet index for which taken is false.
func (r subnetRange) lowestFree(taken func(int) bool) (int, bool) {
	for i := range r.count() {
		if !taken(i) {
			return i, true
		}
	}
	return 0, false
}

// u128 is an IPv6-sized unsigned integer; IPv4 addresses use its low 32
// bits (through their IPv4-mapped form, whose upper bits never change
// inside a range).
type u128 struct{ hi, lo uint64 }

func toU128(a netip.Addr) u128 {
	b := a.As16()
	return u128{hi: binary.BigEndian.Uint64(b[:8]), lo: binary.BigEndian.Uint64(b[8:])}
}

func (u u128) addr(is4 bool) netip.Addr {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], u.hi)
	binary.BigEndian.PutUint64(b[8:], u.lo)
	a := netip.AddrFrom16(b)
	if is4 {
		return a.Unmap()
	}
	return a
}

func (u u128) add(v u128) u128 {
	lo := u.lo + v.lo
	carry := uint64(0)
	if lo < u.lo {
		carry = 1
	}
	return u128{hi: u.hi + v.hi + carry, lo: lo}
}

func (u u128) sub(v u128) u128 {
	lo := u.lo - v.lo
	borrow := uint64(0)
	if u.lo < v.lo {
		borrow = 1
	}
	return u128{hi: u.hi - v.hi - borrow, lo: lo}
}

func (u u128) shl(n uint) u128 {
	switch {
	case n == 0:
		return u
	case n >= 128:
		return u128{}
	case n >= 64:
		return u128{hi: u.lo << (n - 64)}
	}
	return u128{hi: u.hi<<n | u.lo>>(64-n), lo: u.lo << n}
}

func (u u128) shr(n uint) u128 {
	switch {
	case n == 0:
		return u
	case n >= 128:
		return u128{}
	case n >= 64:
		return u128{lo: u.hi >> (n - 64)}
	}
	return u128{hi: u.hi >> n, lo: u.lo>>n | u.hi<<(64-n)}
}

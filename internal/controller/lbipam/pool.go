package lbipam

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// Pool is the set of addresses LoadBalancer Services may get: inclusive
// ranges, in the order configured (allocation walks them in that order).
type Pool struct {
	ranges []addrRange
	text   string
}

// addrRange is an inclusive range of addresses of one family.
type addrRange struct{ first, last netip.Addr }

func (r addrRange) contains(a netip.Addr) bool {
	return a.BitLen() == r.first.BitLen() && r.first.Compare(a) <= 0 && a.Compare(r.last) <= 0
}

func (r addrRange) overlaps(o addrRange) bool {
	return r.first.BitLen() == o.first.BitLen() && r.first.Compare(o.last) <= 0 && o.first.Compare(r.last) <= 0
}

// ParsePool parses a comma-separated pool: CIDRs (10.0.0.0/28: every
// address of it, network and broadcast included, as MetalLB does — these
// are /32 virtual IPs, not a subnet), ranges (172.18.255.200-172.18.255.250)
// or single addresses. Entries must not overlap; IPv4 and IPv6 may mix.
func ParsePool(s string) (Pool, error) {
	var p Pool
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		r, err := parseRange(f)
		if err != nil {
			return Pool{}, fmt.Errorf("pool entry %q: %w", f, err)
		}
		for _, o := range p.ranges {
			if r.overlaps(o) {
				return Pool{}, fmt.Errorf("pool entry %q overlaps %s-%s", f, o.first, o.last)
			}
		}
		p.ranges = append(p.ranges, r)
	}
	if len(p.ranges) == 0 {
		return Pool{}, errors.New("pool is empty")
	}
	p.text = s
	return p, nil
}

// PoolFromPrefixes is a pool of whole prefixes.
func PoolFromPrefixes(prefixes ...netip.Prefix) (Pool, error) {
	parts := make([]string, len(prefixes))
	for i, pr := range prefixes {
		parts[i] = pr.String()
	}
	return ParsePool(strings.Join(parts, ","))
}

func parseRange(s string) (addrRange, error) {
	if strings.Contains(s, "/") {
		pr, err := netip.ParsePrefix(s)
		if err != nil {
			return addrRange{}, err
		}
		pr = pr.Masked()
		return addrRange{pr.Addr(), lastAddr(pr)}, nil
	}
	from, to, isRange := strings.Cut(s, "-")
	first, err := netip.ParseAddr(strings.TrimSpace(from))
	if err != nil {
		return addrRange{}, err
	}
	last := first
	if isRange {
		if last, err = netip.ParseAddr(strings.TrimSpace(to)); err != nil {
			return addrRange{}, err
		}
	}
	if first.Zone() != "" || last.Zone() != "" {
		return addrRange{}, errors.New("zoned addresses are not allowed")
	}
	if first.BitLen() != last.BitLen() {
		return addrRange{}, errors.New("range mixes IPv4 and IPv6")
	}
	if last.Less(first) {
		return addrRange{}, errors.New("range ends before it starts")
	}
	return addrRange{first.Unmap(), last.Unmap()}, nil
}

// lastAddr is the highest address of a masked prefix.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 1 << (7 - i%8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// Contains reports whether a is in the pool.
func (p Pool) Contains(a netip.Addr) bool {
	for _, r := range p.ranges {
		if r.contains(a) {
			return true
		}
	}
	return false
}

// String is the pool as configured.
func (p Pool) String() string { return p.text }

// Prefixes covers the pool with the fewest prefixes, for components (kite
// lb) that match the pool in rules.
func (p Pool) Prefixes() []netip.Prefix {
	var out []netip.Prefix
	for _, r := range p.ranges {
		a := r.first
		for {
			bits := a.BitLen()
			// The largest aligned block starting at a that ends within r.
			for bits > 0 {
				pr := netip.PrefixFrom(a, bits-1).Masked()
				if pr.Addr() != a || r.last.Less(lastAddr(pr)) {
					break
				}
				bits--
			}
			pr := netip.PrefixFrom(a, bits)
			out = append(out, pr)
			end := lastAddr(pr)
			if end == r.last || !end.Next().IsValid() {
				break
			}
			a = end.Next()
		}
	}
	return out
}

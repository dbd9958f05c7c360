package proxy

import (
	"cmp"
	"fmt"
	"net/netip"

	v1 "k8s.io/api/core/v1"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// UDP has no connection to end: a conntrack entry DNATed to an endpoint
// that is gone keeps sending a client's datagrams there until it times
// out, and an entry made while a Service had no rules keeps them from
// being DNATed at all. So after each sync the proxy deletes UDP entries
// addressed to a service address whose DNAT target (the reply's source) is
// not a current endpoint of that port. TCP needs nothing: a new connection
// is a new entry, and an old one to a vanished endpoint fails on its own.

// udpTarget is one UDP service address and the endpoints allowed behind it.
type udpTarget struct {
	// dst is the service address (ClusterIP, external, LB or node IP).
	// nodePort instead matches that port at any address, when the node's
	// addresses are not known.
	dst      netip.AddrPort
	nodePort uint16
	allowed  map[netip.AddrPort]bool
}

// staleUDPTargets lists the UDP service addresses whose entries must be
// checked: those of ports that vanished or whose endpoints changed, or of
// every UDP port when all is set (so that the live table is reconciled,
// not only changes since the last sync). only, when not nil and all is
// not set, limits the walk to those Services' ports. Pure.
func staleUDPTargets(prev, cur *Model, cfg Config, all bool, only []ServiceKey) []udpTarget {
	if all {
		only = nil
	}
	if prev == nil {
		prev = &Model{}
	}
	if cur == nil {
		cur = &Model{}
	}
	var out []udpTarget
	add := func(sp *ServicePort, allowed map[netip.AddrPort]bool) {
		for _, ip := range append(append([]netip.Addr{sp.ClusterIP}, sp.ExternalIPs...), sp.LoadBalancerIPs...) {
			out = append(out, udpTarget{dst: netip.AddrPortFrom(ip, sp.Port), allowed: allowed})
		}
		if sp.NodePort == 0 {
			return
		}
		if len(cfg.NodeIPs) == 0 {
			out = append(out, udpTarget{nodePort: sp.NodePort, allowed: allowed})
			return
		}
		for _, ip := range append([]netip.Addr{netip.AddrFrom4([4]byte{127, 0, 0, 1})}, cfg.NodeIPs...) {
			out = append(out, udpTarget{dst: netip.AddrPortFrom(ip, sp.NodePort), allowed: allowed})
		}
	}
	// Both Models' ports are sorted by key: walk them side by side (no
	// per-sync map of every port), or only the changed Services' ports.
	portPairs(prev, cur, only, func(p, c *ServicePort) {
		if cmp.Or(p, c).Key.Protocol != v1.ProtocolUDP {
			return // p and c, when both there, have the same key
		}
		switch {
		case c == nil:
			add(p, nil) // the port is gone: nothing is allowed
		case p == nil:
			// A new UDP port: entries made before it existed were not DNATed.
			add(c, allowedEndpoints(c))
		case all || (!p.equal(c) && !sameEndpoints(p, c)):
			add(c, allowedEndpoints(c))
		}
	})
	return out
}

func allowedEndpoints(sp *ServicePort) map[netip.AddrPort]bool {
	m := map[netip.AddrPort]bool{}
	for _, e := range sp.ClusterEndpoints {
		m[e.Addr] = true
	}
	for _, e := range sp.LocalEndpoints {
		m[e.Addr] = true
	}
	return m
}

func sameEndpoints(a, b *ServicePort) bool {
	x, y := allowedEndpoints(a), allowedEndpoints(b)
	if len(x) != len(y) {
		return false
	}
	for k := range x {
		if !y[k] {
			return false
		}
	}
	return true
}

// conntrackTable deletes stale entries; a fake records the targets.
type conntrackTable interface {
	DeleteStale(targets []udpTarget) (int, error)
}

// netlinkConntrack works on this network namespace's conntrack table.
type netlinkConntrack struct{}

func (netlinkConntrack) DeleteStale(targets []udpTarget) (int, error) {
	f := &staleFilter{byDst: map[netip.AddrPort]*udpTarget{}, byNodePort: map[uint16]*udpTarget{}}
	for i := range targets {
		t := &targets[i]
		if t.nodePort != 0 {
			f.byNodePort[t.nodePort] = t
		} else {
			f.byDst[t.dst] = t
		}
	}
	n, err := netlink.ConntrackDeleteFilters(netlink.ConntrackTable, unix.AF_INET, f)
	if err != nil {
		return int(n), fmt.Errorf("conntrack: delete stale UDP entries: %w", err)
	}
	return int(n), nil
}

// staleFilter matches UDP entries to a target whose reply does not come
// from an allowed endpoint.
type staleFilter struct {
	byDst      map[netip.AddrPort]*udpTarget
	byNodePort map[uint16]*udpTarget
}

func (f *staleFilter) MatchConntrackFlow(flow *netlink.ConntrackFlow) bool {
	if flow.Forward.Protocol != unix.IPPROTO_UDP {
		return false
	}
	dstIP, ok := netip.AddrFromSlice(flow.Forward.DstIP)
	if !ok {
		return false
	}
	dst := netip.AddrPortFrom(dstIP.Unmap(), flow.Forward.DstPort)
	t := f.byDst[dst]
	if t == nil {
		t = f.byNodePort[flow.Forward.DstPort]
		if t == nil {
			return false
		}
	}
	srcIP, ok := netip.AddrFromSlice(flow.Reverse.SrcIP)
	if !ok {
		return false
	}
	return !t.allowed[netip.AddrPortFrom(srcIP.Unmap(), flow.Reverse.SrcPort)]
}

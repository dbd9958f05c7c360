package lb

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"

	"kite/internal/lb/l2"
)

// AddrManager owns the ingress addresses on the LB's interface.
type AddrManager interface {
	// List returns the addresses kite lb added (and only those).
	List() ([]netip.Addr, error)
	Add(netip.Addr) error
	Del(netip.Addr) error
}

// netlinkAddrs keeps ingress addresses as /32s labelled <iface>:lb on the
// interface: the label is how a restarted kite lb tells its addresses
// from the interface's own. A /32 adds no subnet route; the kernel
// answers ARP for it on the interface (arp_ignore 0), which is how the
// underlay reaches it.
type netlinkAddrs struct{ iface string }

func (n netlinkAddrs) label() string { return n.iface + addrLabelSuffix }

func (n netlinkAddrs) link() (netlink.Link, error) {
	l, err := netlink.LinkByName(n.iface)
	if err != nil {
		return nil, fmt.Errorf("interface %s: %w", n.iface, err)
	}
	return l, nil
}

func (n netlinkAddrs) List() ([]netip.Addr, error) {
	l, err := n.link()
	if err != nil {
		return nil, err
	}
	addrs, err := netlink.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		return nil, fmt.Errorf("addresses of %s: %w", n.iface, err)
	}
	var out []netip.Addr
	for _, a := range addrs {
		if a.Label != n.label() {
			continue
		}
		if ip, ok := netip.AddrFromSlice(a.IP); ok {
			out = append(out, ip.Unmap())
		}
	}
	return out, nil
}

func (n netlinkAddrs) addr(ip netip.Addr) *netlink.Addr {
	return &netlink.Addr{IPNet: &net.IPNet{IP: ip.AsSlice(), Mask: net.CIDRMask(32, 32)}, Label: n.label()}
}

func (n netlinkAddrs) Add(ip netip.Addr) error {
	l, err := n.link()
	if err != nil {
		return err
	}
	if err := netlink.AddrReplace(l, n.addr(ip)); err != nil {
		return fmt.Errorf("add %s to %s: %w", ip, n.iface, err)
	}
	// Best effort: without it, a neighbour waiting on the address learns
	// it at its next ARP retry.
	if iface, err := net.InterfaceByName(n.iface); err == nil {
		_ = l2.Announce(iface, ip)
	}
	return nil
}

func (n netlinkAddrs) Del(ip netip.Addr) error {
	l, err := n.link()
	if err != nil {
		return err
	}
	if err := netlink.AddrDel(l, n.addr(ip)); err != nil {
		return fmt.Errorf("remove %s from %s: %w", ip, n.iface, err)
	}
	return nil
}

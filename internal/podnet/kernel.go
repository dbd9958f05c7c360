package podnet

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// kernel is the netlink dataplane. Its methods act on the network
// namespace of the calling thread: the controller calls them inside
// ns.WithNetNSPath (or in its own namespace), on one locked thread.
type kernel struct {
	dev string // the VXLAN device
}

var _ dataplane = kernel{}

func (k kernel) Routes() ([]Route, []netip.Prefix, error) {
	routes, err := dump(func() ([]netlink.Route, error) {
		return netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		return nil, nil, err
	}
	vxIndex := 0
	if l, err := netlink.LinkByName(k.dev); err == nil {
		vxIndex = l.Attrs().Index
	}
	var own []Route
	var foreign []netip.Prefix
	for _, r := range routes {
		dst := netip.PrefixFrom(netip.IPv4Unspecified(), 0) // a default route has no RTA_DST
		if r.Dst != nil {
			if p, ok := toPrefix(r.Dst); ok {
				dst = p
			}
		}
		if r.Protocol != RouteProtocol {
			foreign = append(foreign, dst)
			continue
		}
		gw, _ := netip.AddrFromSlice(r.Gw.To4())
		own = append(own, Route{Dst: dst, Gw: gw,
			Encap: vxIndex != 0 && r.LinkIndex == vxIndex && r.Flags&int(netlink.FLAG_ONLINK) != 0})
	}
	return own, foreign, nil
}

func (k kernel) ReplaceRoute(r Route) error {
	nr := &netlink.Route{Dst: ipNet(r.Dst), Gw: r.Gw.AsSlice(), Protocol: RouteProtocol,
		Table: unix.RT_TABLE_MAIN, Scope: netlink.SCOPE_UNIVERSE, Type: unix.RTN_UNICAST}
	if r.Encap {
		l, err := netlink.LinkByName(k.dev)
		if err != nil {
			return err
		}
		nr.LinkIndex, nr.Flags = l.Attrs().Index, int(netlink.FLAG_ONLINK)
	}
	return netlink.RouteReplace(nr)
}

func (k kernel) DeleteRoute(r Route) error {
	// The protocol in the request makes the kernel match only podnet's
	// route to Dst, never another one.
	err := netlink.RouteDel(&netlink.Route{Dst: ipNet(r.Dst), Protocol: RouteProtocol, Table: unix.RT_TABLE_MAIN})
	if errors.Is(err, unix.ESRCH) {
		return nil // gone already (say, with its link)
	}
	return err
}

func (k kernel) Unreachable(gw netip.Addr) (string, error) {
	rs, err := netlink.RouteGet(gw.AsSlice())
	if errors.Is(err, unix.ENETUNREACH) || errors.Is(err, unix.EHOSTUNREACH) {
		return "has no route from this node", nil
	}
	if err != nil {
		return "", err
	}
	if len(rs) == 0 {
		return "has no route from this node", nil
	}
	switch r := rs[0]; {
	case r.Type == unix.RTN_LOCAL:
		return "is an address of this node", nil
	case r.Type != unix.RTN_UNICAST:
		return fmt.Sprintf("is unreachable (route type %d)", r.Type), nil
	case r.Gw != nil:
		return fmt.Sprintf("is not on a directly connected subnet (reached via %s)", r.Gw), nil
	}
	return "", nil
}

func (k kernel) EnsureVXLAN(spec vxlanSpec) (vtep, []string, error) {
	var changes []string
	link, err := netlink.LinkByName(spec.Name)
	var notFound netlink.LinkNotFoundError
	switch {
	case errors.As(err, &notFound):
		link = nil
	case err != nil:
		return vtep{}, nil, err
	default:
		if why := vxlanMismatch(link, spec); why != "" {
			if err := netlink.LinkDel(link); err != nil {
				return vtep{}, nil, fmt.Errorf("delete mismatched device: %w", err)
			}
			changes = append(changes, fmt.Sprintf("delete VXLAN device %s: %s", spec.Name, why))
			link = nil
		}
	}
	mtu := spec.MTU
	if mtu == 0 {
		underlay, err := linkWithAddr(spec.Local)
		if err != nil {
			return vtep{}, changes, err
		}
		mtu = underlay.Attrs().MTU - VXLANOverhead
	}
	if link == nil {
		vx := &netlink.Vxlan{
			LinkAttrs: netlink.LinkAttrs{Name: spec.Name, MTU: mtu, HardwareAddr: vtepMAC(spec.Local)},
			VxlanId:   spec.ID, SrcAddr: spec.Local.AsSlice(), Port: spec.Port, Learning: false,
		}
		if err := netlink.LinkAdd(vx); err != nil {
			return vtep{}, changes, fmt.Errorf("create: %w", err)
		}
		if link, err = netlink.LinkByName(spec.Name); err != nil {
			return vtep{}, changes, err
		}
		changes = append(changes, fmt.Sprintf("create VXLAN device %s id %d local %s dstport %d mtu %d", spec.Name, spec.ID, spec.Local, spec.Port, mtu))
	}
	if link.Attrs().MTU != mtu {
		if err := netlink.LinkSetMTU(link, mtu); err != nil {
			return vtep{}, changes, fmt.Errorf("set MTU %d: %w", mtu, err)
		}
		changes = append(changes, fmt.Sprintf("set VXLAN device %s mtu %d (was %d)", spec.Name, mtu, link.Attrs().MTU))
	}
	addrChanges, err := syncAddr(link, spec.Addr)
	changes = append(changes, addrChanges...)
	if err != nil {
		return vtep{}, changes, err
	}
	if link.Attrs().Flags&net.FlagUp == 0 {
		if err := netlink.LinkSetUp(link); err != nil {
			return vtep{}, changes, fmt.Errorf("set up: %w", err)
		}
		changes = append(changes, fmt.Sprintf("set VXLAN device %s up", spec.Name))
	}
	return vtep{MAC: link.Attrs().HardwareAddr.String(), MTU: mtu}, changes, nil
}

// vxlanMismatch says why an existing device cannot serve as spec ("" if
// it can): these attributes cannot change on a live VXLAN device.
func vxlanMismatch(link netlink.Link, spec vxlanSpec) string {
	vx, ok := link.(*netlink.Vxlan)
	switch {
	case !ok:
		return fmt.Sprintf("a %s device, not vxlan", link.Type())
	case vx.VxlanId != spec.ID:
		return fmt.Sprintf("id %d, want %d", vx.VxlanId, spec.ID)
	case vx.Port != spec.Port:
		return fmt.Sprintf("dstport %d, want %d", vx.Port, spec.Port)
	case !vx.SrcAddr.Equal(spec.Local.AsSlice()):
		return fmt.Sprintf("local %s, want %s", vx.SrcAddr, spec.Local)
	case vx.Learning:
		return "learning on"
	}
	return ""
}

// syncAddr leaves want as the device's only IPv4 address.
func syncAddr(link netlink.Link, want netip.Prefix) ([]string, error) {
	addrs, err := netlink.AddrList(link, netlink.FAMILY_V4)
	if err != nil {
		return nil, fmt.Errorf("list addresses: %w", err)
	}
	var changes []string
	found := false
	for _, a := range addrs {
		p, ok := toPrefix(a.IPNet)
		if ok && want.IsValid() && p.Addr() == want.Addr() && p.Bits() == want.Bits() {
			found = true
			continue
		}
		if err := netlink.AddrDel(link, &a); err != nil {
			return changes, fmt.Errorf("delete address %s: %w", a.IPNet, err)
		}
		changes = append(changes, fmt.Sprintf("delete address %s from %s", a.IPNet, link.Attrs().Name))
	}
	if want.IsValid() && !found {
		a := &netlink.Addr{IPNet: &net.IPNet{IP: want.Addr().AsSlice(), Mask: net.CIDRMask(want.Bits(), 32)}}
		if err := netlink.AddrAdd(link, a); err != nil {
			return changes, fmt.Errorf("add address %s: %w", want, err)
		}
		changes = append(changes, fmt.Sprintf("add address %s to %s", want, link.Attrs().Name))
	}
	return changes, nil
}

func (k kernel) DeleteVXLAN() (bool, error) {
	link, err := netlink.LinkByName(k.dev)
	var notFound netlink.LinkNotFoundError
	if errors.As(err, &notFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, netlink.LinkDel(link)
}

// deviceIndex is the VXLAN device's index, 0 if there is none.
func (k kernel) deviceIndex() (int, error) {
	link, err := netlink.LinkByName(k.dev)
	var notFound netlink.LinkNotFoundError
	if errors.As(err, &notFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return link.Attrs().Index, nil
}

func (k kernel) Neighs() ([]Neigh, error) {
	idx, err := k.deviceIndex()
	if idx == 0 || err != nil {
		return nil, err
	}
	list, err := dump(func() ([]netlink.Neigh, error) { return netlink.NeighList(idx, netlink.FAMILY_V4) })
	if err != nil {
		return nil, err
	}
	var out []Neigh
	for _, n := range list {
		ip, ok := netip.AddrFromSlice(n.IP.To4())
		// Entries the kernel made while resolving are not podnet's.
		if !ok || n.State&netlink.NUD_PERMANENT == 0 {
			continue
		}
		out = append(out, Neigh{IP: ip, MAC: n.HardwareAddr.String()})
	}
	return out, nil
}

func (k kernel) SetNeigh(n Neigh) error {
	idx, mac, err := k.entry(n.MAC)
	if err != nil {
		return err
	}
	return netlink.NeighSet(&netlink.Neigh{LinkIndex: idx, Family: netlink.FAMILY_V4, State: netlink.NUD_PERMANENT,
		Type: unix.RTN_UNICAST, IP: n.IP.AsSlice(), HardwareAddr: mac})
}

func (k kernel) DeleteNeigh(n Neigh) error {
	idx, err := k.deviceIndex()
	if idx == 0 || err != nil {
		return err
	}
	return netlink.NeighDel(&netlink.Neigh{LinkIndex: idx, Family: netlink.FAMILY_V4, IP: n.IP.AsSlice()})
}

func (k kernel) FDB() ([]FDB, error) {
	idx, err := k.deviceIndex()
	if idx == 0 || err != nil {
		return nil, err
	}
	list, err := dump(func() ([]netlink.Neigh, error) { return netlink.NeighList(idx, unix.AF_BRIDGE) })
	if err != nil {
		return nil, err
	}
	var out []FDB
	for _, n := range list {
		if n.LinkIndex != idx || n.State&netlink.NUD_PERMANENT == 0 || len(n.HardwareAddr) != 6 {
			continue
		}
		dst, _ := netip.AddrFromSlice(n.IP.To4())
		out = append(out, FDB{MAC: n.HardwareAddr.String(), Dst: dst})
	}
	return out, nil
}

func (k kernel) SetFDB(f FDB) error {
	idx, mac, err := k.entry(f.MAC)
	if err != nil {
		return err
	}
	return netlink.NeighSet(&netlink.Neigh{LinkIndex: idx, Family: unix.AF_BRIDGE, Flags: netlink.NTF_SELF,
		State: netlink.NUD_PERMANENT, IP: f.Dst.AsSlice(), HardwareAddr: mac})
}

func (k kernel) DeleteFDB(f FDB) error {
	idx, mac, err := k.entry(f.MAC)
	if err != nil {
		return err
	}
	n := &netlink.Neigh{LinkIndex: idx, Family: unix.AF_BRIDGE, Flags: netlink.NTF_SELF, HardwareAddr: mac}
	if f.Dst.IsValid() {
		n.IP = f.Dst.AsSlice()
	}
	return netlink.NeighDel(n)
}

// entry resolves what a neighbour or FDB entry needs: the device index
// and the parsed MAC.
func (k kernel) entry(mac string) (int, net.HardwareAddr, error) {
	hw, err := net.ParseMAC(mac)
	if err != nil {
		return 0, nil, err
	}
	idx, err := k.deviceIndex()
	if err != nil {
		return 0, nil, err
	}
	if idx == 0 {
		return 0, nil, fmt.Errorf("no device %s", k.dev)
	}
	return idx, hw, nil
}

// linkWithAddr is the link holding ip: the VXLAN underlay.
func linkWithAddr(ip netip.Addr) (netlink.Link, error) {
	addrs, err := dump(func() ([]netlink.Addr, error) { return netlink.AddrList(nil, netlink.FAMILY_V4) })
	if err != nil {
		return nil, err
	}
	for _, a := range addrs {
		if got, ok := netip.AddrFromSlice(a.IP.To4()); ok && got == ip {
			return netlink.LinkByIndex(a.LinkIndex)
		}
	}
	return nil, fmt.Errorf("node IP %s is not an address of this node", ip)
}

// vtepMAC is the MAC a new VXLAN device gets: derived from the node IP,
// so a recreated device keeps it and peers' entries stay right.
// Locally administered, unicast; "0e:6b" ('k') does not collide with the
// 0a:58 prefix CNI plugins derive pod MACs from.
func vtepMAC(ip netip.Addr) net.HardwareAddr {
	b := ip.As4()
	return net.HardwareAddr{0x0e, 0x6b, b[0], b[1], b[2], b[3]}
}

// dump retries a netlink dump the kernel interrupted (it changed while
// being read); netlink returns partial results with ErrDumpInterrupted.
func dump[T any](list func() ([]T, error)) ([]T, error) {
	var err error
	for range 5 {
		var out []T
		out, err = list()
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return out, err
		}
	}
	return nil, err
}

func toPrefix(n *net.IPNet) (netip.Prefix, bool) {
	ip, ok := netip.AddrFromSlice(n.IP.To4())
	if !ok {
		return netip.Prefix{}, false
	}
	ones, bits := n.Mask.Size()
	if bits != 32 {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(ip, ones), true
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

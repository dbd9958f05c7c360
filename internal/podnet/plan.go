package podnet

import (
	"cmp"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Route is the route to one remote node's podCIDR.
type Route struct {
	Dst netip.Prefix
	Gw  netip.Addr
	// Encap: through the VXLAN device with an on-link gateway (the remote
	// node's VTEP address). Otherwise the kernel picks the link that
	// reaches Gw directly.
	Encap bool
	// Node whose podCIDR Dst is; for messages, not compared.
	Node string
}

func (r Route) same(o Route) bool { return r.Dst == o.Dst && r.Gw == o.Gw && r.Encap == o.Encap }

func (r Route) String() string {
	if r.Encap {
		return fmt.Sprintf("%s via %s onlink encap", r.Dst, r.Gw)
	}
	return fmt.Sprintf("%s via %s", r.Dst, r.Gw)
}

// Neigh is a permanent neighbour (ARP) entry on the VXLAN device: the
// remote VTEP address has the remote VTEP's MAC.
type Neigh struct {
	IP   netip.Addr
	MAC  string // lower case, colon separated
	Node string // for messages, not compared
}

func (n Neigh) String() string { return fmt.Sprintf("neigh %s lladdr %s", n.IP, n.MAC) }

// FDB is a permanent forwarding entry on the VXLAN device: frames for MAC
// go in UDP to Dst, the remote node's underlay address.
type FDB struct {
	MAC  string
	Dst  netip.Addr
	Node string // for messages, not compared
}

func (f FDB) String() string { return fmt.Sprintf("fdb %s dst %s", f.MAC, f.Dst) }

// Local is what this node contributes.
type Local struct {
	Name string
	// IP is the node's IPv4 InternalIP: the VTEP's local address.
	IP netip.Addr
	// PodCIDR is the node's IPv4 podCIDR; invalid until it has one.
	PodCIDR netip.Prefix
	// VTEPAddr is the VXLAN device's address, the network address of
	// PodCIDR as a /32 (flannel's choice: it is never a pod's); invalid
	// without a podCIDR.
	VTEPAddr netip.Prefix
}

// Skip is a node left out of the plan and why.
type Skip struct {
	Node, Reason string
}

// Plan is the desired pod routing state of one node.
type Plan struct {
	Mode   string
	Local  Local
	Routes []Route // by Dst
	Neighs []Neigh // VXLAN mode, by IP
	FDB    []FDB   // VXLAN mode, by MAC
	// Skipped nodes get no route until what they lack appears.
	Skipped []Skip // by node name
}

// String prints the plan as lines close to iproute2's, for tests and
// debug logs.
func (p Plan) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "mode %s local %s", p.Mode, p.Local.IP)
	if p.Local.VTEPAddr.IsValid() {
		fmt.Fprintf(&b, " vtep %s", p.Local.VTEPAddr)
	}
	b.WriteByte('\n')
	for _, f := range p.FDB {
		fmt.Fprintf(&b, "%s # %s\n", f, f.Node)
	}
	for _, n := range p.Neighs {
		fmt.Fprintf(&b, "%s # %s\n", n, n.Node)
	}
	for _, r := range p.Routes {
		fmt.Fprintf(&b, "route %s # %s\n", r, r.Node)
	}
	for _, s := range p.Skipped {
		fmt.Fprintf(&b, "skip %s: %s\n", s.Node, s.Reason)
	}
	return b.String()
}

// Desired computes the pod routes self needs to reach every other node's
// pods: for each node with an IPv4 podCIDR, a route via its InternalIP
// (host-gw) or via its VTEP (vxlan: route, neighbour and FDB entry). Nodes
// lacking something (podCIDR, address, VTEP MAC) or clashing with an
// earlier node (overlapping podCIDR, same VTEP MAC; older node wins) are
// listed in Skipped. The error is about self or the mode: without an IPv4
// InternalIP a node cannot take part. Pure: no kernel, no API.
func Desired(self *corev1.Node, nodes []*corev1.Node, mode string) (Plan, error) {
	if mode != ModeHostGW && mode != ModeVXLAN {
		return Plan{}, fmt.Errorf("podnet: mode %q: want %s or %s", mode, ModeHostGW, ModeVXLAN)
	}
	p := Plan{Mode: mode, Local: Local{Name: self.Name, IP: internalIP(self)}}
	if !p.Local.IP.IsValid() {
		return Plan{}, fmt.Errorf("podnet: node %s has no IPv4 InternalIP yet", self.Name)
	}
	if cidr, ok := podCIDR(self); ok {
		p.Local.PodCIDR = cidr
		p.Local.VTEPAddr = netip.PrefixFrom(cidr.Addr(), 32)
	}

	// Oldest first, so a clash is decided the same way on every node.
	others := make([]*corev1.Node, 0, len(nodes))
	for _, n := range nodes {
		if n.Name != self.Name {
			others = append(others, n)
		}
	}
	slices.SortFunc(others, func(a, b *corev1.Node) int {
		if c := a.CreationTimestamp.Compare(b.CreationTimestamp.Time); c != 0 {
			return c
		}
		return cmp.Compare(a.Name, b.Name)
	})
	claimed := []Route{}
	if p.Local.PodCIDR.IsValid() {
		claimed = append(claimed, Route{Dst: p.Local.PodCIDR, Node: self.Name})
	}
	macOwner := map[string]string{}
	for _, n := range others {
		skip := func(format string, args ...any) {
			p.Skipped = append(p.Skipped, Skip{Node: n.Name, Reason: fmt.Sprintf(format, args...)})
		}
		cidr, ok := podCIDR(n)
		if !ok {
			skip("no IPv4 podCIDR yet")
			continue
		}
		if i := slices.IndexFunc(claimed, func(r Route) bool { return r.Dst.Overlaps(cidr) }); i >= 0 {
			skip("podCIDR %s overlaps node %s's %s", cidr, claimed[i].Node, claimed[i].Dst)
			continue
		}
		ip := internalIP(n)
		switch mode {
		case ModeHostGW:
			if !ip.IsValid() {
				skip("no IPv4 InternalIP yet")
				continue
			}
			if ip == p.Local.IP {
				skip("has this node's InternalIP %s", ip)
				continue
			}
			p.Routes = append(p.Routes, Route{Dst: cidr, Gw: ip, Node: n.Name})
		case ModeVXLAN:
			vtep, mac, reason := remoteVTEP(n)
			if reason != "" {
				skip("%s", reason)
				continue
			}
			if vtep == p.Local.IP {
				skip("has this node's VTEP address %s", vtep)
				continue
			}
			if owner, dup := macOwner[mac]; dup {
				skip("VTEP MAC %s is also node %s's", mac, owner)
				continue
			}
			macOwner[mac] = n.Name
			gw := cidr.Addr()
			p.Routes = append(p.Routes, Route{Dst: cidr, Gw: gw, Encap: true, Node: n.Name})
			p.Neighs = append(p.Neighs, Neigh{IP: gw, MAC: mac, Node: n.Name})
			p.FDB = append(p.FDB, FDB{MAC: mac, Dst: vtep, Node: n.Name})
		}
		claimed = append(claimed, Route{Dst: cidr, Node: n.Name})
	}
	slices.SortFunc(p.Routes, func(a, b Route) int { return comparePrefix(a.Dst, b.Dst) })
	slices.SortFunc(p.Neighs, func(a, b Neigh) int { return a.IP.Compare(b.IP) })
	slices.SortFunc(p.FDB, func(a, b FDB) int { return cmp.Compare(a.MAC, b.MAC) })
	slices.SortFunc(p.Skipped, func(a, b Skip) int { return cmp.Compare(a.Node, b.Node) })
	return p, nil
}

// remoteVTEP reads a node's VTEP: its underlay address (the annotation,
// else its InternalIP) and MAC, or why it has none usable.
func remoteVTEP(n *corev1.Node) (netip.Addr, string, string) {
	vtep := internalIP(n)
	if s, ok := n.Annotations[AnnotationVXLANIP]; ok {
		a, err := netip.ParseAddr(s)
		if err != nil || !a.Is4() {
			return netip.Addr{}, "", fmt.Sprintf("annotation %s=%q is not an IPv4 address", AnnotationVXLANIP, s)
		}
		vtep = a
	}
	if !vtep.IsValid() {
		return netip.Addr{}, "", "no IPv4 InternalIP yet"
	}
	s, ok := n.Annotations[AnnotationVXLANMAC]
	if !ok {
		return netip.Addr{}, "", fmt.Sprintf("no VTEP MAC yet (annotation %s; is its podnet in %s mode?)", AnnotationVXLANMAC, ModeVXLAN)
	}
	mac, err := net.ParseMAC(s)
	if err != nil || len(mac) != 6 || mac[0]&1 == 1 || isZero(mac) {
		return netip.Addr{}, "", fmt.Sprintf("annotation %s=%q is not a unicast Ethernet address", AnnotationVXLANMAC, s)
	}
	return vtep, mac.String(), ""
}

func isZero(b []byte) bool { return !slices.ContainsFunc(b, func(x byte) bool { return x != 0 }) }

// internalIP is the node's first IPv4 InternalIP.
func internalIP(n *corev1.Node) netip.Addr {
	for _, a := range n.Status.Addresses {
		if a.Type != corev1.NodeInternalIP {
			continue
		}
		if ip, err := netip.ParseAddr(a.Address); err == nil && ip.Is4() {
			return ip
		}
	}
	return netip.Addr{}
}

// podCIDR is the node's IPv4 pod subnet (dual-stack nodes list one per
// family in podCIDRs; IPv6 pod routing is not done yet).
func podCIDR(n *corev1.Node) (netip.Prefix, bool) {
	cidrs := n.Spec.PodCIDRs
	if len(cidrs) == 0 && n.Spec.PodCIDR != "" {
		cidrs = []string{n.Spec.PodCIDR}
	}
	for _, s := range cidrs {
		if p, err := netip.ParsePrefix(s); err == nil && p.Addr().Is4() {
			return p.Masked(), true
		}
	}
	return netip.Prefix{}, false
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return cmp.Compare(a.Bits(), b.Bits())
}

package cni

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/utils/sysctl"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// hostSysctls are set to 1 in the host (node) namespace on every ADD:
// forwarding, so pods reach beyond the bridge, and bridged traffic through
// netfilter (when br_netfilter is present), so that Service DNAT to a pod
// on the same bridge is undone on the way back. NAT itself is not the
// plugin's job.
var hostSysctls = []struct {
	name     string
	optional bool // absent without br_netfilter
}{
	{name: "net.ipv4.ip_forward"},
	{name: "net.bridge.bridge-nf-call-iptables", optional: true},
}

func ensureHostSysctls() error {
	for _, s := range hostSysctls {
		v, err := sysctl.Sysctl(s.name)
		if s.optional && errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("read sysctl %s: %w", s.name, err)
		}
		if v == "1" {
			continue
		}
		if _, err := sysctl.Sysctl(s.name, "1"); err != nil {
			return fmt.Errorf("set sysctl %s=1: %w", s.name, err)
		}
	}
	return nil
}

func isNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf)
}

// ensureBridge makes the bridge exist, carry the gateway address and be
// up. A bridge it creates gets mtu and the gateway's MAC (see MACFor);
// one that exists is left as it is otherwise. Concurrent invocations may
// race to create it: losing the race is fine.
func ensureBridge(name string, mtu int, gateway netip.Prefix) (*netlink.Bridge, error) {
	l, err := netlinksafe.LinkByName(name)
	if isNotFound(err) {
		la := netlink.NewLinkAttrs()
		la.Name = name
		la.MTU = mtu
		la.HardwareAddr = MACFor(gateway.Addr())
		if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: la}); err != nil && !errors.Is(err, unix.EEXIST) {
			return nil, fmt.Errorf("create bridge %s: %w", name, err)
		}
		l, err = netlinksafe.LinkByName(name)
	}
	if err != nil {
		return nil, fmt.Errorf("bridge %s: %w", name, err)
	}
	br, ok := l.(*netlink.Bridge)
	if !ok {
		return nil, fmt.Errorf("%s exists and is a %s link, not a bridge", name, l.Type())
	}
	addr := &netlink.Addr{IPNet: prefixToIPNet(gateway)}
	if err := netlink.AddrAdd(br, addr); err != nil && !errors.Is(err, unix.EEXIST) {
		return nil, fmt.Errorf("add %s to bridge %s: %w", gateway, name, err)
	}
	if br.Attrs().Flags&net.FlagUp == 0 {
		if err := netlink.LinkSetUp(br); err != nil {
			return nil, fmt.Errorf("set bridge %s up: %w", name, err)
		}
	}
	return br, nil
}

// vethSpec is one attachment's veth pair.
type vethSpec struct {
	hostName string
	contName string
	contMAC  net.HardwareAddr
	mtu      int
}

// errContainerIfExists means the interface name is taken in the container.
var errContainerIfExists = errors.New("interface already exists in the container's namespace")

// errHostVethExists means the attachment's host veth exists: it was added
// before and not deleted.
var errHostVethExists = errors.New("the attachment's host veth already exists (ADD without DEL?)")

// createVeth creates the pair with the container end made directly inside
// netns under its final name, so nothing is ever named eth0 in the host
// namespace, and no thread has to enter the container's namespace. If it
// returns an error, no link was created.
func createVeth(s vethSpec, netns ns.NetNS) (netlink.Link, error) {
	la := netlink.NewLinkAttrs()
	la.Name = s.hostName
	la.MTU = s.mtu
	veth := &netlink.Veth{
		LinkAttrs:        la,
		PeerName:         s.contName,
		PeerHardwareAddr: s.contMAC,
		PeerNamespace:    netlink.NsFd(int(netns.Fd())),
	}
	if err := netlink.LinkAdd(veth); err != nil {
		if errors.Is(err, unix.EEXIST) {
			if _, lerr := netlinksafe.LinkByName(s.hostName); lerr == nil {
				return nil, fmt.Errorf("%s: %w", s.hostName, errHostVethExists)
			}
			return nil, fmt.Errorf("%s in %s: %w", s.contName, netns.Path(), errContainerIfExists)
		}
		return nil, fmt.Errorf("create veth %s: %w", s.hostName, err)
	}
	host, err := netlinksafe.LinkByName(s.hostName)
	if err != nil {
		// The pair exists but cannot be read: remove it by name.
		_ = deleteLinkByName(s.hostName)
		return nil, fmt.Errorf("read new veth %s: %w", s.hostName, err)
	}
	return host, nil
}

// attachHostVeth labels the host end with alias (the kernel ignores an
// alias given at creation), puts it on the bridge with hairpin mode (so a
// pod reaches itself through a Service) and brings it up.
func attachHostVeth(host netlink.Link, alias string, bridgeIdx int) error {
	if err := netlink.LinkSetAlias(host, alias); err != nil {
		return fmt.Errorf("alias of %s: %w", host.Attrs().Name, err)
	}
	if err := netlink.LinkSetMasterByIndex(host, bridgeIdx); err != nil {
		return fmt.Errorf("attach %s to the bridge: %w", host.Attrs().Name, err)
	}
	if err := netlink.LinkSetHairpin(host, true); err != nil {
		return fmt.Errorf("hairpin mode on %s: %w", host.Attrs().Name, err)
	}
	if err := netlink.LinkSetUp(host); err != nil {
		return fmt.Errorf("set %s up: %w", host.Attrs().Name, err)
	}
	return nil
}

// deleteLinkByName removes a link of the current namespace; a link that
// does not exist is not an error.
func deleteLinkByName(name string) error {
	l, err := netlinksafe.LinkByName(name)
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := netlink.LinkDel(l); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	return nil
}

// containerIf is what configureContainer leaves in the container.
type containerIf struct {
	index int
	mac   net.HardwareAddr
	mtu   int
}

// configureContainer, run inside the container's namespace, gives the
// interface its address, brings it up and routes the default route
// through the gateway.
func configureContainer(ifName string, addr netip.Prefix, gateway netip.Addr) (containerIf, error) {
	l, err := netlinksafe.LinkByName(ifName)
	if err != nil {
		return containerIf{}, fmt.Errorf("find %s: %w", ifName, err)
	}
	if err := netlink.AddrAdd(l, &netlink.Addr{IPNet: prefixToIPNet(addr)}); err != nil && !errors.Is(err, unix.EEXIST) {
		return containerIf{}, fmt.Errorf("add %s to %s: %w", addr, ifName, err)
	}
	if err := netlink.LinkSetUp(l); err != nil {
		return containerIf{}, fmt.Errorf("set %s up: %w", ifName, err)
	}
	route := &netlink.Route{LinkIndex: l.Attrs().Index, Dst: defaultRouteDst(), Gw: net.IP(gateway.AsSlice())}
	if err := netlink.RouteAdd(route); err != nil && !errors.Is(err, unix.EEXIST) {
		return containerIf{}, fmt.Errorf("default route via %s on %s: %w", gateway, ifName, err)
	}
	return containerIf{index: l.Attrs().Index, mac: l.Attrs().HardwareAddr, mtu: l.Attrs().MTU}, nil
}

func defaultRouteDst() *net.IPNet {
	return &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}
}

func prefixToIPNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

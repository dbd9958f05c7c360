package cni

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"kite/internal/cni/ipam"
)

// check verifies an attachment against its result (prevResult): the
// container interface with its MAC, MTU, addresses and default route; the
// host veth, its peer, bridge and hairpin mode; the bridge with the
// gateway; and the IPAM reservation. Routes that a later plugin in the
// chain may have added are not its concern.
func (p *plugin) check(args *skel.CmdArgs) error {
	conf, err := p.parse(args)
	if err != nil {
		return err
	}
	prev, err := conf.prevResult()
	if err != nil {
		return err
	}
	if prev == nil {
		return errorf(types.ErrInvalidNetworkConfig, "CHECK of %s/%s needs prevResult, the attachment's ADD result", args.ContainerID, args.IfName)
	}
	want, err := expectedFromResult(prev, args.IfName, args.Netns)
	if err != nil {
		return newError(CodeCheckFailed, "prevResult", err)
	}
	rng := conf.Range()
	if err := checkBridge(conf.Bridge, rng.GatewayPrefix()); err != nil {
		return newError(CodeCheckFailed, "bridge "+conf.Bridge, err)
	}
	hostName := HostVethName(args.ContainerID, args.IfName)
	peerIdx, err := checkHostVeth(hostName, conf.Bridge)
	if err != nil {
		return newError(CodeCheckFailed, "host veth "+hostName, err)
	}
	netns, err := ns.GetNS(args.Netns)
	if err != nil {
		return newError(types.ErrInvalidNetNS, "open the container's network namespace "+args.Netns, err)
	}
	defer netns.Close()
	err = netns.Do(func(ns.NetNS) error {
		return checkContainer(args.IfName, want, conf.MTU, rng.Gateway, peerIdx)
	})
	if err != nil {
		return newError(CodeCheckFailed, args.IfName+" in "+args.Netns, err)
	}

	al, _, err := conf.allocator()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), lockTimeout)
	defer cancel()
	att := ipam.Attachment{ContainerID: args.ContainerID, IfName: args.IfName}
	held, ok, err := al.Lookup(ctx, att)
	if err != nil {
		return ipamError("look up the reservation of "+att.String(), err)
	}
	if !ok {
		return errorf(CodeCheckFailed, "no IPAM reservation for %s in %s", att, conf.IPAM.DataDir)
	}
	for _, a := range want.addrs {
		if a.Addr() == held {
			return nil
		}
	}
	return errorf(CodeCheckFailed, "IPAM reserves %s for %s, but the result says %v", held, att, want.addrs)
}

// expected is what the result says the container interface should be.
type expected struct {
	mac   net.HardwareAddr
	addrs []netip.Prefix
}

func expectedFromResult(r *current.Result, ifName, netns string) (expected, error) {
	idx := -1
	for i, itf := range r.Interfaces {
		if itf.Name == ifName && itf.Sandbox == netns {
			idx = i
		}
	}
	if idx < 0 {
		return expected{}, fmt.Errorf("no interface %s with sandbox %s", ifName, netns)
	}
	var w expected
	if mac := r.Interfaces[idx].Mac; mac != "" {
		m, err := net.ParseMAC(mac)
		if err != nil {
			return expected{}, fmt.Errorf("interface %s: mac %q: %w", ifName, mac, err)
		}
		w.mac = m
	}
	for _, ipc := range r.IPs {
		if ipc.Interface == nil || *ipc.Interface != idx {
			continue
		}
		p, ok := ipNetToPrefix(ipc.Address)
		if !ok {
			return expected{}, fmt.Errorf("address %s", ipc.Address.String())
		}
		w.addrs = append(w.addrs, p)
	}
	if len(w.addrs) == 0 {
		return expected{}, fmt.Errorf("no address for interface %s", ifName)
	}
	return w, nil
}

func ipNetToPrefix(n net.IPNet) (netip.Prefix, bool) {
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones), true
}

func checkBridge(name string, gateway netip.Prefix) error {
	l, err := netlinksafe.LinkByName(name)
	if err != nil {
		return err
	}
	if _, ok := l.(*netlink.Bridge); !ok {
		return fmt.Errorf("is a %s link, not a bridge", l.Type())
	}
	if l.Attrs().Flags&net.FlagUp == 0 {
		return errors.New("is down")
	}
	return hasAddr(l, gateway)
}

func hasAddr(l netlink.Link, want netip.Prefix) error {
	addrs, err := netlinksafe.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("list addresses: %w", err)
	}
	for _, a := range addrs {
		if p, ok := ipNetToPrefix(*a.IPNet); ok && p == want {
			return nil
		}
	}
	return fmt.Errorf("lacks address %s", want)
}

// checkHostVeth verifies the host end and returns its peer's ifindex.
func checkHostVeth(name, bridge string) (int, error) {
	l, err := netlinksafe.LinkByName(name)
	if err != nil {
		return 0, err
	}
	veth, ok := l.(*netlink.Veth)
	if !ok {
		return 0, fmt.Errorf("is a %s link, not a veth", l.Type())
	}
	br, err := netlinksafe.LinkByName(bridge)
	if err != nil {
		return 0, fmt.Errorf("bridge: %w", err)
	}
	if l.Attrs().MasterIndex != br.Attrs().Index {
		return 0, fmt.Errorf("is not attached to %s", bridge)
	}
	if l.Attrs().Flags&net.FlagUp == 0 {
		return 0, errors.New("is down")
	}
	pi, err := netlinksafe.LinkGetProtinfo(l)
	if err != nil {
		return 0, fmt.Errorf("bridge port info: %w", err)
	}
	if !pi.Hairpin {
		return 0, errors.New("hairpin mode is off")
	}
	peer, err := netlink.VethPeerIndex(veth)
	if err != nil {
		return 0, fmt.Errorf("peer: %w", err)
	}
	return peer, nil
}

// checkContainer runs inside the container's namespace.
func checkContainer(ifName string, want expected, mtu int, gateway netip.Addr, peerIdx int) error {
	l, err := netlinksafe.LinkByName(ifName)
	if err != nil {
		return err
	}
	a := l.Attrs()
	if a.Index != peerIdx {
		return fmt.Errorf("is not the peer of the host veth (ifindex %d, peer %d)", a.Index, peerIdx)
	}
	if want.mac != nil && !bytes.Equal(a.HardwareAddr, want.mac) {
		return fmt.Errorf("has MAC %s, the result says %s", a.HardwareAddr, want.mac)
	}
	if a.MTU != mtu {
		return fmt.Errorf("has MTU %d, the config says %d", a.MTU, mtu)
	}
	if a.Flags&net.FlagUp == 0 {
		return errors.New("is down")
	}
	for _, p := range want.addrs {
		if err := hasAddr(l, p); err != nil {
			return err
		}
	}
	routes, err := netlinksafe.RouteList(l, netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("list routes: %w", err)
	}
	for _, r := range routes {
		isDefault := r.Dst == nil || (r.Dst.IP.IsUnspecified() && maskBits(r.Dst.Mask) == 0)
		if isDefault && r.Gw.Equal(net.IP(gateway.AsSlice())) {
			return nil
		}
	}
	return fmt.Errorf("lacks the default route via %s", gateway)
}

func maskBits(m net.IPMask) int {
	ones, _ := m.Size()
	return ones
}

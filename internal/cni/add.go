package cni

import (
	"context"
	"errors"
	"net/netip"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"kite/internal/cni/ipam"
)

// add attaches the container: bridge, address, veth, container side.
// Whatever it made is undone if a later step fails, so a failed ADD leaves
// neither a veth nor a reservation behind.
func (p *plugin) add(args *skel.CmdArgs) error {
	conf, err := p.parse(args)
	if err != nil {
		return err
	}
	prev, err := conf.prevResult()
	if err != nil {
		return err
	}
	netns, err := ns.GetNS(args.Netns)
	if err != nil {
		return newError(types.ErrInvalidNetNS, "open the container's network namespace "+args.Netns, err)
	}
	defer netns.Close()

	if err := ensureHostSysctls(); err != nil {
		return newError(CodeHostNetwork, "host sysctls", err)
	}
	rng := conf.Range()
	br, err := ensureBridge(conf.Bridge, conf.MTU, rng.GatewayPrefix())
	if err != nil {
		return newError(CodeHostNetwork, "bridge "+conf.Bridge, err)
	}

	att := ipam.Attachment{ContainerID: args.ContainerID, IfName: args.IfName}
	al, _, err := conf.allocator()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), lockTimeout)
	defer cancel()
	ip, existing, err := al.Allocate(ctx, att)
	if err != nil {
		return ipamError("allocate an address for "+att.String(), err)
	}
	success := false
	defer func() {
		// A reservation this ADD found (a retry) is not its to release.
		if !success && !existing {
			rctx, cancel := context.WithTimeout(context.Background(), lockTimeout)
			defer cancel()
			_, _ = al.Release(rctx, att)
		}
	}()

	hostName := HostVethName(args.ContainerID, args.IfName)
	host, err := createVeth(vethSpec{
		hostName: hostName,
		contName: args.IfName,
		contMAC:  MACFor(ip),
		mtu:      conf.MTU,
	}, netns)
	switch {
	case errors.Is(err, errContainerIfExists), errors.Is(err, errHostVethExists):
		return newError(CodeContainerNetwork, "interface "+args.IfName+" of "+args.ContainerID, err)
	case err != nil:
		return newError(CodeHostNetwork, "veth for "+att.String(), err)
	}
	defer func() {
		if !success {
			// Deleting one end removes both.
			_ = netlink.LinkDel(host)
		}
	}()
	if err := attachHostVeth(host, hostVethAlias(att), br.Attrs().Index); err != nil {
		return newError(CodeHostNetwork, "host veth "+hostName, err)
	}

	addr := netip.PrefixFrom(ip, rng.Subnet.Bits())
	var cont containerIf
	err = netns.Do(func(ns.NetNS) error {
		var err error
		cont, err = configureContainer(args.IfName, addr, rng.Gateway)
		return err
	})
	if err != nil {
		return newError(CodeContainerNetwork, "configure "+args.IfName+" in "+args.Netns, err)
	}

	result := addResult(prev, attachmentResult{
		bridge:  br,
		host:    host,
		cont:    cont,
		ifName:  args.IfName,
		netns:   args.Netns,
		addr:    addr,
		gateway: rng.Gateway,
		dns:     conf.DNS,
	})
	if err := types.PrintResult(result, conf.CNIVersion); err != nil {
		return newError(types.ErrIOFailure, "write the result", err)
	}
	success = true
	return nil
}

// attachmentResult is what ADD made, for the result.
type attachmentResult struct {
	bridge  netlink.Link
	host    netlink.Link
	cont    containerIf
	ifName  string
	netns   string
	addr    netip.Prefix
	gateway netip.Addr
	dns     types.DNS
}

// addResult is the ADD result: prev (when the plugin runs after another in
// a chain) with this attachment's bridge, host veth and container
// interface, address, default route and DNS appended.
func addResult(prev *current.Result, a attachmentResult) *current.Result {
	r := &current.Result{CNIVersion: current.ImplementedSpecVersion}
	if prev != nil {
		r = prev
		r.CNIVersion = current.ImplementedSpecVersion
	}
	base := len(r.Interfaces)
	r.Interfaces = append(r.Interfaces,
		&current.Interface{Name: a.bridge.Attrs().Name, Mac: a.bridge.Attrs().HardwareAddr.String(), Mtu: a.bridge.Attrs().MTU},
		&current.Interface{Name: a.host.Attrs().Name, Mac: a.host.Attrs().HardwareAddr.String(), Mtu: a.host.Attrs().MTU},
		&current.Interface{Name: a.ifName, Mac: a.cont.mac.String(), Mtu: a.cont.mtu, Sandbox: a.netns},
	)
	r.IPs = append(r.IPs, &current.IPConfig{
		Interface: current.Int(base + 2),
		Address:   *prefixToIPNet(a.addr),
		Gateway:   a.gateway.AsSlice(),
	})
	r.Routes = append(r.Routes, &types.Route{Dst: *defaultRouteDst(), GW: a.gateway.AsSlice()})
	if r.DNS.IsEmpty() {
		r.DNS = a.dns
	}
	return r
}

package cni

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/vishvananda/netlink"

	"kite/internal/cni/ipam"
)

// gc frees every reservation, and removes every kite host veth on this
// network's bridge, whose attachment is not in cni.dev/valid-attachments.
// It carries on past errors and reports them all.
func (p *plugin) gc(args *skel.CmdArgs) error {
	conf, err := p.parse(args)
	if err != nil {
		return err
	}
	if !conf.hasAttachmentList {
		// An empty list frees everything; a missing one is a runtime's
		// mistake that must not.
		return errorf(types.ErrInvalidNetworkConfig, "GC without cni.dev/valid-attachments: refusing to free every address of network %q", conf.Name)
	}
	valid := make([]ipam.Attachment, 0, len(conf.ValidAttachments))
	keep := map[ipam.Attachment]bool{}
	for _, a := range conf.ValidAttachments {
		att := ipam.Attachment{ContainerID: a.ContainerID, IfName: a.IfName}
		valid = append(valid, att)
		keep[att] = true
	}
	var errs []error
	if err := gcVeths(conf.Bridge, keep); err != nil {
		errs = append(errs, err)
	}
	al, _, err := conf.allocator()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), lockTimeout)
	defer cancel()
	if _, err := al.GC(ctx, valid); err != nil {
		if errors.Is(err, ipam.ErrBusy) {
			return ipamError("GC", err)
		}
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return newError(CodeHostNetwork, "GC", err)
	}
	return nil
}

// gcVeths deletes the host veths on bridge that kite made (by name and
// alias) for attachments not in keep.
func gcVeths(bridge string, keep map[ipam.Attachment]bool) error {
	br, err := netlinksafe.LinkByName(bridge)
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("bridge %s: %w", bridge, err)
	}
	links, err := netlinksafe.LinkList()
	if err != nil {
		return fmt.Errorf("list links: %w", err)
	}
	var errs []error
	for _, l := range links {
		a := l.Attrs()
		if _, isVeth := l.(*netlink.Veth); !isVeth || a.MasterIndex != br.Attrs().Index || !strings.HasPrefix(a.Name, hostVethPrefix) {
			continue
		}
		att, ok := parseHostVethAlias(a.Alias)
		if !ok || a.Name != HostVethName(att.ContainerID, att.IfName) || keep[att] {
			continue
		}
		if err := netlink.LinkDel(l); err != nil {
			errs = append(errs, fmt.Errorf("delete stale veth %s of %s: %w", a.Name, att, err))
		}
	}
	return errors.Join(errs...)
}

// status reports the plugin ready when the IPAM data directory can be
// written; otherwise it answers code 50 (not available).
func (p *plugin) status(args *skel.CmdArgs) error {
	conf, err := p.parse(args)
	if err != nil {
		return err
	}
	_, store, err := conf.allocator()
	if err != nil {
		return newError(types.ErrPluginNotAvailable, "IPAM data dir "+conf.IPAM.DataDir, err)
	}
	if err := store.CheckWritable(); err != nil {
		return newError(types.ErrPluginNotAvailable, "IPAM data dir "+conf.IPAM.DataDir, err)
	}
	return nil
}

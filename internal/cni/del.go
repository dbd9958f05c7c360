package cni

import (
	"context"

	"github.com/containernetworking/cni/pkg/skel"

	"kite/internal/cni/ipam"
)

// del detaches the container. It is idempotent and needs neither the
// container's namespace nor a cached result: the host veth's name derives
// from the attachment, deleting it removes the container end too (and the
// kernel already removed both if the namespace is gone), and the address
// is released by its holder. The veth goes first, so an address is never
// free while an interface still carries it.
func (p *plugin) del(args *skel.CmdArgs) error {
	conf, err := p.parse(args)
	if err != nil {
		return err
	}
	hostName := HostVethName(args.ContainerID, args.IfName)
	if err := deleteLinkByName(hostName); err != nil {
		return newError(CodeHostNetwork, "delete host veth "+hostName, err)
	}
	al, _, err := conf.allocator()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), lockTimeout)
	defer cancel()
	att := ipam.Attachment{ContainerID: args.ContainerID, IfName: args.IfName}
	if _, err := al.Release(ctx, att); err != nil {
		return ipamError("release the address of "+att.String(), err)
	}
	return nil
}

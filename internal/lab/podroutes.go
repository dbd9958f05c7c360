package lab

import (
	"context"
	"net"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"
)

// hostRouteProtocol marks the routes `kite up --route-pods` keeps in the
// user's namespace (podnet's inside nodes are 75), so they are found again
// and nothing else is touched. They go with the bridge on `kite down`.
const hostRouteProtocol = 76

// podRoutesInterval is how often the host's pod routes are reconciled
// with the Nodes.
const podRoutesInterval = time.Second

// syncPodRoutes keeps, in the user's namespace, a route to every node's
// pod CIDR via the node's address on the underlay (S8: a machine that is
// not a node joins the pod network), until ctx ends.
func syncPodRoutes(ctx context.Context, cl *Cluster) {
	log := klog.FromContext(ctx).WithName("pod-routes")
	client, err := hostClient(cl, 0)
	if err != nil {
		log.Error(err, "client")
		return
	}
	for {
		if err := reconcilePodRoutes(ctx, cl, client); err != nil && ctx.Err() == nil {
			log.Error(err, "reconcile")
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(podRoutesInterval):
		}
	}
}

// reconcilePodRoutes lists what is, deletes what is wrong and adds what is
// missing.
func reconcilePodRoutes(ctx context.Context, cl *Cluster, client kubernetes.Interface) error {
	bridge, err := netlink.LinkByName(cl.Bridge)
	if err != nil {
		return err
	}
	nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	want := desiredPodRoutes(netip.MustParsePrefix(cl.Underlay), nodes.Items)
	have, err := netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{LinkIndex: bridge.Attrs().Index, Protocol: hostRouteProtocol},
		netlink.RT_FILTER_OIF|netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		return err
	}
	for _, r := range have {
		dst, _ := netip.ParsePrefix(r.Dst.String())
		if gw, ok := want[dst]; !ok || gw.String() != r.Gw.String() {
			if err := netlink.RouteDel(&r); err != nil {
				return err
			}
		}
	}
	for dst, gw := range want {
		r := &netlink.Route{LinkIndex: bridge.Attrs().Index, Dst: &net.IPNet{IP: dst.Addr().AsSlice(), Mask: net.CIDRMask(dst.Bits(), 32)},
			Gw: gw.AsSlice(), Protocol: hostRouteProtocol}
		if err := netlink.RouteReplace(r); err != nil {
			return err
		}
	}
	return nil
}

// desiredPodRoutes maps each node's IPv4 pod CIDR to its InternalIP on the
// underlay. Pure.
func desiredPodRoutes(underlay netip.Prefix, nodes []corev1.Node) map[netip.Prefix]netip.Addr {
	want := map[netip.Prefix]netip.Addr{}
	for _, n := range nodes {
		var ip netip.Addr
		for _, a := range n.Status.Addresses {
			if a.Type == corev1.NodeInternalIP {
				if addr, err := netip.ParseAddr(a.Address); err == nil && underlay.Contains(addr) {
					ip = addr
				}
			}
		}
		if !ip.IsValid() {
			continue
		}
		cidrs := n.Spec.PodCIDRs
		if len(cidrs) == 0 && n.Spec.PodCIDR != "" {
			cidrs = []string{n.Spec.PodCIDR}
		}
		for _, c := range cidrs {
			if p, err := netip.ParsePrefix(c); err == nil && p.Addr().Is4() {
				want[p.Masked()] = ip
			}
		}
	}
	return want
}

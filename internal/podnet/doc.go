// Package podnet gives pods on different nodes a flat network without
// NAT: on every node it keeps one route per other node's podCIDR,
// level-triggered from the Node objects.
//
// Two modes, the same on every node of a cluster:
//
//   - host-gw: "<podCIDR> via <node InternalIP>". Every node must be on one
//     L2 segment; a node whose IP is not on a directly connected subnet
//     gets no route, and a HostGatewayUnreachable warning event on its Node
//     says to use vxlan. The other nodes keep working.
//   - vxlan: a VXLAN device (default kite.vxlan, VNI 1, UDP 8472, learning
//     off, local = node IP, MTU = underlay MTU - 50) holding the node's VTEP
//     address, the network address of its podCIDR as a /32, as flannel
//     does. Per remote node: "<podCIDR> via <its .0> dev kite.vxlan
//     onlink", a permanent neighbour entry "<its .0> lladdr <its VTEP
//     MAC>", and a permanent FDB entry "<its VTEP MAC> dst <its node IP>".
//     Each node publishes its VTEP on its own Node as the annotations
//     kite.dev/vxlan-mac and kite.dev/vxlan-ip. Works across any L3 path.
//
// Ownership: podnet's routes carry routing protocol 75 (RouteProtocol;
// "proto 75" in `ip route`). It lists only those, never deletes or
// replaces a route of another protocol, and reports a PodRouteConflict
// when such a route already holds a podCIDR exactly. The VXLAN device is
// podnet's by name, with every neighbour and FDB entry on it; in host-gw
// mode a left-over device is removed.
//
// Shape: Desired (plan.go) is pure — Nodes in, Plan out. reconcile
// (reconcile.go) lists what the kernel has, deletes what is wrong and adds
// what is missing, replacing entries in place, so a restarted controller
// over a correct table changes nothing; it works through the small
// dataplane interface, netlink in kernel.go, a fake in tests. The
// Controller (controller.go) runs one whole sync per node event (coalesced)
// and every ResyncPeriod, repairing drift, and publishes the VTEP.
package podnet

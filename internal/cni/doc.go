// Package cni is kite's CNI plugin: bridge networking with kite's own
// IPAM, CNI spec 1.0 (configs of 0.3.0 to 1.1.0 accepted), run by Main as
// /opt/cni/bin/kite or `kite cni`.
//
// ADD, for one attachment (container ID, CNI_IFNAME):
//
//   - the host namespace gets net.ipv4.ip_forward=1 (and
//     bridge-nf-call-iptables=1 where br_netfilter exists);
//   - the bridge (config "bridge", default cni0) is made to exist, up, with
//     the gateway address (the subnet's first address, /prefix of the
//     subnet); a bridge kite creates gets the config's MTU and a fixed MAC
//     derived from the gateway (MACFor), so its MAC never follows its ports;
//   - ipam reserves the next free address of ipam.subnet (see package
//     ipam) under a file lock in ipam.dataDir;
//   - a veth pair is created with its container end born inside the
//     container's namespace under its final name, with the MAC derived from
//     the pod's address; the host end is named HostVethName(id, ifname),
//     labelled with an alias "kite:<id>/<ifname>", put on the bridge with
//     hairpin mode on, and brought up; both ends get the config's MTU;
//   - inside the namespace: the address, link up, default route via the
//     gateway.
//
// Any failure undoes what this ADD made (deferred success flag): the veth
// is deleted and a fresh reservation released. A reservation found already
// held by the same attachment (a retried ADD) is reused and never released
// by a failing ADD. The result lists the bridge, the host veth and the
// container interface (with its sandbox), the address on the container
// interface with the gateway, the default route, and the config's DNS;
// after another plugin in a chain, it is that plugin's result with these
// appended.
//
// DEL deletes the host veth by its derived name (which removes both ends)
// and then releases the attachment's reservations: it needs neither the
// namespace nor a cached result and succeeds when things are already gone.
// CHECK compares the kernel and the IPAM store with prevResult. GC frees
// reservations, and deletes kite's host veths on the bridge, whose
// attachment is not in cni.dev/valid-attachments. STATUS is ready while
// the IPAM data dir is writable.
//
// Not here, by design: masquerade (kite's node networking does it for
// traffic leaving the cluster CIDR), routes to other nodes' podCIDRs,
// IPv6, delegation to other IPAM plugins.
//
// Errors are the spec's JSON object on stdout with the codes in errors.go.
package cni

// Package lab is `kite up`, `kite down`, `kite status` and `kite node
// shell|add|rm`: a multi-node cluster on one machine, each node a set of
// namespaces on an underlay bridge in the user's own network namespace
// (DESIGN.md, "The node, in the lab"). Nodes added and removed while it
// runs are recorded like the first ones (nodes.go).
//
// # What the host gets
//
// For a cluster <name> with state directory S (default
// /var/lib/kite/lab/<name>):
//
//   - a bridge kite-<name> with the underlay's .1/24 (the only route added
//     is that connected /24), and per node a veth kite-<name>-<i> whose
//     other end is the node's eth0 (.2, .3, … /24, default route via .1);
//   - per node a named network namespace /run/netns/<node> (`ip netns`
//     sees it), and mount and UTS namespaces pinned as S/ns/<node>.mnt and
//     S/ns/<node>.uts (S/ns is bound on itself, private: the kernel only
//     pins a mount namespace on a mount that does not propagate);
//   - a supervisor process (argv[0] kite-lab), running `kite server` on the
//     control-plane node and `kite agent` on every node, each entered into
//     its node's namespaces by nsenter; PIDs in S/run, logs in S/logs;
//   - a cluster, user and context (kite, or kite-<name>) in the user's
//     kubeconfig, made current.
//
// No nftables table, route or sysctl of the host is touched: the agents'
// rules and sysctls live in the nodes' network namespaces and vanish with
// them. Node names follow kind: <name>-control-plane, <name>-worker,
// <name>-worker2, …
//
// # A node's file system
//
// A node's mount namespace starts as a copy of the host's; a helper (the
// kite binary re-executed as kite-lab node-init, see helper.go) changes
// it before anything runs there:
//
//   - /etc/cni/net.d, /opt/cni/bin, /var/lib/kite, /var/lib/cni,
//     /var/log/pods, /etc/kubernetes and /root/.kube are the node's own:
//     bind mounts of S/nodes/<node>/<same path>. /opt/cni/bin holds the
//     kite binary linked as `kite` (the CNI plugin) and links to the
//     reference plugins of /usr/lib/cni; /etc/kubernetes/admin.conf and
//     /root/.kube/config are the admin kubeconfig (S7).
//   - /var/lib/kite/images is S/images, shared by all nodes (an image is
//     imported once); /opt/kite/bin (first on PATH in node shells and for
//     the node's processes) holds kite and kubectl.
//   - Where such a path does not exist on the host, making a mount point
//     would write to the host's disk; so its nearest existing ancestor
//     (e.g. /etc, /opt, /var/lib) gets an overlay inside the node: the
//     host's directory below, a tmpfs above. The host's file system is
//     never written outside S.
//   - /run is a fresh tmpfs, as after a boot. Decision: the node's runtime
//     pins its pods' namespaces and keeps runc's state under /run (the
//     agent's RunDir, /run/kite); both the agent and the CNI plugins it
//     runs are in the node's mount namespace, so those paths resolve for
//     them, and `ip netns` inside a node shows the node's own /run/netns.
//     Everything there goes with the node: `kite down` (or a crash and
//     the next `kite up`) is a reboot for it. The host's /run/netns pins
//     of the nodes are outside, where `ip netns` and nsenter on the host
//     use them. (/run/systemd/resolve is bound back in, for an
//     /etc/resolv.conf that points there.)
//   - /sys is a sysfs of the node's network namespace (so /sys/class/net
//     lists the node's links), with the host's /sys/fs/cgroup bound back
//     for runc.
//   - The copy's pins of other namespaces (other nodes' /run/netns entries,
//     other clusters' pins) are detached: a copy would keep those
//     namespaces — and their veths — alive as long as this node.
//
// # Bring-up, tear-down
//
// Up checks everything that needs no change first (root, commands, the
// kernel in a throwaway namespace, address overlaps with the host's
// routes and addresses and with other clusters' underlays), so bad input
// leaves nothing behind. It saves S/cluster.json before making anything,
// so Down can undo any part of a bring-up from the record alone; a failed
// bring-up is undone at once. Down goes in dependency order: the
// supervisor (which stops its children), then any process left in a
// node's namespaces and their descendants (container shims and
// containers, after a crash), the namespace pins (freeing each node's
// mounts), the veths (explicitly: the kernel dismantles a deleted network
// namespace asynchronously), the network namespaces, the bridge, the
// nodes' cgroups (/kite/<node>), the kubeconfig context (only if it still
// points at this cluster). The cluster's data stays in S unless --purge;
// the next Up brings the same cluster back (same addresses, etcd data).
// Up also treats what a crashed cluster left as leftovers to remove
// before starting again.
//
// # Kernel notes
//
// Pinning a mount namespace is refused with EINVAL unless its ID is above
// that of the namespace doing the pinning (mnt_ns_loop). Kernel 6.18 hands
// out mount namespace IDs per CPU, so this fails deterministically when
// the node's namespace is made on another CPU than the host's was; the
// pin is retried on each CPU (runPinningMountNS).
package lab

package lab

import (
	"fmt"
	"net/netip"
	"path"
	"sort"
	"strings"
)

// The network of a lab is made and unmade with `ip -batch`: one process for
// the host side (bridge, node namespaces, veths), one per node for the
// node side. These functions render the batches; they are pure, so the
// tests compare their text.

// hostUpBatch makes the underlay bridge with the gateway address, one
// named network namespace per node, and each node's veth: the host side a
// port of the bridge, the other end eth0 inside the node.
func hostUpBatch(cl *Cluster) string {
	var b strings.Builder
	u := netip.MustParsePrefix(cl.Underlay)
	fmt.Fprintf(&b, "link add %s type bridge\n", cl.Bridge)
	fmt.Fprintf(&b, "addr add %s/%d dev %s\n", cl.Gateway, u.Bits(), cl.Bridge)
	fmt.Fprintf(&b, "link set %s up\n", cl.Bridge)
	for _, n := range cl.netNamespaces() {
		b.WriteString(hostNodeBatch(cl, n))
	}
	return b.String()
}

// nodeUpBatch is run as `ip -n <node> -batch -`: loopback, the node's
// address and its default route via the host.
func nodeUpBatch(cl *Cluster, n Node) string {
	u := netip.MustParsePrefix(cl.Underlay)
	return fmt.Sprintf("link set lo up\naddr add %s/%d dev %s\nlink set %s up\nroute add default via %s\n",
		n.IP, u.Bits(), nodeIface, nodeIface, cl.Gateway)
}

// hostDownBatch deletes what exists of the cluster's links and namespaces.
// The veths go first and explicitly: deleting a namespace would delete
// them too, but the kernel dismantles a namespace asynchronously, so they
// could still be seen for a moment after `kite down`. Run with -force, so
// one failure does not stop the rest.
func hostDownBatch(cl *Cluster, links, netns map[string]bool) string {
	var b strings.Builder
	for _, n := range cl.netNamespaces() {
		if links[n.Veth] {
			fmt.Fprintf(&b, "link del %s\n", n.Veth)
		}
	}
	for _, n := range cl.netNamespaces() {
		if netns[n.Name] {
			fmt.Fprintf(&b, "netns del %s\n", n.Name)
		}
	}
	if links[cl.Bridge] {
		fmt.Fprintf(&b, "link del %s\n", cl.Bridge)
	}
	return b.String()
}

// A node's own directories, each backed by the same path under
// <state-dir>/nodes/<node>/ (DESIGN.md, "The node, in the lab"). Everything
// else of the host's file system is shared, except /run (a fresh tmpfs)
// and /sys (a sysfs of the node's network namespace); see doc.go.
var nodePaths = []string{
	"/etc/cni/net.d",  // the CNI configuration the agent writes
	"/opt/cni/bin",    // CNI plugins: kite, and the reference plugins when installed
	"/var/lib/kite",   // agent (and on the control plane, server and etcd) state, pods
	"/var/lib/cni",    // state of the reference plugins (host-local IPAM)
	"/var/log/pods",   // pod logs
	"/etc/kubernetes", // admin.conf (S7)
	"/root/.kube",     // config, the same admin kubeconfig (S7)
}

// mountSpec is one bind mount of a node's file system.
type mountSpec struct {
	Source   string // on the host
	Target   string // inside the node
	ReadOnly bool
}

func (m mountSpec) String() string {
	ro := ""
	if m.ReadOnly {
		ro = " (ro)"
	}
	return m.Target + " <- " + m.Source + ro
}

// sharedImages is the image store inside every node: one directory of the
// cluster's, so an image is pulled or imported once for all nodes (the
// agent's default image store).
const sharedImages = "/var/lib/kite/images"

// nodeMounts are the bind mounts giving a node its own directories, in
// order (the image store goes over the node's /var/lib/kite). Pure.
func nodeMounts(cl *Cluster, node string) []mountSpec {
	var ms []mountSpec
	for _, p := range nodePaths {
		ms = append(ms, mountSpec{Source: cl.nodeHostPath(node, p), Target: p})
	}
	return append(ms,
		mountSpec{Source: cl.imagesDir(), Target: sharedImages},
		mountSpec{Source: cl.nodeBinSource(), Target: nodeBinDir, ReadOnly: true})
}

// overlayRoots: a bind target that does not exist on the host needs a
// mount point, and making one would write to the host's file system. So
// the nearest existing ancestor of each missing target gets an overlay
// (the host's directory as lower layer, a private tmpfs as upper), and the
// mount point is made in the overlay. Returns the minimal set of such
// ancestors, shallowest first. Pure.
func overlayRoots(targets []string, exists func(string) bool) ([]string, error) {
	roots := map[string]bool{}
	for _, t := range targets {
		if exists(t) {
			continue
		}
		a := path.Dir(t)
		for a != "/" && !exists(a) {
			a = path.Dir(a)
		}
		if a == "/" {
			return nil, fmt.Errorf("%s: no parent directory on the host to make a mount point in", t)
		}
		roots[a] = true
	}
	var out []string
	for r := range roots {
		covered := false
		for o := range roots {
			if o != r && under(r, o) {
				covered = true
			}
		}
		if !covered {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if a, b := strings.Count(out[i], "/"), strings.Count(out[j], "/"); a != b {
			return a < b
		}
		return out[i] < out[j]
	})
	return out, nil
}

// under reports whether p is dir or below it.
func under(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, strings.TrimSuffix(dir, "/")+"/")
}

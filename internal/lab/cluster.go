package lab

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"

	"kite/internal/controller/lbipam"
)

// Names on the host. Everything the lab makes is named from the cluster
// name, so `kite down` finds it again from the record alone.
const (
	bridgePrefix     = "kite-"        // underlay bridge kite-<name>
	maxLinkName      = 15             // IFNAMSIZ - 1
	nodeIface        = "eth0"         // a node's side of its veth
	netnsDir         = "/run/netns"   // where `ip netns` pins named network namespaces
	recordFile       = "cluster.json" // the Cluster record
	lockFile         = ".lock"        // flock held by up and down
	helperName       = "kite-lab"     // argv[0] of the supervisor and node helper (helper.go)
	hostKubeconfig   = "kubeconfig"   // the admin kubeconfig as merged into the user's
	serverStateDir   = "/var/lib/kite/server"
	agentStateDir    = "/var/lib/kite/agent"
	nodeKubeconfig   = "/etc/kubernetes/admin.conf"
	nodeBinDir       = "/opt/kite/bin" // kite and kubectl inside a node, first on its PATH
	controlPlaneRole = "node-role.kubernetes.io/control-plane"
)

// Cluster is the record of a lab cluster, kept as cluster.json in its state
// directory: what `kite up` made it with, and what `kite down` must undo.
type Cluster struct {
	Name        string `json:"name"`
	StateDir    string `json:"stateDir"`
	Bridge      string `json:"bridge"`
	Underlay    string `json:"underlay"`
	Gateway     string `json:"gateway"`
	PodCIDR     string `json:"podCIDR"`
	ServiceCIDR string `json:"serviceCIDR"`
	PodNetwork  string `json:"podNetwork,omitempty"`
	ProxyMode   string `json:"proxyMode,omitempty"`
	// RoutePods: the user's namespace gets routes to the pod CIDRs.
	RoutePods bool `json:"routePods,omitempty"`
	// Binary is the kite binary the nodes run; Helper the binary run as
	// supervisor and node helper.
	Binary string `json:"binary"`
	Helper string `json:"helper"`
	// Context is the kubeconfig context, merged into Kubeconfig.
	Context    string `json:"context"`
	Kubeconfig string `json:"kubeconfig"`
	Nodes      []Node `json:"nodes"`
	// LB is the namespace of `kite lb` on the underlay (a cloud load
	// balancer in front of the nodes, S19), LBPool the LoadBalancer
	// addresses it serves: absent in clusters made before kite lb.
	// In LBMode l2 there is no kite lb: the agents elect a node per
	// address, which answers ARP for it.
	LB     *Node  `json:"lb,omitempty"`
	LBPool string `json:"lbPool,omitempty"`
	LBMode string `json:"lbMode,omitempty"`
	// MadeDirs are the parents of StateDir that did not exist before the
	// cluster was first made (removed by `kite down --purge` if empty).
	MadeDirs []string `json:"madeDirs,omitempty"`
	// MadeNetnsMount: `ip netns add` made /run/netns a mount point for
	// this cluster (undone when no named namespace is left there).
	MadeNetnsMount bool `json:"madeNetnsMount,omitempty"`
	// MadeKubeconfig: the user's kubeconfig did not exist before `kite
	// up` (removed by `kite down` when nothing else is left in it), nor
	// did these directories leading to it.
	MadeKubeconfig     bool     `json:"madeKubeconfig,omitempty"`
	MadeKubeconfigDirs []string `json:"madeKubeconfigDirs,omitempty"`
}

// Node is one lab node: a named network namespace (and the mount and UTS
// namespaces pinned in the state directory) on the underlay.
type Node struct {
	Name         string `json:"name"`
	IP           string `json:"ip"`
	Veth         string `json:"veth"` // host side, a port of the bridge
	ControlPlane bool   `json:"controlPlane,omitempty"`
}

// cgroupTop is the cgroup under which every lab keeps its containers'.
const cgroupTop = "/kite"

// cgroupRoot is this cluster's cgroup, /kite/<name>-<hash of the state
// dir>: labs with the same name (and so the same node names) in other
// state directories, such as parallel tests, never share one, so `kite
// down` of one cannot touch another's containers.
func (cl *Cluster) cgroupRoot() string {
	h := fnv.New32a()
	h.Write([]byte(cl.StateDir))
	return fmt.Sprintf("%s/%s-%08x", cgroupTop, cl.Name, h.Sum32())
}

// cgroupParent is the cgroup of node's containers.
func (cl *Cluster) cgroupParent(node string) string { return cl.cgroupRoot() + "/" + node }

// newCluster derives every name and address from a defaulted, validated
// Config with its Underlay chosen. Pure.
func newCluster(c Config) (*Cluster, error) {
	u, err := parsePrefix("--underlay", c.Underlay)
	if err != nil {
		return nil, err
	}
	cl := &Cluster{
		Name: c.Name, StateDir: c.StateDir, Bridge: bridgePrefix + c.Name,
		Underlay: u.String(), Gateway: u.Addr().Next().String(),
		PodCIDR: c.PodCIDR, ServiceCIDR: c.ServiceCIDR, PodNetwork: c.PodNetwork, ProxyMode: c.ProxyMode, RoutePods: c.RoutePods,
		Binary: c.Binary, Helper: c.Helper,
		Context: contextName(c.Name), Kubeconfig: c.Kubeconfig,
	}
	ip := u.Addr().Next()
	for i := range c.Nodes {
		ip = ip.Next()
		if !u.Contains(ip) || ip == lastAddr(u) {
			return nil, fmt.Errorf("--underlay %s has no address for node %d", u, i+1)
		}
		cl.Nodes = append(cl.Nodes, Node{Name: nodeName(c.Name, i), IP: ip.String(), Veth: vethName(c.Name, i), ControlPlane: i == 0})
	}
	lbHostIP := underlayAddr(u, lbHost)
	if c.LBMode != LBModeL2 {
		cl.LB = &Node{Name: c.Name + "-lb", IP: lbHostIP.String(), Veth: vethName(c.Name, lbVethIndex)}
	} else {
		cl.LBMode = LBModeL2
	}
	if c.LBPool == "" {
		first, last := underlayAddr(u, lbPoolFirst), underlayAddr(u, lbPoolLast)
		if ip.Compare(first) >= 0 {
			return nil, fmt.Errorf("--underlay %s: %d nodes reach the LoadBalancer pool %s-%s", u, c.Nodes, first, last)
		}
		cl.LBPool = first.String() + "-" + last.String()
		return cl, nil
	}
	if err := checkLBPool(c.LBPool, cl); err != nil {
		return nil, err
	}
	cl.LBPool = c.LBPool
	return cl, nil
}

// checkLBPool: a pool given with --lb-pool must parse, lie on the
// underlay (the host reaches its addresses by ARP on the bridge), and
// hold none of the addresses the lab uses itself: the network and
// broadcast addresses, the host's (gateway), the nodes', kite lb's. Pure.
func checkLBPool(pool string, cl *Cluster) error {
	p, err := lbipam.ParsePool(pool)
	if err != nil {
		return fmt.Errorf("--lb-pool %q: %w", pool, err)
	}
	u := netip.MustParsePrefix(cl.Underlay)
	for _, pr := range p.Prefixes() {
		if !pr.Addr().Is4() || !u.Contains(pr.Addr()) || pr.Bits() < u.Bits() {
			return fmt.Errorf("--lb-pool %s: %s is not on the underlay %s (the host reaches LoadBalancer addresses there)", pool, pr, u)
		}
	}
	type use struct {
		what string
		addr netip.Addr
	}
	used := []use{{"the underlay's network address", u.Addr()}, {"this machine's address on the underlay", netip.MustParseAddr(cl.Gateway)}}
	for _, n := range cl.Nodes {
		used = append(used, use{"node " + n.Name + "'s address", netip.MustParseAddr(n.IP)})
	}
	if cl.LB != nil {
		used = append(used, use{"kite lb's address", netip.MustParseAddr(cl.LB.IP)})
	}
	used = append(used, use{"the underlay's broadcast address", lastAddr(u)})
	for _, x := range used {
		if p.Contains(x.addr) {
			return fmt.Errorf("--lb-pool %s holds %s, %s", pool, x.addr, x.what)
		}
	}
	return nil
}

// The LoadBalancer side of the underlay /24: kite lb at .250, the pool of
// LoadBalancer addresses .200-.249 (reachable from the host by ARP on the
// bridge), the nodes below.
const (
	lbPoolFirst = 200
	lbPoolLast  = 249
	lbHost      = 250
	// lbVethIndex names the LB's veth like a node's (kite-<name>-<i>).
	lbVethIndex = 999
)

// underlayAddr is host number n of the /24.
func underlayAddr(u netip.Prefix, n byte) netip.Addr {
	a := u.Masked().Addr().As4()
	a[3] = n
	return netip.AddrFrom4(a)
}

// netNamespaces are every network namespace of the cluster: the nodes'
// and kite lb's.
func (cl *Cluster) netNamespaces() []Node {
	all := append([]Node(nil), cl.Nodes...)
	if cl.LB != nil {
		all = append(all, *cl.LB)
	}
	return all
}

// nodeName: <name>-control-plane, <name>-worker, <name>-worker2, … as
// kind names them.
func nodeName(cluster string, i int) string {
	switch i {
	case 0:
		return cluster + "-control-plane"
	case 1:
		return cluster + "-worker"
	default:
		return cluster + "-worker" + strconv.Itoa(i)
	}
}

// vethName is the host side of node i's veth: kite-<name>-<i> when that
// fits, else a hash of the name (still unique per cluster and node).
func vethName(cluster string, i int) string {
	if n := fmt.Sprintf("kite-%s-%d", cluster, i); len(n) <= maxLinkName {
		return n
	}
	h := fnv.New32a()
	h.Write([]byte(cluster))
	return fmt.Sprintf("k%08x-%d", h.Sum32(), i)
}

// contextName is the kubeconfig context: "kite" for the default cluster
// (DESIGN.md), kite-<name> for others.
func contextName(cluster string) string {
	if cluster == DefaultName {
		return DefaultName
	}
	return "kite-" + cluster
}

func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3]) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// ControlPlane is the control-plane node.
func (cl *Cluster) ControlPlane() Node { return cl.Nodes[0] }

// Node finds a node by name.
func (cl *Cluster) Node(name string) (Node, bool) {
	for _, n := range cl.Nodes {
		if n.Name == name {
			return n, true
		}
	}
	return Node{}, false
}

// APIServer is the URL the API is reached at, from the host and the nodes.
func (cl *Cluster) APIServer() string {
	return "https://" + netip.AddrPortFrom(netip.MustParseAddr(cl.ControlPlane().IP), APIPort).String()
}

// Paths in the state directory.
func (cl *Cluster) path(elem ...string) string {
	return filepath.Join(append([]string{cl.StateDir}, elem...)...)
}
func (cl *Cluster) nsDir() string               { return cl.path("ns") }
func (cl *Cluster) mntPin(node string) string   { return cl.path("ns", node+".mnt") }
func (cl *Cluster) utsPin(node string) string   { return cl.path("ns", node+".uts") }
func (cl *Cluster) netnsPin(node string) string { return filepath.Join(netnsDir, node) }
func (cl *Cluster) nodeDir(node string) string  { return cl.path("nodes", node) }
func (cl *Cluster) logDir() string              { return cl.path("logs") }
func (cl *Cluster) runDir() string              { return cl.path("run") }
func (cl *Cluster) helperPath() string          { return cl.path("bin", helperName) }
func (cl *Cluster) nodeBinSource() string       { return cl.path("bin", "node") }
func (cl *Cluster) imagesDir() string           { return cl.path("images") }
func (cl *Cluster) hostKubeconfig() string      { return cl.path(hostKubeconfig) }
func (cl *Cluster) logFile(node, role string) string {
	return filepath.Join(cl.logDir(), node+"-"+role+".log")
}

// nodeHostPath is where a path of a node's own (one of nodeMounts' bind
// targets) lives on the host.
func (cl *Cluster) nodeHostPath(node, inNode string) string {
	return filepath.Join(cl.nodeDir(node), inNode)
}

// serverKubeconfig is the admin kubeconfig `kite server` writes, seen
// from the host.
func (cl *Cluster) serverKubeconfig() string {
	return cl.nodeHostPath(cl.ControlPlane().Name, filepath.Join(serverStateDir, "admin.kubeconfig"))
}

// ErrNoCluster means the state directory holds no cluster record.
var ErrNoCluster = errors.New("no lab cluster")

// IsNoCluster reports whether err means there is no cluster to act on.
func IsNoCluster(err error) bool { return errors.Is(err, ErrNoCluster) }

func loadCluster(stateDir string) (*Cluster, error) {
	data, err := os.ReadFile(filepath.Join(stateDir, recordFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w in %s", ErrNoCluster, stateDir)
	}
	if err != nil {
		return nil, err
	}
	var cl Cluster
	if err := json.Unmarshal(data, &cl); err != nil {
		return nil, fmt.Errorf("cluster record %s: %w", filepath.Join(stateDir, recordFile), err)
	}
	if len(cl.Nodes) == 0 || cl.StateDir != stateDir {
		return nil, fmt.Errorf("cluster record %s: no nodes, or made for state dir %q", filepath.Join(stateDir, recordFile), cl.StateDir)
	}
	return &cl, nil
}

func (cl *Cluster) save() error {
	data, err := json.MarshalIndent(cl, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(cl.path(recordFile), append(data, '\n'), 0o644)
}

// writeFileAtomic replaces path so that readers see the old or the new
// content, never part of it.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

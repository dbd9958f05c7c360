package lab

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"time"
)

// Defaults of `kite up` (DESIGN.md, "Defaults").
const (
	DefaultName        = "kite"
	DefaultNodes       = 3
	DefaultPodCIDR     = "10.244.0.0/16"
	DefaultServiceCIDR = "10.96.0.0/16"
	DefaultWait        = 60 * time.Second
	// DefaultStateRoot holds one state directory per cluster name.
	DefaultStateRoot = "/var/lib/kite/lab"
	// MaxNodes: node IPs are .2 … .199 of the underlay /24 (.200-.250
	// are the LoadBalancers' by default).
	MaxNodes = 198
	// LBModeLB and LBModeL2 are the values of --lb-mode.
	LBModeLB = "lb"
	LBModeL2 = "l2"
	// APIPort is where `kite server` listens on the control-plane node.
	APIPort = 6443
)

// Config is what `kite up`, `kite down` and `kite node shell` are given.
// Zero fields take their defaults, or for a cluster that already has a
// state directory, what it was created with.
type Config struct {
	// Name of the cluster: a DNS label of at most 10 characters (the
	// underlay bridge kite-<name> must fit Linux's 15).
	Name string
	// Nodes is the number of nodes, control plane included.
	Nodes int
	// StateDir holds everything the cluster keeps and everything `kite
	// down` needs to undo it. Default /var/lib/kite/lab/<name>.
	StateDir string
	// PodCIDR is the cluster CIDR, a /24 per node; ServiceCIDR the
	// Services'.
	PodCIDR, ServiceCIDR string
	// PodNetwork is how pods reach other nodes: host-gw (default) or
	// vxlan.
	PodNetwork string
	// ProxyMode is how the nodes' Service proxies program the kernel:
	// nftables (default), iptables (the seed's layout) or none.
	ProxyMode string
	// RoutePods adds routes to the nodes' pod CIDRs in the user's
	// namespace, kept by the supervisor as nodes come and go.
	RoutePods bool
	// Underlay is the nodes' /24 on the bridge: .1 is the host, .2 … the
	// nodes. Default: the first 172.30.N.0/24 that no route, address or
	// other kite cluster uses.
	Underlay string
	// LBPool is the LoadBalancer pool (lbipam's syntax: CIDRs, first-last
	// ranges, addresses), on the underlay and clear of the host, node
	// and kite lb addresses. Default: .200-.249 of the underlay.
	LBPool string
	// LBMode is how LoadBalancer addresses are reached: "lb" (default:
	// kite lb in its own namespace forwards them to the nodes' NodePorts)
	// or "l2" (no kite lb; one elected node per address answers ARP for
	// it, as on real machines — see internal/lb/l2).
	LBMode string
	// Wait is how long `kite up` waits for the API and every Node to be
	// Ready; 0 does not wait.
	Wait time.Duration
	// Purge (kite down): remove the state directory too, etcd data
	// included. Without it, `kite up` brings the same cluster back.
	Purge bool

	// Binary is the kite binary the nodes run (server, agent, CNI plugin,
	// kubectl). Default: the running executable.
	Binary string
	// Helper is a binary importing this package, run as the supervisor
	// and the node mount helper (see helper.go). Default: the running
	// executable. Tests set Binary to the built kite and leave Helper
	// the test binary.
	Helper string
	// Kubeconfig is the user's kubeconfig to merge the context into.
	// Default: the first path of $KUBECONFIG, else ~/.kube/config.
	Kubeconfig string
	// Out receives progress; nil discards it.
	Out io.Writer
}

var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?$`)

// validateName checks a cluster name; every derived name (bridge, node
// namespaces, veths) depends on it.
func validateName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("cluster name %q: want 1 to 10 lower-case letters, digits or '-' (the bridge kite-<name> must fit in 15 characters)", name)
	}
	return nil
}

// withDefaults fills the fields a fresh cluster needs, except Underlay,
// which depends on the host (see pickUnderlay).
func (c Config) withDefaults() (Config, error) {
	if c.Name == "" {
		c.Name = DefaultName
	}
	if c.StateDir == "" {
		c.StateDir = filepath.Join(DefaultStateRoot, c.Name)
	}
	if c.Nodes == 0 {
		c.Nodes = DefaultNodes
	}
	if c.PodCIDR == "" {
		c.PodCIDR = DefaultPodCIDR
	}
	if c.PodNetwork == "" {
		c.PodNetwork = "host-gw"
	}
	if c.ServiceCIDR == "" {
		c.ServiceCIDR = DefaultServiceCIDR
	}
	if c.Out == nil {
		c.Out = io.Discard
	}
	var err error
	for _, p := range []*string{&c.Binary, &c.Helper} {
		if *p == "" {
			if *p, err = os.Executable(); err != nil {
				return c, fmt.Errorf("finding the kite binary: %w", err)
			}
		}
		if *p, err = filepath.Abs(*p); err != nil {
			return c, err
		}
	}
	if c.StateDir, err = canonical(c.StateDir); err != nil {
		return c, err
	}
	if c.Kubeconfig == "" {
		c.Kubeconfig = userKubeconfig()
	}
	return c, nil
}

// validate checks a defaulted Config of a cluster to create.
func (c Config) validate() error {
	if err := validateName(c.Name); err != nil {
		return err
	}
	if c.Nodes < 1 || c.Nodes > MaxNodes {
		return fmt.Errorf("--nodes %d: want 1 to %d", c.Nodes, MaxNodes)
	}
	switch c.ProxyMode {
	case "", "nftables", "iptables", "none":
	default:
		return fmt.Errorf("--proxy-mode %q: want nftables, iptables or none", c.ProxyMode)
	}
	if c.PodNetwork != "" && c.PodNetwork != "host-gw" && c.PodNetwork != "vxlan" {
		return fmt.Errorf("--pod-network %q: want host-gw or vxlan", c.PodNetwork)
	}
	pod, err := parsePrefix("--pod-cidr", c.PodCIDR)
	if err != nil {
		return err
	}
	if pod.Bits() > 24 || 1<<(24-pod.Bits()) < c.Nodes {
		return fmt.Errorf("--pod-cidr %s has room for %d node /24s, not %d", c.PodCIDR, max(0, 1<<max(0, 24-pod.Bits())), c.Nodes)
	}
	if _, err := parsePrefix("--service-cidr", c.ServiceCIDR); err != nil {
		return err
	}
	if c.Underlay != "" {
		u, err := parsePrefix("--underlay", c.Underlay)
		if err != nil {
			return err
		}
		if u.Bits() != 24 {
			return fmt.Errorf("--underlay %s: want a /24", c.Underlay)
		}
	}
	if c.LBMode != "" && c.LBMode != LBModeLB && c.LBMode != LBModeL2 {
		return fmt.Errorf("--lb-mode %q: want lb or l2", c.LBMode)
	}
	if c.Wait < 0 {
		return errors.New("--wait must not be negative")
	}
	return nil
}

// parsePrefix parses an IPv4 CIDR that must be its own network address.
func parsePrefix(flag, s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return p, fmt.Errorf("%s %q: %w", flag, s, err)
	}
	if !p.Addr().Is4() {
		return p, fmt.Errorf("%s %s: only IPv4 is supported", flag, s)
	}
	if p.Masked() != p {
		return p, fmt.Errorf("%s %s: not a network address (did you mean %s?)", flag, s, p.Masked())
	}
	return p, nil
}

// canonical makes p absolute and resolves the symbolic links of its
// existing part, so that it matches the mount points the kernel reports.
func canonical(p string) (string, error) {
	p, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	rest := ""
	for dir := p; ; dir = filepath.Dir(dir) {
		if real, err := filepath.EvalSymlinks(dir); err == nil {
			return filepath.Join(real, rest), nil
		}
		if dir == "/" {
			return p, nil
		}
		rest = filepath.Join(filepath.Base(dir), rest)
	}
}

// userKubeconfig is where kubectl reads by default: the first file of
// $KUBECONFIG, else ~/.kube/config.
func userKubeconfig() string {
	for _, p := range filepath.SplitList(os.Getenv("KUBECONFIG")) {
		if p != "" {
			return p
		}
	}
	home, err := os.UserHomeDir()
	if err != nil {
		home = "/root"
	}
	return filepath.Join(home, ".kube", "config")
}

package proxy

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Proxy modes: which kernel interface carries the rules.
const (
	ModeNFTables = "nftables"
	ModeIPTables = "iptables"
)

// Defaults for Config's zero values.
const (
	DefaultMinSyncInterval = 50 * time.Millisecond
	DefaultSyncPeriod      = 30 * time.Second
	// DefaultMasqueradeBit is the packet-mark bit that asks for SNAT at
	// postrouting (kube-proxy's 0x4000, so tools that know it read ours).
	DefaultMasqueradeBit = 14
	// maxRetryInterval caps the back-off between failed syncs.
	maxRetryInterval = 5 * time.Second
)

// Config is one node's proxy. The Proxier must run in the node's network
// namespace: every rule, sysctl, conntrack entry and health-check listener
// is that of the calling process's namespace.
type Config struct {
	// NodeName is this node's name: endpoints whose nodeName equals it are
	// local (externalTrafficPolicy/internalTrafficPolicy Local).
	NodeName string
	// NodeIPs are this node's addresses. Only used to scope the UDP
	// conntrack clean-up of NodePorts; NodePorts match any local address
	// (restricted by NodePortAddresses).
	NodeIPs []netip.Addr
	// ClusterCIDR is the pod network. Traffic to a ClusterIP from outside it
	// is masqueraded (so replies come back through this node). If unset,
	// the Node's spec.podCIDR is used (only this node's pods are "inside").
	ClusterCIDR netip.Prefix
	// Mode is ModeNFTables (default) or ModeIPTables.
	Mode string
	// MinSyncInterval is the least time between two syncs: changes arriving
	// faster are coalesced into one transaction.
	MinSyncInterval time.Duration
	// SyncPeriod is how often the whole state is re-read from the kernel
	// and rewritten, repairing anything changed behind our back.
	SyncPeriod time.Duration
	// NodePortAddresses restricts NodePorts to local addresses inside these
	// prefixes; empty means every local address.
	NodePortAddresses []netip.Prefix
	// LocalhostNodePorts serves NodePorts on 127.0.0.1 for connections made
	// on the node itself (S18's `curl localhost:<nodePort>`). It needs
	// net.ipv4.conf.all.route_localnet=1, which the proxy sets, together with
	// a rule dropping 127/8 destinations arriving from outside (README.md).
	// Default true; set DisableLocalhostNodePorts to turn it off.
	DisableLocalhostNodePorts bool
	// HealthCheckAddress is the address the healthCheckNodePort servers of
	// externalTrafficPolicy Local services listen on (default all: "").
	HealthCheckAddress netip.Addr
	// MasqueradeBit is the mark bit (0–31) used to ask for masquerade.
	MasqueradeBit int
	// Metrics, if set, receives the proxy's Prometheus metrics.
	Metrics prometheus.Registerer
	// ProgrammingLatencyHook, if set, is called with every network
	// programming latency sample as it is observed into the histogram
	// (benchmarks want exact samples, not buckets). It runs on the sync
	// loop: keep it quick.
	ProgrammingLatencyHook func(time.Duration)
}

// withDefaults fills in zero values.
func (c Config) withDefaults() Config {
	if c.Mode == "" {
		c.Mode = ModeNFTables
	}
	if c.MinSyncInterval == 0 {
		c.MinSyncInterval = DefaultMinSyncInterval
	}
	if c.SyncPeriod == 0 {
		c.SyncPeriod = DefaultSyncPeriod
	}
	if c.MasqueradeBit == 0 {
		c.MasqueradeBit = DefaultMasqueradeBit
	}
	return c
}

// Validate reports the first problem with c (after defaults).
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if c.NodeName == "" {
		errs = append(errs, errors.New("proxy: NodeName is required"))
	}
	if c.Mode != ModeNFTables && c.Mode != ModeIPTables {
		errs = append(errs, fmt.Errorf("proxy: mode %q: want %q or %q", c.Mode, ModeNFTables, ModeIPTables))
	}
	if c.ClusterCIDR.IsValid() && !c.ClusterCIDR.Addr().Is4() {
		errs = append(errs, fmt.Errorf("proxy: cluster CIDR %s: only IPv4 is supported", c.ClusterCIDR))
	}
	for _, p := range c.NodePortAddresses {
		if !p.IsValid() || !p.Addr().Is4() {
			errs = append(errs, fmt.Errorf("proxy: NodePort address prefix %s: want an IPv4 prefix", p))
		}
	}
	if c.MinSyncInterval < 0 || c.SyncPeriod < 0 {
		errs = append(errs, errors.New("proxy: sync intervals must not be negative"))
	}
	if c.MasqueradeBit < 0 || c.MasqueradeBit > 31 {
		errs = append(errs, fmt.Errorf("proxy: masquerade bit %d: want 0–31", c.MasqueradeBit))
	}
	return errors.Join(errs...)
}

func (c Config) masqMark() uint32 { return 1 << uint(c.MasqueradeBit) }

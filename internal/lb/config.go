package lb

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"sigs.k8s.io/knftables"
)

// Names other components and users see.
const (
	// DefaultTable is the nftables table (family ip) kite lb owns.
	DefaultTable = "kite-lb"
	// DefaultClass is the spec.loadBalancerClass served (and none), as the
	// lbipam controller's.
	DefaultClass = "kite.dev/lb"
	// addrLabelSuffix marks the ingress addresses kite lb added to its
	// interface (label <iface>:lb): those, and only those, it removes.
	addrLabelSuffix = ":lb"
	// LabelExcludeFromLB keeps a node out of every load balancer, as
	// upstream's service controller does.
	LabelExcludeFromLB = "node.kubernetes.io/exclude-from-external-load-balancers"
)

// Health-check defaults: a node that stops answering is out within
// interval + fall×max(interval, timeout) = 1.05 s, well inside the 2 s
// the lab promises.
const (
	DefaultHealthInterval = 250 * time.Millisecond
	DefaultHealthTimeout  = 400 * time.Millisecond
	DefaultFall           = 2
	DefaultRise           = 2
	// maxHealthInterval and maxHealthTimeout bound the settings so that
	// a failed node is dropped within seconds, not minutes.
	maxHealthInterval = 500 * time.Millisecond
	maxHealthTimeout  = 2 * time.Second
	// maxIfaceLen leaves room for the address label in IFNAMSIZ-1 (15).
	maxIfaceLen = 15 - len(addrLabelSuffix)
)

// Config wires a load balancer.
type Config struct {
	// Interface is the link on the underlay: ingress addresses are added
	// to it (so the underlay reaches them by ARP), and nodes are reached
	// through it. Required; at most 12 characters.
	Interface string
	// Pool, if set, is the LoadBalancer pool (lbipam.Pool.Prefixes()):
	// traffic to a pool address that no Service serves here is refused
	// (TCP reset, ICMP unreachable) instead of routed, so a deleted
	// Service's port answers "connection refused" even to clients that
	// still have its address in their ARP cache.
	Pool []netip.Prefix
	// Class is the spec.loadBalancerClass served, besides none (default
	// kite.dev/lb).
	Class string
	// Table is the nftables table (family ip) to own (default kite-lb).
	Table string
	// HealthInterval is the time between two checks of one node target
	// (default 250 ms, at most 500 ms); HealthTimeout bounds one check
	// (default 400 ms, at most 2 s).
	HealthInterval, HealthTimeout time.Duration
	// Fall consecutive failed checks take a node out (default 2); Rise
	// consecutive successes bring it back (default 2).
	Fall, Rise int
	// SkipSysctls leaves net.ipv4.ip_forward and send_redirects alone
	// (tests that set them up themselves).
	SkipSysctls bool

	// NFT, Addrs: the kernel, replaceable in tests. Defaults: knftables
	// (the nft command) and netlink on Interface.
	NFT   knftables.Interface
	Addrs AddrManager
}

// Validate reports a Config that cannot work.
func (c *Config) Validate() error {
	var errs []error
	if c.Interface == "" {
		errs = append(errs, errors.New("interface is required"))
	} else if len(c.Interface) > maxIfaceLen {
		errs = append(errs, fmt.Errorf("interface name %q longer than %d characters (its addresses are labelled %q)",
			c.Interface, maxIfaceLen, c.Interface+addrLabelSuffix))
	}
	if c.HealthInterval < 0 || c.HealthInterval > maxHealthInterval {
		errs = append(errs, fmt.Errorf("health interval %s not in (0, %s]", c.HealthInterval, maxHealthInterval))
	}
	if c.HealthTimeout < 0 || c.HealthTimeout > maxHealthTimeout {
		errs = append(errs, fmt.Errorf("health timeout %s not in (0, %s]", c.HealthTimeout, maxHealthTimeout))
	}
	if c.Fall < 0 || c.Rise < 0 || c.Fall > 10 || c.Rise > 10 {
		errs = append(errs, fmt.Errorf("fall %d and rise %d must be in 1..10", c.Fall, c.Rise))
	}
	for _, p := range c.Pool {
		if !p.Addr().Is4() {
			errs = append(errs, fmt.Errorf("pool prefix %s: only IPv4 is served", p))
		}
	}
	return errors.Join(errs...)
}

func (c *Config) setDefaults() {
	if c.Class == "" {
		c.Class = DefaultClass
	}
	if c.Table == "" {
		c.Table = DefaultTable
	}
	if c.HealthInterval == 0 {
		c.HealthInterval = DefaultHealthInterval
	}
	if c.HealthTimeout == 0 {
		c.HealthTimeout = DefaultHealthTimeout
	}
	if c.Fall == 0 {
		c.Fall = DefaultFall
	}
	if c.Rise == 0 {
		c.Rise = DefaultRise
	}
}

package proxy

import (
	"context"
	"fmt"
	"os"

	"sigs.k8s.io/knftables"
)

// SyncResult describes one applied sync.
type SyncResult struct {
	// Full is true when the kernel's state was re-read and every chain
	// rewritten.
	Full bool
	// Chains, Rules and Elements count the desired state (Elements: map
	// and set elements; 0 for iptables).
	Chains, Rules, Elements int
	// Operations is the size of what was sent to the kernel (nftables:
	// transaction operations; iptables: restore lines).
	Operations int
	// StaleFlows is the number of UDP conntrack entries deleted.
	StaleFlows int
}

// backend programs one kind of kernel rules.
type backend interface {
	// Sync programs m; only, when not nil, lists the Services whose
	// ports may differ from the previous Model (the others need not be
	// compared).
	Sync(ctx context.Context, m *Model, full bool, only []ServiceKey) (SyncResult, error)
}

// Dataplane applies Models to this network namespace's kernel: the rules
// of the configured backend, then the conntrack clean-up for UDP flows
// whose endpoint went away. Use it directly to program rules without
// informers (tests, benchmarks); the Proxier wraps one.
type Dataplane struct {
	cfg       Config
	backend   backend
	conntrack conntrackTable
	prev      *Model
}

// NewDataplane checks that the backend's tools work here and, for
// localhost NodePorts, turns on route_localnet.
func NewDataplane(cfg Config) (*Dataplane, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	d := &Dataplane{cfg: cfg, conntrack: netlinkConntrack{}}
	var err error
	switch cfg.Mode {
	case ModeIPTables:
		d.backend, err = newIPTBackend(cfg)
	default:
		d.backend, err = newNFTBackend(cfg)
	}
	if err != nil {
		return nil, err
	}
	if !cfg.DisableLocalhostNodePorts {
		// A DNATed packet from 127.0.0.1 to a pod must be routable out of a
		// non-loopback device (and its reply back in): route_localnet. The
		// martian drop rule in each backend closes what it opens.
		if err := writeSysctl("net/ipv4/conf/all/route_localnet", "1"); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// Apply programs m. full re-reads the kernel's state and rewrites it all
// (the first Apply of a Dataplane always does), and reconciles every UDP
// service's conntrack entries rather than only those of changed ports.
func (d *Dataplane) Apply(ctx context.Context, m *Model, full bool) (SyncResult, error) {
	return d.apply(ctx, m, full, nil)
}

// ApplyChanged programs m, which differs from the Model of the previous
// Apply only in the ports of the changed Services (UpdateModel makes such
// a Model): only those are compared, rendered and sent, so the cost
// follows the change, not the number of Services. The first call of a
// Dataplane, and a call after a failed one, is a full sync.
func (d *Dataplane) ApplyChanged(ctx context.Context, m *Model, changed []ServiceKey) (SyncResult, error) {
	if changed == nil {
		changed = []ServiceKey{} // nothing changed, rather than "compare all"
	}
	return d.apply(ctx, m, false, changed)
}

func (d *Dataplane) apply(ctx context.Context, m *Model, full bool, only []ServiceKey) (SyncResult, error) {
	if d.prev == nil || d.prev.ClusterCIDR != m.ClusterCIDR {
		only = nil // nothing to compare with, or every port changed
	}
	res, err := d.backend.Sync(ctx, m, full, only)
	if err != nil {
		d.prev = nil
		return res, err
	}
	// Conntrack after rules: a flow deleted before the new rules were in
	// could be re-created towards the old endpoint.
	targets := staleUDPTargets(d.prev, m, d.cfg, full || d.prev == nil, only)
	if len(targets) > 0 {
		n, err := d.conntrack.DeleteStale(targets)
		res.StaleFlows = n
		if err != nil {
			return res, err
		}
	}
	d.prev = m
	return res, nil
}

func writeSysctl(name, value string) error {
	path := "/proc/sys/" + name
	cur, err := os.ReadFile(path)
	if err == nil && string(cur) == value+"\n" {
		return nil
	}
	if err := os.WriteFile(path, []byte(value), 0o644); err != nil {
		return fmt.Errorf("sysctl %s=%s: %w", name, value, err)
	}
	return nil
}

// NFTText is the nftables transaction that programs m into an empty
// kernel, as `nft -f` text: what the netlink backend sends, in the form
// people read (and kerneltest loads with the binary to check that both
// give the same table).
func NFTText(m *Model, cfg Config) string {
	fake := knftables.NewFake(nftFamily, nftTable)
	tx := fake.NewTransaction()
	empty := newNFTState()
	empty.tableExists = false
	nftTransaction(tx, renderNFT(m, cfg), empty)
	return tx.String()
}

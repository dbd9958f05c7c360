package proxy

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"sigs.k8s.io/knftables"
)

// nftKernel is how the nftables backend reaches the kernel: run a list of
// operations as one atomic transaction, and read back what the table
// holds. The real one speaks netlink (nft_netlink.go); tests use
// knftablesKernel over a knftables Fake.
type nftKernel interface {
	Run(ctx context.Context, ops []nftOp) error
	List(ctx context.Context) (*nftState, error)
}

// nftBackend applies renderNFT's states.
type nftBackend struct {
	cfg     Config
	kernel  nftKernel
	applied *nftState // nil: unknown, read the kernel first
	// prev is the Model applied is the rendering of.
	prev *Model
	// slots are the endpoint blocks of applied's chains.
	slots *nftSlots
}

func newNFTBackend(cfg Config) (*nftBackend, error) {
	k, err := newNetlinkKernel()
	if err != nil {
		return nil, fmt.Errorf("nftables table %s: %w", nftTable, err)
	}
	return &nftBackend{cfg: cfg, kernel: k}, nil
}

// Sync makes the table match m. full re-reads the kernel's table first
// and rewrites every chain. Otherwise only the service ports that changed
// since the last sync are rendered and diffed: the cost of a change does
// not grow with the number of Services. only, when not nil, lists the
// Services whose ports may differ from the last sync's Model: the others
// are not even compared.
func (b *nftBackend) Sync(ctx context.Context, m *Model, full bool, only []ServiceKey) (SyncResult, error) {
	if !full && b.applied != nil && b.prev != nil && b.prev.ClusterCIDR == m.ClusterCIDR {
		return b.syncChanged(ctx, m, only)
	}
	if b.slots == nil {
		b.slots = newNFTSlots()
	}
	b.slots.used = map[string]bool{}
	desired, err := renderNFTSlots(m, b.cfg, b.slots)
	b.slots.sweep()
	if err != nil {
		b.applied, b.prev = nil, nil
		return SyncResult{}, err
	}
	applied := b.applied
	if full || applied == nil {
		var err error
		if applied, err = b.kernel.List(ctx); err != nil {
			b.applied = nil
			return SyncResult{}, err
		}
	}
	return b.run(ctx, desired, nftPlan(desired, applied), m, full || b.applied == nil)
}

func (b *nftBackend) run(ctx context.Context, desired *nftState, ops []nftOp, m *Model, full bool) (SyncResult, error) {
	res := SyncResult{Full: full, Operations: len(ops)}
	res.Chains, res.Rules, res.Elements = desired.counts()
	if len(ops) > 0 {
		if err := b.kernel.Run(ctx, ops); err != nil {
			b.applied, b.prev = nil, nil
			return res, fmt.Errorf("nftables table %s: %w", nftTable, err)
		}
	}
	b.applied, b.prev = desired, m
	return res, nil
}

// syncChanged renders the ports that differ from the previous Model,
// updates the applied state in place to the desired one, and plans over
// what those ports touch only.
func (b *nftBackend) syncChanged(ctx context.Context, m *Model, only []ServiceKey) (SyncResult, error) {
	var olds, news []*nftState
	var err error
	changedPorts(b.prev, m, only, func(old, cur *ServicePort) {
		if old != nil {
			f, e := renderNFTPortFragment(old, b.prev, b.slots)
			olds, err = append(olds, f), errors.Join(err, e)
		}
		if cur != nil {
			f, e := renderNFTPortFragment(cur, m, b.slots)
			news, err = append(news, f), errors.Join(err, e)
		}
	})
	if err != nil {
		b.applied, b.prev = nil, nil
		return SyncResult{}, err
	}
	// Blocks of chains that went away are free again (after this sync:
	// a block is never reused within one transaction).
	kept := map[string]bool{}
	for _, f := range news {
		for c := range f.blocks {
			kept[c] = true
		}
	}
	for _, f := range olds {
		for c := range f.blocks {
			if !kept[c] {
				b.slots.release(c)
			}
		}
	}
	b.slots.used = map[string]bool{}
	touched := newNFTState()
	for _, f := range append(olds, news...) {
		touched.merge(f)
	}
	before := b.applied.restrict(touched)
	for _, f := range olds {
		b.applied.unmerge(f)
	}
	for _, f := range news {
		b.applied.merge(f)
	}
	return b.run(ctx, b.applied, nftPlan(b.applied.restrict(touched), before), m, false)
}

// restrict is the part of s that touched names: its chains, affinity sets
// and element keys (every set is kept, with only those keys).
func (s *nftState) restrict(touched *nftState) *nftState {
	r := newNFTState()
	r.tableExists, r.rulesKnown = s.tableExists, s.rulesKnown
	for c := range touched.chains {
		if rules, ok := s.chains[c]; ok {
			r.chains[c] = rules
		}
	}
	for set, elems := range s.elements {
		r.elements[set] = map[string]string{}
		for k := range touched.elements[set] {
			if v, ok := elems[k]; ok {
				r.elements[set][k] = v
			}
		}
	}
	for a := range touched.affinity {
		if t, ok := s.affinity[a]; ok {
			r.affinity[a] = t
		}
	}
	return r
}

// changedPorts calls f for every port added (old nil), removed (cur nil)
// or changed between two Models, among the ports of the Services in only
// (every port when only is nil).
func changedPorts(prev, m *Model, only []ServiceKey, f func(old, cur *ServicePort)) {
	portPairs(prev, m, only, func(old, cur *ServicePort) {
		if old == nil || cur == nil || !old.equal(cur) {
			f(old, cur)
		}
	})
}

// portPairs calls f for every port key in either Model, with the port of
// each side (nil on the side that lacks it), in key order: over all
// ports when only is nil, else over the ports of those Services, each
// found by binary search, so the cost follows what changed.
func portPairs(prev, m *Model, only []ServiceKey, f func(old, cur *ServicePort)) {
	if only == nil {
		walkPortPairs(prev.Ports, m.Ports, f)
		return
	}
	for _, k := range sortedServiceKeys(only) {
		plo, phi := prev.servicePortRange(k)
		mlo, mhi := m.servicePortRange(k)
		walkPortPairs(prev.Ports[plo:phi], m.Ports[mlo:mhi], f)
	}
}

// walkPortPairs walks two runs of ports sorted by key side by side.
func walkPortPairs(a, b []ServicePort, f func(old, cur *ServicePort)) {
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j == len(b) || (i < len(a) && comparePortKeys(a[i].Key, b[j].Key) < 0):
			f(&a[i], nil)
			i++
		case i == len(a) || comparePortKeys(a[i].Key, b[j].Key) > 0:
			f(nil, &b[j])
			j++
		default:
			f(&a[i], &b[j])
			i++
			j++
		}
	}
}

// knftablesKernel runs operations through a knftables Interface (the
// `nft` binary, or a Fake in tests).
type knftablesKernel struct{ nft knftables.Interface }

func (k knftablesKernel) Run(ctx context.Context, ops []nftOp) error {
	tx := k.nft.NewTransaction()
	nftWriteText(tx, ops)
	return k.nft.Run(ctx, tx)
}

func (k knftablesKernel) List(ctx context.Context) (*nftState, error) { return listNFT(ctx, k.nft) }

// listNFT reads what a knftables table holds: names of chains and sets,
// elements of our fixed sets and maps. Rules are not read (rulesKnown
// false).
func listNFT(ctx context.Context, nft knftables.Interface) (*nftState, error) {
	s := newNFTState()
	s.rulesKnown = false
	chains, err := nft.List(ctx, "chain")
	if knftables.IsNotFound(err) {
		s.tableExists = false
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("nftables table %s: list chains: %w", nftTable, err)
	}
	for _, c := range chains {
		s.chains[c] = nil
	}
	for _, kind := range []string{"map", "set"} {
		names, err := nft.List(ctx, kind)
		if err != nil && !knftables.IsNotFound(err) {
			return nil, fmt.Errorf("nftables table %s: list %ss: %w", nftTable, kind, err)
		}
		for _, name := range names {
			if setSpec(name) == nil {
				s.affinity[name] = 0 // the timeout is in the name
				continue
			}
			elems, err := nft.ListElements(ctx, kind, name)
			if err != nil {
				return nil, fmt.Errorf("nftables %s %s: list elements: %w", kind, name, err)
			}
			s.elements[name] = map[string]string{}
			for _, e := range elems {
				s.elements[name][strings.Join(e.Key, " . ")] = strings.Join(e.Value, " ")
			}
		}
	}
	return s, nil
}

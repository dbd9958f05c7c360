package proxy

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"sigs.k8s.io/knftables"
)

// nftTransaction adds to tx what turns applied into desired: new objects,
// rewritten chains, element-level map changes, then stale chains and sets.
// Nothing is flushed wholesale, so conntrack-tracked connections and the
// dispatch of unchanged Services are untouched. Pure.
func nftTransaction(tx *knftables.Transaction, desired, applied *nftState) {
	if !applied.tableExists {
		tx.Add(&knftables.Table{Comment: knftables.PtrTo("kite service proxy (internal/proxy)")})
	}
	for _, name := range slices.Sorted(maps.Keys(nftMaps)) {
		if _, ok := applied.elements[name]; !ok {
			tx.Add(&knftables.Map{Name: name, Type: nftMaps[name]})
		}
	}
	if _, ok := desired.elements[setNodePortAddresses]; ok {
		if _, ok := applied.elements[setNodePortAddresses]; !ok {
			tx.Add(&knftables.Set{Name: setNodePortAddresses, Type: "ipv4_addr", Flags: []knftables.SetFlag{knftables.IntervalFlag}})
		}
	}
	for _, name := range slices.Sorted(maps.Keys(desired.affinity)) {
		// The timeout is part of the set's name: a set never changes.
		if _, ok := applied.affinity[name]; !ok {
			timeout := time.Duration(desired.affinity[name]) * time.Second
			tx.Add(&knftables.Set{Name: name, Type: "ipv4_addr",
				Flags: []knftables.SetFlag{knftables.DynamicFlag, knftables.TimeoutFlag}, Timeout: &timeout})
		}
	}

	chains := slices.Sorted(maps.Keys(desired.chains))
	// Every new chain exists before any rule may jump to it.
	for _, name := range chains {
		if _, ok := applied.chains[name]; !ok {
			tx.Add(nftChain(name))
		}
	}
	for _, name := range chains {
		old, existed := applied.chains[name]
		if existed && applied.rulesKnown && slices.Equal(old, desired.chains[name]) {
			continue
		}
		if existed {
			tx.Flush(&knftables.Chain{Name: name})
		}
		for _, r := range desired.chains[name] {
			tx.Add(&knftables.Rule{Chain: name, Rule: r})
		}
	}

	// Elements: deletions first (a changed value is deleted and re-added).
	sets := slices.Sorted(maps.Keys(desired.elements))
	for _, set := range slices.Sorted(maps.Keys(applied.elements)) {
		for _, key := range slices.Sorted(maps.Keys(applied.elements[set])) {
			if v, ok := desired.elements[set][key]; !ok || v != applied.elements[set][key] {
				if _, keep := desired.elements[set]; keep {
					tx.Delete(nftElement(set, key, ""))
				}
			}
		}
	}
	for _, set := range sets {
		for _, key := range slices.Sorted(maps.Keys(desired.elements[set])) {
			v := desired.elements[set][key]
			if old, ok := applied.elements[set][key]; !ok || old != v {
				tx.Add(nftElement(set, key, v))
			}
		}
	}

	// Stale chains: flush them all before deleting any, since one may jump
	// to another.
	var stale []string
	for _, name := range slices.Sorted(maps.Keys(applied.chains)) {
		if _, ok := desired.chains[name]; !ok {
			stale = append(stale, name)
			tx.Flush(&knftables.Chain{Name: name})
		}
	}
	for _, name := range stale {
		tx.Delete(&knftables.Chain{Name: name})
	}
	for _, name := range slices.Sorted(maps.Keys(applied.affinity)) {
		if _, ok := desired.affinity[name]; !ok {
			tx.Delete(&knftables.Set{Name: name})
		}
	}
	for _, set := range slices.Sorted(maps.Keys(applied.elements)) {
		if _, ok := desired.elements[set]; !ok && set == setNodePortAddresses {
			tx.Delete(&knftables.Set{Name: set})
		}
	}
}

func nftChain(name string) *knftables.Chain {
	c := &knftables.Chain{Name: name}
	if b, ok := nftBaseChains[name]; ok {
		c.Type, c.Hook, c.Priority = &b.typ, &b.hook, &b.priority
	}
	return c
}

// nftElement is a set element (value "") or map element from our key form.
func nftElement(set, key, value string) *knftables.Element {
	e := &knftables.Element{Key: strings.Split(key, " . ")}
	if _, isMap := nftMaps[set]; isMap {
		e.Map = set
		if value != "" {
			e.Value = []string{value}
		}
	} else {
		e.Set = set
	}
	return e
}

// nftBackend applies renderNFT's states with knftables (the `nft` binary).
type nftBackend struct {
	cfg     Config
	nft     knftables.Interface
	applied *nftState // nil: unknown, read the kernel first
}

func newNFTBackend(cfg Config) (*nftBackend, error) {
	nft, err := knftables.New(nftFamily, nftTable)
	if err != nil {
		return nil, fmt.Errorf("nftables table %s: %w", nftTable, err)
	}
	return &nftBackend{cfg: cfg, nft: nft}, nil
}

// Sync makes the table match m. full re-reads the kernel's table first
// and rewrites every chain.
func (b *nftBackend) Sync(ctx context.Context, m *Model, full bool) (SyncResult, error) {
	desired := renderNFT(m, b.cfg)
	applied := b.applied
	if full || applied == nil {
		var err error
		if applied, err = listNFT(ctx, b.nft); err != nil {
			b.applied = nil
			return SyncResult{}, err
		}
	}
	tx := b.nft.NewTransaction()
	nftTransaction(tx, desired, applied)
	res := SyncResult{Full: full || b.applied == nil, Operations: tx.NumOperations()}
	res.Chains, res.Rules, res.Elements = desired.counts()
	if tx.NumOperations() > 0 {
		if err := b.nft.Run(ctx, tx); err != nil {
			b.applied = nil
			return res, fmt.Errorf("nftables table %s: %w", nftTable, err)
		}
	}
	b.applied = desired
	return res, nil
}

// listNFT reads what the kernel's table holds: names of chains and sets,
// elements of our maps. Rules are not read (rulesKnown false).
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
			if kind == "set" && name != setNodePortAddresses {
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

package lb

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"sigs.k8s.io/knftables"
)

// Objects of the table (see README.md). Per-Service chains are
// svc-<namespace>/<name>/<protocol>/<port>.
const (
	chainPrerouting  = "prerouting"
	chainPostrouting = "postrouting"
	chainForward     = "forward"
	mapServicePorts  = "service-ports"
	setIngress       = "ingress-ips"
	setPool          = "pool"
	svcChainPrefix   = "svc-"
	tableComment     = "kite lb: LoadBalancer ingress IPs to the nodes' NodePorts"
)

// baseRules are the rules of the hooked chains; they never change.
var baseRules = map[string][]string{
	// Traffic to an ingress address and Service port jumps to its chain;
	// anything else to an ingress address reaches the local stack, where
	// no socket listens: connection refused.
	chainPrerouting: {"ip daddr . meta l4proto . th dport vmap @" + mapServicePorts},
	// Replies must come back through us to be un-NATed: the nodes see the
	// LB's own underlay address as the client.
	chainPostrouting: {"ct status dnat ct original ip daddr @" + setIngress + " masquerade"},
	// A pool address that is not ours (any more) is refused rather than
	// routed back onto the underlay.
	chainForward: {
		"ip daddr @" + setPool + " meta l4proto tcp reject with tcp reset",
		"ip daddr @" + setPool + " reject",
	},
}

// baseChains are the chains hooked into the kernel.
var baseChains = []*knftables.Chain{
	{Name: chainPrerouting, Type: knftables.PtrTo(knftables.NATType), Hook: knftables.PtrTo(knftables.PreroutingHook), Priority: knftables.PtrTo(knftables.DNATPriority)},
	{Name: chainPostrouting, Type: knftables.PtrTo(knftables.NATType), Hook: knftables.PtrTo(knftables.PostroutingHook), Priority: knftables.PtrTo(knftables.SNATPriority)},
	{Name: chainForward, Type: knftables.PtrTo(knftables.FilterType), Hook: knftables.PtrTo(knftables.ForwardHook), Priority: knftables.PtrTo(knftables.FilterPriority)},
}

// tableState is what a transaction leaves in the table, as kite lb
// writes it.
type tableState struct {
	chains   map[string]string // per-Service chain → its one rule
	elements map[string]string // service-ports key ("ip . proto . port") → "goto chain"
	ingress  []string
	pool     []string
}

// wanted is the table for st.
func wanted(st State) tableState {
	ts := tableState{chains: map[string]string{}, elements: map[string]string{}}
	for _, f := range st.Frontends {
		if len(f.Nodes) == 0 {
			continue // no element: the local stack refuses the connection
		}
		ts.chains[f.Chain()] = dnatRule(f)
		ts.elements[elementKey(f.IP, f.Protocol, f.Port)] = "goto " + f.Chain()
	}
	for _, a := range st.Addrs {
		ts.ingress = append(ts.ingress, a.String())
	}
	for _, p := range st.Pool {
		ts.pool = append(ts.pool, p.Masked().String())
	}
	return ts
}

func elementKey(ip netip.Addr, proto string, port int32) string {
	return fmt.Sprintf("%s . %s . %d", ip, proto, port)
}

// dnatRule picks one of the frontend's nodes at random. A DNAT with a
// port needs the protocol matched first (NOTES-linux.md).
func dnatRule(f Frontend) string {
	if len(f.Nodes) == 1 {
		return fmt.Sprintf("meta l4proto %s dnat to %s", f.Protocol, netip.AddrPortFrom(f.Nodes[0], uint16(f.NodePort)))
	}
	elems := make([]string, len(f.Nodes))
	for i, n := range f.Nodes {
		elems[i] = fmt.Sprintf("%d : %s . %d", i, n, f.NodePort)
	}
	return fmt.Sprintf("meta l4proto %s dnat to numgen random mod %d map { %s }", f.Protocol, len(f.Nodes), strings.Join(elems, ", "))
}

// plan adds to tx what turns have into want. have == nil means the table's
// content is not known (first sync, or a failed transaction): the table is
// adopted as it is — never deleted or flushed as a whole, so traffic keeps
// flowing — and rewritten in place: every hooked chain, set and map is
// flushed and refilled, every per-Service chain kite lb wants is rewritten
// and every other one (existing, as listed) deleted, all in this one
// atomic transaction. Otherwise only what changed is written.
func plan(tx *knftables.Transaction, want tableState, have *tableState, existingChains []string) {
	adopt := have == nil
	if adopt {
		have = &tableState{chains: map[string]string{}, elements: map[string]string{}}
		for _, c := range existingChains {
			if strings.HasPrefix(c, svcChainPrefix) {
				have.chains[c] = "\x00unknown" // differs from any rule: rewritten
			}
		}
	}
	if adopt {
		// Declarations are idempotent adds; the hooked chains' rules are
		// rewritten, as kite lb may have changed them since.
		tx.Add(&knftables.Table{Comment: knftables.PtrTo(tableComment)})
		tx.Add(&knftables.Set{Name: setPool, Type: "ipv4_addr", Flags: []knftables.SetFlag{knftables.IntervalFlag}})
		tx.Add(&knftables.Set{Name: setIngress, Type: "ipv4_addr"})
		tx.Add(&knftables.Map{Name: mapServicePorts, Type: "ipv4_addr . inet_proto . inet_service : verdict"})
		for _, c := range baseChains {
			tx.Add(c)
			tx.Flush(c)
			for _, r := range baseRules[c.Name] {
				tx.Add(&knftables.Rule{Chain: c.Name, Rule: r})
			}
		}
	}

	// Sets are small: refilled whole when they change.
	if adopt || !slices.Equal(want.pool, have.pool) {
		tx.Flush(&knftables.Set{Name: setPool})
		for _, p := range want.pool {
			tx.Add(&knftables.Element{Set: setPool, Key: []string{p}})
		}
	}
	if adopt || !slices.Equal(want.ingress, have.ingress) {
		tx.Flush(&knftables.Set{Name: setIngress})
		for _, a := range want.ingress {
			tx.Add(&knftables.Element{Set: setIngress, Key: []string{a}})
		}
	}

	// Chains first (elements refer to them), then elements, then the
	// chains no element refers to any more.
	for _, name := range slices.Sorted(maps.Keys(want.chains)) {
		rule := want.chains[name]
		old, exists := have.chains[name]
		if exists && old == rule {
			continue
		}
		tx.Add(&knftables.Chain{Name: name})
		if exists {
			tx.Flush(&knftables.Chain{Name: name})
		}
		tx.Add(&knftables.Rule{Chain: name, Rule: rule})
	}
	if adopt {
		tx.Flush(&knftables.Map{Name: mapServicePorts})
	} else {
		for _, key := range slices.Sorted(maps.Keys(have.elements)) {
			if v, ok := want.elements[key]; !ok || v != have.elements[key] {
				tx.Delete(&knftables.Element{Map: mapServicePorts, Key: strings.Split(key, " . ")})
			}
		}
	}
	for _, key := range slices.Sorted(maps.Keys(want.elements)) {
		if v, ok := have.elements[key]; adopt || !ok || v != want.elements[key] {
			tx.Add(&knftables.Element{Map: mapServicePorts, Key: strings.Split(key, " . "), Value: []string{want.elements[key]}})
		}
	}
	for _, name := range slices.Sorted(maps.Keys(have.chains)) {
		if _, ok := want.chains[name]; !ok {
			tx.Delete(&knftables.Chain{Name: name})
		}
	}
}

// nftSyncer applies States to the table, remembering what it wrote.
type nftSyncer struct {
	nft  knftables.Interface
	have *tableState // nil: unknown, adopt on the next sync
}

// sync programs st in one transaction. On failure the table's content is
// unknown again: the next sync adopts it.
func (s *nftSyncer) sync(ctx context.Context, st State) error {
	want := wanted(st)
	var existing []string
	if s.have == nil {
		var err error
		existing, err = s.nft.List(ctx, "chain")
		if err != nil && !knftables.IsNotFound(err) {
			return fmt.Errorf("list chains of the nftables table: %w", err)
		}
	}
	tx := s.nft.NewTransaction()
	plan(tx, want, s.have, existing)
	if err := s.nft.Run(ctx, tx); err != nil {
		s.have = nil
		return fmt.Errorf("nftables transaction: %w", err)
	}
	s.have = &want
	return nil
}

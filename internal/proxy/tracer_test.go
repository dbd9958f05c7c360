package proxy

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"

	"sigs.k8s.io/knftables"
)

// A packet-flow tracer over the nftables rules as a knftables Fake holds
// them after the transaction: it walks a new connection's first packet
// through the hooks in the kernel's order (filter at -110, then NAT, then
// postrouting) and interprets the rule vocabulary the renderer emits, so
// tests assert where a packet ends and whether it is masqueraded — the
// behaviour, not the text. A numgen dispatch is followed into every arm.

type tracePacket struct {
	src, dst netip.Addr
	proto    string
	dport    uint16
	// fromNode: the connection starts on the node (output hook) rather
	// than arriving on iif.
	fromNode bool
	iif      string
	mark     uint32
}

// traceEnd is one way a packet can end.
type traceEnd struct {
	verdict  string // "accept", "drop" or "reject"
	endpoint string // DNAT target "ip:port", "" if not DNATed
	masq     bool
}

type traceState struct {
	p        tracePacket
	end      traceEnd
	term     bool // a terminal verdict was reached
	returned bool // "return", or fell off a goto'd chain
}

type nftTracer struct {
	t     *testing.T
	table *knftables.FakeTable
	local []netip.Prefix
}

func newNFTTracer(t *testing.T, m *Model, cfg Config) *nftTracer {
	fake, _ := nftFake(t, m, cfg)
	return &nftTracer{t: t, table: fake.Table, local: []netip.Prefix{
		netip.PrefixFrom(testNodeIP, 32), netip.MustParsePrefix("127.0.0.0/8")}}
}

func (tr *nftTracer) isLocal(a netip.Addr) bool {
	return slices.ContainsFunc(tr.local, func(p netip.Prefix) bool { return p.Contains(a) })
}

// trace returns every way p can end, sorted.
func (tr *nftTracer) trace(p tracePacket) []traceEnd {
	start := traceState{p: p, end: traceEnd{verdict: "accept"}}
	var states []traceState
	if p.fromNode {
		states = tr.hook("filter-output", []traceState{start})
		states = tr.hook("nat-output", states)
		states = tr.hook("nat-postrouting", states)
	} else {
		states = tr.hook("filter-prerouting", []traceState{start})
		states = tr.hook("nat-prerouting", states)
		var next []traceState
		for _, s := range states {
			if s.end.verdict != "accept" {
				next = append(next, s)
			} else if tr.isLocal(s.p.dst) {
				next = append(next, tr.hook("filter-input", []traceState{s})...)
			} else {
				next = append(next, tr.hook("nat-postrouting", tr.hook("filter-forward", []traceState{s}))...)
			}
		}
		states = next
	}
	var ends []traceEnd
	for _, s := range states {
		if !slices.Contains(ends, s.end) {
			ends = append(ends, s.end)
		}
	}
	slices.SortFunc(ends, func(a, b traceEnd) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) })
	return ends
}

// hook runs a base chain on the states still accepted; a terminal accept
// (DNAT, masquerade) lets the packet go on to the next hook.
func (tr *nftTracer) hook(chain string, in []traceState) []traceState {
	var out []traceState
	for _, s := range in {
		if s.end.verdict != "accept" {
			out = append(out, s)
			continue
		}
		for _, r := range tr.chain(chain, s) {
			r.term, r.returned = false, false
			out = append(out, r)
		}
	}
	return out
}

func (tr *nftTracer) chain(name string, in traceState) []traceState {
	c := tr.table.Chains[name]
	if c == nil {
		tr.t.Fatalf("trace: no chain %q", name)
	}
	active := []traceState{in}
	var done []traceState
	for _, r := range c.Rules {
		var next []traceState
		for _, s := range active {
			for _, o := range tr.rule(r.Rule, s) {
				if o.term || o.returned {
					done = append(done, o)
				} else {
					next = append(next, o)
				}
			}
		}
		active = next
	}
	return append(done, active...)
}

// rule interprets one rule: matches left to right, then a verdict or a
// statement. A failed match leaves the state unchanged (next rule).
func (tr *nftTracer) rule(rule string, s traceState) []traceState {
	tok := strings.Fields(rule)
	p := &s.p
	for i := 0; i < len(tok); {
		rest := strings.Join(tok[i:], " ")
		switch {
		case strings.HasPrefix(rest, "ip saddr . ip daddr @"):
			if !tr.inSet(tok[i+5], p.src.String(), p.dst.String()) {
				return []traceState{s}
			}
			i += 6
		case strings.HasPrefix(rest, "ct status dnat"):
			if s.end.endpoint == "" {
				return []traceState{s}
			}
			i += 3
		case strings.HasPrefix(rest, "ip daddr . meta l4proto . th dport vmap @"):
			key := p.dst.String() + " . " + p.proto + " . " + strconv.Itoa(int(p.dport))
			return tr.lookup(strings.TrimPrefix(tok[i+9], "@"), key, s)
		case strings.HasPrefix(rest, "ip daddr . meta l4proto . th dport @"):
			if !tr.inSet(tok[i+8], p.dst.String(), p.proto, strconv.Itoa(int(p.dport))) {
				return []traceState{s}
			}
			i += 9
		case strings.HasPrefix(rest, "meta l4proto . th dport vmap @"):
			return tr.lookup(strings.TrimPrefix(tok[i+6], "@"), p.proto+" . "+strconv.Itoa(int(p.dport)), s)
		case strings.HasPrefix(rest, "fib daddr type local"), strings.HasPrefix(rest, "fib saddr type local"):
			a := p.dst
			if tok[i+1] == "saddr" {
				a = p.src
			}
			if !tr.isLocal(a) {
				return []traceState{s}
			}
			i += 4
		case tok[i] == "ip" && (tok[i+1] == "daddr" || tok[i+1] == "saddr") && tok[i+2] != ".":
			a := p.dst
			if tok[i+1] == "saddr" {
				a = p.src
			}
			neg, val := false, tok[i+2]
			if val == "!=" {
				neg, val = true, tok[i+3]
				i++
			}
			if tr.in(a, val) == neg {
				return []traceState{s}
			}
			i += 3
		case strings.HasPrefix(rest, `iifname != "lo"`):
			if p.fromNode || p.iif == "lo" {
				return []traceState{s}
			}
			i += 3
		case strings.HasPrefix(rest, "ct state new"):
			i += 3
		case strings.HasPrefix(rest, "meta mark & ") && tok[i+4] == "==":
			if (p.mark&parseMark(tr.t, tok[i+3]) == 0) != (tok[i+5] == "0") {
				return []traceState{s}
			}
			i += 6
		case strings.HasPrefix(rest, "meta mark set meta mark "):
			v := parseMark(tr.t, tok[i+6])
			if tok[i+5] == "|" {
				p.mark |= v
			} else {
				p.mark ^= v
			}
			return []traceState{s}
		case strings.HasPrefix(rest, "meta l4proto ") && tok[i+2] != ".":
			if p.proto != tok[i+2] {
				return []traceState{s}
			}
			i += 3
		case strings.HasPrefix(rest, "update @"):
			return []traceState{s} // affinity sets start empty
		case strings.HasPrefix(rest, "numgen random mod "):
			arms := strings.Split(strings.Trim(strings.SplitN(rest, "vmap", 2)[1], " {}"), " , ")
			var out []traceState
			for _, arm := range arms {
				out = append(out, tr.verdict(strings.TrimSpace(strings.SplitN(arm, ":", 2)[1]), s)...)
			}
			return out
		default:
			return tr.verdict(rest, s)
		}
	}
	return []traceState{s}
}

func (tr *nftTracer) lookup(set, key string, s traceState) []traceState {
	m := tr.table.Maps[set]
	if m == nil {
		tr.t.Fatalf("trace: no map %q", set)
	}
	e := m.FindElement(strings.Split(key, " . ")...)
	if e == nil {
		return []traceState{s}
	}
	return tr.verdict(e.Value[0], s)
}

func (tr *nftTracer) verdict(v string, s traceState) []traceState {
	f := strings.Fields(v)
	switch {
	case f[0] == "jump" || f[0] == "goto":
		var out []traceState
		for _, r := range tr.chain(f[1], s) {
			if !r.term {
				r.returned = f[0] == "goto"
			}
			out = append(out, r)
		}
		return out
	case f[0] == "return":
		s.returned = true
	case f[0] == "drop":
		s.term, s.end.verdict = true, "drop"
	case strings.Contains(v, "reject"):
		s.term, s.end.verdict = true, "reject"
	case f[0] == "dnat" && len(f) > 2 && f[2] == "numgen":
		return tr.blockDNAT(f, s)
	case f[0] == "dnat":
		ap := netip.MustParseAddrPort(f[2])
		s.p.dst, s.p.dport = ap.Addr(), ap.Port()
		s.term, s.end.endpoint = true, f[2]
	case f[0] == "masquerade":
		s.term, s.end.masq = true, true
	default:
		tr.t.Fatalf("trace: cannot interpret %q", v)
	}
	return []traceState{s}
}

// blockDNAT follows `dnat to numgen random mod N offset B map @m` into
// every endpoint: keys B … B+N-1 must all be there.
func (tr *nftTracer) blockDNAT(f []string, s traceState) []traceState {
	mod, _ := strconv.ParseUint(f[5], 10, 32)
	off, _ := strconv.ParseUint(f[7], 10, 32)
	m := tr.table.Maps[strings.TrimPrefix(f[9], "@")]
	if f[4] != "mod" || f[6] != "offset" || f[8] != "map" || m == nil || mod == 0 {
		tr.t.Fatalf("trace: cannot interpret %q", strings.Join(f, " "))
	}
	var out []traceState
	for k := off; k < off+mod; k++ {
		e := m.FindElement(strconv.FormatUint(k, 10))
		if e == nil {
			tr.t.Fatalf("trace: %q: no element %d", strings.Join(f, " "), k)
		}
		ip, port, _ := strings.Cut(e.Value[0], " . ")
		out = append(out, tr.verdict("dnat to "+ip+":"+port, s)...)
	}
	return out
}

// inSet reports whether the set a rule names ("@name") holds key.
func (tr *nftTracer) inSet(ref string, key ...string) bool {
	set := tr.table.Sets[strings.TrimPrefix(ref, "@")]
	if set == nil {
		tr.t.Fatalf("trace: no set %q", ref)
	}
	return slices.ContainsFunc(set.Elements, func(e *knftables.Element) bool { return slices.Equal(e.Key, key) })
}

func (tr *nftTracer) in(a netip.Addr, val string) bool {
	if set, ok := strings.CutPrefix(val, "@"); ok {
		if s := tr.table.Sets[set]; s != nil {
			for _, e := range s.Elements {
				if p, err := netip.ParsePrefix(e.Key[0]); err == nil && p.Contains(a) {
					return true
				}
			}
		}
		return false
	}
	if p, err := netip.ParsePrefix(val); err == nil {
		return p.Contains(a)
	}
	return netip.MustParseAddr(val) == a
}

func parseMark(t *testing.T, s string) uint32 {
	v, err := strconv.ParseUint(s, 0, 32)
	if err != nil {
		t.Fatalf("trace: mark %q: %v", s, err)
	}
	return uint32(v)
}

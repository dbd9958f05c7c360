package proxy

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// The rule compiler: renderNFT's rule text → netlink expressions, the
// same ones `nft` 1.0.6 generates for that text (checked with
// `nft --debug=netlink`, and in kerneltest by listing both). It knows only
// the vocabulary the renderer emits and fails loudly on anything else, so
// the text stays the single description of the rules (golden files,
// tracer) and the kernel gets exactly that.

// nftables registers: 1 and 2 are 16-byte registers; 9, 10, … are the
// 32-bit registers after the first 4 bytes of register 1, used by
// concatenations.
const (
	regVerdict = 0
	reg1       = 1
	reg2       = 2
	reg32n1    = 9
	reg32n2    = 10
)

// nftAnonSet is an anonymous constant set or map a rule brings along.
type nftAnonSet struct {
	set   *nftables.Set
	elems []nftables.SetElement
}

// nftCompiled is one rule ready for netlink.
type nftCompiled struct {
	exprs []expr.Any
	// anon are created in the same transaction just before the rule; the
	// rule's lookups refer to them by set ID.
	anon []nftAnonSet
}

// ruleCompiler compiles rules; nextID numbers the anonymous sets of one
// transaction.
type ruleCompiler struct {
	nextID func() uint32
}

type tokens struct {
	f []string
	i int
}

func (t *tokens) peek(n int) string {
	if t.i+n < len(t.f) {
		return t.f[t.i+n]
	}
	return ""
}

// accept consumes words if the next tokens are exactly these.
func (t *tokens) accept(words ...string) bool {
	for j, w := range words {
		if t.peek(j) != w {
			return false
		}
	}
	t.i += len(words)
	return true
}

func (t *tokens) next() string { w := t.peek(0); t.i++; return w }
func (t *tokens) done() bool   { return t.i >= len(t.f) }

func native32(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }

func (c *ruleCompiler) compile(rule string) (*nftCompiled, error) {
	out := &nftCompiled{}
	t := &tokens{f: strings.Fields(rule)}
	add := func(e ...expr.Any) { out.exprs = append(out.exprs, e...) }
	for !t.done() {
		switch {
		case t.accept("iifname", "!="):
			name := make([]byte, 16)
			copy(name, strings.Trim(t.next(), `"`))
			add(&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: reg1}, &expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: name})
		case t.accept("ip", "saddr", ".", "ip", "daddr"):
			set, ok := strings.CutPrefix(t.next(), "@")
			if !ok {
				return nil, fmt.Errorf("rule %q: want a set after ip saddr . ip daddr", rule)
			}
			add(ipPayload("saddr", reg1, 4), ipPayload("daddr", reg32n1, 4),
				&expr.Lookup{SourceRegister: reg1, SetName: set})
		case t.accept("ip", "daddr", ".", "meta", "l4proto", ".", "th", "dport", "vmap"):
			set, _ := strings.CutPrefix(t.next(), "@")
			add(ipPayload("daddr", reg1, 4), &expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg32n1}, dportPayload(reg32n2),
				&expr.Lookup{SourceRegister: reg1, DestRegister: regVerdict, IsDestRegSet: true, SetName: set})
		case t.accept("ip", "daddr", ".", "meta", "l4proto", ".", "th", "dport"):
			set, ok := strings.CutPrefix(t.next(), "@")
			if !ok {
				return nil, fmt.Errorf("rule %q: want a set after ip daddr . meta l4proto . th dport", rule)
			}
			add(ipPayload("daddr", reg1, 4), &expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg32n1}, dportPayload(reg32n2),
				&expr.Lookup{SourceRegister: reg1, SetName: set})
		case t.accept("meta", "l4proto", ".", "th", "dport", "vmap"):
			set, _ := strings.CutPrefix(t.next(), "@")
			add(&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg1}, dportPayload(reg32n1),
				&expr.Lookup{SourceRegister: reg1, DestRegister: regVerdict, IsDestRegSet: true, SetName: set})
		case t.peek(0) == "ip" && (t.peek(1) == "saddr" || t.peek(1) == "daddr"):
			field := t.peek(1)
			t.i += 2
			neq := t.accept("!=")
			val := t.next()
			if set, ok := strings.CutPrefix(val, "@"); ok {
				add(ipPayload(field, reg1, 4), &expr.Lookup{SourceRegister: reg1, SetName: set, Invert: neq})
				break
			}
			e, err := ipMatch(field, val, neq)
			if err != nil {
				return nil, fmt.Errorf("rule %q: %w", rule, err)
			}
			add(e...)
		case t.accept("ct", "state", "new"):
			add(ctBits(expr.CtKeySTATE, 0x8)...)
		case t.accept("ct", "status", "dnat"):
			add(ctBits(expr.CtKeySTATUS, 0x20)...) // IPS_DST_NAT
		case t.peek(0) == "fib" && t.peek(2) == "type" && t.peek(3) == "local":
			f := &expr.Fib{Register: reg1, ResultADDRTYPE: true, FlagSADDR: t.peek(1) == "saddr", FlagDADDR: t.peek(1) == "daddr"}
			t.i += 4
			add(f, &expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: native32(unix.RTN_LOCAL)})
		case t.peek(0) == "meta" && t.peek(1) == "l4proto" && t.peek(2) != ".":
			t.i += 2
			p, err := protoNumber(t.next())
			if err != nil {
				return nil, fmt.Errorf("rule %q: %w", rule, err)
			}
			add(&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg1}, &expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{p}})
		case t.accept("meta", "mark", "&"):
			mask, err1 := parseUint32(t.next())
			op := t.next()
			v, err2 := parseUint32(t.next())
			if err1 != nil || err2 != nil || (op != "==" && op != "!=") {
				return nil, fmt.Errorf("rule %q: bad mark match", rule)
			}
			cmpOp := expr.CmpOpEq
			if op == "!=" {
				cmpOp = expr.CmpOpNeq
			}
			add(&expr.Meta{Key: expr.MetaKeyMARK, Register: reg1},
				&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4, Mask: native32(mask), Xor: native32(0)},
				&expr.Cmp{Op: cmpOp, Register: reg1, Data: native32(v)})
		default:
			stmt, err := c.statement(t, out)
			if err != nil {
				return nil, fmt.Errorf("rule %q: %w", rule, err)
			}
			add(stmt...)
			if !t.done() {
				return nil, fmt.Errorf("rule %q: unexpected %q after the statement", rule, strings.Join(t.f[t.i:], " "))
			}
		}
	}
	return out, nil
}

// statement compiles the rule's final statement or verdict.
func (c *ruleCompiler) statement(t *tokens, out *nftCompiled) ([]expr.Any, error) {
	switch w := t.next(); w {
	case "jump", "goto", "drop", "accept", "return":
		if w == "jump" || w == "goto" {
			w += " " + t.next()
		}
		v, err := parseVerdict(w)
		if err != nil {
			return nil, err
		}
		return []expr.Any{v}, nil
	case "masquerade":
		return []expr.Any{&expr.Masq{FullyRandom: t.accept("fully-random")}}, nil
	case "reject":
		if t.accept("with", "tcp", "reset") {
			return []expr.Any{&expr.Reject{Type: unix.NFT_REJECT_TCP_RST}}, nil
		}
		return []expr.Any{&expr.Reject{Type: unix.NFT_REJECT_ICMP_UNREACH, Code: 3}}, nil // ICMP port unreachable
	case "meta":
		if !t.accept("mark", "set", "meta", "mark") {
			break
		}
		op := t.next()
		v, err := parseUint32(t.next())
		if err != nil || (op != "|" && op != "^") {
			return nil, fmt.Errorf("bad mark statement")
		}
		mask := uint32(0xffffffff)
		if op == "|" {
			mask = ^v
		}
		return []expr.Any{&expr.Meta{Key: expr.MetaKeyMARK, Register: reg1},
			&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4, Mask: native32(mask), Xor: native32(v)},
			&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: reg1}}, nil
	case "update":
		set, ok := strings.CutPrefix(t.next(), "@")
		if !ok || !t.accept("{", "ip", "saddr", "}") {
			break
		}
		return []expr.Any{ipPayload("saddr", reg1, 4),
			&expr.Dynset{SrcRegKey: reg1, SetName: set, Operation: unix.NFT_DYNSET_OP_UPDATE}}, nil
	case "dnat":
		if !t.accept("to") {
			break
		}
		if t.accept("numgen", "random", "mod") {
			if t.peek(1) == "offset" {
				return blockDNAT(t)
			}
			return c.numgenDNAT(t, out)
		}
		ap, err := netip.ParseAddrPort(t.next())
		if err != nil {
			return nil, err
		}
		ip := ap.Addr().As4()
		return []expr.Any{&expr.Immediate{Register: reg1, Data: ip[:]},
			&expr.Immediate{Register: reg2, Data: binary.BigEndian.AppendUint16(nil, ap.Port())},
			&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: reg1, RegProtoMin: reg2, Specified: true}}, nil
	case "numgen":
		if !t.accept("random", "mod") {
			break
		}
		return c.numgenVmap(t, out)
	}
	return nil, fmt.Errorf("cannot compile %q", strings.Join(t.f, " "))
}

// numgenArms reads "N map|vmap { 0 : a , 1 : b }" and returns N and the
// arms' values (each a list of words).
func numgenArms(t *tokens, kind string) (uint32, [][]string, error) {
	n, err := strconv.ParseUint(t.next(), 10, 32)
	if err != nil || !t.accept(kind, "{") {
		return 0, nil, fmt.Errorf("bad numgen %s", kind)
	}
	var arms [][]string
	var cur []string
	for !t.done() {
		w := t.next()
		switch w {
		case ",", "}":
			if len(cur) < 3 || cur[0] != strconv.Itoa(len(arms)) || cur[1] != ":" {
				return 0, nil, fmt.Errorf("bad numgen arm %q", strings.Join(cur, " "))
			}
			arms = append(arms, cur[2:])
			cur = nil
			if w == "}" {
				if len(arms) != int(n) {
					return 0, nil, fmt.Errorf("numgen mod %d with %d arms", n, len(arms))
				}
				return uint32(n), arms, nil
			}
		default:
			cur = append(cur, w)
		}
	}
	return 0, nil, fmt.Errorf("unterminated numgen %s", kind)
}

func (c *ruleCompiler) anonMap(out *nftCompiled, data nftables.SetDatatype, elems []nftables.SetElement) *nftables.Set {
	s := &nftables.Set{ID: c.nextID(), Name: "__map%d", Anonymous: true, Constant: true, IsMap: true,
		KeyType: nftables.TypeInteger, DataType: data, KeyByteOrder: binaryutil.NativeEndian}
	out.anon = append(out.anon, nftAnonSet{set: s, elems: elems})
	return s
}

// numgenDNAT: dnat to numgen random mod N map { i : ip . port , … }.
func (c *ruleCompiler) numgenDNAT(t *tokens, out *nftCompiled) ([]expr.Any, error) {
	n, arms, err := numgenArms(t, "map")
	if err != nil {
		return nil, err
	}
	elems := make([]nftables.SetElement, len(arms))
	for i, a := range arms {
		if len(a) != 3 || a[1] != "." {
			return nil, fmt.Errorf("bad DNAT arm %q", strings.Join(a, " "))
		}
		ip, err1 := netip.ParseAddr(a[0])
		port, err2 := strconv.ParseUint(a[2], 10, 16)
		if err1 != nil || err2 != nil || !ip.Is4() {
			return nil, fmt.Errorf("bad DNAT arm %q", strings.Join(a, " "))
		}
		ip4 := ip.As4()
		elems[i] = nftables.SetElement{Key: native32(uint32(i)), Val: append(ip4[:], byte(port>>8), byte(port), 0, 0)}
	}
	s := c.anonMap(out, nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeInetService), elems)
	return []expr.Any{&expr.Numgen{Register: reg1, Modulus: n, Type: unix.NFT_NG_RANDOM},
		&expr.Lookup{SourceRegister: reg1, DestRegister: reg1, IsDestRegSet: true, SetName: s.Name, SetID: s.ID},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: reg1, RegProtoMin: reg32n1}}, nil
}

// blockDNAT: dnat to numgen random mod N offset B map @set.
func blockDNAT(t *tokens) ([]expr.Any, error) {
	n, err1 := strconv.ParseUint(t.next(), 10, 32)
	t.next() // offset
	off, err2 := strconv.ParseUint(t.next(), 10, 32)
	if err1 != nil || err2 != nil || !t.accept("map") {
		return nil, fmt.Errorf("bad numgen DNAT map")
	}
	set, ok := strings.CutPrefix(t.next(), "@")
	if !ok {
		return nil, fmt.Errorf("bad numgen DNAT map")
	}
	return []expr.Any{&expr.Numgen{Register: reg1, Modulus: uint32(n), Type: unix.NFT_NG_RANDOM, Offset: uint32(off)},
		&expr.Lookup{SourceRegister: reg1, DestRegister: reg1, IsDestRegSet: true, SetName: set},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: reg1, RegProtoMin: reg32n1}}, nil
}

// numgenVmap: numgen random mod N vmap { i : goto chain , … }.
func (c *ruleCompiler) numgenVmap(t *tokens, out *nftCompiled) ([]expr.Any, error) {
	n, arms, err := numgenArms(t, "vmap")
	if err != nil {
		return nil, err
	}
	elems := make([]nftables.SetElement, len(arms))
	for i, a := range arms {
		v, err := parseVerdict(strings.Join(a, " "))
		if err != nil {
			return nil, err
		}
		elems[i] = nftables.SetElement{Key: native32(uint32(i)), VerdictData: v}
	}
	s := c.anonMap(out, nftables.TypeVerdict, elems)
	return []expr.Any{&expr.Numgen{Register: reg1, Modulus: n, Type: unix.NFT_NG_RANDOM},
		&expr.Lookup{SourceRegister: reg1, DestRegister: regVerdict, IsDestRegSet: true, SetName: s.Name, SetID: s.ID}}, nil
}

// parseVerdict reads "goto chain", "jump chain", "drop", "accept", "return".
func parseVerdict(v string) (*expr.Verdict, error) {
	f := strings.Fields(v)
	switch {
	case len(f) == 2 && f[0] == "goto":
		return &expr.Verdict{Kind: expr.VerdictGoto, Chain: f[1]}, nil
	case len(f) == 2 && f[0] == "jump":
		return &expr.Verdict{Kind: expr.VerdictJump, Chain: f[1]}, nil
	case len(f) == 1 && f[0] == "drop":
		return &expr.Verdict{Kind: expr.VerdictDrop}, nil
	case len(f) == 1 && f[0] == "accept":
		return &expr.Verdict{Kind: expr.VerdictAccept}, nil
	case len(f) == 1 && f[0] == "return":
		return &expr.Verdict{Kind: expr.VerdictReturn}, nil
	}
	return nil, fmt.Errorf("verdict %q: not understood", v)
}

// ipPayload loads n bytes of the IPv4 source or destination address.
func ipPayload(field string, reg, n uint32) *expr.Payload {
	off := uint32(16)
	if field == "saddr" {
		off = 12
	}
	return &expr.Payload{OperationType: expr.PayloadLoad, DestRegister: reg, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n}
}

func dportPayload(reg uint32) *expr.Payload {
	return &expr.Payload{OperationType: expr.PayloadLoad, DestRegister: reg, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2}
}

// ipMatch compares an address field with an address or prefix as nft
// does: whole bytes of a byte-aligned prefix, else a mask.
func ipMatch(field, val string, neq bool) ([]expr.Any, error) {
	op := expr.CmpOpEq
	if neq {
		op = expr.CmpOpNeq
	}
	p, err := netip.ParsePrefix(val)
	if err != nil {
		a, err := netip.ParseAddr(val)
		if err != nil || !a.Is4() {
			return nil, fmt.Errorf("address %q: want IPv4", val)
		}
		p = netip.PrefixFrom(a, 32)
	}
	if !p.Addr().Is4() {
		return nil, fmt.Errorf("prefix %q: want IPv4", val)
	}
	p = p.Masked()
	ip := p.Addr().As4()
	bits := p.Bits()
	if bits%8 == 0 {
		n := uint32(bits / 8)
		return []expr.Any{ipPayload(field, reg1, n), &expr.Cmp{Op: op, Register: reg1, Data: ip[:n]}}, nil
	}
	m := binary.BigEndian.AppendUint32(nil, ^uint32(0)<<(32-bits))
	return []expr.Any{ipPayload(field, reg1, 4),
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4, Mask: m, Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: op, Register: reg1, Data: ip[:]}}, nil
}

// ctBits matches "ct <key> & bit != 0".
func ctBits(key expr.CtKey, bit uint32) []expr.Any {
	return []expr.Any{&expr.Ct{Key: key, Register: reg1},
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4, Mask: native32(bit), Xor: native32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: native32(0)}}
}

func protoNumber(p string) (byte, error) {
	switch p {
	case "tcp":
		return unix.IPPROTO_TCP, nil
	case "udp":
		return unix.IPPROTO_UDP, nil
	case "sctp":
		return unix.IPPROTO_SCTP, nil
	}
	return 0, fmt.Errorf("protocol %q: want tcp, udp or sctp", p)
}

func protoName(p byte) string {
	switch p {
	case unix.IPPROTO_TCP:
		return "tcp"
	case unix.IPPROTO_UDP:
		return "udp"
	case unix.IPPROTO_SCTP:
		return "sctp"
	}
	return strconv.Itoa(int(p))
}

func parseUint32(s string) (uint32, error) {
	v, err := strconv.ParseUint(s, 0, 32)
	return uint32(v), err
}

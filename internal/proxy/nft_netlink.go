package proxy

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
	"sigs.k8s.io/knftables"
)

// netlinkKernel runs transactions as one netlink batch (google/nftables):
// no `nft` process, no parse, and above all no cache of the whole table
// loaded before each transaction, which is what made a 5-operation change
// cost a second at 10,000 Services with the binary (README.md).
type netlinkKernel struct {
	table *nftables.Table
	// small is a lasting connection for transactions whose acks fit its
	// buffers: opening and closing a netlink socket per sync cost more
	// than the kernel's work for a small change.
	small *nftables.Conn
}

func newNetlinkKernel() (*netlinkKernel, error) {
	k := &netlinkKernel{table: &nftables.Table{Name: nftTable, Family: nftables.TableFamilyIPv4}}
	// Fail early (no nf_tables, no privilege) rather than at the first sync.
	c, err := nftables.New()
	if err == nil {
		_, err = c.ListTablesOfFamily(nftables.TableFamilyIPv4)
	}
	if err != nil {
		return nil, fmt.Errorf("nftables over netlink: %w", err)
	}
	return k, nil
}

// Per-message buffer room: the batch is sent in one sendmsg and every
// message is acknowledged, so both socket buffers must hold the whole
// transaction (as `nft` sizes its own). Raised with the FORCE options
// (we are root), since the sysctl maxima are far smaller.
const (
	ackTruesize  = 1024
	minSockBytes = 4 << 20
)

func sockBuffers(send, recv int) nftables.SockOption {
	return func(c *netlink.Conn) error {
		raw, err := c.SyscallConn()
		if err != nil {
			return err
		}
		var serr error
		err = raw.Control(func(fd uintptr) {
			serr = errors.Join(unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, send),
				unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, recv))
		})
		return errors.Join(err, serr)
	}
}

// Run sends ops as one transaction: all of it applies, or none.
func (k *netlinkKernel) Run(ctx context.Context, ops []nftOp) error {
	w := &netlinkWriter{table: k.table}
	if err := w.write(ops); err != nil {
		return err
	}
	var conn *nftables.Conn
	var err error
	if w.bytes*2 <= minSockBytes && w.messages*ackTruesize <= minSockBytes {
		if k.small == nil {
			if k.small, err = nftables.New(nftables.AsLasting(), nftables.WithSockOptions(sockBuffers(minSockBytes, minSockBytes))); err != nil {
				return err
			}
		}
		conn = k.small
	} else {
		conn, err = nftables.New(nftables.WithSockOptions(sockBuffers(max(w.bytes*2, minSockBytes), max(w.messages*ackTruesize, minSockBytes))))
		if err != nil {
			return err
		}
	}
	// On failure the lasting socket may hold queued messages or unread
	// replies: start afresh.
	reset := func() {
		if conn == k.small {
			k.small.CloseLasting()
			k.small = nil
		}
	}
	if err := w.replay(conn); err != nil {
		reset()
		return err
	}
	if err := conn.Flush(); err != nil {
		reset()
		return fmt.Errorf("transaction of %d operations (%d messages): %w", len(ops), w.messages, err)
	}
	return nil
}

// netlinkWriter turns ops into calls on a google/nftables Conn. It builds
// the calls first (compiling every rule) so that a rule the compiler does
// not understand fails the sync before anything is sent.
type netlinkWriter struct {
	table    *nftables.Table
	calls    []func(*nftables.Conn) error
	id       uint32
	messages int
	bytes    int
}

func (w *netlinkWriter) nextID() uint32 { w.id++; return w.id }

func (w *netlinkWriter) call(msgs, bytes int, f func(*nftables.Conn) error) {
	w.calls = append(w.calls, f)
	w.messages += msgs
	w.bytes += bytes
}

func (w *netlinkWriter) replay(c *nftables.Conn) error {
	for _, f := range w.calls {
		if err := f(c); err != nil {
			return err
		}
	}
	return nil
}

func (w *netlinkWriter) write(ops []nftOp) error {
	rc := &ruleCompiler{nextID: w.nextID}
	for i := 0; i < len(ops); i++ {
		op := ops[i]
		switch op.kind {
		case nftTableKind:
			w.call(1, 64, func(c *nftables.Conn) error { c.AddTable(w.table); return nil })
		case nftChainKind:
			ch := w.chain(op.name)
			switch op.verb {
			case nftAdd:
				w.call(1, 128+len(op.name), func(c *nftables.Conn) error { c.AddChain(ch); return nil })
			case nftFlush:
				w.call(1, 64+len(op.name), func(c *nftables.Conn) error { c.FlushChain(ch); return nil })
			case nftDelete:
				w.call(1, 64+len(op.name), func(c *nftables.Conn) error { c.DelChain(ch); return nil })
			}
		case nftSetKind:
			s, err := w.set(op.name, op.set)
			if err != nil {
				return err
			}
			switch op.verb {
			case nftAdd:
				w.call(1, 256, func(c *nftables.Conn) error { return c.AddSet(s, nil) })
			case nftFlush:
				w.call(1, 128, func(c *nftables.Conn) error { c.FlushSet(s); return nil })
			case nftDelete:
				w.call(1, 128, func(c *nftables.Conn) error { c.DelSet(s); return nil })
			}
		case nftRuleKind:
			r, err := rc.compile(op.rule)
			if err != nil {
				return err
			}
			for _, a := range r.anon {
				a.set.Table = w.table
				w.call(2, 256+64*len(a.elems), func(c *nftables.Conn) error { return c.AddSet(a.set, a.elems) })
			}
			rule := &nftables.Rule{Table: w.table, Chain: &nftables.Chain{Name: op.name, Table: w.table}, Exprs: r.exprs}
			w.call(1, 128+len(op.name)+64*len(r.exprs), func(c *nftables.Conn) error { c.AddRule(rule); return nil })
		case nftElementKind:
			// A run of element operations on one set with one verb goes
			// in as few messages as the 64 KiB attribute limit allows.
			j := i
			for j < len(ops) && ops[j].kind == nftElementKind && ops[j].name == op.name && ops[j].verb == op.verb {
				j++
			}
			if err := w.elements(op.name, op.verb, ops[i:j]); err != nil {
				return err
			}
			i = j - 1
		}
	}
	return nil
}

func (w *netlinkWriter) chain(name string) *nftables.Chain {
	c := &nftables.Chain{Name: name, Table: w.table}
	if b, ok := nftBaseChains[name]; ok {
		c.Type = nftables.ChainType(b.typ)
		c.Hooknum = nftables.ChainHookRef(netlinkHooks[b.hook])
		prio, _ := strconv.Atoi(string(b.priority))
		if p, ok := netlinkPriorities[b.priority]; ok {
			prio = p
		}
		c.Priority = nftables.ChainPriorityRef(nftables.ChainPriority(prio))
	}
	return c
}

var netlinkHooks = map[knftables.BaseChainHook]nftables.ChainHook{
	knftables.PreroutingHook:  unix.NF_INET_PRE_ROUTING,
	knftables.InputHook:       unix.NF_INET_LOCAL_IN,
	knftables.ForwardHook:     unix.NF_INET_FORWARD,
	knftables.OutputHook:      unix.NF_INET_LOCAL_OUT,
	knftables.PostroutingHook: unix.NF_INET_POST_ROUTING,
}

var netlinkPriorities = map[knftables.BaseChainPriority]int{
	knftables.DNATPriority: -100,
	knftables.SNATPriority: 100,
}

// Set key and data types by their nft spelling.
var (
	keyIPProtoPort = nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeInetProto, nftables.TypeInetService)
	keyProtoPort   = nftables.MustConcatSetType(nftables.TypeInetProto, nftables.TypeInetService)
	keyIPIP        = nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeIPAddr)
	keyIPPort      = nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeInetService)
)

func (w *netlinkWriter) set(name string, spec *nftSetSpec) (*nftables.Set, error) {
	s := &nftables.Set{Table: w.table, Name: name, ID: w.nextID()}
	if spec == nil {
		spec = setSpec(name)
		if spec == nil {
			return s, nil // an affinity set being deleted: the name is enough
		}
	}
	if spec.typeOf && spec.typ == endpointsType {
		// numgen's host-order integer. nft's `typeof` user data is not
		// written: `nft list` shows `type 0 : ipv4_addr . inet_service`.
		s.KeyType, s.KeyByteOrder = nftables.TypeInteger, binaryutil.NativeEndian
		s.IsMap, s.DataType = true, keyIPPort
		return s, nil
	}
	key, _, isMap := strings.Cut(spec.typ, ":")
	switch strings.TrimSpace(key) {
	case "ipv4_addr . inet_proto . inet_service":
		s.KeyType = keyIPProtoPort
	case "inet_proto . inet_service":
		s.KeyType = keyProtoPort
	case "ipv4_addr . ipv4_addr":
		s.KeyType = keyIPIP
	case "ipv4_addr":
		s.KeyType = nftables.TypeIPAddr
	default:
		return nil, fmt.Errorf("set %s: type %q not supported over netlink", name, spec.typ)
	}
	if isMap {
		s.IsMap, s.DataType = true, nftables.TypeVerdict
	}
	s.Interval = spec.interval
	if spec.timeout > 0 {
		s.HasTimeout, s.Dynamic, s.Timeout = true, true, time.Duration(spec.timeout)*time.Second
	}
	return s, nil
}

// elements adds or deletes one set's elements, in chunks.
func (w *netlinkWriter) elements(name string, verb nftVerb, ops []nftOp) error {
	s, err := w.set(name, nil)
	if err != nil {
		return err
	}
	var elems []nftables.SetElement
	if isEndpointMap(name) {
		for _, op := range ops {
			e, err := endpointElement(op.key, op.value)
			if err != nil {
				return fmt.Errorf("set %s element %q: %w", name, op.key, err)
			}
			elems = append(elems, e)
		}
	} else if s.Interval {
		keys := make([]string, len(ops))
		for i, op := range ops {
			keys[i] = op.key
		}
		if elems, err = intervalElements(keys); err != nil {
			return fmt.Errorf("set %s: %w", name, err)
		}
	} else {
		for _, op := range ops {
			e, err := encodeElement(s, op.key, op.value)
			if err != nil {
				return fmt.Errorf("set %s element %q: %w", name, op.key, err)
			}
			elems = append(elems, e)
		}
	}
	const budget = 48 << 10 // bytes per message, under the 64 KiB attribute limit
	for len(elems) > 0 {
		n, size := 0, 0
		for n < len(elems) && (n == 0 || size+elementSize(elems[n]) < budget) {
			size += elementSize(elems[n])
			n++
		}
		chunk := elems[:n]
		elems = elems[n:]
		w.call(1, size+128, func(c *nftables.Conn) error {
			if verb == nftDelete {
				return c.SetDeleteElements(s, chunk)
			}
			return c.SetAddElements(s, chunk)
		})
	}
	return nil
}

func elementSize(e nftables.SetElement) int {
	n := 48 + len(e.Key) + len(e.Val)
	if e.VerdictData != nil {
		n += 32 + len(e.VerdictData.Chain)
	}
	return n
}

// encodeElement turns our text form into the kernel's bytes: each
// component of a concatenation padded to 4 bytes, network byte order.
func encodeElement(s *nftables.Set, key, value string) (nftables.SetElement, error) {
	var e nftables.SetElement
	for part := range strings.SplitSeq(key, " . ") {
		switch {
		case strings.Count(part, ".") == 3:
			a, err := netip.ParseAddr(part)
			if err != nil || !a.Is4() {
				return e, fmt.Errorf("address %q", part)
			}
			b := a.As4()
			e.Key = append(e.Key, b[:]...)
		case part == "tcp" || part == "udp" || part == "sctp":
			p, _ := protoNumber(part)
			e.Key = append(e.Key, p, 0, 0, 0)
		default:
			port, err := strconv.ParseUint(part, 10, 16)
			if err != nil {
				return e, fmt.Errorf("component %q", part)
			}
			e.Key = append(e.Key, byte(port>>8), byte(port), 0, 0)
		}
	}
	if uint32(len(e.Key)) != s.KeyType.Bytes {
		return e, fmt.Errorf("key of %d bytes for type %s", len(e.Key), s.KeyType.Name)
	}
	if s.IsMap && value != "" {
		v, err := parseVerdict(value)
		if err != nil {
			return e, err
		}
		e.VerdictData = v
	}
	return e, nil
}

// endpointElement encodes "key : ip . port" of an endpoint map: the key in
// host order (numgen's), the address and port in network order.
func endpointElement(key, value string) (nftables.SetElement, error) {
	k, err := strconv.ParseUint(key, 10, 32)
	if err != nil {
		return nftables.SetElement{}, fmt.Errorf("key %q", key)
	}
	e := nftables.SetElement{Key: native32(uint32(k))}
	if value != "" {
		a, p, ok := strings.Cut(value, " . ")
		ip, err1 := netip.ParseAddr(a)
		port, err2 := strconv.ParseUint(p, 10, 16)
		if !ok || err1 != nil || err2 != nil || !ip.Is4() {
			return e, fmt.Errorf("value %q: want ip . port", value)
		}
		ip4 := ip.As4()
		e.Val = append(ip4[:], byte(port>>8), byte(port), 0, 0)
	}
	return e, nil
}

// decodeEndpoint is endpointElement's inverse.
func decodeEndpoint(e nftables.SetElement) (key, value string, err error) {
	if len(e.Key) != 4 || len(e.Val) != 8 {
		return "", "", fmt.Errorf("element %x : %x", e.Key, e.Val)
	}
	return strconv.FormatUint(uint64(binary.NativeEndian.Uint32(e.Key)), 10),
		netip.AddrFrom4([4]byte(e.Val[:4])).String() + " . " + strconv.Itoa(int(binary.BigEndian.Uint16(e.Val[4:6]))), nil
}

// intervalElements encodes IPv4 prefixes as nft does for an interval set:
// merged ranges, each a start element and an end element one past its
// last address, after a leading end element at 0.0.0.0.
func intervalElements(keys []string) ([]nftables.SetElement, error) {
	type span struct{ lo, hi uint64 } // hi is one past the end
	var spans []span
	for _, k := range keys {
		p, err := netip.ParsePrefix(k)
		if err != nil {
			a, err2 := netip.ParseAddr(k)
			if err2 != nil {
				return nil, fmt.Errorf("element %q: %w", k, err)
			}
			p = netip.PrefixFrom(a, 32)
		}
		if !p.Addr().Is4() {
			return nil, fmt.Errorf("element %q: want IPv4", k)
		}
		b := p.Masked().Addr().As4()
		lo := uint64(binary.BigEndian.Uint32(b[:]))
		spans = append(spans, span{lo, lo + 1<<(32-p.Bits())})
	}
	slices.SortFunc(spans, func(a, b span) int { return int(a.lo) - int(b.lo) })
	var merged []span
	for _, s := range spans {
		if n := len(merged); n > 0 && s.lo <= merged[n-1].hi {
			merged[n-1].hi = max(merged[n-1].hi, s.hi)
			continue
		}
		merged = append(merged, s)
	}
	addr := func(v uint64) []byte { return binary.BigEndian.AppendUint32(nil, uint32(v)) }
	var out []nftables.SetElement
	if len(merged) > 0 && merged[0].lo != 0 {
		out = append(out, nftables.SetElement{Key: addr(0), IntervalEnd: true})
	}
	for _, s := range merged {
		out = append(out, nftables.SetElement{Key: addr(s.lo)})
		if s.hi <= 0xffffffff {
			out = append(out, nftables.SetElement{Key: addr(s.hi), IntervalEnd: true})
		}
	}
	return out, nil
}

// List reads the table: chain names, sets, and the elements of our fixed
// sets and maps (rules are not read back: rulesKnown is false, and a full
// sync rewrites every chain).
func (k *netlinkKernel) List(ctx context.Context) (*nftState, error) {
	s := newNFTState()
	s.rulesKnown = false
	c, err := nftables.New(nftables.WithSockOptions(sockBuffers(minSockBytes, minSockBytes)))
	if err != nil {
		return nil, err
	}
	if _, err := c.ListTableOfFamily(nftTable, nftables.TableFamilyIPv4); err != nil {
		if errors.Is(err, syscall.ENOENT) {
			s.tableExists = false
			return s, nil
		}
		return nil, fmt.Errorf("nftables table %s: %w", nftTable, err)
	}
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyIPv4)
	if err != nil {
		return nil, fmt.Errorf("nftables table %s: list chains: %w", nftTable, err)
	}
	for _, ch := range chains {
		if ch.Table.Name == nftTable {
			s.chains[ch.Name] = nil
		}
	}
	sets, err := c.GetSets(k.table)
	if err != nil {
		return nil, fmt.Errorf("nftables table %s: list sets: %w", nftTable, err)
	}
	for _, set := range sets {
		spec := setSpec(set.Name)
		switch {
		case set.Anonymous || strings.HasPrefix(set.Name, "__"):
			continue
		case spec == nil:
			s.affinity[set.Name] = 0 // the timeout is in the name
			continue
		case spec.interval:
			s.elements[set.Name] = map[string]string{}
			s.unreadable[set.Name] = true
			continue
		}
		elems, err := c.GetSetElements(set)
		if err != nil {
			return nil, fmt.Errorf("nftables set %s: list elements: %w", set.Name, err)
		}
		m := map[string]string{}
		for _, e := range elems {
			if isEndpointMap(set.Name) {
				key, value, err := decodeEndpoint(e)
				if err != nil {
					return nil, fmt.Errorf("nftables set %s: %w", set.Name, err)
				}
				m[key] = value
				continue
			}
			key, err := decodeKey(spec.typ, e.Key)
			if err != nil {
				return nil, fmt.Errorf("nftables set %s: %w", set.Name, err)
			}
			m[key] = verdictText(e.VerdictData)
		}
		s.elements[set.Name] = m
	}
	return s, nil
}

// decodeKey is encodeElement's inverse for our concatenated key types.
func decodeKey(typ string, b []byte) (string, error) {
	key, _, _ := strings.Cut(typ, ":")
	parts := strings.Split(strings.TrimSpace(key), " . ")
	if len(b) != 4*len(parts) {
		return "", fmt.Errorf("key %x does not fit %s", b, typ)
	}
	out := make([]string, len(parts))
	for i, p := range parts {
		f := b[4*i : 4*i+4]
		switch p {
		case "ipv4_addr":
			out[i] = netip.AddrFrom4([4]byte(f)).String()
		case "inet_proto":
			out[i] = protoName(f[0])
		case "inet_service":
			out[i] = strconv.Itoa(int(binary.BigEndian.Uint16(f)))
		default:
			return "", fmt.Errorf("type %s", p)
		}
	}
	return strings.Join(out, " . "), nil
}

func verdictText(v *expr.Verdict) string {
	if v == nil {
		return ""
	}
	switch v.Kind {
	case expr.VerdictGoto:
		return "goto " + v.Chain
	case expr.VerdictJump:
		return "jump " + v.Chain
	case expr.VerdictDrop:
		return "drop"
	case expr.VerdictAccept:
		return "accept"
	case expr.VerdictReturn:
		return "return"
	}
	return fmt.Sprintf("verdict %d", v.Kind)
}

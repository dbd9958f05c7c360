package proxy

import (
	"maps"
	"slices"
	"strings"
	"time"

	"sigs.k8s.io/knftables"
)

// An nftOp is one operation of an nftables transaction, independent of how
// it reaches the kernel: nftPlan computes them, nftWriteText turns them
// into knftables objects (the text form: golden tests, the Fake, the
// tracer) and the netlink writer into netlink messages (the kernel).
type nftOp struct {
	verb nftVerb
	kind nftKind
	// name is the chain, set or map ("" for the table).
	name string
	// rule is the rule text (kind nftRule).
	rule string
	// key and value are an element's, in the text form ("a . b", "goto c").
	key, value string
	// set describes a set or map being added.
	set *nftSetSpec
}

type nftVerb uint8

const (
	nftAdd nftVerb = iota
	nftFlush
	nftDelete
)

type nftKind uint8

const (
	nftTableKind nftKind = iota
	nftChainKind
	nftSetKind // a set or a map
	nftRuleKind
	nftElementKind
)

// nftSetSpec is a set or map's definition.
type nftSetSpec struct {
	// typ is the nft type, "k1 . k2" or "k1 . k2 : verdict" for maps.
	typ      string
	interval bool
	// timeout > 0 makes a dynamic set whose elements expire.
	timeout int32
	// typeOf: typ is spelt as expressions (`typeof …`).
	typeOf bool
}

func (s *nftSetSpec) isMap() bool { return strings.Contains(s.typ, ":") }

// nftSetSpecs are the sets and maps of fixed name.
var nftSetSpecs = map[string]*nftSetSpec{
	mapServiceIPs:          {typ: ipProtoPortType},
	mapServiceNodePorts:    {typ: protoPortType},
	mapNoEndpointServices:  {typ: ipProtoPortType},
	mapNoEndpointNodePorts: {typ: protoPortType},
	setHairpin:             {typ: "ipv4_addr . ipv4_addr"},
	setClusterIPs:          {typ: "ipv4_addr . inet_proto . inet_service"},
	setNodePortAddresses:   {typ: "ipv4_addr", interval: true},
}

var endpointMapSpec = &nftSetSpec{typ: endpointsType, typeOf: true}

// setSpec is a fixed set's or map's definition (nil for affinity sets).
func setSpec(name string) *nftSetSpec {
	if isEndpointMap(name) {
		return endpointMapSpec
	}
	return nftSetSpecs[name]
}

// nftPlan is what turns applied into desired: new objects, rewritten
// chains, element-level set changes, then stale chains and sets. Nothing
// is flushed wholesale, so conntrack-tracked connections and the dispatch
// of unchanged Services are untouched. Pure.
func nftPlan(desired, applied *nftState) []nftOp {
	var ops []nftOp
	add := func(op nftOp) { ops = append(ops, op) }
	if !applied.tableExists {
		add(nftOp{verb: nftAdd, kind: nftTableKind})
	}
	for _, name := range slices.Sorted(maps.Keys(desired.elements)) {
		if _, ok := applied.elements[name]; !ok {
			add(nftOp{verb: nftAdd, kind: nftSetKind, name: name, set: setSpec(name)})
		}
	}
	for _, name := range slices.Sorted(maps.Keys(desired.affinity)) {
		// The timeout is part of the set's name: a set never changes.
		if _, ok := applied.affinity[name]; !ok {
			add(nftOp{verb: nftAdd, kind: nftSetKind, name: name, set: &nftSetSpec{typ: "ipv4_addr", timeout: desired.affinity[name]}})
		}
	}

	chains := slices.Sorted(maps.Keys(desired.chains))
	// Every new chain exists before any rule may jump to it.
	for _, name := range chains {
		if _, ok := applied.chains[name]; !ok {
			add(nftOp{verb: nftAdd, kind: nftChainKind, name: name})
		}
	}
	for _, name := range chains {
		old, existed := applied.chains[name]
		if existed && applied.rulesKnown && slices.Equal(old, desired.chains[name]) {
			continue
		}
		if existed {
			add(nftOp{verb: nftFlush, kind: nftChainKind, name: name})
		}
		for _, r := range desired.chains[name] {
			add(nftOp{verb: nftAdd, kind: nftRuleKind, name: name, rule: r})
		}
	}

	// Elements: deletions first (a changed value is deleted and re-added).
	// A set whose content could not be read back is flushed and refilled,
	// in the same transaction (packets never see it empty).
	for _, set := range slices.Sorted(maps.Keys(applied.elements)) {
		if _, keep := desired.elements[set]; !keep {
			continue
		}
		if applied.unreadable[set] {
			add(nftOp{verb: nftFlush, kind: nftSetKind, name: set})
			continue
		}
		for _, key := range slices.Sorted(maps.Keys(applied.elements[set])) {
			if v, ok := desired.elements[set][key]; !ok || v != applied.elements[set][key] {
				add(nftOp{verb: nftDelete, kind: nftElementKind, name: set, key: key})
			}
		}
	}
	for _, set := range slices.Sorted(maps.Keys(desired.elements)) {
		for _, key := range slices.Sorted(maps.Keys(desired.elements[set])) {
			v := desired.elements[set][key]
			if old, ok := applied.elements[set][key]; !ok || old != v || applied.unreadable[set] {
				add(nftOp{verb: nftAdd, kind: nftElementKind, name: set, key: key, value: v})
			}
		}
	}

	// Stale chains: flush them all before deleting any, since one may jump
	// to another.
	var stale []string
	for _, name := range slices.Sorted(maps.Keys(applied.chains)) {
		if _, ok := desired.chains[name]; !ok {
			stale = append(stale, name)
			add(nftOp{verb: nftFlush, kind: nftChainKind, name: name})
		}
	}
	for _, name := range stale {
		add(nftOp{verb: nftDelete, kind: nftChainKind, name: name})
	}
	for _, name := range slices.Sorted(maps.Keys(applied.affinity)) {
		if _, ok := desired.affinity[name]; !ok {
			add(nftOp{verb: nftDelete, kind: nftSetKind, name: name})
		}
	}
	for _, set := range slices.Sorted(maps.Keys(applied.elements)) {
		if _, ok := desired.elements[set]; !ok && set == setNodePortAddresses {
			add(nftOp{verb: nftDelete, kind: nftSetKind, name: set})
		}
	}
	return ops
}

// nftWriteText adds ops to a knftables transaction: the `nft` text form.
func nftWriteText(tx *knftables.Transaction, ops []nftOp) {
	for _, op := range ops {
		var obj knftables.Object
		switch op.kind {
		case nftTableKind:
			obj = &knftables.Table{}
		case nftChainKind:
			obj = nftChain(op.name)
		case nftSetKind:
			obj = nftSetObject(op.name, op.set)
		case nftRuleKind:
			obj = &knftables.Rule{Chain: op.name, Rule: op.rule}
		case nftElementKind:
			obj = nftElement(op.name, op.key, op.value)
		}
		switch op.verb {
		case nftAdd:
			tx.Add(obj)
		case nftFlush:
			tx.Flush(obj)
		case nftDelete:
			tx.Delete(obj)
		}
	}
}

// nftTransaction is nftPlan written as text into tx.
func nftTransaction(tx *knftables.Transaction, desired, applied *nftState) {
	nftWriteText(tx, nftPlan(desired, applied))
}

func nftSetObject(name string, spec *nftSetSpec) knftables.Object {
	if spec == nil { // flush or delete: the name is enough
		spec = setSpec(name)
		if spec == nil {
			spec = &nftSetSpec{typ: "ipv4_addr"}
		}
	}
	if spec.isMap() {
		m := &knftables.Map{Name: name, Type: spec.typ}
		if spec.typeOf {
			m.Type, m.TypeOf = "", spec.typ
		}
		if spec.interval {
			m.Flags = []knftables.SetFlag{knftables.IntervalFlag}
		}
		return m
	}
	s := &knftables.Set{Name: name, Type: spec.typ}
	if spec.interval {
		s.Flags = []knftables.SetFlag{knftables.IntervalFlag}
	}
	if spec.timeout > 0 {
		timeout := time.Duration(spec.timeout) * time.Second
		s.Flags = []knftables.SetFlag{knftables.DynamicFlag, knftables.TimeoutFlag}
		s.Timeout = &timeout
	}
	return s
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
	if spec := setSpec(set); spec != nil && spec.isMap() {
		e.Map = set
		if value != "" {
			e.Value = []string{value}
		}
	} else {
		e.Set = set
	}
	return e
}

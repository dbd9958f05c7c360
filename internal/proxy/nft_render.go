package proxy

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"sigs.k8s.io/knftables"
)

// The nftables layout. Everything lives in one table owned by the proxy;
// README.md states the contract with the agent's own table.
const (
	nftTable  = "kite-proxy"
	nftFamily = knftables.IPv4Family

	// Base chains.
	chainNATPrerouting    = "nat-prerouting"
	chainNATOutput        = "nat-output"
	chainNATPostrouting   = "nat-postrouting"
	chainFilterPrerouting = "filter-prerouting"
	chainFilterInput      = "filter-input"
	chainFilterForward    = "filter-forward"
	chainFilterOutput     = "filter-output"

	// Shared regular chains.
	chainServices    = "services"
	chainNoEndpoints = "no-endpoints"
	chainMarkMasq    = "mark-for-masquerade"
	chainMasquerade  = "masquerading"
	chainReject      = "reject-chain"

	// Dispatch maps: one lookup per packet, whatever the number of Services.
	mapServiceIPs          = "service-ips"
	mapServiceNodePorts    = "service-nodeports"
	mapNoEndpointServices  = "no-endpoint-services"
	mapNoEndpointNodePorts = "no-endpoint-nodeports"
	setNodePortAddresses   = "nodeport-addresses"
	// setClusterIPs holds "ClusterIP . proto . port" of every service
	// port with endpoints: one rule in `services` marks off-cluster
	// sources to them for masquerade, instead of one rule per service
	// chain (half the rules, so a smaller table for the kernel to
	// re-validate when a rule changes).
	setClusterIPs = "cluster-ips"
	// setHairpin holds "ep . ep" for every endpoint address: a DNATed
	// packet whose source is its new destination is a pod reaching its own
	// Service and landing on itself, which must be masqueraded (one set
	// lookup at postrouting instead of a rule per endpoint).
	setHairpin = "hairpin-endpoints"
	// mapEndpoints holds the endpoints of every service port: each port
	// (its svc- chain, and its local- chain) owns a block of endpointBlock
	// keys, endpoint i at key start+i, and its chain is the one rule
	// `dnat to numgen random mod N offset <start> map @service-endpoints`
	// (1/N each). An endpoint replaced is an element change only: no rule
	// added, so the kernel does not re-validate the table (README.md).
	//
	// The blocks are spread over endpointShards maps, endpoints-00 …: the
	// kernel checks every element added to a map against every rule that
	// uses the map, so one map for 10,000 rules made a full sync
	// quadratic (100k elements × 10k rules). Block b is in map b mod
	// endpointShards, at key (b / endpointShards) · endpointBlock.
	mapEndpointsPrefix = "endpoints-"
	endpointShards     = 64
	// endpointBlock bounds the endpoints of one port.
	endpointBlock = 1 << 16
	endpointsType = "numgen random mod 65536 : ip daddr . th dport"

	ipProtoPortType = "ipv4_addr . inet_proto . inet_service : verdict"
	protoPortType   = "inet_proto . inet_service : verdict"

	// filterPriority runs the filter chains just before DNAT (-100), so
	// the reject of a no-endpoint service sees the original destination in
	// output as well as in prerouting's successors.
	filterPriority = knftables.BaseChainPriority("-110")

	// loopbackNet is 127.0.0.0/8: never a legitimate destination of a
	// packet arriving from another host.
	loopbackNet = "127.0.0.0/8"
)

// nftBaseChain is a base chain's hook definition.
type nftBaseChain struct {
	typ      knftables.BaseChainType
	hook     knftables.BaseChainHook
	priority knftables.BaseChainPriority
}

var nftBaseChains = map[string]nftBaseChain{
	chainNATPrerouting:    {knftables.NATType, knftables.PreroutingHook, knftables.DNATPriority},
	chainNATOutput:        {knftables.NATType, knftables.OutputHook, knftables.DNATPriority},
	chainNATPostrouting:   {knftables.NATType, knftables.PostroutingHook, knftables.SNATPriority},
	chainFilterPrerouting: {knftables.FilterType, knftables.PreroutingHook, filterPriority},
	chainFilterInput:      {knftables.FilterType, knftables.InputHook, filterPriority},
	chainFilterForward:    {knftables.FilterType, knftables.ForwardHook, filterPriority},
	chainFilterOutput:     {knftables.FilterType, knftables.OutputHook, filterPriority},
}

// nftState is a table's content as the proxy sees it: chains with their
// rules, map and set elements, and the affinity sets.
type nftState struct {
	// tableExists is false for a kernel without the table.
	tableExists bool
	// rulesKnown is false for a state listed from the kernel, whose chain
	// contents are not read back (that would be one exec per chain): every
	// chain is rewritten then.
	rulesKnown bool
	chains     map[string][]string
	// elements is map or set name → key ("a . b . c") → value ("" in sets).
	elements map[string]map[string]string
	// affinity is affinity set name → timeout in seconds.
	affinity map[string]int32
	// unreadable names sets listed from the kernel whose elements were
	// not read back (interval sets): they are flushed and refilled.
	unreadable map[string]bool
	// refs counts the ports sharing each hairpin element.
	refs map[string]int
	// blocks are the endpoint blocks a port fragment uses (chain → block).
	blocks map[string]uint32
}

// nftSlots hands out blocks of mapEndpoints to chains and keeps them
// while the chain lives, so that a change rewrites only its own elements.
type nftSlots struct {
	byName map[string]uint32
	taken  map[uint32]bool
	used   map[string]bool // names asked for since the last sweep
	next   uint32
}

func newNFTSlots() *nftSlots {
	return &nftSlots{byName: map[string]uint32{}, taken: map[uint32]bool{}, used: map[string]bool{}}
}

func (a *nftSlots) get(name string) (uint32, error) {
	a.used[name] = true
	if b, ok := a.byName[name]; ok {
		return b, nil
	}
	for a.taken[a.next] {
		a.next++
	}
	if uint64(a.next/endpointShards+1)*endpointBlock > 1<<32 {
		return 0, fmt.Errorf("more than %d endpoint blocks", a.next)
	}
	a.byName[name], a.taken[a.next] = a.next, true
	a.next++
	return a.byName[name], nil
}

func (a *nftSlots) release(name string) {
	if b, ok := a.byName[name]; ok {
		delete(a.byName, name)
		delete(a.taken, b)
		a.next = min(a.next, b)
	}
}

// sweep releases every block not asked for since the last sweep.
func (a *nftSlots) sweep() {
	for name := range a.byName {
		if !a.used[name] {
			a.release(name)
		}
	}
	a.used = map[string]bool{}
}

func newNFTState() *nftState {
	return &nftState{tableExists: true, rulesKnown: true, chains: map[string][]string{},
		elements: map[string]map[string]string{}, affinity: map[string]int32{}, unreadable: map[string]bool{}, refs: map[string]int{}}
}

// Counts of what a state holds, for metrics.
func (s *nftState) counts() (chains, rules, elements int) {
	for _, r := range s.chains {
		rules += len(r)
	}
	for _, e := range s.elements {
		elements += len(e)
	}
	return len(s.chains), rules, elements
}

func (s *nftState) add(chain string, rules ...string) {
	s.chains[chain] = append(s.chains[chain], rules...)
}

func (s *nftState) element(set, key, value string) {
	if s.elements[set] == nil {
		s.elements[set] = map[string]string{}
	}
	s.elements[set][key] = value
}

// endpointMap is the map holding block b.
func endpointMap(b uint32) string { return fmt.Sprintf("%s%02d", mapEndpointsPrefix, b%endpointShards) }

func isEndpointMap(name string) bool { return strings.HasPrefix(name, mapEndpointsPrefix) }

// renderNFT computes the whole table for a Model, blocks handed out in
// port order. Pure.
func renderNFT(m *Model, cfg Config) *nftState {
	s, err := renderNFTSlots(m, cfg, newNFTSlots())
	if err != nil {
		panic(err)
	}
	return s
}

// renderNFTSlots is renderNFT with the blocks of slots.
func renderNFTSlots(m *Model, cfg Config, slots *nftSlots) (*nftState, error) {
	cfg = cfg.withDefaults()
	s := newNFTState()
	for _, name := range []string{mapServiceIPs, mapServiceNodePorts, mapNoEndpointServices, mapNoEndpointNodePorts, setHairpin, setClusterIPs} {
		s.elements[name] = map[string]string{}
	}
	for i := range endpointShards {
		s.elements[endpointMap(uint32(i))] = map[string]string{}
	}
	mark := fmt.Sprintf("0x%x", cfg.masqMark())

	s.add(chainNATPrerouting, "jump "+chainServices)
	s.add(chainNATOutput, "jump "+chainServices)
	s.add(chainNATPostrouting, "jump "+chainMasquerade)
	// CVE-2020-8558: with route_localnet on, a neighbour could reach
	// services bound to 127.0.0.1. Nothing from outside may be addressed
	// to loopback; our own replies are un-NATed after this chain (-110 is
	// before conntrack's NAT at -100), so they still carry the node's IP.
	s.add(chainFilterPrerouting, `iifname != "lo" ip daddr `+loopbackNet+" drop")
	for _, c := range []string{chainFilterInput, chainFilterForward, chainFilterOutput} {
		s.add(c, "ct state new jump "+chainNoEndpoints)
	}
	s.add(chainMasquerade,
		"ct status dnat ip saddr . ip daddr @"+setHairpin+" jump "+chainMarkMasq,
		"meta mark & "+mark+" == 0 return",
		"meta mark set meta mark ^ "+mark,
		"masquerade fully-random")
	s.add(chainMarkMasq, "meta mark set meta mark | "+mark)
	s.add(chainReject, "meta l4proto tcp reject with tcp reset", "reject")

	nodePortMatch := "fib daddr type local"
	if cfg.DisableLocalhostNodePorts {
		nodePortMatch += " ip daddr != " + loopbackNet
	}
	if len(cfg.NodePortAddresses) > 0 {
		nodePortMatch += " ip daddr @" + setNodePortAddresses
		s.elements[setNodePortAddresses] = map[string]string{}
		for _, p := range cfg.NodePortAddresses {
			s.element(setNodePortAddresses, p.Masked().String(), "")
		}
		if !cfg.DisableLocalhostNodePorts {
			s.element(setNodePortAddresses, loopbackNet, "")
		}
	}
	if m.ClusterCIDR.IsValid() {
		// Off-cluster sources to a ClusterIP are masqueraded, so replies
		// come back through this node. Only traffic addressed to the
		// ClusterIP itself: external traffic is marked (or deliberately
		// not) by its ext- chain.
		s.add(chainServices, "ip daddr . meta l4proto . th dport @"+setClusterIPs+" ip saddr != "+m.ClusterCIDR.String()+" jump "+chainMarkMasq)
	}
	s.add(chainServices,
		"ip daddr . meta l4proto . th dport vmap @"+mapServiceIPs,
		nodePortMatch+" meta l4proto . th dport vmap @"+mapServiceNodePorts)
	s.add(chainNoEndpoints,
		"ip daddr . meta l4proto . th dport vmap @"+mapNoEndpointServices,
		nodePortMatch+" meta l4proto . th dport vmap @"+mapNoEndpointNodePorts)

	for i := range m.Ports {
		f, err := renderNFTPortFragment(&m.Ports[i], m, slots)
		if err != nil {
			return nil, err
		}
		s.merge(f)
	}
	return s, nil
}

// renderNFTPortFragment is one service port's share of the table: its
// chains, its dispatch, endpoint and hairpin elements, its affinity sets.
func renderNFTPortFragment(sp *ServicePort, m *Model, slots *nftSlots) (*nftState, error) {
	f := &nftState{chains: map[string][]string{}, elements: map[string]map[string]string{}, affinity: map[string]int32{}, blocks: map[string]uint32{}}
	return f, renderNFTPort(f, sp, m, slots)
}

// merge adds a port's fragment to a whole state. Hairpin elements are
// shared by every port with that endpoint, so they are counted.
func (s *nftState) merge(f *nftState) {
	for c, r := range f.chains {
		s.chains[c] = r
	}
	for set, elems := range f.elements {
		for k, v := range elems {
			s.element(set, k, v)
			if set == setHairpin {
				s.refs[k]++
			}
		}
	}
	for a, t := range f.affinity {
		s.affinity[a] = t
	}
}

// unmerge takes a fragment merge added out again.
func (s *nftState) unmerge(f *nftState) {
	for c := range f.chains {
		delete(s.chains, c)
	}
	for set, elems := range f.elements {
		for k, v := range elems {
			if set == setHairpin {
				if s.refs[k]--; s.refs[k] > 0 {
					continue
				}
				delete(s.refs, k)
			}
			if s.elements[set][k] == v { // another port may have taken the key over
				delete(s.elements[set], k)
			}
		}
	}
	for a := range f.affinity {
		delete(s.affinity, a)
	}
}

func ipKey(ip fmt.Stringer, proto string, port uint16) string {
	return ip.String() + " . " + proto + " . " + strconv.Itoa(int(port))
}

func protoKey(proto string, port uint16) string { return proto + " . " + strconv.Itoa(int(port)) }

// renderNFTPort adds one service port's chains and dispatch elements.
func renderNFTPort(s *nftState, sp *ServicePort, m *Model, slots *nftSlots) error {
	k, proto := sp.Key, sp.Key.proto()
	external := sp.External()
	if len(sp.ClusterEndpoints) == 0 {
		// No endpoints at all: refuse at once rather than let the packet
		// wander to the default route.
		verdict := "goto " + chainReject
		s.element(mapNoEndpointServices, ipKey(sp.ClusterIP, proto, sp.Port), verdict)
		for _, ip := range append(append([]netip.Addr(nil), sp.ExternalIPs...), sp.LoadBalancerIPs...) {
			s.element(mapNoEndpointServices, ipKey(ip, proto, sp.Port), verdict)
		}
		if sp.NodePort != 0 {
			s.element(mapNoEndpointNodePorts, protoKey(proto, sp.NodePort), verdict)
		}
		return nil
	}
	svcChain, localChain, extChain := nftServiceChain(k), nftLocalChain(k), nftExternalChain(k)
	// Without affinity an endpoint needs no chain of its own: the service
	// chain DNATs itself (hairpin is the postrouting set's business). With affinity each endpoint keeps a
	// chain that records the client in its affinity set.
	seen := map[netip.AddrPort]bool{}
	var used []Endpoint
	var err error
	dispatch := func(chain string, eps []Endpoint) {
		if len(eps) == 0 {
			// Policy Local without a local endpoint: upstream drops (the
			// load balancer's health check steers clients away).
			s.add(chain, "drop")
			return
		}
		for _, ep := range eps {
			s.element(setHairpin, ep.Addr.Addr().String()+" . "+ep.Addr.Addr().String(), "")
		}
		if sp.AffinitySeconds == 0 {
			block, e := slots.get(chain)
			if e != nil {
				err = e
				return
			}
			if len(eps) > endpointBlock {
				err = fmt.Errorf("%s: more than %d endpoints", chain, endpointBlock)
				return
			}
			s.blocks[chain] = block
			set, start := endpointMap(block), uint64(block/endpointShards)*endpointBlock
			s.add(chain, "meta l4proto "+proto+" dnat to numgen random mod "+strconv.Itoa(len(eps))+
				" offset "+strconv.FormatUint(start, 10)+" map @"+set)
			for i, ep := range eps {
				s.element(set, strconv.FormatUint(start+uint64(i), 10),
					ep.Addr.Addr().String()+" . "+strconv.Itoa(int(ep.Addr.Port())))
			}
			return
		}
		for _, ep := range eps {
			s.add(chain, "ip saddr @"+nftAffinitySet(k, ep.Addr, sp.AffinitySeconds)+" goto "+nftEndpointChain(k, ep.Addr))
		}
		if len(eps) == 1 {
			s.add(chain, "goto "+nftEndpointChain(k, eps[0].Addr))
		} else {
			arms := make([]string, len(eps))
			for i, ep := range eps {
				arms[i] = strconv.Itoa(i) + " : goto " + nftEndpointChain(k, ep.Addr)
			}
			s.add(chain, "numgen random mod "+strconv.Itoa(len(eps))+" vmap { "+strings.Join(arms, " , ")+" }")
		}
		for _, ep := range eps {
			if !seen[ep.Addr] {
				seen[ep.Addr] = true
				used = append(used, ep)
			}
		}
	}
	if sp.usesCluster() {
		dispatch(svcChain, sp.ClusterEndpoints)
	}
	if sp.usesLocal() {
		dispatch(localChain, sp.LocalEndpoints)
	}
	internal := svcChain
	if sp.InternalLocal {
		internal = localChain
	}
	s.element(mapServiceIPs, ipKey(sp.ClusterIP, proto, sp.Port), "goto "+internal)
	s.element(setClusterIPs, ipKey(sp.ClusterIP, proto, sp.Port), "")

	if external {
		if sp.ExternalLocal {
			// Client IP preserved: no masquerade, local endpoints only. But
			// pods and the node itself have no reason to be confined to this
			// node's endpoints, and the node's own connections must be
			// masqueraded for the reply to find its way back.
			if m.ClusterCIDR.IsValid() {
				s.add(extChain, "ip saddr "+m.ClusterCIDR.String()+" goto "+svcChain)
			}
			s.add(extChain,
				"fib saddr type local jump "+chainMarkMasq,
				"fib saddr type local goto "+svcChain,
				"goto "+localChain)
		} else {
			s.add(extChain, "jump "+chainMarkMasq, "goto "+svcChain)
		}
		for _, ip := range append(append([]netip.Addr(nil), sp.ExternalIPs...), sp.LoadBalancerIPs...) {
			s.element(mapServiceIPs, ipKey(ip, proto, sp.Port), "goto "+extChain)
		}
		if sp.NodePort != 0 {
			s.element(mapServiceNodePorts, protoKey(proto, sp.NodePort), "goto "+extChain)
		}
	}

	// Only affinity services have endpoint chains.
	for _, ep := range used {
		chain := nftEndpointChain(k, ep.Addr)
		set := nftAffinitySet(k, ep.Addr, sp.AffinitySeconds)
		s.affinity[set] = sp.AffinitySeconds
		s.add(chain, "update @"+set+" { ip saddr }")
		s.add(chain, "meta l4proto "+proto+" dnat to "+ep.Addr.String())
	}
	return err
}

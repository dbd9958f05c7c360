package proxy

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// The iptables layout: kube-proxy's chain names (the seed's S16), in the
// nat and filter tables, applied with iptables-restore --noflush so that
// other chains in those tables are left alone.
const (
	iptServices         = "KUBE-SERVICES"
	iptExternalServices = "KUBE-EXTERNAL-SERVICES"
	iptNodePorts        = "KUBE-NODEPORTS"
	iptPostrouting      = "KUBE-POSTROUTING"
	iptMarkMasq         = "KUBE-MARK-MASQ"
	iptMarkDrop         = "KUBE-MARK-DROP"
	iptFirewall         = "KUBE-FIREWALL"
	iptForward          = "KUBE-FORWARD"

	// iptDropBit marks packets the filter table must drop (policy Local
	// without a local endpoint: the nat table may not drop).
	iptDropBit = 15
)

// iptPerServicePrefixes are the chains made per service port: any of them
// not in the desired state is stale.
var iptPerServicePrefixes = []string{"KUBE-SVC-", "KUBE-SVL-", "KUBE-EXT-", "KUBE-SEP-"}

// iptJump is a rule hooking one of our chains into a built-in chain.
type iptJump struct{ table, chain, rule string }

// iptJumps are inserted once (when missing) at the top of the built-in
// chains; everything else is in our own chains.
var iptJumps = []iptJump{
	{"filter", "INPUT", `-m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j ` + iptExternalServices},
	{"filter", "INPUT", "-j " + iptFirewall},
	{"filter", "FORWARD", `-m comment --comment "kubernetes forwarding rules" -j ` + iptForward},
	{"filter", "FORWARD", `-m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j ` + iptServices},
	{"filter", "FORWARD", `-m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j ` + iptExternalServices},
	{"filter", "FORWARD", "-j " + iptFirewall},
	{"filter", "OUTPUT", `-m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j ` + iptServices},
	{"filter", "OUTPUT", "-j " + iptFirewall},
	{"nat", "PREROUTING", `-m comment --comment "kubernetes service portals" -j ` + iptServices},
	{"nat", "OUTPUT", `-m comment --comment "kubernetes service portals" -j ` + iptServices},
	{"nat", "POSTROUTING", `-m comment --comment "kubernetes postrouting rules" -j ` + iptPostrouting},
}

// iptExisting is what iptables-save showed: chain names per table, and
// which of iptJumps are present.
type iptExisting struct {
	chains map[string]map[string]bool // table → chain
	jumps  map[iptJump]bool
}

// iptTable is one table's chains in order with their rules.
type iptTable struct {
	order []string
	rules map[string][]string
}

func newIPTTable(chains ...string) *iptTable {
	t := &iptTable{rules: map[string][]string{}}
	for _, c := range chains {
		t.chain(c)
	}
	return t
}

func (t *iptTable) chain(name string) {
	if _, ok := t.rules[name]; !ok {
		t.order = append(t.order, name)
		t.rules[name] = []string{}
	}
}

func (t *iptTable) add(chain string, rule ...string) {
	t.chain(chain)
	t.rules[chain] = append(t.rules[chain], strings.Join(rule, " "))
}

// renderIPTables computes the nat and filter chains for m. Pure.
func renderIPTables(m *Model, cfg Config) (nat, filter *iptTable) {
	cfg = cfg.withDefaults()
	nat = newIPTTable(iptServices, iptNodePorts, iptPostrouting, iptMarkMasq, iptMarkDrop)
	filter = newIPTTable(iptServices, iptExternalServices, iptForward, iptFirewall)
	masq := fmt.Sprintf("0x%x", cfg.masqMark())
	drop := fmt.Sprintf("0x%x", uint32(1)<<iptDropBit)

	nat.add(iptPostrouting, "-m mark ! --mark", masq+"/"+masq, "-j RETURN")
	nat.add(iptPostrouting, "-j MARK --xor-mark", masq)
	nat.add(iptPostrouting, `-m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully`)
	nat.add(iptMarkMasq, "-j MARK --or-mark", masq)
	nat.add(iptMarkDrop, "-j MARK --or-mark", drop)
	filter.add(iptForward, `-m comment --comment "kubernetes forwarding rules" -m mark --mark`, masq+"/"+masq, "-j ACCEPT")
	filter.add(iptForward, `-m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`)
	filter.add(iptFirewall, `-m comment --comment "kubernetes firewall for dropping marked packets" -m mark --mark`, drop+"/"+drop, "-j DROP")
	// CVE-2020-8558: route_localnet lets neighbours address 127/8; only our
	// own DNATed localhost NodePort flows may do so.
	filter.add(iptFirewall, "! -s", loopbackNet, "-d", loopbackNet,
		`-m comment --comment "block incoming localnet connections" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP`)

	for i := range m.Ports {
		renderIPTPort(nat, filter, &m.Ports[i], m)
	}
	nodePortSrc := "-m addrtype --dst-type LOCAL"
	if cfg.DisableLocalhostNodePorts {
		nodePortSrc = "! -d " + loopbackNet + " " + nodePortSrc
	}
	nat.add(iptServices, `-m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain"`, nodePortSrc, "-j", iptNodePorts)
	return nat, filter
}

func renderIPTPort(nat, filter *iptTable, sp *ServicePort, m *Model) {
	k, proto := sp.Key, sp.Key.proto()
	name := k.String()
	dport := func(port uint16) string { return "-m " + proto + " --dport " + strconv.Itoa(int(port)) }
	comment := func(s string) string { return "-m comment --comment " + strconv.Quote(s) }
	p := "-p " + proto
	cip := sp.ClusterIP.String() + "/32"
	extIPs := func(f func(ip, what string)) {
		for _, ip := range sp.ExternalIPs {
			f(ip.String()+"/32", "external IP")
		}
		for _, ip := range sp.LoadBalancerIPs {
			f(ip.String()+"/32", "loadbalancer IP")
		}
	}

	if len(sp.ClusterEndpoints) == 0 {
		reject := "-j REJECT"
		if proto == "tcp" {
			reject += " --reject-with tcp-reset"
		}
		c := comment(name + " has no endpoints")
		filter.add(iptServices, "-d", cip, p, c, dport(sp.Port), reject)
		extIPs(func(ip, _ string) { filter.add(iptExternalServices, "-d", ip, p, c, dport(sp.Port), reject) })
		if sp.NodePort != 0 {
			filter.add(iptExternalServices, p, c, "-m addrtype --dst-type LOCAL", dport(sp.NodePort), reject)
		}
		return
	}
	svc, svl, ext := iptServiceChain(k), iptLocalChain(k), iptExternalChain(k)
	c := comment(name + " cluster IP")
	if m.ClusterCIDR.IsValid() {
		nat.add(iptServices, "-d", cip, p, c, dport(sp.Port), "! -s", m.ClusterCIDR.String(), "-j", iptMarkMasq)
	}
	internal := svc
	if sp.InternalLocal {
		internal = svl
	}
	nat.add(iptServices, "-d", cip, p, c, dport(sp.Port), "-j", internal)

	var used []Endpoint
	seen := map[string]bool{}
	dispatch := func(chain string, eps []Endpoint) {
		nat.chain(chain)
		if len(eps) == 0 {
			nat.add(chain, comment(name+" has no local endpoints"), "-j", iptMarkDrop)
			return
		}
		if sp.AffinitySeconds > 0 {
			for _, ep := range eps {
				sep := iptEndpointChain(k, ep.Addr)
				nat.add(chain, comment(name+" -> "+ep.Addr.String()), "-m recent --name", sep,
					"--mask 255.255.255.255 --rsource --rcheck --seconds", strconv.Itoa(int(sp.AffinitySeconds)), "--reap -j", sep)
			}
		}
		for i, ep := range eps {
			sep := iptEndpointChain(k, ep.Addr)
			if n := len(eps) - i; n > 1 {
				nat.add(chain, comment(name+" -> "+ep.Addr.String()), "-m statistic --mode random --probability",
					strconv.FormatFloat(1/float64(n), 'f', 10, 64), "-j", sep)
			} else {
				nat.add(chain, comment(name+" -> "+ep.Addr.String()), "-j", sep)
			}
			if !seen[sep] {
				seen[sep] = true
				used = append(used, ep)
			}
		}
	}
	if sp.usesCluster() {
		dispatch(svc, sp.ClusterEndpoints)
	}
	if sp.usesLocal() {
		dispatch(svl, sp.LocalEndpoints)
	}
	if sp.External() {
		nat.chain(ext)
		if sp.ExternalLocal {
			if m.ClusterCIDR.IsValid() {
				nat.add(ext, comment("pod traffic for "+name+" external destinations"), "-s", m.ClusterCIDR.String(), "-j", svc)
			}
			nat.add(ext, comment("masquerade LOCAL traffic for "+name+" external destinations"), "-m addrtype --src-type LOCAL -j", iptMarkMasq)
			nat.add(ext, comment("route LOCAL traffic for "+name+" external destinations"), "-m addrtype --src-type LOCAL -j", svc)
			nat.add(ext, "-j", svl)
		} else {
			nat.add(ext, comment("masquerade traffic for "+name+" external destinations"), "-j", iptMarkMasq)
			nat.add(ext, "-j", svc)
		}
		extIPs(func(ip, what string) {
			nat.add(iptServices, "-d", ip, p, comment(name+" "+what), dport(sp.Port), "-j", ext)
		})
		if sp.NodePort != 0 {
			nat.add(iptNodePorts, p, comment(name), dport(sp.NodePort), "-j", ext)
		}
	}
	for _, ep := range used {
		sep := iptEndpointChain(k, ep.Addr)
		nat.add(sep, "-s", ep.Addr.Addr().String()+"/32", comment(name), "-j", iptMarkMasq)
		recent := ""
		if sp.AffinitySeconds > 0 {
			recent = "-m recent --name " + sep + " --mask 255.255.255.255 --rsource --set "
		}
		nat.add(sep, p, comment(name), recent+"-m "+proto+" -j DNAT --to-destination", ep.Addr.String())
	}
}

// iptRestoreText is the iptables-restore --noflush input for the two
// tables: every chain of ours declared (which flushes it), its rules,
// the missing jumps from built-in chains, and stale per-service chains
// deleted. Pure.
func iptRestoreText(nat, filter *iptTable, existing iptExisting) []byte {
	var b bytes.Buffer
	for _, t := range []struct {
		name  string
		table *iptTable
	}{{"filter", filter}, {"nat", nat}} {
		fmt.Fprintf(&b, "*%s\n", t.name)
		var stale []string
		for c := range existing.chains[t.name] {
			if _, ok := t.table.rules[c]; !ok && slices.ContainsFunc(iptPerServicePrefixes, func(p string) bool { return strings.HasPrefix(c, p) }) {
				stale = append(stale, c)
			}
		}
		slices.Sort(stale)
		for _, c := range t.table.order {
			fmt.Fprintf(&b, ":%s - [0:0]\n", c)
		}
		for _, c := range stale {
			fmt.Fprintf(&b, ":%s - [0:0]\n", c)
		}
		// Inserted in reverse so that they end up in iptJumps' order.
		for i := len(iptJumps) - 1; i >= 0; i-- {
			j := iptJumps[i]
			if j.table == t.name && !existing.jumps[j] {
				fmt.Fprintf(&b, "-I %s 1 %s\n", j.chain, j.rule)
			}
		}
		for _, c := range t.table.order {
			for _, r := range t.table.rules[c] {
				fmt.Fprintf(&b, "-A %s %s\n", c, r)
			}
		}
		for _, c := range stale {
			fmt.Fprintf(&b, "-X %s\n", c)
		}
		b.WriteString("COMMIT\n")
	}
	return b.Bytes()
}

package lb

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"sigs.k8s.io/knftables"
)

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

// twoServices: web on three nodes, dns/udp on one; a third port with no
// healthy node.
var twoServices = State{
	Frontends: []Frontend{
		{Service: "default/web", IP: netip.MustParseAddr("10.77.0.200"), Protocol: "tcp", Port: 80, NodePort: 30080,
			Nodes: addrs("10.77.0.2", "10.77.0.3", "10.77.0.4")},
		{Service: "default/dns", IP: netip.MustParseAddr("10.77.0.201"), Protocol: "udp", Port: 53, NodePort: 30053,
			Nodes: addrs("10.77.0.2")},
		{Service: "default/down", IP: netip.MustParseAddr("10.77.0.202"), Protocol: "tcp", Port: 80, NodePort: 30081},
	},
	Addrs: addrs("10.77.0.200", "10.77.0.201", "10.77.0.202"),
	Pool:  []netip.Prefix{netip.MustParsePrefix("10.77.0.200/29")},
}

func dump(t *testing.T, f *knftables.Fake) string {
	t.Helper()
	return strings.TrimSpace(f.Dump())
}

const fullDump = `add table ip kite-lb { comment "kite lb: LoadBalancer ingress IPs to the nodes' NodePorts" ; }
add chain ip kite-lb forward { type filter hook forward priority 0 ; }
add chain ip kite-lb postrouting { type nat hook postrouting priority 100 ; }
add chain ip kite-lb prerouting { type nat hook prerouting priority -100 ; }
add chain ip kite-lb svc-default/dns/udp/53
add chain ip kite-lb svc-default/web/tcp/80
add set ip kite-lb ingress-ips { type ipv4_addr ; }
add set ip kite-lb pool { type ipv4_addr ; flags interval ; }
add map ip kite-lb service-ports { type ipv4_addr . inet_proto . inet_service : verdict ; }
add rule ip kite-lb forward ip daddr @pool meta l4proto tcp reject with tcp reset
add rule ip kite-lb forward ip daddr @pool reject
add rule ip kite-lb postrouting ct status dnat ct original ip daddr @ingress-ips masquerade
add rule ip kite-lb prerouting ip daddr . meta l4proto . th dport vmap @service-ports
add rule ip kite-lb svc-default/dns/udp/53 meta l4proto udp dnat to 10.77.0.2:30053
add rule ip kite-lb svc-default/web/tcp/80 meta l4proto tcp dnat to numgen random mod 3 map { 0 : 10.77.0.2 . 30080, 1 : 10.77.0.3 . 30080, 2 : 10.77.0.4 . 30080 }
add element ip kite-lb ingress-ips { 10.77.0.200 }
add element ip kite-lb ingress-ips { 10.77.0.201 }
add element ip kite-lb ingress-ips { 10.77.0.202 }
add element ip kite-lb pool { 10.77.0.200/29 }
add element ip kite-lb service-ports { 10.77.0.200 . tcp . 80 : goto svc-default/web/tcp/80 }
add element ip kite-lb service-ports { 10.77.0.201 . udp . 53 : goto svc-default/dns/udp/53 }`

func TestNFTFullSync(t *testing.T) {
	f := knftables.NewFake(knftables.IPv4Family, DefaultTable)
	s := &nftSyncer{nft: f}
	if err := s.sync(context.Background(), twoServices); err != nil {
		t.Fatal(err)
	}
	if got := dump(t, f); got != fullDump {
		t.Errorf("table:\n%s\nwant:\n%s", got, fullDump)
	}
	// The same state again: nothing to do but an empty transaction.
	if err := s.sync(context.Background(), twoServices); err != nil {
		t.Fatal(err)
	}
	if got := f.LastTransaction.String(); got != "" {
		t.Errorf("resync of an unchanged state sent:\n%s", got)
	}
}

func TestNFTIncremental(t *testing.T) {
	f := knftables.NewFake(knftables.IPv4Family, DefaultTable)
	s := &nftSyncer{nft: f}
	if err := s.sync(context.Background(), twoServices); err != nil {
		t.Fatal(err)
	}
	// Node .3 fails its check; dns is deleted; "down" gets a node.
	next := State{
		Frontends: []Frontend{
			{Service: "default/web", IP: netip.MustParseAddr("10.77.0.200"), Protocol: "tcp", Port: 80, NodePort: 30080,
				Nodes: addrs("10.77.0.2", "10.77.0.4")},
			{Service: "default/down", IP: netip.MustParseAddr("10.77.0.202"), Protocol: "tcp", Port: 80, NodePort: 30081,
				Nodes: addrs("10.77.0.4")},
		},
		Addrs: addrs("10.77.0.200", "10.77.0.202"),
		Pool:  twoServices.Pool,
	}
	if err := s.sync(context.Background(), next); err != nil {
		t.Fatal(err)
	}
	want := `flush set ip kite-lb ingress-ips
add element ip kite-lb ingress-ips { 10.77.0.200 }
add element ip kite-lb ingress-ips { 10.77.0.202 }
add chain ip kite-lb svc-default/down/tcp/80
add rule ip kite-lb svc-default/down/tcp/80 meta l4proto tcp dnat to 10.77.0.4:30081
add chain ip kite-lb svc-default/web/tcp/80
flush chain ip kite-lb svc-default/web/tcp/80
add rule ip kite-lb svc-default/web/tcp/80 meta l4proto tcp dnat to numgen random mod 2 map { 0 : 10.77.0.2 . 30080, 1 : 10.77.0.4 . 30080 }
delete element ip kite-lb service-ports { 10.77.0.201 . udp . 53 }
add element ip kite-lb service-ports { 10.77.0.202 . tcp . 80 : goto svc-default/down/tcp/80 }
delete chain ip kite-lb svc-default/dns/udp/53
`
	if got := f.LastTransaction.String(); got != want {
		t.Errorf("transaction:\n%s\nwant:\n%s", got, want)
	}
	// The result is what a full sync of the new state gives.
	g := knftables.NewFake(knftables.IPv4Family, DefaultTable)
	if err := (&nftSyncer{nft: g}).sync(context.Background(), next); err != nil {
		t.Fatal(err)
	}
	if dump(t, f) != dump(t, g) {
		t.Errorf("incremental result:\n%s\nfull sync:\n%s", dump(t, f), dump(t, g))
	}
}

func TestNFTAdoptsExistingTable(t *testing.T) {
	// A table left by an earlier run: a stale Service, an old rule, a
	// foreign element. A new syncer adopts it without deleting the table.
	f := knftables.NewFake(knftables.IPv4Family, DefaultTable)
	if err := f.ParseDump(fullDump + `
add chain ip kite-lb svc-default/gone/tcp/80
add rule ip kite-lb svc-default/gone/tcp/80 meta l4proto tcp dnat to 10.77.0.9:30000
add element ip kite-lb service-ports { 10.77.0.203 . tcp . 80 : goto svc-default/gone/tcp/80 }`); err != nil {
		t.Fatal(err)
	}
	s := &nftSyncer{nft: f}
	if err := s.sync(context.Background(), twoServices); err != nil {
		t.Fatal(err)
	}
	tx := f.LastTransaction.String()
	for _, verb := range []string{"delete table", "flush table", "destroy table"} {
		if strings.Contains(tx, verb) {
			t.Errorf("adoption used %q:\n%s", verb, tx)
		}
	}
	if got := dump(t, f); got != fullDump {
		t.Errorf("adopted table:\n%s\nwant:\n%s", got, fullDump)
	}
	// After a failed transaction the syncer forgets what it wrote
	// (have = nil) and the next sync adopts the table again.
	f.ParseDump(fullDump + "\nadd chain ip kite-lb svc-default/stray/tcp/1")
	s.have = nil
	if err := s.sync(context.Background(), twoServices); err != nil {
		t.Fatal(err)
	}
	if got := dump(t, f); got != fullDump {
		t.Errorf("re-adopted table:\n%s\nwant:\n%s", got, fullDump)
	}
}

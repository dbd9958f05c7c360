package proxy

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/nftables"
)

// Every rule the renderer writes, in every scenario and with the optional
// features on, compiles for netlink; anything else is refused.
func TestCompileEveryRenderedRule(t *testing.T) {
	cfg := testConfig(ModeNFTables)
	cfg.NodePortAddresses = []netip.Prefix{netip.MustParsePrefix("192.168.50.0/24")}
	for _, disable := range []bool{false, true} {
		cfg.DisableLocalhostNodePorts = disable
		for _, sc := range scenarios() {
			s := renderNFT(sc.model(), cfg)
			var id uint32
			rc := &ruleCompiler{nextID: func() uint32 { id++; return id }}
			for chain, rules := range s.chains {
				for _, r := range rules {
					c, err := rc.compile(r)
					if err != nil {
						t.Errorf("%s: chain %s: %v", sc.name, chain, err)
						continue
					}
					if len(c.exprs) == 0 {
						t.Errorf("%s: %q compiled to nothing", sc.name, r)
					}
				}
			}
		}
	}
	rc := &ruleCompiler{nextID: func() uint32 { return 1 }}
	for _, bad := range []string{"counter", "ip daddr 10.0.0.1 log", "dnat to numgen random mod 3 map { 0 : 1.2.3.4 . 80 }", "meta l4proto icmp drop", "goto a b"} {
		if _, err := rc.compile(bad); err == nil {
			t.Errorf("%q compiled; want an error", bad)
		}
	}
}

// The DNAT map of a service with three endpoints: numgen, one anonymous
// map keyed 0..2 in host order, address and port in network order.
func TestCompileDNATMap(t *testing.T) {
	var id uint32
	rc := &ruleCompiler{nextID: func() uint32 { id++; return id }}
	c, err := rc.compile("meta l4proto tcp dnat to numgen random mod 3 map { 0 : 10.0.0.1 . 80 , 1 : 10.0.0.2 . 80 , 2 : 10.0.0.3 . 8080 }")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.anon) != 1 || len(c.anon[0].elems) != 3 || !c.anon[0].set.IsMap || !c.anon[0].set.Anonymous {
		t.Fatalf("anonymous map: %+v", c.anon)
	}
	e := c.anon[0].elems[2]
	if got, want := e.Val, []byte{10, 0, 0, 3, 0x1f, 0x90, 0, 0}; string(got) != string(want) {
		t.Errorf("value %x, want %x", got, want)
	}
	if got := native32(2); string(e.Key) != string(got) {
		t.Errorf("key %x, want %x", e.Key, got)
	}
}

// Elements survive the trip to the kernel's bytes and back (what a full
// sync reads from the kernel must equal what the renderer wrote).
func TestElementCodec(t *testing.T) {
	for set, key := range map[string]string{
		mapServiceIPs:       "10.96.0.20 . tcp . 80",
		mapServiceNodePorts: "udp . 30053",
		setHairpin:          "10.244.1.5 . 10.244.1.5",
	} {
		w := &netlinkWriter{table: &nftables.Table{Name: nftTable}}
		s, err := w.set(set, nil)
		if err != nil {
			t.Fatal(err)
		}
		value := ""
		if s.IsMap {
			value = "goto svc-X"
		}
		e, err := encodeElement(s, key, value)
		if err != nil {
			t.Fatalf("%s: %v", set, err)
		}
		back, err := decodeKey(nftSetSpecs[set].typ, e.Key)
		if err != nil || back != key {
			t.Errorf("%s: %q → %x → %q, %v", set, key, e.Key, back, err)
		}
		if got := verdictText(e.VerdictData); got != value {
			t.Errorf("%s: value %q → %q", set, value, got)
		}
	}
}

// Interval sets are encoded as nft does: merged ranges, end one past.
func TestIntervalElements(t *testing.T) {
	elems, err := intervalElements([]string{"192.168.50.0/24", "127.0.0.0/8", "192.168.50.128/25"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range elems {
		s := netip.AddrFrom4([4]byte(e.Key)).String()
		if e.IntervalEnd {
			s += " end"
		}
		got = append(got, s)
	}
	want := "0.0.0.0 end, 127.0.0.0, 128.0.0.0 end, 192.168.50.0, 192.168.51.0 end"
	if strings.Join(got, ", ") != want {
		t.Errorf("got %s\nwant %s", strings.Join(got, ", "), want)
	}
}

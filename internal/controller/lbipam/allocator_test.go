package lbipam

import (
	"errors"
	"net/netip"
	"slices"
	"testing"
)

// Conventions: pools are in 172.18.255.0/24 and fd00:18::/64 — only data,
// no test sends traffic to them.

func TestParsePool(t *testing.T) {
	for _, tc := range []struct {
		pool     string
		inside   []string
		outside  []string
		prefixes []string
		err      bool
	}{
		{pool: "172.18.255.200-172.18.255.250",
			inside: []string{"172.18.255.200", "172.18.255.225", "172.18.255.250"}, outside: []string{"172.18.255.199", "172.18.255.251", "fd00:18::1"},
			prefixes: []string{"172.18.255.200/29", "172.18.255.208/28", "172.18.255.224/28", "172.18.255.240/29", "172.18.255.248/31", "172.18.255.250/32"}},
		{pool: "172.18.255.0/30", inside: []string{"172.18.255.0", "172.18.255.3"}, outside: []string{"172.18.255.4"}, prefixes: []string{"172.18.255.0/30"}},
		{pool: "172.18.255.5/30", inside: []string{"172.18.255.4"}, prefixes: []string{"172.18.255.4/30"}}, // host bits dropped
		{pool: " 172.18.255.9 , fd00:18::10-fd00:18::11", inside: []string{"172.18.255.9", "fd00:18::10", "fd00:18::11"}, outside: []string{"172.18.255.10", "fd00:18::12"},
			prefixes: []string{"172.18.255.9/32", "fd00:18::10/127"}},
		{pool: "", err: true},
		{pool: ",", err: true},
		{pool: "172.18.255.9-172.18.255.1", err: true},
		{pool: "172.18.255.1-fd00:18::1", err: true},
		{pool: "172.18.255.0/24,172.18.255.9", err: true}, // overlap
		{pool: "172.18.255.300", err: true},
		{pool: "172.18.255.0/33", err: true},
	} {
		p, err := ParsePool(tc.pool)
		if (err != nil) != tc.err {
			t.Errorf("ParsePool(%q) error = %v, want error %v", tc.pool, err, tc.err)
			continue
		}
		for _, a := range tc.inside {
			if !p.Contains(netip.MustParseAddr(a)) {
				t.Errorf("pool %q does not contain %s", tc.pool, a)
			}
		}
		for _, a := range tc.outside {
			if p.Contains(netip.MustParseAddr(a)) {
				t.Errorf("pool %q contains %s", tc.pool, a)
			}
		}
		if tc.prefixes != nil {
			var got []string
			for _, pr := range p.Prefixes() {
				got = append(got, pr.String())
			}
			if !slices.Equal(got, tc.prefixes) {
				t.Errorf("pool %q prefixes = %v, want %v", tc.pool, got, tc.prefixes)
			}
		}
	}
	if _, err := PoolFromPrefixes(netip.MustParsePrefix("172.18.255.0/28")); err != nil {
		t.Error(err)
	}
}

func mustPool(t *testing.T, s string) Pool {
	t.Helper()
	p, err := ParsePool(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var (
	tcp80  = PortProto{80, "TCP"}
	udp80  = PortProto{80, "UDP"}
	tcp443 = PortProto{443, "TCP"}
)

// step is one allocator call and what it must give.
type step struct {
	op      string // allocate (default), assign, release
	req     Request
	current string // allocate: the Service's status IP
	ip      string // assign: the address; allocate: the address wanted
	err     error
}

func TestAllocator(t *testing.T) {
	for _, tc := range []struct {
		name  string
		pool  string
		steps []step
		want  string // Allocator.String() at the end
	}{
		{name: "lowest free address, then the next",
			pool: "172.18.255.200-172.18.255.202",
			steps: []step{
				{req: Request{Service: "a", Ports: []PortProto{tcp80}}, ip: "172.18.255.200"},
				{req: Request{Service: "b", Ports: []PortProto{tcp80}}, ip: "172.18.255.201"},
				{op: "release", req: Request{Service: "a"}},
				{req: Request{Service: "c"}, ip: "172.18.255.200"},
			},
			want: "172.18.255.200 c\n172.18.255.201 b\n"},
		{name: "exhausted pool, never a reused address",
			pool: "172.18.255.200-172.18.255.201",
			steps: []step{
				{req: Request{Service: "a"}, ip: "172.18.255.200"},
				{req: Request{Service: "b"}, ip: "172.18.255.201"},
				{req: Request{Service: "c"}, err: ErrExhausted},
				{req: Request{Service: "c", Family: 6}, err: ErrExhausted},
				{op: "release", req: Request{Service: "b"}},
				{req: Request{Service: "c"}, ip: "172.18.255.201"},
			},
			want: "172.18.255.200 a\n172.18.255.201 c\n"},
		{name: "a Service keeps its current address",
			pool: "172.18.255.200-172.18.255.210",
			steps: []step{
				{req: Request{Service: "a"}, current: "172.18.255.205", ip: "172.18.255.205"},
				{req: Request{Service: "a"}, current: "172.18.255.205", ip: "172.18.255.205"},
				{req: Request{Service: "b"}, current: "172.18.255.205", ip: "172.18.255.200"}, // taken: a new one
				{req: Request{Service: "c"}, current: "10.1.1.1", ip: "172.18.255.201"},       // outside the pool
			},
			want: "172.18.255.200 b\n172.18.255.201 c\n172.18.255.205 a\n"},
		{name: "requested address",
			pool: "172.18.255.200-172.18.255.210",
			steps: []step{
				{req: Request{Service: "a", IP: netip.MustParseAddr("172.18.255.207")}, ip: "172.18.255.207"},
				{req: Request{Service: "b", IP: netip.MustParseAddr("172.18.255.207")}, err: ErrInUse},
				{req: Request{Service: "b", IP: netip.MustParseAddr("10.1.1.1")}, err: ErrNotInPool},
				// a asks for another: the old one is free.
				{req: Request{Service: "a", IP: netip.MustParseAddr("172.18.255.208")}, current: "172.18.255.207", ip: "172.18.255.208"},
				{req: Request{Service: "b", IP: netip.MustParseAddr("172.18.255.207")}, ip: "172.18.255.207"},
			},
			want: "172.18.255.207 b\n172.18.255.208 a\n"},
		{name: "sharing needs the same key on both and no port clash",
			pool: "172.18.255.200-172.18.255.210",
			steps: []step{
				{req: Request{Service: "tcp", SharingKey: "k", Ports: []PortProto{tcp80, tcp443}}, ip: "172.18.255.200"},
				// Same key, other protocol: shares, without asking for the address.
				{req: Request{Service: "udp", SharingKey: "k", Ports: []PortProto{udp80}}, ip: "172.18.255.200"},
				// Same key, same port and protocol: next address.
				{req: Request{Service: "tcp2", SharingKey: "k", Ports: []PortProto{tcp80}}, ip: "172.18.255.201"},
				{req: Request{Service: "clash", SharingKey: "k", IP: netip.MustParseAddr("172.18.255.200"), Ports: []PortProto{tcp443}}, err: ErrPortClash},
				{req: Request{Service: "other-key", SharingKey: "x", IP: netip.MustParseAddr("172.18.255.200"), Ports: []PortProto{{8080, "TCP"}}}, err: ErrInUse},
				{req: Request{Service: "no-key", IP: netip.MustParseAddr("172.18.255.200"), Ports: []PortProto{{8080, "TCP"}}}, err: ErrInUse},
				{req: Request{Service: "no-key2", Ports: []PortProto{{8080, "TCP"}}}, ip: "172.18.255.202"},
				// The shared address stays until its last user goes.
				{op: "release", req: Request{Service: "tcp"}},
				{req: Request{Service: "clash", SharingKey: "k", IP: netip.MustParseAddr("172.18.255.200"), Ports: []PortProto{tcp443}}, ip: "172.18.255.200"},
			},
			want: "172.18.255.200 clash,udp\n172.18.255.201 tcp2\n172.18.255.202 no-key2\n"},
		{name: "a Service that changes its ports to clash loses the address",
			pool: "172.18.255.200",
			steps: []step{
				{req: Request{Service: "a", SharingKey: "k", Ports: []PortProto{tcp80}}, ip: "172.18.255.200"},
				{req: Request{Service: "b", SharingKey: "k", Ports: []PortProto{udp80}}, ip: "172.18.255.200"},
				{req: Request{Service: "b", SharingKey: "k", Ports: []PortProto{tcp80}}, current: "172.18.255.200", err: ErrExhausted},
			},
			want: "172.18.255.200 a\n"},
		{name: "families",
			pool: "172.18.255.200,fd00:18::5-fd00:18::6",
			steps: []step{
				{req: Request{Service: "v6", Family: 6}, ip: "fd00:18::5"},
				{req: Request{Service: "v4", Family: 4}, ip: "172.18.255.200"},
				{req: Request{Service: "v6b", Family: 6}, current: "172.18.255.200", ip: "fd00:18::6"},
			},
			want: "172.18.255.200 v4\nfd00:18::5 v6\nfd00:18::6 v6b\n"},
		{name: "assign (restart) keeps the first claim",
			pool: "172.18.255.200-172.18.255.201",
			steps: []step{
				{op: "assign", req: Request{Service: "old"}, ip: "172.18.255.201"},
				{op: "assign", req: Request{Service: "dup"}, ip: "172.18.255.201", err: ErrInUse},
				{op: "assign", req: Request{Service: "out"}, ip: "10.0.0.1", err: ErrNotInPool},
				{req: Request{Service: "dup"}, current: "172.18.255.201", ip: "172.18.255.200"},
			},
			want: "172.18.255.200 dup\n172.18.255.201 old\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := NewAllocator(mustPool(t, tc.pool))
			for i, s := range tc.steps {
				if s.req.Family == 0 {
					s.req.Family = 4
				}
				var got netip.Addr
				var err error
				switch s.op {
				case "release":
					a.Release(s.req.Service)
					continue
				case "assign":
					got = netip.MustParseAddr(s.ip)
					err = a.Assign(s.req, got)
				default:
					var cur netip.Addr
					if s.current != "" {
						cur = netip.MustParseAddr(s.current)
					}
					got, err = a.Allocate(s.req, cur)
				}
				if !errors.Is(err, s.err) {
					t.Fatalf("step %d (%s %s): error %v, want %v", i, s.op, s.req.Service, err, s.err)
				}
				if err != nil {
					if ip, held := a.IPOf(s.req.Service); held {
						t.Fatalf("step %d: %s failed but holds %s", i, s.req.Service, ip)
					}
					continue
				}
				if got.String() != s.ip {
					t.Fatalf("step %d (%s): got %s, want %s", i, s.req.Service, got, s.ip)
				}
			}
			if got := a.String(); got != tc.want {
				t.Errorf("allocations:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}

func TestExhaustedMessageNamesPool(t *testing.T) {
	a := NewAllocator(mustPool(t, "172.18.255.200"))
	if _, err := a.Allocate(Request{Service: "a", Family: 4}, netip.Addr{}); err != nil {
		t.Fatal(err)
	}
	_, err := a.Allocate(Request{Service: "b", Family: 4}, netip.Addr{})
	if err == nil || err.Error() != "no free IPv4 address in pool 172.18.255.200: pool exhausted" {
		t.Errorf("error = %v", err)
	}
}

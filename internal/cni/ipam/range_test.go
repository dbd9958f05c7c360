package ipam

import (
	"net/netip"
	"strings"
	"testing"
)

func mustRange(t *testing.T, subnet, gw string) Range {
	t.Helper()
	var g netip.Addr
	if gw != "" {
		g = netip.MustParseAddr(gw)
	}
	r, err := NewRange(netip.MustParsePrefix(subnet), g)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestNewRange(t *testing.T) {
	for _, tc := range []struct {
		subnet, gw string
		wantGW     string
		wantSize   int
		wantErr    string
	}{
		{subnet: "10.244.1.0/24", wantGW: "10.244.1.1", wantSize: 253},
		{subnet: "10.244.1.0/29", wantGW: "10.244.1.1", wantSize: 5},
		{subnet: "10.244.1.0/30", wantGW: "10.244.1.1", wantSize: 1},
		{subnet: "10.244.0.0/16", gw: "10.244.255.254", wantGW: "10.244.255.254", wantSize: 65533},
		{subnet: "10.244.1.0/31", wantErr: "too small"},
		{subnet: "10.244.1.7/32", wantErr: "too small"},
		{subnet: "10.244.1.5/24", wantErr: "did you mean 10.244.1.0/24"},
		{subnet: "fd00::/64", wantErr: "only IPv4"},
		{subnet: "10.244.1.0/24", gw: "10.244.2.1", wantErr: "not a host address"},
		{subnet: "10.244.1.0/24", gw: "10.244.1.0", wantErr: "not a host address"},
		{subnet: "10.244.1.0/24", gw: "10.244.1.255", wantErr: "not a host address"},
	} {
		var gw netip.Addr
		if tc.gw != "" {
			gw = netip.MustParseAddr(tc.gw)
		}
		r, err := NewRange(netip.MustParsePrefix(tc.subnet), gw)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("NewRange(%s, %q) = %v, want error containing %q", tc.subnet, tc.gw, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("NewRange(%s, %q): %v", tc.subnet, tc.gw, err)
			continue
		}
		if r.Gateway.String() != tc.wantGW || r.Size() != tc.wantSize {
			t.Errorf("NewRange(%s, %q) = gateway %s size %d, want %s %d", tc.subnet, tc.gw, r.Gateway, r.Size(), tc.wantGW, tc.wantSize)
		}
	}
}

func TestRangeContains(t *testing.T) {
	r := mustRange(t, "10.244.1.0/29", "")
	var got []string
	for a := netip.MustParseAddr("10.244.0.250"); a.Less(netip.MustParseAddr("10.244.1.20")); a = a.Next() {
		if r.Contains(a) {
			got = append(got, a.String())
		}
	}
	want := "10.244.1.2 10.244.1.3 10.244.1.4 10.244.1.5 10.244.1.6"
	if strings.Join(got, " ") != want {
		t.Errorf("addresses handed out = %v, want %s", got, want)
	}
	if p := r.GatewayPrefix().String(); p != "10.244.1.1/29" {
		t.Errorf("GatewayPrefix = %s", p)
	}
}

func TestNext(t *testing.T) {
	r := mustRange(t, "10.244.1.0/29", "10.244.1.4")
	used := func(list ...string) func(netip.Addr) bool {
		return func(a netip.Addr) bool {
			for _, s := range list {
				if a.String() == s {
					return true
				}
			}
			return false
		}
	}
	for _, tc := range []struct {
		name string
		last string
		used []string
		want string // "" = exhausted
	}{
		{name: "fresh store starts at the first address", last: "", want: "10.244.1.1"},
		{name: "continues after the last reserved", last: "10.244.1.2", want: "10.244.1.3"},
		{name: "skips the gateway", last: "10.244.1.3", want: "10.244.1.5"},
		{name: "wraps past the broadcast", last: "10.244.1.6", want: "10.244.1.1"},
		{name: "skips used addresses", last: "10.244.1.1", used: []string{"10.244.1.2", "10.244.1.3", "10.244.1.5"}, want: "10.244.1.6"},
		{name: "a released address comes back only after a full round", last: "10.244.1.5", used: []string{"10.244.1.6", "10.244.1.1"}, want: "10.244.1.2"},
		{name: "last outside the subnet starts over", last: "192.168.0.9", want: "10.244.1.1"},
		{name: "exhausted", last: "10.244.1.2", used: []string{"10.244.1.1", "10.244.1.2", "10.244.1.3", "10.244.1.5", "10.244.1.6"}, want: ""},
	} {
		var last netip.Addr
		if tc.last != "" {
			last = netip.MustParseAddr(tc.last)
		}
		got, ok := Next(r, last, used(tc.used...))
		if tc.want == "" {
			if ok {
				t.Errorf("%s: Next = %s, want exhausted", tc.name, got)
			}
			continue
		}
		if !ok || got.String() != tc.want {
			t.Errorf("%s: Next = %s %v, want %s", tc.name, got, ok, tc.want)
		}
	}
}

package nodeipam

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func mustRange(t *testing.T, cidr string, mask int) subnetRange {
	t.Helper()
	r, err := newSubnetRange(netip.MustParsePrefix(cidr), mask)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestNewSubnetRange(t *testing.T) {
	for _, tc := range []struct {
		cidr    string
		mask    int
		count   int
		wantErr string
	}{
		{cidr: "10.244.0.0/16", mask: 24, count: 256},
		{cidr: "10.244.0.0/16", mask: 16, count: 1},
		{cidr: "10.244.0.0/23", mask: 24, count: 2},
		{cidr: "10.0.0.0/8", mask: 24, count: 65536},
		{cidr: "10.0.0.0/7", mask: 24, wantErr: "more than 2^16"},
		{cidr: "10.244.0.0/16", mask: 8, wantErr: "does not fit"},
		{cidr: "10.244.0.0/16", mask: 33, wantErr: "does not fit"},
		{cidr: "fd00:10:244::/48", mask: 64, count: 65536},
		{cidr: "fd00:10:244::/56", mask: 64, count: 256},
		{cidr: "fd00::/32", mask: 64, wantErr: "more than 2^16"},
	} {
		r, err := newSubnetRange(netip.MustParsePrefix(tc.cidr), tc.mask)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s /%d: err %v, want %q", tc.cidr, tc.mask, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s /%d: %v", tc.cidr, tc.mask, err)
			continue
		}
		if r.count() != tc.count {
			t.Errorf("%s /%d: count %d, want %d", tc.cidr, tc.mask, r.count(), tc.count)
		}
	}
}

func TestSubnetAndSpan(t *testing.T) {
	v4 := mustRange(t, "10.244.0.0/16", 24)
	v6 := mustRange(t, "fd00:10:244::/48", 64)
	for _, tc := range []struct {
		r    subnetRange
		i    int
		want string
	}{
		{v4, 0, "10.244.0.0/24"}, {v4, 1, "10.244.1.0/24"}, {v4, 255, "10.244.255.0/24"},
		{v6, 0, "fd00:10:244::/64"}, {v6, 1, "fd00:10:244:1::/64"}, {v6, 65535, "fd00:10:244:ffff::/64"},
	} {
		got := tc.r.subnet(tc.i)
		if got.String() != tc.want {
			t.Errorf("%v subnet(%d) = %s, want %s", tc.r.cluster, tc.i, got, tc.want)
		}
		if first, last, ok := tc.r.span(got); !ok || first != tc.i || last != tc.i {
			t.Errorf("span(%s) = %d, %d, %v; want %d", got, first, last, ok, tc.i)
		}
	}
	for _, tc := range []struct {
		r           subnetRange
		cidr        string
		first, last int
		ok          bool
	}{
		{v4, "10.244.3.0/24", 3, 3, true},
		{v4, "10.244.3.128/25", 3, 3, true}, // smaller than a subnet: the subnet holding it
		{v4, "10.244.4.0/23", 4, 5, true},   // larger: every subnet it covers
		{v4, "10.245.0.0/24", 0, 0, false},
		{v4, "10.0.0.0/8", 0, 0, false}, // contains the range: not inside it
		{v4, "fd00:10:244::/64", 0, 0, false},
		{v6, "fd00:10:244:a::/64", 10, 10, true},
		{v6, "fd00:10:245::/64", 0, 0, false},
	} {
		first, last, ok := tc.r.span(netip.MustParsePrefix(tc.cidr))
		if first != tc.first || last != tc.last || ok != tc.ok {
			t.Errorf("%v span(%s) = %d, %d, %v; want %d, %d, %v", tc.r.cluster, tc.cidr, first, last, ok, tc.first, tc.last, tc.ok)
		}
	}
}

func TestOverlapping(t *testing.T) {
	r := mustRange(t, "10.96.0.0/14", 16) // 10.96–10.99, four /16s
	for _, tc := range []struct {
		svc  string
		want []int
	}{
		{"10.96.0.0/16", []int{0}},
		{"10.97.128.0/20", []int{1}},
		{"10.98.0.0/15", []int{2, 3}},
		{"10.0.0.0/8", []int{0, 1, 2, 3}},
		{"192.168.0.0/16", nil},
		{"fd00::/108", nil},
	} {
		if got := r.overlapping(netip.MustParsePrefix(tc.svc)); !slices.Equal(got, tc.want) {
			t.Errorf("overlapping(%s) = %v, want %v", tc.svc, got, tc.want)
		}
	}
}

func TestConfigRanges(t *testing.T) {
	for _, tc := range []struct {
		cfg     Config
		want    []string
		wantErr string
	}{
		{cfg: Config{}, want: []string{"10.244.0.0/16 /24"}},
		{cfg: Config{ClusterCIDR: "10.244.0.0/16", NodeMaskSizeIPv4: 26}, want: []string{"10.244.0.0/16 /26"}},
		{cfg: Config{ClusterCIDR: "fd00:10:244::/56, 10.244.0.0/16"}, want: []string{"10.244.0.0/16 /24", "fd00:10:244::/56 /64"}},
		{cfg: Config{ClusterCIDR: "10.244.0.1/16"}, want: []string{"10.244.0.0/16 /24"}},
		{cfg: Config{ClusterCIDR: "10.244.0.0/16,10.245.0.0/16"}, wantErr: "one CIDR per IP family"},
		{cfg: Config{ClusterCIDR: "10.244.0.0"}, wantErr: "cluster CIDR"},
	} {
		rs, err := tc.cfg.withDefaults().ranges()
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%+v: err %v, want %q", tc.cfg, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%+v: %v", tc.cfg, err)
			continue
		}
		var got []string
		for _, r := range rs {
			got = append(got, r.cluster.String()+" /"+strconv.Itoa(r.mask))
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%+v: ranges %v, want %v", tc.cfg, got, tc.want)
		}
	}
}

package kerneltest

import (
	"context"
	"math/bits"
	"net/netip"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"kite/internal/proxy"
)

// The netlink backend compiles the rule text itself. Whatever it sends
// must be the table `nft -f` makes of the same text: program every
// feature both ways and compare `nft list table`.
func TestNetlinkMatchesNFT(t *testing.T) {
	topology(t)
	resetKernel(t)
	cfg := config(proxy.ModeNFTables)
	cfg.NodePortAddresses = []netip.Prefix{netip.MustParsePrefix(nodeIP + "/24"), netip.MustParsePrefix("192.168.60.0/24")}
	sticky := svc("sticky", "10.96.0.60")
	sticky.Spec.SessionAffinity = "ClientIP"
	m := model(
		svc("kuard", "10.96.0.20"), endpoints("kuard", "pod-a", "pod-b", "pod-c"),
		svc("one", "10.96.0.21"), endpoints("one", "pod-b"),
		svc("web", "10.96.0.30", withNodePort(30361)), endpoints("web", "pod-b", "pod-c"),
		svc("empty", "10.96.0.50", withNodePort(30500)), endpoints("empty"),
		svc("lb", "10.96.0.40", withLoadBalancer("192.168.60.40", 32000)), endpoints("lb", "pod-b"),
		sticky, endpoints("sticky", "pod-b", "pod-c"),
	)
	dp, err := proxy.NewDataplane(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dp.Apply(context.Background(), m, true); err != nil {
		t.Fatal(err)
	}
	viaNetlink := listTable(t)

	resetKernel(t)
	cmd := exec.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(proxy.NFTText(m, cfg))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft -f: %v: %s", err, out)
	}
	viaNFT := listTable(t)
	// One known, cosmetic difference: google/nftables marks an anonymous
	// set's key big-endian in the set's user data (where nft says host
	// order for numgen's), so `nft list` prints the numgen keys 1, 2, …
	// byte-swapped (16777216, 33554432, …). The kernel matches the bytes,
	// which are the same.
	viaNetlink = regexp.MustCompile(`([{,] )(\d+) : (goto|jump) `).ReplaceAllStringFunc(viaNetlink, func(s string) string {
		m := regexp.MustCompile(`^([{,] )(\d+) : (goto|jump) $`).FindStringSubmatch(s)
		n, _ := strconv.ParseUint(m[2], 10, 32)
		return m[1] + strconv.FormatUint(uint64(bits.ReverseBytes32(uint32(n))), 10) + " : " + m[3] + " "
	})
	// A second: google/nftables writes no `typeof` user data, so the
	// endpoint maps' key (numgen's integer) lists as `type 0`.
	viaNetlink = strings.ReplaceAll(viaNetlink, "type 0 : ipv4_addr . inet_service", "typeof numgen random mod 65536 : ip daddr . th dport")
	if viaNetlink != viaNFT {
		t.Errorf("the table made over netlink differs from nft's:\n--- netlink\n%s\n--- nft -f\n%s", viaNetlink, viaNFT)
	}
}

// listTable is `nft list table ip kite-proxy` without the per-boot
// details (anonymous set numbers).
func listTable(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("nft", "list", "table", "ip", "kite-proxy").CombinedOutput()
	if err != nil {
		t.Fatalf("nft list table: %v: %s", err, out)
	}
	return regexp.MustCompile(`__(map|set)\d+`).ReplaceAllString(string(out), "__$1")
}

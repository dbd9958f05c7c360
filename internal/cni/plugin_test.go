package cni

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/vishvananda/netlink"

	"kite/internal/cni/ipam"
)

func TestHostVethName(t *testing.T) {
	a := HostVethName("0123456789abcdef", "eth0")
	if len(a) != 15 || !strings.HasPrefix(a, "kite") {
		t.Errorf("HostVethName = %q, want kite + 11 characters", a)
	}
	if a != HostVethName("0123456789abcdef", "eth0") {
		t.Errorf("not deterministic")
	}
	if a == HostVethName("0123456789abcdef", "eth1") || a == HostVethName("0123456789abcdee", "eth0") {
		t.Errorf("different attachments share a name")
	}
}

func TestHostVethAlias(t *testing.T) {
	att := ipam.Attachment{ContainerID: "k8s_pod.1-x", IfName: "eth0"}
	got, ok := parseHostVethAlias(hostVethAlias(att))
	if !ok || got != att {
		t.Errorf("alias round trip = %v %v", got, ok)
	}
	for _, bad := range []string{"", "kite:", "kite:/eth0", "kite:abc/", "other:abc/eth0"} {
		if _, ok := parseHostVethAlias(bad); ok {
			t.Errorf("parseHostVethAlias(%q) accepted", bad)
		}
	}
}

func TestMACFor(t *testing.T) {
	if got := MACFor(netip.MustParseAddr("10.244.1.7")).String(); got != "0a:58:0a:f4:01:07" {
		t.Errorf("MACFor = %s", got)
	}
}

func TestWriteError(t *testing.T) {
	var b bytes.Buffer
	writeError(&b, "1.0.0", types.NewError(7, "invalid network config", "bad subnet"))
	var got map[string]any
	if err := json.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got["cniVersion"] != "1.0.0" || got["code"] != float64(7) || got["msg"] != "invalid network config" || got["details"] != "bad subnet" {
		t.Errorf("error JSON = %s", b.String())
	}
}

func TestIPAMErrorCodes(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code uint
	}{
		{fmt.Errorf("%w in 10.0.0.0/29", ipam.ErrExhausted), CodeRangeExhausted},
		{fmt.Errorf("%w: locked", ipam.ErrBusy), types.ErrTryAgainLater},
		{fmt.Errorf("disk full"), CodeIPAMStore},
	} {
		if got := ipamError("op", tc.err); got.Code != tc.code {
			t.Errorf("ipamError(%v) code %d, want %d", tc.err, got.Code, tc.code)
		}
	}
}

// Run with no environment, the plugin answers code 4 naming CNI_COMMAND.
func TestRunWithoutEnvironment(t *testing.T) {
	for _, v := range []string{"CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS", "CNI_PATH"} {
		t.Setenv(v, "")
	}
	var stdout, stderr bytes.Buffer
	if code := run(&stdout, &stderr); code == 0 {
		t.Fatalf("exit status 0")
	}
	var e errorJSON
	if err := json.Unmarshal(stdout.Bytes(), &e); err != nil {
		t.Fatalf("%v: %s", err, stdout.String())
	}
	if e.Code != 4 || !strings.Contains(e.Msg, "CNI_COMMAND") || e.CNIVersion != "1.1.0" {
		t.Errorf("error = %+v", e)
	}
	if !strings.Contains(stderr.String(), "kite CNI plugin") {
		t.Errorf("stderr = %q", stderr.String())
	}
}

func testAttachment() attachmentResult {
	link := func(name, mac string, mtu int) netlink.Link {
		hw, _ := net.ParseMAC(mac)
		return &netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Name: name, HardwareAddr: hw, MTU: mtu}}
	}
	return attachmentResult{
		bridge:  link("cni0", "0a:58:0a:f4:01:01", 1500),
		host:    link("kite0123456789a", "aa:bb:cc:dd:ee:ff", 1500),
		cont:    containerIf{index: 2, mac: MACFor(netip.MustParseAddr("10.244.1.2")), mtu: 1500},
		ifName:  "eth0",
		netns:   "/run/netns/p",
		addr:    netip.MustParsePrefix("10.244.1.2/24"),
		gateway: netip.MustParseAddr("10.244.1.1"),
		dns:     types.DNS{Nameservers: []string{"10.96.0.10"}},
	}
}

// The ADD result in every supported version.
func TestAddResultVersions(t *testing.T) {
	for _, v := range SupportedVersions() {
		r := addResult(nil, testAttachment())
		conv, err := r.GetAsVersion(v)
		if err != nil {
			t.Errorf("%s: %v", v, err)
			continue
		}
		var b bytes.Buffer
		conv.PrintTo(&b)
		s := b.String()
		for _, want := range []string{`"cniVersion": "` + v + `"`, `"address": "10.244.1.2/24"`, `"gateway": "10.244.1.1"`, `"interface": 2`, `"sandbox": "/run/netns/p"`, `"dst": "0.0.0.0/0"`, `"10.96.0.10"`} {
			if !strings.Contains(s, want) {
				t.Errorf("%s result lacks %s:\n%s", v, want, s)
			}
		}
		// 0.3.x and 0.4.0 results say the IP version per address.
		if hasVersion := strings.Contains(s, `"version": "4"`); hasVersion != strings.HasPrefix(v, "0.") {
			t.Errorf("%s result: per-address version present = %v:\n%s", v, hasVersion, s)
		}
	}
}

// After another interface plugin in a chain, kite appends to prevResult
// and its interface indices count from the end of the previous list.
func TestAddResultAppendsToPrevResult(t *testing.T) {
	prev := &current.Result{
		CNIVersion: "1.0.0",
		Interfaces: []*current.Interface{{Name: "lo", Sandbox: "/run/netns/p"}},
		IPs:        []*current.IPConfig{{Interface: current.Int(0), Address: net.IPNet{IP: net.IPv4(127, 0, 0, 1), Mask: net.CIDRMask(8, 32)}}},
		DNS:        types.DNS{Nameservers: []string{"1.1.1.1"}},
	}
	r := addResult(prev, testAttachment())
	if len(r.Interfaces) != 4 || r.Interfaces[3].Name != "eth0" {
		t.Fatalf("interfaces %v", r.Interfaces)
	}
	if len(r.IPs) != 2 || *r.IPs[1].Interface != 3 {
		t.Errorf("ips %v, want kite's address on interface 3", r.IPs)
	}
	if r.DNS.Nameservers[0] != "1.1.1.1" {
		t.Errorf("dns %v, want the previous plugin's kept", r.DNS)
	}
}

func TestExpectedFromResult(t *testing.T) {
	r := addResult(nil, testAttachment())
	w, err := expectedFromResult(r, "eth0", "/run/netns/p")
	if err != nil || len(w.addrs) != 1 || w.addrs[0].String() != "10.244.1.2/24" || w.mac.String() != "0a:58:0a:f4:01:02" {
		t.Errorf("expected = %+v %v", w, err)
	}
	if _, err := expectedFromResult(r, "eth0", "/run/netns/other"); err == nil {
		t.Errorf("an interface in another sandbox matched")
	}
}

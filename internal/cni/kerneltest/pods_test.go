package kerneltest

import (
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"

	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"kite/internal/cni"
)

// Two pods on the bridge get distinct addresses of the subnet, reach each
// other and the gateway, pass CHECK, and leave nothing behind after DEL —
// which may come twice.
func TestTwoPodsOnTheBridge(t *testing.T) {
	h := newHarness(t, "kt1", "10.244.1.0/24")
	l := h.list("1.0.0", h.conf())
	a, b := newPod(t), newPod(t)

	ra := h.mustAdd(l, a.rt("eth0"))
	rb := h.mustAdd(l, b.rt("eth0"))
	ipA, ipB := podIP(t, ra), podIP(t, rb)
	if ipA == ipB {
		t.Fatalf("both pods got %s", ipA)
	}
	subnet := netip.MustParsePrefix("10.244.1.0/24")
	for _, ip := range []string{ipA, ipB} {
		if !subnet.Contains(netip.MustParseAddr(ip)) || ip == "10.244.1.0" || ip == "10.244.1.1" || ip == "10.244.1.255" {
			t.Errorf("pod address %s is not a pod address of %s", ip, subnet)
		}
	}
	checkResult(t, ra, a, "kt1", "10.244.1.1")

	for _, c := range []struct {
		from *pod
		to   string
	}{{a, ipB}, {b, ipA}, {a, "10.244.1.1"}, {b, "10.244.1.1"}, {a, ipA}} {
		if err := c.from.ping(c.to); err != nil {
			t.Error(err)
		}
	}

	for _, p := range []*pod{a, b} {
		if err := h.check(l, p.rt("eth0")); err != nil {
			t.Errorf("CHECK %s: %v", p.name, err)
		}
	}
	if got := run(t, "cat", "/proc/sys/net/ipv4/ip_forward"); strings.TrimSpace(got) != "1" {
		t.Errorf("ip_forward = %q, want 1", got)
	}
	checkKernelState(t, a, "kt1")

	for _, p := range []*pod{a, b} {
		h.mustDel(l, p.rt("eth0"))
		h.mustDel(l, p.rt("eth0")) // DEL is idempotent
	}
	if v := h.veths(); len(v) != 0 {
		t.Errorf("veths left after DEL: %v", v)
	}
	if r := h.reservations(); len(r) != 0 {
		t.Errorf("reservations left after DEL: %v", r)
	}
	if out, err := a.exec("ip", "-o", "link", "show", "eth0"); err == nil {
		t.Errorf("eth0 still in the pod after DEL: %s", out)
	}
}

// checkResult checks the shape of an ADD result: bridge, host veth and
// the container's eth0 with its sandbox; the address on eth0 with the
// gateway; the default route; the config's DNS.
func checkResult(t *testing.T, res *current.Result, p *pod, bridge, gateway string) {
	t.Helper()
	if len(res.Interfaces) != 3 {
		t.Fatalf("result interfaces %v, want bridge, host veth, eth0", res.Interfaces)
	}
	br, host, eth0 := res.Interfaces[0], res.Interfaces[1], res.Interfaces[2]
	if br.Name != bridge || br.Sandbox != "" {
		t.Errorf("interface 0 = %+v, want the bridge %s", br, bridge)
	}
	if host.Name != cni.HostVethName(p.id, "eth0") || host.Sandbox != "" {
		t.Errorf("interface 1 = %+v, want host veth %s", host, cni.HostVethName(p.id, "eth0"))
	}
	if eth0.Name != "eth0" || eth0.Sandbox != p.path || eth0.Mtu != 1400 {
		t.Errorf("interface 2 = %+v, want eth0 in %s with MTU 1400", eth0, p.path)
	}
	ipc := res.IPs[0]
	if ipc.Interface == nil || *ipc.Interface != 2 || ipc.Gateway.String() != gateway {
		t.Errorf("ips[0] = %+v, want interface 2 gateway %s", ipc, gateway)
	}
	if ones, _ := ipc.Address.Mask.Size(); ones != 24 {
		t.Errorf("address %s, want a /24", ipc.Address.String())
	}
	if mac := cni.MACFor(netip.MustParseAddr(ipc.Address.IP.String())).String(); eth0.Mac != mac {
		t.Errorf("eth0 MAC %s, want %s (derived from the address)", eth0.Mac, mac)
	}
	if len(res.Routes) != 1 || res.Routes[0].Dst.String() != "0.0.0.0/0" || res.Routes[0].GW.String() != gateway {
		t.Errorf("routes %v, want default via %s", res.Routes, gateway)
	}
	if !slices.Equal(res.DNS.Nameservers, []string{"10.96.0.10"}) {
		t.Errorf("dns %+v, want the config's", res.DNS)
	}
}

// checkKernelState looks at what ADD left in the kernel.
func checkKernelState(t *testing.T, p *pod, bridge string) {
	t.Helper()
	br, err := netlink.LinkByName(bridge)
	if err != nil {
		t.Fatal(err)
	}
	if want := cni.MACFor(netip.MustParseAddr("10.244.1.1")).String(); br.Attrs().HardwareAddr.String() != want {
		t.Errorf("bridge MAC %s, want %s (stable, from the gateway)", br.Attrs().HardwareAddr, want)
	}
	if br.Attrs().Flags&net.FlagUp == 0 || br.Attrs().Promisc != 0 {
		t.Errorf("bridge flags %v promisc %d, want up and not promiscuous", br.Attrs().Flags, br.Attrs().Promisc)
	}
	host, err := netlink.LinkByName(cni.HostVethName(p.id, "eth0"))
	if err != nil {
		t.Fatal(err)
	}
	if host.Attrs().MasterIndex != br.Attrs().Index || host.Attrs().MTU != 1400 || host.Attrs().Flags&net.FlagUp == 0 {
		t.Errorf("host veth %+v: want up on %s with MTU 1400", host.Attrs(), bridge)
	}
	pi, err := netlink.LinkGetProtinfo(host)
	if err != nil || !pi.Hairpin {
		t.Errorf("host veth hairpin = %v (%v), want on", pi.Hairpin, err)
	}
	netns, err := ns.GetNS(p.path)
	if err != nil {
		t.Fatal(err)
	}
	defer netns.Close()
	err = netns.Do(func(ns.NetNS) error {
		l, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		if l.Attrs().MTU != 1400 {
			t.Errorf("eth0 MTU %d, want 1400", l.Attrs().MTU)
		}
		routes, err := netlink.RouteList(l, netlink.FAMILY_V4)
		if err != nil {
			return err
		}
		var def bool
		for _, r := range routes {
			if (r.Dst == nil || r.Dst.String() == "0.0.0.0/0") && r.Gw.String() == "10.244.1.1" {
				def = true
			}
		}
		if !def {
			t.Errorf("no default route via the gateway in %s: %v", p.name, routes)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

package l2

import (
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

var nodes3 = []string{"kite-control-plane", "kite-worker", "kite-worker2"}

// TestElectStable: the winner depends on the set, not on its order, and
// removing a node that did not win changes nothing.
func TestElectStable(t *testing.T) {
	for i := range 50 {
		ip := netip.AddrFrom4([4]byte{172, 30, 0, byte(200 + i)})
		w := Elect(ip, nodes3)
		if got := Elect(ip, []string{nodes3[2], nodes3[0], nodes3[1]}); got != w {
			t.Errorf("%s: %s for one order, %s for another", ip, w, got)
		}
		var rest []string
		for _, n := range nodes3 {
			if n != w {
				rest = append(rest, n)
			}
		}
		for _, gone := range rest {
			var without []string
			for _, n := range nodes3 {
				if n != gone {
					without = append(without, n)
				}
			}
			if got := Elect(ip, without); got != w {
				t.Errorf("%s: winner %s, but %s without the loser %s", ip, w, got, gone)
			}
		}
		if next := Elect(ip, rest); next == w || next == "" {
			t.Errorf("%s: after the winner %s goes, %q", ip, w, next)
		}
	}
	if got := Elect(netip.MustParseAddr("172.30.0.200"), nil); got != "" {
		t.Errorf("no nodes: %q", got)
	}
}

// TestElectSpreads: 300 addresses over three nodes each get a fair share,
// and a dead node's addresses spread over both survivors.
func TestElectSpreads(t *testing.T) {
	won := map[string]int{}
	moved := map[string]int{}
	for i := range 300 {
		ip := netip.AddrFrom4([4]byte{10, 0, byte(i / 256), byte(i)})
		w := Elect(ip, nodes3)
		won[w]++
		if w == nodes3[0] {
			moved[Elect(ip, nodes3[1:])]++
		}
	}
	for _, n := range nodes3 {
		if won[n] < 70 || won[n] > 130 {
			t.Errorf("node %s won %d of 300 addresses, want about 100: %v", n, won[n], won)
		}
	}
	if moved[nodes3[1]] < 20 || moved[nodes3[2]] < 20 {
		t.Errorf("a dead node's addresses went %v, want both survivors", moved)
	}
}

func TestAssign(t *testing.T) {
	a, b := netip.MustParseAddr("172.30.0.200"), netip.MustParseAddr("172.30.0.201")
	only := func(ns ...string) map[string]bool { return set(ns) }
	for _, tc := range []struct {
		name     string
		services []Service
		live     []string
		want     map[netip.Addr]string
	}{
		{name: "Cluster policy: any live node",
			services: []Service{{Key: "d/a", IPs: []netip.Addr{a}}},
			live:     nodes3, want: map[netip.Addr]string{a: Elect(a, nodes3)}},
		{name: "no live node: nobody answers",
			services: []Service{{Key: "d/a", IPs: []netip.Addr{a}}}},
		{name: "Local policy: only nodes with endpoints",
			services: []Service{{Key: "d/a", IPs: []netip.Addr{a}, Local: true, EndpointNodes: only("kite-worker2")}},
			live:     nodes3, want: map[netip.Addr]string{a: "kite-worker2"}},
		{name: "Local policy, endpoints only on a dead node: nobody",
			services: []Service{{Key: "d/a", IPs: []netip.Addr{a}, Local: true, EndpointNodes: only("kite-worker2")}},
			live:     nodes3[:2]},
		{name: "Local policy without endpoints: nobody",
			services: []Service{{Key: "d/a", IPs: []netip.Addr{a}, Local: true}},
			live:     nodes3},
		{name: "shared address: the node fit for both",
			services: []Service{
				{Key: "d/a", IPs: []netip.Addr{a}, Local: true, EndpointNodes: only("kite-worker", "kite-worker2")},
				{Key: "d/b", IPs: []netip.Addr{a}, Local: true, EndpointNodes: only("kite-worker2", "kite-control-plane")},
				{Key: "d/c", IPs: []netip.Addr{b}}},
			live: nodes3, want: map[netip.Addr]string{a: "kite-worker2", b: Elect(b, nodes3)}},
		{name: "shared address, no common node: one with an endpoint of either",
			services: []Service{
				{Key: "d/a", IPs: []netip.Addr{a}, Local: true, EndpointNodes: only("kite-worker")},
				{Key: "d/b", IPs: []netip.Addr{a}, Local: true, EndpointNodes: only("kite-worker2")}},
			live: nodes3, want: map[netip.Addr]string{a: Elect(a, []string{"kite-worker", "kite-worker2"})}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Assign(tc.services, tc.live)
			if fmt.Sprint(got) != fmt.Sprint(tc.want) { // nil and empty print alike
				t.Errorf("Assign = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestHeartbeats: freshness is judged on the observer's clock, from the
// moment a new renewTime is seen; a Lease first seen counts from its
// renewTime, so an old one is stale at once.
func TestHeartbeats(t *testing.T) {
	var h Heartbeats
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	d := 2 * time.Second
	h.Observe("old", t0.Add(-time.Hour), t0)
	h.Observe("new", t0.Add(-500*time.Millisecond), t0)
	h.Observe("skewed", t0.Add(time.Hour), t0) // its clock is an hour ahead
	for _, tc := range []struct {
		node  string
		at    time.Duration
		fresh bool
	}{
		{"old", 0, false}, {"new", 0, true}, {"new", 1400 * time.Millisecond, true}, {"new", 1500 * time.Millisecond, false},
		{"skewed", 1900 * time.Millisecond, true}, {"skewed", 2 * time.Second, false}, {"absent", 0, false},
	} {
		if got := h.Fresh(tc.node, t0.Add(tc.at), d); got != tc.fresh {
			t.Errorf("%s at +%s: fresh %v, want %v", tc.node, tc.at, got, tc.fresh)
		}
	}
	// A renewal seen at +3s makes the skewed node fresh again for d,
	// whatever its clock says; the same renewTime seen again does not.
	h.Observe("skewed", t0.Add(time.Hour+3*time.Second), t0.Add(3*time.Second))
	h.Observe("skewed", t0.Add(time.Hour+3*time.Second), t0.Add(4*time.Second))
	if !h.Fresh("skewed", t0.Add(4900*time.Millisecond), d) || h.Fresh("skewed", t0.Add(5*time.Second), d) {
		t.Errorf("skewed node after a renewal seen at +3s: want fresh until +5s")
	}
	h.Forget("skewed")
	if h.Fresh("skewed", t0.Add(3*time.Second), d) {
		t.Errorf("forgotten node still fresh")
	}
}

// TestServices: which Services take part, with which addresses and
// endpoint nodes.
func TestServices(t *testing.T) {
	lb := func(name, ip string, mut func(*corev1.Service)) *corev1.Service {
		s := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "d", Name: name}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer}}
		if ip != "" {
			s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: ip}}
		}
		if mut != nil {
			mut(s)
		}
		return s
	}
	all := []*corev1.Service{
		lb("plain", "172.30.0.200", nil),
		lb("local", "172.30.0.201", func(s *corev1.Service) { s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal }),
		lb("pending", "", nil),
		lb("v6", "fd00::1", nil),
		lb("other-class", "172.30.0.202", func(s *corev1.Service) { s.Spec.LoadBalancerClass = ptr.To("example.com/other") }),
		lb("our-class", "172.30.0.203", func(s *corev1.Service) { s.Spec.LoadBalancerClass = ptr.To(DefaultClass) }),
		lb("nodeport", "172.30.0.204", func(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeNodePort }),
	}
	ep := func(node string, ready *bool) discoveryv1.Endpoint {
		return discoveryv1.Endpoint{NodeName: ptr.To(node), Conditions: discoveryv1.EndpointConditions{Ready: ready}}
	}
	eps := []*discoveryv1.EndpointSlice{{
		ObjectMeta: metav1.ObjectMeta{Namespace: "d", Name: "local-x", Labels: map[string]string{discoveryv1.LabelServiceName: "local"}},
		Endpoints:  []discoveryv1.Endpoint{ep("kite-worker", ptr.To(true)), ep("kite-worker2", ptr.To(false)), ep("kite-control-plane", nil)},
	}}
	got := services(all, eps, DefaultClass)
	want := "[{d/plain [172.30.0.200] false map[]} {d/local [172.30.0.201] true map[kite-control-plane:true kite-worker:true]} {d/our-class [172.30.0.203] false map[]}]"
	if fmt.Sprint(got) != want {
		t.Errorf("services =\n%v\nwant\n%s", got, want)
	}
}

// TestARPFrames: a request is parsed, answered to its sender with our
// MAC, and a gratuitous ARP names the address as both sender and target.
func TestARPFrames(t *testing.T) {
	asker := net.HardwareAddr{0x02, 0, 0, 0, 0, 1}
	ours := net.HardwareAddr{0x02, 0, 0, 0, 0, 2}
	vip, host := netip.MustParseAddr("172.30.0.200"), netip.MustParseAddr("172.30.0.1")
	req := arpPacket{op: arpRequest, sha: asker, spa: host, tha: net.HardwareAddr{0, 0, 0, 0, 0, 0}, tpa: vip}.frame(asker, broadcastMAC)
	q, ok := parseARP(req)
	if !ok || q.op != arpRequest || q.tpa != vip || q.spa != host || q.sha.String() != asker.String() {
		t.Fatalf("parseARP = %+v, %v", q, ok)
	}
	r, ok := parseARP(replyTo(q, ours))
	if !ok || r.op != arpReply || r.spa != vip || r.sha.String() != ours.String() || r.tpa != host || r.tha.String() != asker.String() {
		t.Errorf("reply = %+v", r)
	}
	if f := replyTo(q, ours); net.HardwareAddr(f[0:6]).String() != asker.String() || net.HardwareAddr(f[6:12]).String() != ours.String() {
		t.Errorf("reply goes from %s to %s", net.HardwareAddr(f[6:12]), net.HardwareAddr(f[0:6]))
	}
	g, ok := parseARP(gratuitous(vip, ours))
	if !ok || g.op != arpRequest || g.spa != vip || g.tpa != vip || g.sha.String() != ours.String() {
		t.Errorf("gratuitous = %+v", g)
	}
	want := "ffffffffffff" + "020000000002" + "0806" + // Ethernet: broadcast, from us, ARP
		"0001" + "0800" + "06" + "04" + "0001" + // Ethernet/IPv4, request
		"020000000002" + "ac1e00c8" + "000000000000" + "ac1e00c8" // sender = target = the address
	if got := hex.EncodeToString(gratuitous(vip, ours)); got != want {
		t.Errorf("gratuitous frame\n got %s\nwant %s", got, want)
	}
	if _, ok := parseARP(req[:30]); ok {
		t.Errorf("a short frame parsed")
	}
	ip4 := append([]byte(nil), req...)
	ip4[12], ip4[13] = 0x08, 0x00
	if _, ok := parseARP(ip4); ok {
		t.Errorf("an IPv4 frame parsed as ARP")
	}
}

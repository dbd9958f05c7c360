package podnet

import (
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"kite/internal/testutil/apitest"
)

// foreignRoute is a route podnet does not own, on a node it programs: it
// must survive everything the tests do.
const foreignRoute = "10.99.0.0/24 via 172.31.0.12 dev eth0"

func TestHostGW(t *testing.T) {
	l := newLab(t)
	sh(t, "ip -n n1 route add 10.99.0.0/24 via 172.31.0.12")
	n1 := l.start("n1", ModeHostGW)
	l.start("n2", ModeHostGW)
	n3 := l.start("n3", ModeHostGW)

	waitTable(t, "n1", "routes", "10.244.2.0/24 via 172.31.0.12 dev eth0")
	waitTable(t, "n2", "routes", "10.244.1.0/24 via 172.31.0.11 dev eth0")

	t.Run("pods on different nodes reach each other without NAT", func(t *testing.T) {
		ping(t, "p1", "10.244.2.2")
		ping(t, "p2", "10.244.1.2")
		server := serveRemoteAddr(t, "p2", "10.244.2.2")
		if got := seenAs(t, "p1", server); got != "10.244.1.2" {
			t.Errorf("server in p2 saw client %s, want pod p1's own 10.244.1.2", got)
		}
	})

	t.Run("a node on another subnet is reported, the others keep working", func(t *testing.T) {
		apitest.WaitFor(t, waitTime, "n1 to report n3", func() bool {
			return strings.Contains(n1.c.Status().Problems["n3"], "node n3 (172.31.1.13) is not on a directly connected subnet (reached via 172.31.0.254)")
		})
		apitest.WaitFor(t, waitTime, "n3 to report n1 and n2", func() bool {
			p := n3.c.Status().Problems
			return strings.Contains(p["n1"], "use the vxlan pod network") && strings.Contains(p["n2"], "use the vxlan pod network")
		})
		apitest.WaitFor(t, waitTime, "HostGatewayUnreachable events on n3 from n1 and n2", func() bool {
			var from []string
			for _, e := range l.nodeEvents("n3") {
				if strings.HasPrefix(e, EventHostGWUnreachable+": ") {
					from = append(from, e[strings.LastIndex(e, "seen from node"):])
				}
			}
			slices.Sort(from)
			return slices.Equal(from, []string{"seen from node n1)", "seen from node n2)"})
		})
		waitTable(t, "n3", "routes", "")
		if err := echo(t, "p1", "10.244.3.2", time.Second); err == nil {
			t.Error("p1 reached p3 on the other subnet: host-gw cannot route there")
		}
		// Reported once, not on every resync.
		n1.waitSyncs(t, 3)
		if ev := l.nodeEvents("n3"); len(ev) != 2 {
			t.Errorf("events on n3: %q, want one from each of n1 and n2", ev)
		}
	})

	t.Run("a restarted controller adopts its routes without touching them", func(t *testing.T) {
		n1 = restartQuietly(t, l, "n1", n1, ModeHostGW)
	})

	t.Run("a changed podCIDR moves the route", func(t *testing.T) {
		l.setNode("n2", func(n *corev1.Node) { n.Spec.PodCIDR, n.Spec.PodCIDRs = "10.244.22.0/24", []string{"10.244.22.0/24"} })
		waitTable(t, "n1", "routes", "10.244.22.0/24 via 172.31.0.12 dev eth0")
	})

	t.Run("a deleted node's route goes", func(t *testing.T) {
		l.deleteNode("n2")
		waitTable(t, "n1", "routes", "")
	})

	if all := table(t, "n1", "all"); !strings.Contains(all, foreignRoute) {
		t.Errorf("foreign route %q gone from n1:\n%s", foreignRoute, all)
	}
}

func TestVXLAN(t *testing.T) {
	l := newLab(t)
	sh(t, "ip -n n1 route add 10.99.0.0/24 via 172.31.0.12")
	n1 := l.start("n1", ModeVXLAN)
	n2 := l.start("n2", ModeVXLAN)
	l.start("n3", ModeVXLAN)

	// VTEP MACs are derived from the node IPs (172.31.0.12 → ac:1f:00:0c).
	waitTable(t, "n1", "routes", `
10.244.2.0/24 via 10.244.2.0 dev kite.vxlan onlink
10.244.3.0/24 via 10.244.3.0 dev kite.vxlan onlink`)
	waitTable(t, "n1", "neigh", `
10.244.2.0 lladdr 0e:6b:ac:1f:00:0c PERMANENT
10.244.3.0 lladdr 0e:6b:ac:1f:01:0d PERMANENT`)
	waitTable(t, "n1", "fdb", `
0e:6b:ac:1f:00:0c dst 172.31.0.12 self permanent
0e:6b:ac:1f:01:0d dst 172.31.1.13 self permanent`)
	waitTable(t, "n3", "routes", `
10.244.1.0/24 via 10.244.1.0 dev kite.vxlan onlink
10.244.2.0/24 via 10.244.2.0 dev kite.vxlan onlink`)

	t.Run("the device and the published VTEP", func(t *testing.T) {
		dev := sh(t, "ip -n n1 -d addr show dev kite.vxlan")
		for _, want := range []string{"mtu 1450", "<BROADCAST,MULTICAST,UP,LOWER_UP>", "vxlan id 1 local 172.31.0.11", "dstport 8472", "nolearning", "inet 10.244.1.0/32"} {
			if !strings.Contains(dev, want) {
				t.Errorf("kite.vxlan lacks %q:\n%s", want, dev)
			}
		}
		select {
		case <-n1.c.Ready():
		case <-time.After(waitTime):
			t.Fatal("n1 not Ready")
		}
		if mtu := n1.c.Status().MTU; mtu != 1450 {
			t.Errorf("Status().MTU = %d, want 1450", mtu)
		}
		for _, n := range l.nodes {
			got, err := l.client.CoreV1().Nodes().Get(t.Context(), n.name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			ip := netip.MustParseAddr(n.ip)
			if mac := got.Annotations[AnnotationVXLANMAC]; mac != vtepMAC(ip).String() || got.Annotations[AnnotationVXLANIP] != n.ip {
				t.Errorf("node %s annotations %v", n.name, got.Annotations)
			}
		}
	})

	t.Run("pods reach each other across L3 without NAT", func(t *testing.T) {
		// n3 is behind the router, which has no route to any pod: only
		// the encapsulated packets get through.
		if r := table(t, "router", "all"); strings.Contains(r, "10.244.") {
			t.Fatalf("router has pod routes:\n%s", r)
		}
		ping(t, "p1", "10.244.3.2")
		ping(t, "p3", "10.244.2.2")
		ping(t, "p2", "10.244.1.2")
		server := serveRemoteAddr(t, "p3", "10.244.3.2")
		if got := seenAs(t, "p1", server); got != "10.244.1.2" {
			t.Errorf("server in p3 saw client %s, want pod p1's own 10.244.1.2", got)
		}
		server = serveRemoteAddr(t, "p2", "10.244.2.2")
		if got := seenAs(t, "p3", server); got != "10.244.3.2" {
			t.Errorf("server in p2 saw client %s, want pod p3's own 10.244.3.2", got)
		}
	})

	t.Run("a restarted controller adopts device, routes, neighbours and FDB", func(t *testing.T) {
		n1 = restartQuietly(t, l, "n1", n1, ModeVXLAN)
	})

	t.Run("a changed podCIDR moves route, neighbour and the node's own address", func(t *testing.T) {
		l.setNode("n2", func(n *corev1.Node) { n.Spec.PodCIDR, n.Spec.PodCIDRs = "10.244.22.0/24", []string{"10.244.22.0/24"} })
		waitTable(t, "n1", "routes", `
10.244.3.0/24 via 10.244.3.0 dev kite.vxlan onlink
10.244.22.0/24 via 10.244.22.0 dev kite.vxlan onlink`)
		waitTable(t, "n1", "neigh", `
10.244.22.0 lladdr 0e:6b:ac:1f:00:0c PERMANENT
10.244.3.0 lladdr 0e:6b:ac:1f:01:0d PERMANENT`)
		apitest.WaitFor(t, waitTime, "n2's VTEP address to follow its podCIDR", func() bool {
			return strings.Contains(sh(t, "ip -n n2 -4 addr show dev kite.vxlan"), "inet 10.244.22.0/32")
		})
	})

	t.Run("a deleted node's route, neighbour and FDB entry go", func(t *testing.T) {
		l.deleteNode("n3")
		waitTable(t, "n1", "routes", "10.244.22.0/24 via 10.244.22.0 dev kite.vxlan onlink")
		waitTable(t, "n1", "neigh", "10.244.22.0 lladdr 0e:6b:ac:1f:00:0c PERMANENT")
		waitTable(t, "n1", "fdb", "0e:6b:ac:1f:00:0c dst 172.31.0.12 self permanent")
	})

	t.Run("switching to host-gw removes the device", func(t *testing.T) {
		n1.stop()
		l.start("n1", ModeHostGW)
		waitTable(t, "n1", "routes", "10.244.22.0/24 via 172.31.0.12 dev eth0")
		if links := sh(t, "ip -n n1 link show"); strings.Contains(links, "kite.vxlan") {
			t.Errorf("kite.vxlan left on n1:\n%s", links)
		}
	})

	t.Run("Cleanup removes what podnet made, and only that", func(t *testing.T) {
		n2.stop()
		before := table(t, "n2", "all")
		if err := Cleanup(Config{NetNS: l.node("n2").netns}); err != nil {
			t.Fatal(err)
		}
		var want []string
		for _, line := range strings.Split(before, "\n") {
			if !strings.Contains(line, "kite.vxlan") {
				want = append(want, line)
			}
		}
		if got := table(t, "n2", "all"); got != strings.Join(want, "\n") {
			t.Errorf("routes of n2 after Cleanup:\n%s\nbefore:\n%s", got, before)
		}
		if links := sh(t, "ip -n n2 link show"); strings.Contains(links, "kite.vxlan") {
			t.Errorf("kite.vxlan left on n2:\n%s", links)
		}
	})

	if all := table(t, "n1", "all"); !strings.Contains(all, foreignRoute) {
		t.Errorf("foreign route %q gone from n1:\n%s", foreignRoute, all)
	}
}

// restartQuietly stops the node's controller, starts a new one and checks
// it adopts everything: over several syncs it changes nothing in the
// kernel (no route, neighbour, FDB or link notification about what podnet
// owns) and writes nothing to the API.
func restartQuietly(t *testing.T, l *lab, name string, old *running, mode string) *running {
	t.Helper()
	before := map[string]string{}
	for _, what := range []string{"all", "neigh", "fdb"} {
		if what == "all" || mode == ModeVXLAN {
			before[what] = table(t, name, what)
		}
	}
	old.stop()
	changes := watchOwned(t, l.node(name).netns)
	fc := l.client.(*fake.Clientset)
	actions := len(fc.Actions())

	r := l.start(name, mode)
	st := r.waitSyncs(t, 5)
	if st.Changes != 0 || st.LastError != nil {
		t.Errorf("restarted controller: %d changes, error %v", st.Changes, st.LastError)
	}
	if got := changes(); len(got) != 0 {
		t.Errorf("kernel notifications after restart:\n%s", strings.Join(got, "\n"))
	}
	for _, a := range fc.Actions()[actions:] {
		if v := a.GetVerb(); v != "get" && v != "list" && v != "watch" && a.GetResource().Resource != "events" {
			t.Errorf("restarted controller wrote to the API: %s %s", v, a.GetResource().Resource)
		}
	}
	for what, want := range before {
		if got := table(t, name, what); got != want {
			t.Errorf("%s changed across restart:\n%s\nwas:\n%s", what, got, want)
		}
	}
	return r
}

// watchOwned subscribes, in the namespace, to route, neighbour and link
// notifications and returns a function listing those about what podnet
// owns.
func watchOwned(t *testing.T, netnsPath string) func() []string {
	t.Helper()
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	routes := make(chan netlink.RouteUpdate, 100)
	neighs := make(chan netlink.NeighUpdate, 100)
	links := make(chan netlink.LinkUpdate, 100)
	vxIndex := -1 // no device: no neighbour entry is podnet's
	inNS(t, netnsPath, func() error {
		if l, err := netlink.LinkByName(DefaultVXLANDevice); err == nil {
			vxIndex = l.Attrs().Index
		}
		if err := netlink.RouteSubscribe(routes, done); err != nil {
			return err
		}
		if err := netlink.NeighSubscribe(neighs, done); err != nil {
			return err
		}
		return netlink.LinkSubscribe(links, done)
	})
	var mu sync.Mutex
	var seen []string
	note := func(s string) {
		mu.Lock()
		seen = append(seen, s)
		mu.Unlock()
	}
	go func() {
		for {
			select {
			case <-done:
				return
			case u := <-routes:
				if u.Route.Protocol == RouteProtocol {
					note("route " + u.Route.String())
				}
			case u := <-neighs:
				if u.Neigh.LinkIndex == vxIndex && (u.Neigh.State&netlink.NUD_PERMANENT != 0 || u.Neigh.Family == unix.AF_BRIDGE) {
					note("neigh " + u.Neigh.String())
				}
			case u := <-links:
				if u.Attrs().Name == DefaultVXLANDevice {
					note("link " + u.Attrs().Name)
				}
			}
		}
	}()
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(seen)
	}
}

// TestForeignRoutes drives the reconcile directly in one namespace: routes
// of other protocols, even to a podCIDR kite wants, are never touched.
func TestForeignRoutes(t *testing.T) {
	newLabNetns(t, "fr")
	sh(t, `set -e
ip -n fr link add br0 type bridge
ip -n fr addr add 172.31.0.11/24 dev br0
ip -n fr link set br0 up
ip -n fr route add 10.99.0.0/24 via 172.31.0.12
ip -n fr route add 10.244.5.0/24 via 172.31.0.15 proto static
`)
	plan := Plan{Mode: ModeHostGW, Routes: []Route{
		{Dst: netip.MustParsePrefix("10.244.5.0/24"), Gw: netip.MustParseAddr("172.31.0.25"), Node: "e"},
		{Dst: netip.MustParsePrefix("10.244.6.0/24"), Gw: netip.MustParseAddr("172.31.0.16"), Node: "f"},
	}}
	var res result
	var err error
	inNS(t, "/run/netns/fr", func() error {
		res, err = reconcile(kernel{dev: DefaultVXLANDevice}, plan, vxlanSpec{})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if p := res.Problems["e"]; p.Reason != EventRouteConflict {
		t.Errorf("node e: problem %+v, want %s", p, EventRouteConflict)
	}
	want := `10.99.0.0/24 via 172.31.0.12 dev br0
10.244.5.0/24 via 172.31.0.15 dev br0 proto static
10.244.6.0/24 via 172.31.0.16 dev br0 proto 75
172.31.0.0/24 dev br0 proto kernel scope link src 172.31.0.11`
	if got := table(t, "fr", "all"); got != want {
		t.Errorf("routes:\n%s\nwant:\n%s", got, want)
	}

	// Nothing wanted: only kite's own route goes.
	inNS(t, "/run/netns/fr", func() error {
		res, err = reconcile(kernel{dev: DefaultVXLANDevice}, Plan{Mode: ModeHostGW}, vxlanSpec{})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want = `10.99.0.0/24 via 172.31.0.12 dev br0
10.244.5.0/24 via 172.31.0.15 dev br0 proto static
172.31.0.0/24 dev br0 proto kernel scope link src 172.31.0.11`
	if got := table(t, "fr", "all"); got != want {
		t.Errorf("routes:\n%s\nwant:\n%s", got, want)
	}
}

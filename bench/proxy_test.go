package bench

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"
	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"kite/internal/proxy"
	"kite/internal/testutil"
)

// BenchmarkProxy measures the service proxy (internal/proxy) against the
// kernel of the benchmark's private namespace, both backends side by side:
// a full sync (render + apply over netlink) of 1,000, 10,000 and 30,000
// Services × 10 endpoints (iptables: 1,000 only), and one endpoint change
// at 10,000 Services (iptables: 1,000).
//
// Addresses: Services in 10.96.0.0/16, fake endpoints in 10.244.0.0/16
// (never sent to), one real server at 10.250.0.2 in a namespace "proxysrv"
// behind a veth from the benchmark's namespace (10.250.0.1).
func BenchmarkProxy(b *testing.B) {
	once(b)
	if !testutil.InNetns() {
		b.Skip("needs the private namespace of testutil.MainInNetns")
	}
	ctx := context.Background()
	sync := &table{title: "service proxy: full sync (render + apply, from an empty kernel) and one endpoint change",
		head: []string{"", "nftables", "iptables", "ipt / nft"}}

	full := map[string]map[int]time.Duration{}
	change := map[string]map[int]changeTimes{}
	for _, mode := range []string{proxy.ModeNFTables, proxy.ModeIPTables} {
		full[mode], change[mode] = map[int]time.Duration{}, map[int]changeTimes{}
		for _, n := range []int{1000, 10000, 30000} {
			if mode == proxy.ModeIPTables && n > iptMaxServices {
				continue
			}
			resetProxyKernel()
			dp := newDataplane(b, mode)
			m := proxyModel(n, 10, false)
			t0 := time.Now()
			if _, err := dp.Apply(ctx, m, true); err != nil {
				b.Fatalf("%s full sync of %d services: %v", mode, n, err)
			}
			full[mode][n] = time.Since(t0)
			fmt.Printf("  %s: full sync of %d services × 10 endpoints: %s\n", mode, n, fmtMS(full[mode][n]))
			switch {
			case mode == proxy.ModeIPTables && n == iptMaxServices:
				// iptables rewrites everything per change (~4 s at 1,000):
				// three removals only, to keep the run short.
				change[mode][n] = endpointChanges(b, dp, m, n, 3, "remove")
			case mode == proxy.ModeNFTables && n >= 10000:
				change[mode][n] = endpointChanges(b, dp, m, n, 15, "remove", "replace")
			}
		}
	}
	for _, n := range []int{1000, 10000, 30000} {
		nft, ipt := full[proxy.ModeNFTables][n], full[proxy.ModeIPTables][n]
		iptText, r := "-", "-" // iptables not run at 10k (see the note)
		if ipt > 0 {
			iptText, r = fmtMS(ipt), ratio(ms(ipt), ms(nft))
		}
		sync.add(fmt.Sprintf("full sync, %d services × 10 endpoints", n), fmtMS(nft), iptText, r)
	}
	nc, ic := change[proxy.ModeNFTables], change[proxy.ModeIPTables][iptMaxServices]
	sync.add("one endpoint removed, N changes (p50 of 15 nft at 10,000; of 3 ipt at 1,000 services)", fmtMS(nc[10000].removed), fmtMS(ic.removed), "-")
	sync.add("  of which the Model update (UpdateModel)", fmtMS(nc[10000].removedModel), fmtMS(ic.removedModel), "-")
	sync.add("one endpoint replaced, N kept (p50 of 15 at 10,000; nft only)", fmtMS(nc[10000].replaced), "-", "-")
	sync.add("one endpoint removed, N changes, at 30,000 services (p50 of 15; nft only)", fmtMS(nc[30000].removed), "-", "-")
	sync.add("  of which the Model update (UpdateModel)", fmtMS(nc[30000].removedModel), "-", "-")
	sync.add("one endpoint replaced, N kept, at 30,000 services (p50 of 15; nft only)", fmtMS(nc[30000].replaced), "-", "-")
	sync.note("full sync, nftables: 10k/1k %s, 30k/10k %s. iptables stops at %d services: iptables-nft's restore of 10k × 10 ran for over 20 minutes here.",
		ratio(ms(full[proxy.ModeNFTables][10000]), ms(full[proxy.ModeNFTables][1000])),
		ratio(ms(full[proxy.ModeNFTables][30000]), ms(full[proxy.ModeNFTables][10000])), iptMaxServices)
	sync.note("issue 7 goals: full sync of 10k ≤ 1 s; one endpoint change at 10k ≤ 10 ms (nftables).")
	sync.note("removed − replaced (a rule changes, so the kernel re-validates the whole table): %s at 10,000, %s at 30,000 services.",
		fmtMS(nc[10000].removed-nc[10000].replaced), fmtMS(nc[30000].removed-nc[30000].replaced))
	sync.note("nftables goes over netlink (google/nftables), one batch per sync; a change is what the Proxier does between full syncs:")
	sync.note("UpdateModel for the changed Service, then Dataplane.ApplyChanged, which compares, renders and sends that Service's ports only.")

	b.ReportMetric(0, "ns/op")
	b.ReportMetric(ms(full[proxy.ModeNFTables][10000]), "sync-10k-ms")
	b.ReportMetric(ms(full[proxy.ModeNFTables][30000]), "sync-30k-ms")
	b.ReportMetric(ms(nc[10000].removed), "change-10k-ms")
	b.ReportMetric(ms(nc[30000].removed), "change-30k-ms")
	resetProxyKernel()
	sync.print()
}

// BenchmarkProxyFirstPacket measures the cost of a connection's first
// packet through the rules (TCP connect to a ClusterIP from the node:
// SYN and SYN-ACK over a veth) at 10, 1,000, 10,000 and 30,000 Services,
// side by side: nftables, iptables as Debian installs it (iptables-nft,
// the nf_tables backend) and iptables on the legacy x_tables backend
// (iptables-legacy, where most iptables-mode clusters ran and where
// kube-proxy's published figures come from). Every Service has one
// endpoint (the benchmark's server); the first packet's cost does not
// depend on the other Services' endpoints (nftables: two map lookups,
// then the target's own chain; iptables: the linear KUBE-SERVICES walk,
// then the target's chains). The target is the last Service of
// KUBE-SERVICES. iptables-nft stops at 10,000 Services (iptFirstPacketMax).
func BenchmarkProxyFirstPacket(b *testing.B) {
	once(b)
	if !testutil.InNetns() {
		b.Skip("needs the private namespace of testutil.MainInNetns")
	}
	ctx := context.Background()
	variants := []firstPacketVariant{
		{name: "nft", mode: proxy.ModeNFTables, max: 30000},
		{name: "ipt", mode: proxy.ModeIPTables, max: iptFirstPacketMax},
	}
	if shim, err := iptablesLegacyPath(b); err == nil {
		variants = append(variants, firstPacketVariant{name: "ipt-legacy", mode: proxy.ModeIPTables, max: 30000, path: shim})
	} else {
		fmt.Printf("  (no iptables-legacy run: %v)\n", err)
	}
	head := []string{""}
	for _, v := range variants {
		head = append(head, v.name+" p50", v.name+" p99")
	}
	for _, v := range variants {
		head = append(head, v.name+" sync")
	}
	first := &table{title: fmt.Sprintf("service proxy: first packet, TCP connect to a ClusterIP from the node (1 endpoint per Service; nftables %d connects per count in %d rounds, iptables %d)",
		firstPacketConnects*(1+nftFirstPacketRounds), 1+nftFirstPacketRounds, firstPacketConnects), head: head}
	stopServer := proxyServer(b)
	defer stopServer()
	counts := []int{10, 1000, 10000, 30000}
	models := map[int]*proxy.Model{}
	lat := map[string]map[int]samples{}
	syncs := map[string]map[int]time.Duration{}
	start := time.Now()
	for _, v := range variants {
		lat[v.name], syncs[v.name] = map[int]samples{}, map[int]time.Duration{}
		restore := v.use()
		for _, n := range counts {
			if n > v.max {
				continue
			}
			resetProxyKernel()
			dp := newDataplane(b, v.mode)
			if models[n] == nil {
				models[n] = proxyModel(n, 1, true)
			}
			m := models[n]
			t0 := time.Now()
			if _, err := dp.Apply(ctx, m, true); err != nil {
				b.Fatalf("%s sync of %d services: %v", v.name, n, err)
			}
			syncs[v.name][n] = time.Since(t0)
			target := m.Ports[len(m.Ports)-1]
			addr := netip.AddrPortFrom(target.ClusterIP, target.Port).String()
			lat[v.name][n] = connectLatency(b, addr, firstPacketConnects)
			fmt.Printf("  %s: %d services: sync %s, connect p50 %s\n", v.name, n, fmtMS(syncs[v.name][n]), fmtMS(lat[v.name][n].p50()))
		}
		resetProxyKernel()
		restore()
	}
	// A connect takes ~20 µs, and the shared machine drifts by as much
	// over the seconds between one count and the next: nftables goes
	// round the counts again in one table (each state reached by a sync
	// from the previous one), and the samples of all rounds are pooled.
	dp := newDataplane(b, proxy.ModeNFTables)
	for range nftFirstPacketRounds {
		for _, n := range counts {
			m := models[n]
			if _, err := dp.Apply(ctx, m, false); err != nil {
				b.Fatalf("nftables sync to %d services: %v", n, err)
			}
			target := m.Ports[len(m.Ports)-1]
			addr := netip.AddrPortFrom(target.ClusterIP, target.Port).String()
			lat["nft"][n] = append(lat["nft"][n], connectLatency(b, addr, firstPacketConnects)...)
		}
	}
	resetProxyKernel()
	for _, n := range counts {
		row := []string{fmt.Sprintf("%d services", n)}
		for _, v := range variants {
			if s, ok := lat[v.name][n]; ok {
				row = append(row, fmtMS(s.p50()), fmtMS(s.p99()))
			} else {
				row = append(row, "-", "-")
			}
		}
		for _, v := range variants {
			if d, ok := syncs[v.name][n]; ok {
				row = append(row, fmtMS(d))
			} else {
				row = append(row, "-")
			}
		}
		first.add(row...)
	}
	p50 := func(v string, n int) float64 { return ms(lat[v][n].p50()) }
	first.note("ratio p50 to 10 services:  nftables 10,000: %s  30,000: %s (issue 7 goal 30k/10 ≤ 1.1)   iptables-nft 1,000: %s  10,000: %s",
		ratio(p50("nft", 10000), p50("nft", 10)), ratio(p50("nft", 30000), p50("nft", 10)),
		ratio(p50("ipt", 1000), p50("ipt", 10)), ratio(p50("ipt", 10000), p50("ipt", 10)))
	if _, ok := lat["ipt-legacy"]; ok {
		first.note("iptables-legacy: 10,000: %s  30,000: %s;  iptables-legacy / nftables p50 at 30,000 services: %s",
			ratio(p50("ipt-legacy", 10000), p50("ipt-legacy", 10)), ratio(p50("ipt-legacy", 30000), p50("ipt-legacy", 10)),
			ratio(p50("ipt-legacy", 30000), p50("nft", 30000)))
	}
	first.note("iptables-nft / nftables p50 at 10,000 services: %s", ratio(p50("ipt", 10000), p50("nft", 10000)))
	first.note("iptables-nft is not run at 30,000: its iptables-restore of 30,000 × 1 had not finished after 3.7 min here (10,000 × 1: 12–17 s);")
	first.note("iptables-legacy loads them in seconds (same layout: kite's iptables backend run with the legacy binaries first in PATH).")
	first.note("sync: full sync of n Services × 1 endpoint from an empty kernel; whole benchmark %s.", fmtMS(time.Since(start)))
	first.note("a connect is a SYN and its SYN-ACK over a veth, both through the rules; the machine is shared, so compare ratios.")
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(p50("nft", 30000)/p50("nft", 10), "first-packet-30k/10")
	b.ReportMetric(p50("nft", 10000)/p50("nft", 10), "first-packet-10k/10")
	b.ReportMetric(p50("ipt", 10000)/p50("ipt", 10), "ipt-first-packet-10k/10")
	if _, ok := lat["ipt-legacy"]; ok {
		b.ReportMetric(p50("ipt-legacy", 30000)/p50("ipt-legacy", 10), "ipt-legacy-first-packet-30k/10")
		b.ReportMetric(p50("ipt-legacy", 30000)*1000, "ipt-legacy-first-packet-30k-µs")
		b.ReportMetric(p50("nft", 30000)*1000, "first-packet-30k-µs")
	}
	first.print()
}

// firstPacketVariant is one backend of the first-packet benchmark: a
// proxy mode, the most Services it is run at, and (iptables-legacy) a
// directory put first in PATH while it runs.
type firstPacketVariant struct {
	name, mode string
	max        int
	path       string
}

// use puts the variant's PATH in place and returns what undoes it.
func (v firstPacketVariant) use() func() {
	if v.path == "" {
		return func() {}
	}
	old := os.Getenv("PATH")
	os.Setenv("PATH", v.path+":"+old)
	return func() { os.Setenv("PATH", old) }
}

// iptablesLegacyPath makes a directory where iptables, iptables-save and
// iptables-restore are the legacy (x_tables) ones, if they are installed
// and the kernel has x_tables' nat table.
func iptablesLegacyPath(b *testing.B) (string, error) {
	dir := b.TempDir()
	for _, tool := range []string{"iptables", "iptables-save", "iptables-restore"} {
		legacy, err := exec.LookPath(strings.Replace(tool, "iptables", "iptables-legacy", 1))
		if err != nil {
			return "", err
		}
		if err := os.Symlink(legacy, filepath.Join(dir, tool)); err != nil {
			return "", err
		}
	}
	if out, err := exec.Command(filepath.Join(dir, "iptables"), "-t", "nat", "-S").CombinedOutput(); err != nil {
		return "", fmt.Errorf("iptables-legacy: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return dir, nil
}

// firstPacketConnects is the connects per count and round;
// nftFirstPacketRounds the extra rounds of nftables over all counts.
const (
	firstPacketConnects  = 200
	nftFirstPacketRounds = 3
)

// iptFirstPacketMax bounds the iptables first-packet runs (1 endpoint per
// Service): iptables-restore of 10,000 took ~17 s here, of 30,000 more than
// 3.7 minutes (stopped), which alone would exceed make bench's budget.
const iptFirstPacketMax = 10000

// iptMaxServices bounds the iptables runs: iptables-restore (the nf_tables
// backend) of 10,000 Services × 10 endpoints did not finish in 20 minutes
// on this machine, which is itself the finding.
const iptMaxServices = 1000

func newDataplane(b *testing.B, mode string) *proxy.Dataplane {
	b.Helper()
	dp, err := proxy.NewDataplane(proxy.Config{NodeName: "bench-node", ClusterCIDR: netip.MustParsePrefix("10.244.0.0/16"), Mode: mode})
	if err != nil {
		b.Fatal(err)
	}
	return dp
}

// resetProxyKernel removes the proxy's rules from the benchmark's own
// namespace (never the host's: TestMain made this one).
func resetProxyKernel() {
	exec.Command("nft", "delete", "table", "ip", "kite-proxy").Run()
	for _, ipt := range []string{"iptables", "iptables-legacy"} {
		for _, t := range []string{"nat", "filter"} {
			exec.Command(ipt, "-t", t, "-F").Run()
			exec.Command(ipt, "-t", t, "-X").Run()
		}
	}
}

// changeTimes are the p50s of one kind of endpoint change.
type changeTimes struct {
	removed, removedModel, replaced time.Duration
}

// endpointChanges times single-Service changes on top of m (n Services ×
// 10 endpoints, applied): one endpoint removed (the DNAT rule's N
// changes) and one replaced (element changes only), five of each at
// spread-out Services, each undone before the next. A change is timed as
// the Proxier makes it: the Model updated for that Service, then applied
// as a change of that Service only.
func endpointChanges(b *testing.B, dp *proxy.Dataplane, m *proxy.Model, n, reps int, edits ...string) changeTimes {
	b.Helper()
	ctx := context.Background()
	full := proxyInput(n, 10, false)
	var removed, removedModel, replaced samples
	for i := range reps {
		idx := (i * 97 * n / 1000) % n
		k := proxy.ServiceKey{Namespace: "bench", Name: full.Services[idx].Name}
		one := proxy.ModelInput{NodeName: full.NodeName, ClusterCIDR: full.ClusterCIDR,
			Services: full.Services[idx : idx+1], Slices: full.Slices[idx : idx+1]}
		for _, edit := range edits {
			s := one.Slices[0].DeepCopy()
			if edit == "remove" {
				s.Endpoints = s.Endpoints[1:]
			} else {
				s.Endpoints[0].Addresses = []string{fmt.Sprintf("10.245.0.%d", i+1)}
			}
			changed := one
			changed.Slices = []*discovery.EndpointSlice{s}
			t0 := time.Now()
			m2 := proxy.UpdateModel(m, changed, []proxy.ServiceKey{k})
			t1 := time.Now()
			res, err := dp.ApplyChanged(ctx, m2, []proxy.ServiceKey{k})
			if err != nil {
				b.Fatalf("endpoint change (%s): %v", edit, err)
			}
			took := time.Since(t0)
			if edit == "remove" {
				removed, removedModel = append(removed, took), append(removedModel, t1.Sub(t0))
			} else {
				replaced = append(replaced, took)
			}
			if i == 0 {
				fmt.Printf("  (one endpoint %sd: %d operations/lines sent)\n", edit, res.Operations)
			}
			// Back to the full state for the next change.
			if _, err := dp.ApplyChanged(ctx, proxy.UpdateModel(m2, one, []proxy.ServiceKey{k}), []proxy.ServiceKey{k}); err != nil {
				b.Fatal(err)
			}
		}
	}
	return changeTimes{removed: removed.p50(), removedModel: removedModel.p50(), replaced: replaced.p50()}
}

// proxyModel is n Services with eps endpoints each. real points every
// endpoint at the benchmark's server.
func proxyModel(n, eps int, real bool) *proxy.Model {
	return proxy.BuildModel(proxyInput(n, eps, real))
}

// proxyInput is the objects of proxyModel: Service i is svc-<i> at
// 10.96.<i/250>.<i%250+1>, its one slice svc-<i>-1.
func proxyInput(n, eps int, real bool) proxy.ModelInput {
	in := proxy.ModelInput{NodeName: "bench-node", ClusterCIDR: netip.MustParsePrefix("10.244.0.0/16")}
	for i := range n {
		name := fmt.Sprintf("svc-%05d", i)
		ip := fmt.Sprintf("10.96.%d.%d", i/250, i%250+1)
		in.Services = append(in.Services, httpService("bench", name, ip))
		s := httpSlice("bench", name)
		for j := range eps {
			addr := fmt.Sprintf("10.244.%d.%d", j, i%250+1)
			if real {
				addr = "10.250.0.2"
			}
			addEndpoint(s, addr)
		}
		in.Slices = append(in.Slices, s)
	}
	return in
}

// httpService is a ClusterIP Service with one port, http 80 → 8080/TCP
// (clusterIP "" for the API server to allocate).
func httpService(ns, name, clusterIP string) *v1.Service {
	return &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1.ServiceSpec{Type: v1.ServiceTypeClusterIP, ClusterIP: clusterIP,
			Ports: []v1.ServicePort{{Name: "http", Protocol: v1.ProtocolTCP, Port: 80, TargetPort: intstr.FromInt32(8080)}}},
	}
}

// httpSlice is httpService's slice <name>-1, with port http 8080/TCP and
// no endpoints yet.
func httpSlice(ns, name string) *discovery.EndpointSlice {
	return &discovery.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: name + "-1", Labels: map[string]string{discovery.LabelServiceName: name}},
		AddressType: discovery.AddressTypeIPv4,
		Ports:       []discovery.EndpointPort{{Name: ptrTo("http"), Protocol: ptrTo(v1.ProtocolTCP), Port: ptrTo(int32(8080))}},
	}
}

// addEndpoint adds a ready endpoint at addr to s.
func addEndpoint(s *discovery.EndpointSlice, addr string) {
	s.Endpoints = append(s.Endpoints, discovery.Endpoint{Addresses: []string{addr}, Conditions: discovery.EndpointConditions{Ready: ptrTo(true)}})
}

func ptrTo[T any](v T) *T { return &v }

// proxyServer starts a TCP server at 10.250.0.2:8080 in its own namespace
// and returns what stops it.
func proxyServer(b *testing.B) func() {
	b.Helper()
	for _, line := range []string{
		"ip netns add proxysrv",
		"ip link add psrv0 type veth peer name eth0 netns proxysrv",
		"ip addr add 10.250.0.1/24 dev psrv0",
		"ip link set psrv0 up",
		"ip -n proxysrv link set lo up",
		"ip -n proxysrv addr add 10.250.0.2/24 dev eth0",
		"ip -n proxysrv link set eth0 up",
		"ip -n proxysrv route add default via 10.250.0.1",
		// Connects from the node to a ClusterIP need a route before the
		// rules rewrite the destination.
		"ip route add 10.96.0.0/16 dev psrv0",
	} {
		f := strings.Fields(line)
		if out, err := exec.Command(f[0], f[1:]...).CombinedOutput(); err != nil {
			b.Fatalf("%s: %v: %s", line, err, out)
		}
	}
	errc := make(chan error, 1)
	var ln net.Listener
	go func() {
		// One thread enters the server's namespace to make the socket;
		// it is never unlocked, so the runtime discards it afterwards.
		runtime.LockOSThread()
		h, err := netns.GetFromName("proxysrv")
		if err == nil {
			err = netns.Set(h)
			h.Close()
		}
		if err == nil {
			ln, err = net.Listen("tcp", "10.250.0.2:8080")
		}
		errc <- err
	}()
	if err := <-errc; err != nil {
		b.Fatalf("server in proxysrv: %v", err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return func() {
		ln.Close()
		exec.Command("ip", "netns", "del", "proxysrv").Run()
		exec.Command("ip", "link", "del", "psrv0").Run()
	}
}

func connectLatency(b *testing.B, addr string, n int) samples {
	b.Helper()
	var s samples
	for range n {
		t0 := time.Now()
		c, err := net.DialTimeout("tcp", addr, 3*time.Second)
		if err != nil {
			b.Fatalf("connect %s: %v", addr, err)
		}
		s = append(s, time.Since(t0))
		c.Close()
	}
	return s
}

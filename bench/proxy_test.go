package bench

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
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
// a full sync (render + apply over netlink) of 1,000 and 10,000 Services × 10
// endpoints, one endpoint change at 10,000 Services, and the first-packet
// cost (TCP connect through a ClusterIP) at 10 and 10,000 Services.
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
	first := &table{title: "service proxy: first packet, TCP connect to a ClusterIP from the node (200 connects each)",
		head: []string{"", "nft p50", "nft p99", "ipt p50", "ipt p99"}}

	full := map[string]map[int]time.Duration{}
	change := map[string]time.Duration{}
	for _, mode := range []string{proxy.ModeNFTables, proxy.ModeIPTables} {
		full[mode] = map[int]time.Duration{}
		for _, n := range []int{1000, 10000} {
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
			if n == 10000 || (mode == proxy.ModeIPTables && n == iptMaxServices) {
				// One endpoint removed, five times (median).
				var s samples
				for i := range 5 {
					m2 := proxyModel(n, 10, false)
					sp := &m2.Ports[i*97]
					sp.ClusterEndpoints = sp.ClusterEndpoints[1:]
					t0 := time.Now()
					res, err := dp.Apply(ctx, m2, false)
					if err != nil {
						b.Fatalf("%s endpoint change: %v", mode, err)
					}
					s = append(s, time.Since(t0))
					if i == 0 {
						fmt.Printf("  (%s: one endpoint change sent %d operations/lines)\n", mode, res.Operations)
					}
					// Back to the full state for the next change.
					if _, err := dp.Apply(ctx, proxyModel(n, 10, false), false); err != nil {
						b.Fatal(err)
					}
				}
				change[mode] = s.p50()
			}
		}
	}
	for _, n := range []int{1000, 10000} {
		nft, ipt := full[proxy.ModeNFTables][n], full[proxy.ModeIPTables][n]
		iptText, r := "-", "-" // iptables not run at 10k (see the note)
		if ipt > 0 {
			iptText, r = fmtMS(ipt), ratio(ms(ipt), ms(nft))
		}
		sync.add(fmt.Sprintf("full sync, %d services × 10 endpoints", n), fmtMS(nft), iptText, r)
	}
	sync.add("one endpoint removed (p50 of 5; nft at 10,000, ipt at 1,000 services)", fmtMS(change[proxy.ModeNFTables]), fmtMS(change[proxy.ModeIPTables]), "-")
	sync.note("full sync 10k/1k, nftables: %s. iptables stops at %d services: iptables-nft's restore of 10k × 10 ran for over 20 minutes here.",
		ratio(ms(full[proxy.ModeNFTables][10000]), ms(full[proxy.ModeNFTables][1000])), iptMaxServices)
	sync.note("issue 7 goals: full sync of 10k ≤ 1 s; one endpoint change at 10k ≤ 10 ms (nftables).")
	sync.note("nftables goes over netlink (google/nftables), one batch per sync; a change renders and sends only the ports that changed.")

	// First packet: the target Service is the last one rendered, so
	// iptables walks every KUBE-SERVICES rule before it.
	stopServer := proxyServer(b)
	defer stopServer()
	lat := map[string]map[int]samples{}
	for _, mode := range []string{proxy.ModeNFTables, proxy.ModeIPTables} {
		lat[mode] = map[int]samples{}
		for _, n := range []int{10, 10000} {
			if mode == proxy.ModeIPTables && n > iptMaxServices {
				n = iptMaxServices
			}
			resetProxyKernel()
			dp := newDataplane(b, mode)
			m := proxyModel(n, 1, true)
			if _, err := dp.Apply(ctx, m, true); err != nil {
				b.Fatalf("%s sync of %d services: %v", mode, n, err)
			}
			target := m.Ports[len(m.Ports)-1]
			addr := netip.AddrPortFrom(target.ClusterIP, target.Port).String()
			lat[mode][n] = connectLatency(b, addr, 200)
			fmt.Printf("  %s: connect p50 at %d services: %s\n", mode, n, fmtMS(lat[mode][n].p50()))
		}
	}
	for _, n := range []int{10, iptMaxServices, 10000} {
		row := []string{fmt.Sprintf("%d services", n)}
		for _, mode := range []string{proxy.ModeNFTables, proxy.ModeIPTables} {
			if s, ok := lat[mode][n]; ok {
				row = append(row, fmtMS(s.p50()), fmtMS(s.p99()))
			} else {
				row = append(row, "-", "-")
			}
		}
		first.add(row...)
	}
	first.note("ratio p50: nftables 10,000 / 10 services %s (issue 7 goal ≤ 1.1); iptables %d / 10 services %s",
		ratio(ms(lat[proxy.ModeNFTables][10000].p50()), ms(lat[proxy.ModeNFTables][10].p50())), iptMaxServices,
		ratio(ms(lat[proxy.ModeIPTables][iptMaxServices].p50()), ms(lat[proxy.ModeIPTables][10].p50())))
	first.note("a connect is a SYN and its SYN-ACK over a veth, both through the rules; the machine is shared, so compare ratios.")
	resetProxyKernel()
	sync.print()
	first.print()
}

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
	for _, t := range []string{"nat", "filter"} {
		exec.Command("iptables", "-t", t, "-F").Run()
		exec.Command("iptables", "-t", t, "-X").Run()
	}
}

// proxyModel is n Services with eps endpoints each. real points every
// endpoint at the benchmark's server.
func proxyModel(n, eps int, real bool) *proxy.Model {
	in := proxy.ModelInput{NodeName: "bench-node", ClusterCIDR: netip.MustParsePrefix("10.244.0.0/16")}
	for i := range n {
		name := fmt.Sprintf("svc-%05d", i)
		ip := fmt.Sprintf("10.96.%d.%d", i/250, i%250+1)
		in.Services = append(in.Services, &v1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: "bench", Name: name},
			Spec: v1.ServiceSpec{Type: v1.ServiceTypeClusterIP, ClusterIP: ip,
				Ports: []v1.ServicePort{{Name: "http", Protocol: v1.ProtocolTCP, Port: 80, TargetPort: intstr.FromInt32(8080)}}},
		})
		s := &discovery.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Namespace: "bench", Name: name + "-1", Labels: map[string]string{discovery.LabelServiceName: name}},
			AddressType: discovery.AddressTypeIPv4,
			Ports:       []discovery.EndpointPort{{Name: ptrTo("http"), Protocol: ptrTo(v1.ProtocolTCP), Port: ptrTo(int32(8080))}},
		}
		for j := range eps {
			addr := fmt.Sprintf("10.244.%d.%d", j, i%250+1)
			if real {
				addr = "10.250.0.2"
			}
			s.Endpoints = append(s.Endpoints, discovery.Endpoint{Addresses: []string{addr}, Conditions: discovery.EndpointConditions{Ready: ptrTo(true)}})
		}
		in.Slices = append(in.Slices, s)
	}
	return proxy.BuildModel(in)
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

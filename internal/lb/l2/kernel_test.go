package l2

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"golang.org/x/sys/unix"
)

// The kernel test's topology, inside the namespace MainInNetns made:
//
//	this process: veth node0 10.78.0.2/24, the speaker's side
//	netns client: veth eth0 10.78.0.1/24, a neighbour on the segment
//
// Addresses answered for: 10.78.0.200-.202.
const (
	clientNS = "client"
	nodeLink = "node0"
)

var (
	vip      = netip.MustParseAddr("10.78.0.200")
	vip2     = netip.MustParseAddr("10.78.0.201")
	notOwned = netip.MustParseAddr("10.78.0.202")
	kernelIP = netip.MustParseAddr("10.78.0.210") // added to the link: the kernel answers
)

func sh(t testing.TB, script string) string {
	t.Helper()
	out, err := exec.Command("sh", "-ec", script).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", script, err, out)
	}
	return string(out)
}

// segment builds the two ends and returns the speaker's interface.
func segment(t testing.TB) *net.Interface {
	t.Helper()
	if _, err := os.Stat("/run/netns/" + clientNS); err == nil {
		t.Skip("the topology exists already: run the kernel test and the benchmark in separate go test runs")
	}
	sh(t, `mkdir -p /run/netns && mount -t tmpfs tmpfs /run/netns
ip netns add client
ip link add node0 type veth peer name eth0 netns client
ip addr add 10.78.0.2/24 dev node0
ip addr add 10.78.0.210/32 dev node0
ip -n client addr add 10.78.0.1/24 dev eth0
ip -n client link set lo up
ip -n client link set eth0 up
ip link set node0 up`)
	iface, err := net.InterfaceByName(nodeLink)
	if err != nil {
		t.Fatal(err)
	}
	return iface
}

// neighbour is the client's entry for ip: its MAC and state.
func neighbour(t testing.TB, ip netip.Addr) (mac, state string) {
	f := strings.Fields(sh(t, "ip -n client neigh show to "+ip.String()))
	for i := range f {
		if f[i] == "lladdr" && i+1 < len(f) {
			mac = f[i+1]
		}
	}
	if len(f) > 0 {
		state = f[len(f)-1]
	}
	return mac, state
}

// TestResponder: the responder answers ARP for the addresses it owns and
// only those; a gratuitous ARP moves a neighbour's existing entry to our
// MAC.
func TestResponder(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	iface := segment(t)
	r, err := newResponder(iface)
	if err != nil {
		t.Fatal(err)
	}
	r.owned.Store(&map[netip.Addr]bool{vip: true, vip2: true})
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- r.serve(stop) }()
	defer func() { close(stop); <-done }()

	// The client resolves the owned address (a connection attempt
	// resolves it first; the SYN itself goes unanswered: the address is
	// not the kernel's, and forwarding is off).
	exec.Command("ip", "netns", "exec", clientNS, "curl", "-s", "-m", "1", "http://"+vip.String()+"/").Run()
	if mac, state := neighbour(t, vip); mac != iface.HardwareAddr.String() || state == "FAILED" {
		t.Errorf("client's entry for %s: %s %s, want our %s", vip, mac, state, iface.HardwareAddr)
	}
	exec.Command("ip", "netns", "exec", clientNS, "curl", "-s", "-m", "1", "http://"+notOwned.String()+"/").Run()
	if mac, _ := neighbour(t, notOwned); mac != "" {
		t.Errorf("an address not owned was answered: %s", mac)
	}
	if n := r.answered.Load(); n < 1 {
		t.Errorf("%d replies counted", n)
	}

	// Another node held vip2: the client's entry points elsewhere until
	// our gratuitous ARP.
	sh(t, "ip -n client neigh replace "+vip2.String()+" lladdr 02:00:00:00:00:99 dev eth0 nud stale")
	if err := r.announce(vip2); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		mac, state := neighbour(t, vip2)
		if mac == iface.HardwareAddr.String() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after a gratuitous ARP the client's entry for %s is %s %s, want %s", vip2, mac, state, iface.HardwareAddr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// BenchmarkARPReply: one ARP request from the client and its reply, for
// an address the userspace responder answers and for one the kernel
// answers (added to the link): the cost of answering in userspace.
func BenchmarkARPReply(b *testing.B) {
	iface := segment(b)
	r, err := newResponder(iface)
	if err != nil {
		b.Fatal(err)
	}
	r.owned.Store(&map[netip.Addr]bool{vip: true})
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- r.serve(stop) }()
	defer func() { close(stop); <-done }()

	client, err := ns.GetNS("/run/netns/" + clientNS)
	if err != nil {
		b.Fatal(err)
	}
	defer client.Close()
	var fd int
	var cif *net.Interface
	if err := client.Do(func(ns.NetNS) error {
		if cif, err = net.InterfaceByName("eth0"); err != nil {
			return err
		}
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ARP)))
		if err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: cif.Index})
	}); err != nil {
		b.Fatal(err)
	}
	defer unix.Close(fd)
	tv := unix.NsecToTimeval(time.Second.Nanoseconds())
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	ask := func(target netip.Addr) error {
		q := arpPacket{op: arpRequest, sha: cif.HardwareAddr, spa: netip.MustParseAddr("10.78.0.1"), tha: net.HardwareAddr{0, 0, 0, 0, 0, 0}, tpa: target}
		to := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: cif.Index, Halen: 6}
		copy(to.Addr[:], broadcastMAC)
		if err := unix.Sendto(fd, q.frame(cif.HardwareAddr, broadcastMAC), 0, to); err != nil {
			return err
		}
		buf := make([]byte, 1500)
		for {
			n, _, err := unix.Recvfrom(fd, buf, 0)
			if err != nil {
				return fmt.Errorf("no reply for %s: %w", target, err)
			}
			if p, ok := parseARP(buf[:n]); ok && p.op == arpReply && p.spa == target {
				return nil
			}
		}
	}
	for _, tc := range []struct {
		name   string
		target netip.Addr
	}{{"userspace", vip}, {"kernel", kernelIP}} {
		b.Run(tc.name, func(b *testing.B) {
			var total time.Duration
			for b.Loop() {
				start := time.Now()
				if err := ask(tc.target); err != nil {
					b.Fatal(errors.Join(err))
				}
				total += time.Since(start)
			}
			b.ReportMetric(float64(total.Microseconds())/float64(b.N), "µs/reply")
		})
	}
}

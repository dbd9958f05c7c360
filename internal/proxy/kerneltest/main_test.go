package kerneltest

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"kite/internal/testutil"
)

func TestMain(m *testing.M) { testutil.MainInNetns(m) }

// The topology, built once inside the private namespace MainInNetns gives
// the test binary; that namespace is the node ("node-a") the proxy runs in.
//
//	client (netns) 192.168.50.2 ──veth── 192.168.50.1 node-a ── kbr0 10.244.1.1/24
//	                                                              ├─ pod-a 10.244.1.2 (a client pod)
//	                                                              ├─ pod-b 10.244.1.3 (server "pod-b")
//	                                                              └─ pod-c 10.244.1.4 (server "pod-c")
//
// Services are in 10.96.0.0/16, external and load-balancer IPs in
// 192.168.60.0/24 (the client routes both via node-a). Servers answer
// "<name> <client IP>" on TCP 8080 (per line) and UDP 5353 (per datagram),
// so a test sees where its packet ended and which source reached it.
const (
	nodeName    = "node-a"
	nodeIP      = "192.168.50.1"
	clientIP    = "192.168.50.2"
	bridgeIP    = "10.244.1.1"
	clusterCIDR = "10.244.0.0/16"
	tcpPort     = 8080
	udpPort     = 5353
)

var pods = map[string]string{"pod-a": "10.244.1.2", "pod-b": "10.244.1.3", "pod-c": "10.244.1.4"}

var topoOnce sync.Once

// topology builds the namespaces and servers once per test binary.
func topology(t *testing.T) {
	t.Helper()
	if !testutil.InNetns() {
		t.Skip("needs the private namespace of testutil.MainInNetns")
	}
	var err error
	topoOnce.Do(func() { err = buildTopology() })
	if err != nil {
		t.Fatalf("topology: %v", err)
	}
}

func buildTopology() error {
	script := []string{
		"mkdir -p /run/netns",
		"mount -t tmpfs tmpfs /run/netns",
		"sysctl -qw net.ipv4.ip_forward=1",
		"ip link add kbr0 type bridge",
		"ip addr add " + bridgeIP + "/24 dev kbr0",
		"ip link set kbr0 up",
		"ip netns add client",
		"ip link add ext0 type veth peer name eth0 netns client",
		"ip addr add " + nodeIP + "/24 dev ext0",
		"ip link set ext0 up",
		"ip -n client link set lo up",
		"ip -n client addr add " + clientIP + "/24 dev eth0",
		"ip -n client link set eth0 up",
		"ip -n client route add default via " + nodeIP,
		// A real node has a default route: without one, traffic to a
		// Service IP fails routing before any rule sees it.
		"ip route add default via " + clientIP,
	}
	for name, ip := range pods {
		script = append(script,
			"ip netns add "+name,
			"ip link add v"+name+" type veth peer name eth0 netns "+name,
			"ip link set v"+name+" master kbr0 up",
			// As kite's CNI plugin does: a hairpinned packet (a pod
			// reaching its own Service) leaves by the port it came in.
			"ip link set v"+name+" type bridge_slave hairpin on",
			"ip -n "+name+" link set lo up",
			"ip -n "+name+" addr add "+ip+"/24 dev eth0",
			"ip -n "+name+" link set eth0 up",
			"ip -n "+name+" route add default via "+bridgeIP)
	}
	for _, line := range script {
		f := strings.Fields(line)
		if out, err := exec.Command(f[0], f[1:]...).CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %w: %s", line, err, out)
		}
	}
	// Bridged traffic must pass netfilter, or a reply from a pod on the
	// same bridge skips conntrack's un-DNAT (NOTES-linux.md).
	if err := os.WriteFile("/proc/sys/net/bridge/bridge-nf-call-iptables", []byte("1"), 0o644); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	for _, name := range []string{"pod-b", "pod-c"} {
		if err := startServers(name); err != nil {
			return err
		}
	}
	return nil
}

// inNetns runs fn on an OS thread switched into the named namespace.
// Sockets made there stay in that namespace. If switching back fails the
// thread stays locked and the runtime discards it with the goroutine.
func inNetns(name string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		target, err := netns.GetFromName(name)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("netns %s: %w", name, err)
			return
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter netns %s: %w", name, err)
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("leave netns %s: %w", name, err))
			return // still locked: this thread is discarded
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// startServers starts pod's TCP and UDP listeners (for the whole run).
func startServers(pod string) error {
	var ln net.Listener
	var pc net.PacketConn
	err := inNetns(pod, func() error {
		var err error
		if ln, err = net.Listen("tcp", fmt.Sprintf(":%d", tcpPort)); err != nil {
			return err
		}
		pc, err = net.ListenPacket("udp", fmt.Sprintf(":%d", udpPort))
		return err
	})
	if err != nil {
		return fmt.Errorf("servers in %s: %w", pod, err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				src := c.RemoteAddr().(*net.TCPAddr).IP
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					fmt.Fprintf(c, "%s %s\n", pod, src)
				}
			}()
		}
	}()
	go func() {
		buf := make([]byte, 1500)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo([]byte(fmt.Sprintf("%s %s", pod, from.(*net.UDPAddr).IP)), from)
		}
	}()
	return nil
}

// answer is who served a request and which source address it saw.
type answer struct{ server, source string }

// ioTimeout bounds every dial and read: a black-holed packet fails the
// test instead of hanging it.
const ioTimeout = 3 * time.Second

// dialTCP connects from ns ("" = the node itself) to addr.
func dialTCP(ns, addr string) (net.Conn, error) { return dialTCPTimeout(ns, addr, ioTimeout) }

func dialTCPTimeout(ns, addr string, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	dial := func() (err error) {
		c, err = net.DialTimeout("tcp", addr, timeout)
		return err
	}
	if ns == "" {
		return c, dial()
	}
	return c, inNetns(ns, dial)
}

// ask sends one line on c and reads the answer.
func ask(c net.Conn) (answer, error) {
	c.SetDeadline(time.Now().Add(ioTimeout))
	if _, err := fmt.Fprintln(c, "who"); err != nil {
		return answer{}, err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return answer{}, err
	}
	f := strings.Fields(line)
	if len(f) != 2 {
		return answer{}, fmt.Errorf("answer %q", line)
	}
	return answer{f[0], f[1]}, nil
}

// request is one TCP connection from ns to addr, one question, closed.
func request(ns, addr string) (answer, error) {
	c, err := dialTCP(ns, addr)
	if err != nil {
		return answer{}, err
	}
	defer c.Close()
	return ask(c)
}

// udpConn is a UDP socket in ns "connected" to addr (so ICMP errors
// surface as ECONNREFUSED).
func udpConn(ns, addr string) (*net.UDPConn, error) {
	var c *net.UDPConn
	dial := func() error {
		a, err := net.ResolveUDPAddr("udp", addr)
		if err != nil {
			return err
		}
		c, err = net.DialUDP("udp", nil, a)
		return err
	}
	if ns == "" {
		return c, dial()
	}
	return c, inNetns(ns, dial)
}

func askUDP(c *net.UDPConn) (answer, error) {
	c.SetDeadline(time.Now().Add(ioTimeout))
	if _, err := c.Write([]byte("who")); err != nil {
		return answer{}, err
	}
	buf := make([]byte, 1500)
	n, err := c.Read(buf)
	if err != nil {
		return answer{}, err
	}
	f := strings.Fields(string(buf[:n]))
	if len(f) != 2 {
		return answer{}, fmt.Errorf("answer %q", buf[:n])
	}
	return answer{f[0], f[1]}, nil
}

// resetKernel removes every rule and conntrack entry a previous test left
// in the node namespace (ours alone: this is the test's own namespace).
func resetKernel(t *testing.T) {
	t.Helper()
	exec.Command("nft", "delete", "table", "ip", "kite-proxy").Run()
	for _, table := range []string{"nat", "filter"} {
		exec.Command("iptables", "-t", table, "-F").Run()
		exec.Command("iptables", "-t", table, "-X").Run()
	}
	exec.Command("conntrack", "-F").Run()
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

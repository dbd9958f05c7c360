package lb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"kite/internal/testutil"
)

// The kernel test's topology, all inside the namespace MainInNetns made:
//
//	netns wire:   bridge br0, one port per namespace below
//	this process: the load balancer, eth0 10.77.0.9/24
//	netns client: eth0 10.77.0.1/24
//	netns n1..n3: eth0 10.77.0.2-4/24, a TCP server on :30080 (the
//	              NodePort) answering its node's name
//
// The Service's ingress address is 10.77.0.200 (pool 10.77.0.200/29).
const (
	lbIP      = "10.77.0.9"
	clientIP  = "10.77.0.1"
	ingressIP = "10.77.0.200"
	nodePort  = 30080
)

var nodeIPs = map[string]string{"n1": "10.77.0.2", "n2": "10.77.0.3", "n3": "10.77.0.4"}

func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// ipBatch runs ip commands in the named namespace ("": this one).
func ipBatch(t testing.TB, netns, batch string) {
	t.Helper()
	args := []string{"-batch", "-"}
	if netns != "" {
		args = append([]string{"-n", netns}, args...)
	}
	cmd := exec.Command("ip", args...)
	cmd.Stdin = strings.NewReader(batch)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ip -batch: %v\n%s\n%s", err, out, batch)
	}
}

// topology builds the namespaces and links.
func topology(t testing.TB) {
	t.Helper()
	if _, err := os.Stat("/run/netns/wire"); err == nil {
		t.Skip("the topology exists already: run the kernel test and the benchmark in separate go test runs")
	}
	if err := os.MkdirAll("/run/netns", 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, "mount", "-t", "tmpfs", "tmpfs", "/run/netns")
	peers := map[string]string{"client": clientIP}
	for n, ip := range nodeIPs {
		peers[n] = ip
	}
	// Here (the LB): every namespace, and veths whose outer ends go to
	// the wire namespace, where the bridge joins them.
	var here, wire strings.Builder
	here.WriteString("netns add wire\nlink add eth0 type veth peer name lb netns wire\n")
	fmt.Fprintf(&here, "addr add %s/24 dev eth0\n", lbIP)
	wire.WriteString("link add br0 type bridge\nlink set lb master br0 up\n")
	for name := range peers {
		fmt.Fprintf(&here, "netns add %s\nlink add p-%s type veth peer name eth0 netns %s\nlink set p-%s netns wire\n", name, name, name, name)
		fmt.Fprintf(&wire, "link set p-%s master br0 up\n", name)
	}
	ipBatch(t, "", here.String())
	wire.WriteString("link set br0 up\n")
	ipBatch(t, "wire", wire.String())
	// Up only now that its peer is: a carrier that comes on later is
	// noticed by the kernel's link watcher up to a second late, and until
	// then the first packets are dropped.
	ipBatch(t, "", "link set eth0 up\n")
	for name, ip := range peers {
		ipBatch(t, name, fmt.Sprintf("link set lo up\naddr add %s/24 dev eth0\nlink set eth0 up\n", ip))
	}
}

func netnsOf(t testing.TB, name string) ns.NetNS {
	t.Helper()
	n, err := ns.GetNS("/run/netns/" + name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// nodeServer answers every connection with the node's name; stop closes
// the listener and with it the port (connection refused).
type nodeServer struct {
	ln   net.Listener
	done chan struct{}
}

func serve(t testing.TB, node string) *nodeServer {
	t.Helper()
	ln, err := listenIn(node)
	if err != nil {
		t.Fatal(err)
	}
	s := &nodeServer{ln: ln, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		answer(ln, node)
	}()
	t.Cleanup(s.stop)
	return s
}

// listenIn listens on the node's NodePort; the socket is made inside the
// node's namespace and stays there.
func listenIn(node string) (net.Listener, error) {
	n, err := ns.GetNS("/run/netns/" + node)
	if err != nil {
		return nil, err
	}
	defer n.Close()
	var ln net.Listener
	err = n.Do(func(ns.NetNS) error {
		ln, err = net.Listen("tcp", fmt.Sprintf("%s:%d", nodeIPs[node], nodePort))
		return err
	})
	return ln, err
}

// answer writes the node's name to every connection until ln is closed.
func answer(ln net.Listener, node string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		c.Write([]byte(node + "\n"))
		c.Close()
	}
}

func (s *nodeServer) stop() {
	s.ln.Close()
	<-s.done
}

// client sends requests from the client namespace.
type client struct {
	ns ns.NetNS
}

// get connects to addr from the client namespace and reads the answer.
// Bounded: one second to connect, one to read.
func (c client) get(addr string) (string, error) {
	var conn net.Conn
	err := c.ns.Do(func(ns.NetNS) error {
		var err error
		conn, err = net.DialTimeout("tcp", addr, time.Second)
		return err
	})
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(time.Second))
	b, err := io.ReadAll(conn)
	return strings.TrimSpace(string(b)), err
}

func k8sNode(name, ip string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name},
		Status: corev1.NodeStatus{
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
			Addresses:  []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: ip}},
		}}
}

// startLB runs a load balancer on eth0 until stop is called.
func startLB(t testing.TB, cs *fake.Clientset) (l *LB, stop func()) {
	t.Helper()
	l, err := New(Config{Interface: "eth0", Pool: []netip.Prefix{netip.MustParsePrefix("10.77.0.200/29")}}, cs)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return l, stop
}

// waitFor polls cond every 20 ms until it holds or d passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// settle sends requests until n in a row succeed, for at most d, and
// returns the nodes the last n reached and when the last failed request
// started (zero if none failed). After a failure it waits 10 ms, so that
// refused connections do not spin.
func (c client) settle(n int, d time.Duration) (reached map[string]int, lastFailure time.Time, ok bool) {
	streak := 0
	reached = map[string]int{}
	for deadline := time.Now().Add(d); time.Now().Before(deadline); {
		start := time.Now()
		got, err := c.get(ingressIP + ":80")
		if err != nil || got == "" {
			lastFailure, streak, reached = start, 0, map[string]int{}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		reached[got]++
		if streak++; streak == n {
			return reached, lastFailure, true
		}
	}
	return reached, lastFailure, false
}

func TestKernelForwarding(t *testing.T) {
	if !testutil.InNetns() {
		t.Skip("needs the private namespace of testutil.MainInNetns")
	}
	topology(t)
	servers := map[string]*nodeServer{}
	for n := range nodeIPs {
		servers[n] = serve(t, n)
	}
	cs := fake.NewClientset(k8sNode("n1", nodeIPs["n1"]), k8sNode("n2", nodeIPs["n2"]), k8sNode("n3", nodeIPs["n3"]))
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer,
			Ports: []corev1.ServicePort{{Port: 80, Protocol: corev1.ProtocolTCP, NodePort: nodePort}}},
		Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: ingressIP}}}}}
	if _, err := cs.CoreV1().Services("default").Create(context.Background(), svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, stopLB := startLB(t, cs)
	c := client{ns: netnsOf(t, "client")}

	t.Run("reaches every node", func(t *testing.T) {
		// The address comes after the rules; a request before it would
		// wait for ARP.
		waitFor(t, 10*time.Second, "the ingress address", func() bool { return hasAddr(t, ingressIP) })
		waitFor(t, 10*time.Second, "a first answer through "+ingressIP, func() bool {
			_, err := c.get(ingressIP + ":80")
			return err == nil
		})
		reached, last, ok := c.settle(60, 10*time.Second)
		if !ok || !last.IsZero() {
			t.Fatalf("requests failed; reached %v", reached)
		}
		if len(reached) != 3 {
			t.Errorf("60 requests reached %v, want all three nodes", reached)
		}
		if sysctl(t, "net/ipv4/ip_forward") != "1" {
			t.Error("ip_forward is not 1")
		}
	})

	t.Run("a port the Service does not have is refused", func(t *testing.T) {
		if _, err := c.get(ingressIP + ":81"); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("port 81: %v, want connection refused", err)
		}
	})

	t.Run("a restarted LB adopts the table", func(st *testing.T) {
		t, outer := st, t
		stopLB()
		before := run(t, "nft", "list", "table", "ip", DefaultTable)
		_, stopLB = startLB(outer, cs) // runs on after this subtest
		reached, last, ok := c.settle(30, 10*time.Second)
		if !ok || !last.IsZero() {
			t.Fatalf("requests failed across the restart; reached %v", reached)
		}
		if after := run(t, "nft", "list", "table", "ip", DefaultTable); after != before {
			t.Errorf("table changed across a restart:\n%s\nwas:\n%s", after, before)
		}
	})

	// A node fails: within 2 s of it, no request fails.
	for _, tc := range []struct {
		node, how string
		fail      func()
	}{
		{"n2", "server killed", func() { servers["n2"].stop() }},
		{"n3", "link cut", func() { run(t, "ip", "-n", "n3", "link", "set", "eth0", "down") }},
	} {
		t.Run(tc.node+" "+tc.how, func(t *testing.T) {
			failed := time.Now()
			tc.fail()
			reached, last, ok := c.settle(30, 20*time.Second)
			if !ok {
				t.Fatalf("no 30 requests in a row succeeded after %s's %s", tc.node, tc.how)
			}
			if !last.IsZero() {
				t.Logf("last failed request started %s after %s's %s", last.Sub(failed).Round(time.Millisecond), tc.node, tc.how)
			}
			if !last.IsZero() && last.Sub(failed) > 2*time.Second {
				t.Errorf("a request failed %s after %s's %s", last.Sub(failed), tc.node, tc.how)
			}
			if reached[tc.node] > 0 {
				t.Errorf("%s still gets requests: %v", tc.node, reached)
			}
		})
	}

	t.Run("a node that comes back gets traffic again", func(t *testing.T) {
		servers["n2"] = serve(t, "n2")
		waitFor(t, 10*time.Second, "n2 to answer again", func() bool {
			got, _ := c.get(ingressIP + ":80")
			return got == "n2"
		})
	})

	t.Run("Service deleted: port refused, address gone", func(t *testing.T) {
		if err := cs.CoreV1().Services("default").Delete(context.Background(), "web", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, ingressIP+" to leave eth0", func() bool { return !hasAddr(t, ingressIP) })
		var err error
		waitFor(t, 10*time.Second, "connection refused", func() bool {
			_, err = c.get(ingressIP + ":80")
			return errors.Is(err, syscall.ECONNREFUSED)
		})
		if out := run(t, "nft", "list", "map", "ip", DefaultTable, mapServicePorts); strings.Contains(out, ingressIP) {
			t.Errorf("service-ports still has %s:\n%s", ingressIP, out)
		}
	})
	if t.Failed() {
		t.Logf("table:\n%s", run(t, "nft", "list", "table", "ip", DefaultTable))
	}
}

func sysctl(t *testing.T, path string) string {
	b, err := os.ReadFile("/proc/sys/" + path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

package podnet

// Kernel test conventions. Everything lives inside the private network
// and mount namespace testutil.MainInNetns makes; traffic only flows among
// the namespaces below, which each test builds and removes.
//
//	underlay A  172.31.0.0/24  bridge ula: nodes n1 .11, n2 .12; router .254
//	underlay B  172.31.1.0/24  bridge ulb: node n3 .13; router .254
//	node nI     podCIDR 10.244.I.0/24, bridge cni0 10.244.I.1, one pod
//	            namespace pI with eth0 10.244.I.2, default via .1
//
// Nodes reach the other underlay through the router namespace (their
// default route), so n3 is one L3 hop away from n1 and n2: host-gw cannot
// reach it, VXLAN can.

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"

	"kite/internal/testutil/apitest"
)

const waitTime = 15 * time.Second

type labNode struct {
	name   string // Node and namespace name
	ip     string // underlay address
	cidr   string
	pod    string // pod namespace name
	podIP  string
	netns  string // path
	subnet string // "a" or "b"
}

type lab struct {
	t      *testing.T
	client kubernetes.Interface
	nodes  []labNode
}

var runNetnsOnce sync.Once

// newLab builds the three nodes on their underlays and registers their
// Node objects in a fake API.
func newLab(t *testing.T) *lab {
	t.Helper()
	mountRunNetns(t)
	l := &lab{t: t, client: fake.NewClientset()}
	for i, sub := range []string{"a", "a", "b"} {
		n := i + 1
		third := map[string]int{"a": 0, "b": 1}[sub]
		l.nodes = append(l.nodes, labNode{
			name: fmt.Sprintf("n%d", n), ip: fmt.Sprintf("172.31.%d.%d", third, 10+n), subnet: sub,
			cidr: fmt.Sprintf("10.244.%d.0/24", n), pod: fmt.Sprintf("p%d", n), podIP: fmt.Sprintf("10.244.%d.2", n),
			netns: fmt.Sprintf("/run/netns/n%d", n),
		})
	}
	t.Cleanup(l.destroy)
	sh(t, `
set -e
for s in a b; do ip link add ul$s type bridge; ip link set ul$s up; done
ip netns add router
ip -n router link set lo up
ip netns exec router sh -c 'echo 1 > /proc/sys/net/ipv4/ip_forward'
ip link add r-a type veth peer name eth-a netns router
ip link add r-b type veth peer name eth-b netns router
ip link set r-a master ula up
ip link set r-b master ulb up
ip -n router addr add 172.31.0.254/24 dev eth-a
ip -n router addr add 172.31.1.254/24 dev eth-b
ip -n router link set eth-a up
ip -n router link set eth-b up
`)
	for _, n := range l.nodes {
		gw := "172.31.0.254"
		if n.subnet == "b" {
			gw = "172.31.1.254"
		}
		sh(t, fmt.Sprintf(`
set -e
N=%[1]s P=%[2]s
ip netns add $N
ip -n $N link set lo up
ip netns exec $N sh -c 'echo 1 > /proc/sys/net/ipv4/ip_forward'
ip link add h-$N type veth peer name eth0 netns $N
ip link set h-$N master ul%[3]s up
ip -n $N addr add %[4]s/24 dev eth0
ip -n $N link set eth0 up
ip -n $N route add default via %[5]s
ip -n $N link add cni0 type bridge
ip -n $N addr add %[6]s.1/24 dev cni0
ip -n $N link set cni0 up
ip netns add $P
ip -n $P link set lo up
ip -n $N link add veth-$P type veth peer name eth0 netns $P
ip -n $N link set veth-$P master cni0 up
ip -n $P addr add %[7]s/24 dev eth0
ip -n $P link set eth0 up
ip -n $P route add default via %[6]s.1
`, n.name, n.pod, n.subnet, n.ip, gw, strings.TrimSuffix(n.cidr, ".0/24"), n.podIP))
		node := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: n.name},
			Spec:       corev1.NodeSpec{PodCIDR: n.cidr, PodCIDRs: []string{n.cidr}},
			Status:     corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: n.ip}}},
		}
		if _, err := l.client.CoreV1().Nodes().Create(context.Background(), node, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

// mountRunNetns gives this process a private /run/netns, so `ip netns
// add` stays in the test's mount namespace and vanishes with it.
func mountRunNetns(t *testing.T) {
	runNetnsOnce.Do(func() { sh(t, "mkdir -p /run/netns && mount -t tmpfs tmpfs /run/netns") })
}

// newLabNetns adds an empty named namespace, removed when the test ends.
func newLabNetns(t *testing.T, name string) {
	t.Helper()
	mountRunNetns(t)
	sh(t, "ip netns add "+name+" && ip -n "+name+" link set lo up")
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
}

func (l *lab) destroy() {
	// Delete the links of this namespace first: a namespace dies
	// asynchronously, and with it the veth peers it holds.
	var script strings.Builder
	script.WriteString("ip link del r-a; ip link del r-b; ip link del ula; ip link del ulb; ip netns del router; ")
	for _, n := range l.nodes {
		fmt.Fprintf(&script, "ip link del h-%s; ip netns del %s; ip netns del %s; ", n.name, n.name, n.pod)
	}
	script.WriteString("true")
	if out, err := exec.Command("sh", "-c", script.String()).CombinedOutput(); err != nil {
		l.t.Logf("lab teardown: %v: %s", err, out)
	}
}

func (l *lab) node(name string) labNode {
	for _, n := range l.nodes {
		if n.name == name {
			return n
		}
	}
	l.t.Fatalf("no lab node %s", name)
	return labNode{}
}

// running is one started controller.
type running struct {
	c    *Controller
	stop func()
}

// start runs a podnet controller for the lab node, programming its
// namespace, until stop (or the end of the test).
func (l *lab) start(name, mode string) *running {
	t := l.t
	t.Helper()
	n := l.node(name)
	broadcaster := record.NewBroadcaster()
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: l.client.CoreV1().Events("")})
	c, err := New(Config{
		Client: l.client, NodeName: n.name, Mode: mode, NetNS: n.netns,
		Recorder:     broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "kite-podnet", Host: n.name}),
		ResyncPeriod: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(klog.NewContext(context.Background(), klog.Background().WithValues("test", t.Name())))
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run for %s: %v", name, err)
		}
		broadcaster.Shutdown()
	}
	t.Cleanup(stop)
	return &running{c: c, stop: stop}
}

// waitSyncs waits until the controller has finished n more syncs.
func (r *running) waitSyncs(t *testing.T, n int) Status {
	t.Helper()
	target := r.c.Status().Syncs + n
	apitest.WaitFor(t, waitTime, fmt.Sprintf("%d syncs", n), func() bool { return r.c.Status().Syncs >= target })
	return r.c.Status()
}

// sh runs a shell script, failing the test with its output.
func sh(t *testing.T, script string) string {
	t.Helper()
	out, err := exec.Command("sh", "-c", script).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", script, err, out)
	}
	return string(out)
}

// table is a kernel listing in the node's namespace, one trimmed line per
// entry: what iproute2 shows an operator.
func table(t *testing.T, node, what string) string {
	t.Helper()
	cmd := map[string]string{
		"routes": "ip -4 route show proto 75",
		"all":    "ip -4 route show",
		"neigh":  "ip neigh show dev kite.vxlan nud permanent",
		"fdb":    "bridge fdb show dev kite.vxlan",
	}[what]
	out := sh(t, "ip netns exec "+node+" "+cmd)
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			lines = append(lines, l)
		}
	}
	if what == "neigh" || what == "fdb" {
		slices.Sort(lines) // hash order in the kernel
	}
	return strings.Join(lines, "\n")
}

// waitTable waits until the listing is exactly want.
func waitTable(t *testing.T, node, what, want string) {
	t.Helper()
	want = strings.TrimSpace(want)
	deadline := time.Now().Add(waitTime)
	for {
		got := table(t, node, what)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s of %s:\n%s\nwant:\n%s", what, node, got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// setNode changes a Node object through the API.
func (l *lab) setNode(name string, change func(*corev1.Node)) {
	l.t.Helper()
	nodes := l.client.CoreV1().Nodes()
	n, err := nodes.Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		l.t.Fatal(err)
	}
	change(n)
	if _, err := nodes.Update(context.Background(), n, metav1.UpdateOptions{}); err != nil {
		l.t.Fatal(err)
	}
}

func (l *lab) deleteNode(name string) {
	l.t.Helper()
	if err := l.client.CoreV1().Nodes().Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil {
		l.t.Fatal(err)
	}
}

// inNS runs f on a thread in the namespace at path; sockets f opens stay
// in that namespace whatever thread uses them later.
func inNS(t *testing.T, path string, f func() error) {
	t.Helper()
	if err := ns.WithNetNSPath(path, func(ns.NetNS) error { return f() }); err != nil {
		t.Fatal(err)
	}
}

// ping fails the test unless an ICMP echo from the pod namespace to dst
// is answered by dst within waitTime.
func ping(t *testing.T, fromPod, dst string) {
	t.Helper()
	if err := echo(t, fromPod, dst, waitTime); err != nil {
		t.Fatal(err)
	}
}

// echo sends ICMP echo requests from the pod namespace to dst until dst
// answers one, or the time is up.
func echo(t *testing.T, fromPod, dst string, within time.Duration) error {
	t.Helper()
	var conn *icmp.PacketConn
	inNS(t, "/run/netns/"+fromPod, func() (err error) {
		conn, err = icmp.ListenPacket("ip4:icmp", "0.0.0.0")
		return err
	})
	defer conn.Close()
	deadline := time.Now().Add(within)
	for seq := 1; ; seq++ {
		msg := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: os.Getpid() & 0xffff, Seq: seq, Data: []byte("kite")}}
		b, _ := msg.Marshal(nil)
		_, werr := conn.WriteTo(b, &net.IPAddr{IP: net.ParseIP(dst)})
		conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		for {
			buf := make([]byte, 1500)
			n, peer, err := conn.ReadFrom(buf)
			if err != nil {
				break
			}
			reply, err := icmp.ParseMessage(1, buf[:n])
			if err == nil && reply.Type == ipv4.ICMPTypeEchoReply && peer.String() == dst {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("ping %s from %s: no echo reply within %v (last send error: %v)", dst, fromPod, within, werr)
		}
	}
}

// serveRemoteAddr listens on the pod's IP and answers every connection
// with the address it came from: what the server sees of its client.
func serveRemoteAddr(t *testing.T, pod, ip string) string {
	t.Helper()
	var ln net.Listener
	inNS(t, "/run/netns/"+pod, func() (err error) {
		ln, err = net.Listen("tcp4", net.JoinHostPort(ip, "8080"))
		return err
	})
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintln(conn, conn.RemoteAddr().(*net.TCPAddr).IP)
			conn.Close()
		}
	}()
	return ln.Addr().String()
}

// seenAs connects from the pod to addr and returns what the server saw as
// the client's IP, retrying until the deadline.
func seenAs(t *testing.T, fromPod, addr string) string {
	t.Helper()
	deadline := time.Now().Add(waitTime)
	for {
		var conn net.Conn
		var err error
		inNS(t, "/run/netns/"+fromPod, func() error {
			conn, err = net.DialTimeout("tcp4", addr, time.Second)
			return nil
		})
		if err == nil {
			line, rerr := bufio.NewReader(conn).ReadString('\n')
			conn.Close()
			if rerr == nil {
				return strings.TrimSpace(line)
			}
			err = rerr
		}
		if time.Now().After(deadline) {
			t.Fatalf("connect from %s to %s: %v", fromPod, addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// nodeEvents lists the warning events about a node: "reason: message".
func (l *lab) nodeEvents(name string) []string {
	list, err := l.client.CoreV1().Events("").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		l.t.Fatal(err)
	}
	var out []string
	for _, e := range list.Items {
		if e.InvolvedObject.Kind == "Node" && e.InvolvedObject.Name == name && e.Type == corev1.EventTypeWarning {
			out = append(out, e.Reason+": "+e.Message)
		}
	}
	return out
}

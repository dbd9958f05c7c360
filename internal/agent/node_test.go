package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"kite/internal/cni"
	"kite/internal/image"
	"kite/internal/runtime"
	"kite/internal/testutil/apitest"
)

// Kernel tier: a real node inside the private network and mount namespace
// of TestMain — the in-process API server, the agent with the real runtime
// (runc), the real kite CNI plugin (this test binary, linked as "kite" in
// a temporary CNI bin dir) chained with the reference portmap, and the
// image store's built-in busybox image.
//
// Address conventions: each test node has its own bridge kt<N> and pod
// CIDR 10.244.<N>.0/24 (N from 40 up); node IPs are 10.9.0.<N>. Only
// addresses inside this namespace are ever reached.

// The test binary doubles as the CNI plugin: run as "kite" from the CNI
// bin dir, it is the plugin and nothing else.
func init() {
	if filepath.Base(os.Args[0]) == cni.PluginType {
		cni.Main()
		os.Exit(0)
	}
}

var nodeSeq atomic.Int32

// testNode is one node: its directories, its agent and what it is made of.
type testNode struct {
	agent  *Agent
	t      testing.TB
	api    *apitest.Server
	cfg    Config
	n      int
	cidr   netip.Prefix
	rt     *runtime.Runtime
	cancel context.CancelFunc
	done   chan error
}

func needNodeTools(t testing.TB) {
	t.Helper()
	for _, tool := range []string{"runc", "busybox", "nft", "iptables"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (make deps): %v", tool, err)
		}
	}
	if _, err := os.Stat("/usr/lib/cni/portmap"); err != nil {
		t.Skip("the reference portmap plugin is not installed (containernetworking-plugins)")
	}
}

// publishServiceAccountObjects plays the ServiceAccount controller and the
// root CA publisher, which apitest does not run: pods in "default" get the
// kube-api-access volume, whose token and CA need the account and the
// ConfigMap.
func publishServiceAccountObjects(t testing.TB, api *apitest.Server) {
	t.Helper()
	ctx := context.Background()
	ca, err := os.ReadFile(filepath.Join(api.StateDir, "pki", "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = api.Client.CoreV1().ServiceAccounts("default").Create(ctx,
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	_, err = api.Client.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "kube-root-ca.crt"}, Data: map[string]string{"ca.crt": string(ca)}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// newTestNode makes a node with a pod CIDR and starts its agent. Its
// image store's built-in images carry busybox as the kite binary: fine
// for the busybox image.
func newTestNode(t testing.TB, api *apitest.Server) *testNode {
	t.Helper()
	return newTestNodeWith(t, api, "")
}

// newTestNodeWith makes a node whose built-in images carry kite (for the
// kuard image), or busybox when kite is "".
func newTestNodeWith(t testing.TB, api *apitest.Server, kite string) *testNode {
	t.Helper()
	needNodeTools(t)
	n := int(40 + nodeSeq.Add(1))
	dir := t.TempDir()
	bin := filepath.Join(dir, "cni-bin")
	os.MkdirAll(bin, 0o755)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(self, filepath.Join(bin, cni.PluginType)); err != nil {
		t.Fatal(err)
	}
	cgroup := fmt.Sprintf("/kite-agent-test-%d-%d", os.Getpid(), n)
	rt, err := runtime.New(runtime.Config{Root: filepath.Join(dir, "runtime"), RunDir: filepath.Join(dir, "run"), CgroupParent: cgroup})
	if err != nil {
		t.Fatal(err)
	}
	busybox, _ := exec.LookPath("busybox")
	if kite == "" {
		kite = busybox
	}
	store, err := image.Open(image.Config{Root: filepath.Join(dir, "images"), Executable: kite, Busybox: busybox})
	if err != nil {
		t.Fatal(err)
	}
	node := &testNode{t: t, api: api, n: n, rt: rt, cidr: netip.MustParsePrefix(fmt.Sprintf("10.244.%d.0/24", n))}
	node.cfg = Config{
		Kubeconfig: filepath.Join(api.StateDir, "admin.kubeconfig"), NodeName: fmt.Sprintf("node%d", n), NodeIP: fmt.Sprintf("10.9.0.%d", n), Port: -1,
		StateDir: filepath.Join(dir, "state"), RunDir: filepath.Join(dir, "run"), CNIConfDir: filepath.Join(dir, "net.d"), CNIBinDir: bin,
		CNIBridge: fmt.Sprintf("kt%d", n), LeaseDuration: 8 * time.Second, ManageNetwork: true,
		ResolvConf: "/dev/null", Runtime: rt, Images: newStoreImages(store),
	}
	publishServiceAccountObjects(t, api)
	_, err = api.Client.CoreV1().Nodes().Create(context.Background(), &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: node.cfg.NodeName},
		Spec:       corev1.NodeSpec{PodCIDR: node.cidr.String(), PodCIDRs: []string{node.cidr.String()}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		node.stop()
		ctx := context.Background()
		cs, _ := rt.ListContainers(ctx)
		for _, c := range cs {
			rt.RemoveContainer(ctx, c.ID)
		}
		sbs, _ := rt.ListSandboxes(ctx)
		for _, sb := range sbs {
			rt.RemoveSandbox(ctx, sb.ID)
		}
		exec.Command("ip", "link", "del", node.cfg.CNIBridge).Run()
		for _, d := range cgroupDirs(cgroup) {
			os.Remove(d)
		}
	})
	node.start()
	return node
}

func (n *testNode) start() {
	n.t.Helper()
	a, err := New(n.cfg)
	if err != nil {
		n.t.Fatal(err)
	}
	n.agent = a
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel, n.done = cancel, make(chan error, 1)
	go func() { n.done <- a.Run(ctx) }()
}

// stop stops the agent; pods keep running.
func (n *testNode) stop() {
	if n.cancel == nil {
		return
	}
	n.cancel()
	select {
	case <-n.done:
	case <-time.After(30 * time.Second):
		n.t.Error("agent did not stop within 30s")
	}
	n.cancel = nil
}

// cgroupDirs lists a cgroup's directories in the mounted hierarchies.
func cgroupDirs(cgroup string) []string {
	var out []string
	entries, _ := os.ReadDir("/sys/fs/cgroup")
	for _, e := range entries {
		if d := filepath.Join("/sys/fs/cgroup", e.Name(), cgroup); dirExists(d) {
			out = append(out, d)
		}
	}
	if d := filepath.Join("/sys/fs/cgroup", cgroup); dirExists(d) {
		out = append(out, d)
	}
	return out
}

func dirExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

func (n *testNode) pods() interface {
	Get(context.Context, string, metav1.GetOptions) (*corev1.Pod, error)
} {
	return n.api.Client.CoreV1().Pods("default")
}

// createPod creates a busybox pod on the node running script.
func (n *testNode) createPod(name, script string, mutate ...func(*corev1.Pod)) *corev1.Pod {
	n.t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: corev1.PodSpec{NodeName: n.cfg.NodeName, TerminationGracePeriodSeconds: ptr.To(int64(5)),
			Containers: []corev1.Container{{Name: "main", Image: "busybox", Command: []string{"sh", "-c", script}}}},
	}
	for _, f := range mutate {
		f(pod)
	}
	p, err := n.api.Client.CoreV1().Pods("default").Create(context.Background(), pod, metav1.CreateOptions{})
	if err != nil {
		n.t.Fatal(err)
	}
	return p
}

// waitPod waits for cond on the pod and returns it.
func (n *testNode) waitPod(name, what string, cond func(*corev1.Pod) bool) *corev1.Pod {
	n.t.Helper()
	var pod *corev1.Pod
	apitest.WaitFor(n.t, 60*time.Second, name+": "+what, func() bool {
		p, err := n.pods().Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return false
		}
		pod = p
		return cond(p)
	})
	return pod
}

func podReady(p *corev1.Pod) bool {
	c := findCondition(p.Status.Conditions, corev1.PodReady)
	return p.Status.Phase == corev1.PodRunning && c != nil && c.Status == corev1.ConditionTrue
}

// exec runs a command in the pod's first container.
func (n *testNode) exec(pod *corev1.Pod, cmd ...string) (string, int) {
	n.t.Helper()
	id := strings.TrimPrefix(pod.Status.ContainerStatuses[0].ContainerID, containerIDPrefix)
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code, err := n.rt.Exec(ctx, id, runtime.ExecConfig{Cmd: cmd, Stdout: &out, Stderr: &out})
	if err != nil {
		n.t.Fatalf("exec %q in %s: %v", cmd, pod.Name, err)
	}
	return out.String(), code
}

// leftovers lists what a pod could leave on the node: pinned namespaces,
// veths, IPAM reservations, shim processes, container and pod dirs.
func (n *testNode) leftovers(uid string) []string {
	var out []string
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	for _, l := range strings.Split(string(mounts), "\n") {
		if strings.Contains(l, uid) {
			out = append(out, "mount: "+l)
		}
	}
	links, _ := exec.Command("ip", "-o", "link", "show").Output()
	for _, l := range strings.Split(string(links), "\n") {
		if strings.Contains(l, uid) {
			out = append(out, "link: "+l)
		}
	}
	res, _ := filepath.Glob(filepath.Join(n.cfg.StateDir, "ipam", "*"))
	for _, r := range res {
		if data, err := os.ReadFile(r); err == nil && bytes.Contains(data, []byte(uid)) {
			out = append(out, "ipam: "+r)
		}
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		if cmd, err := os.ReadFile(p); err == nil && bytes.Contains(cmd, []byte(uid)) {
			out = append(out, "process: "+strings.ReplaceAll(string(cmd), "\x00", " "))
		}
	}
	for _, d := range []string{filepath.Join(n.cfg.StateDir, "pods", uid), filepath.Join(n.cfg.RunDir, "netns", uid)} {
		if _, err := os.Stat(d); err == nil {
			out = append(out, "file: "+d)
		}
	}
	cs, _ := filepath.Glob(filepath.Join(n.rt.Config().Root, "containers", uid+"*"))
	for _, c := range cs {
		out = append(out, "container: "+c)
	}
	return out
}

// Pods on one node: Running and Ready with addresses from the node's pod
// CIDR, their own hostname, reaching each other over the bridge, the
// Service variables, readiness that follows the probe, a crash loop, and
// a graceful deletion that leaves nothing behind.
func TestPodsOnANode(t *testing.T) {
	api := apitest.Start(t, apitest.Options{})
	node := newTestNode(t, api)

	web := node.createPod("web", "mkdir -p /www && echo hello from $HOSTNAME > /www/index.html && exec httpd -f -p 8080 -h /www",
		func(p *corev1.Pod) {
			p.Spec.Containers[0].Ports = []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}
			p.Spec.Containers[0].ReadinessProbe = &corev1.Probe{PeriodSeconds: 1, FailureThreshold: 1,
				ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/index.html", Port: intstr.FromString("http")}}}
		})
	web = node.waitPod("web", "Running and Ready", podReady)
	ip := netip.MustParseAddr(web.Status.PodIP)
	if !node.cidr.Contains(ip) || len(web.Status.PodIPs) != 1 || web.Status.HostIP != node.cfg.NodeIP {
		t.Errorf("pod IP %s not in %s (podIPs %v, hostIP %s)", ip, node.cidr, web.Status.PodIPs, web.Status.HostIP)
	}
	if out, _ := node.exec(web, "hostname"); strings.TrimSpace(out) != "web" {
		t.Errorf("hostname in the pod: %q", out)
	}
	if out, _ := node.exec(web, "cat", "/etc/hosts"); !strings.Contains(out, ip.String()+"\tweb") {
		t.Errorf("/etc/hosts: %q", out)
	}

	client := node.createPod("client", `trap "exit 0" TERM; while true; do sleep 1; done`)
	client = node.waitPod("client", "Running", podReady)
	if client.Status.PodIP == web.Status.PodIP {
		t.Fatalf("two pods share %s", client.Status.PodIP)
	}
	out, code := node.exec(client, "wget", "-q", "-O", "-", "http://"+ip.String()+":8080/index.html")
	if code != 0 || strings.TrimSpace(out) != "hello from web" {
		t.Errorf("pod to pod: %d %q", code, out)
	}
	env, _ := node.exec(client, "env")
	for _, want := range []string{"HOSTNAME=client", "KUBERNETES_SERVICE_HOST=10.96.0.1", "KUBERNETES_SERVICE_PORT=443",
		"KUBERNETES_PORT=tcp://10.96.0.1:443", "KUBERNETES_PORT_443_TCP_ADDR=10.96.0.1", "KUBERNETES_SERVICE_PORT_HTTPS=443"} {
		if !strings.Contains(env, want+"\n") {
			t.Errorf("env lacks %s:\n%s", want, env)
		}
	}

	// Readiness follows the probe.
	node.exec(web, "mv", "/www/index.html", "/www/x")
	node.waitPod("web", "not Ready", func(p *corev1.Pod) bool { return !podReady(p) && p.Status.Phase == corev1.PodRunning })
	node.exec(web, "mv", "/www/x", "/www/index.html")
	node.waitPod("web", "Ready again", podReady)

	// A failing command crash-loops with restarts counted.
	node.createPod("crash", "echo bye > /dev/termination-log; exit 3")
	crash := node.waitPod("crash", "CrashLoopBackOff", func(p *corev1.Pod) bool {
		cs := p.Status.ContainerStatuses
		return len(cs) == 1 && cs[0].State.Waiting != nil && cs[0].State.Waiting.Reason == "CrashLoopBackOff" && cs[0].RestartCount >= 1
	})
	if last := crash.Status.ContainerStatuses[0].LastTerminationState.Terminated; last == nil || last.ExitCode != 3 || last.Reason != "Error" || last.Message != "bye\n" {
		t.Errorf("last state: %+v", last)
	}

	// Graceful deletion: stopped, detached, removed, gone.
	if err := api.Client.CoreV1().Pods("default").Delete(context.Background(), "client", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	apitest.WaitFor(t, 30*time.Second, "client pod object gone", func() bool {
		_, err := node.pods().Get(context.Background(), "client", metav1.GetOptions{})
		return err != nil
	})
	var left []string
	apitest.WaitFor(t, 10*time.Second, "nothing of the client pod left", func() bool {
		left = node.leftovers(string(client.UID))
		return len(left) == 0
	})
	if left := node.leftovers(string(web.UID)); len(left) < 2 {
		t.Errorf("the web pod lost things: %q", left)
	}

	// What happened is in the pods' events.
	for pod, reasons := range map[string][]string{
		"web":    {"Pulled", "Created", "Started"},
		"crash":  {"BackOff"},
		"client": {"Killing"},
	} {
		apitest.WaitFor(t, 10*time.Second, pod+" events "+strings.Join(reasons, ","), func() bool {
			evs, err := api.Client.CoreV1().Events("default").List(context.Background(), metav1.ListOptions{})
			if err != nil {
				return false
			}
			seen := map[string]bool{}
			for _, e := range evs.Items {
				if e.InvolvedObject.Name == pod && e.Source.Component == "kubelet" {
					seen[e.Reason] = true
				}
			}
			for _, r := range reasons {
				if !seen[r] {
					return false
				}
			}
			return true
		})
	}
}

// A hostPort reaches the pod through the chained portmap plugin: here at
// the bridge's address, which is the node's own.
func TestHostPort(t *testing.T) {
	api := apitest.Start(t, apitest.Options{})
	node := newTestNode(t, api)
	node.createPod("hp", "mkdir -p /www && echo via hostPort > /www/index.html && exec httpd -f -p 80 -h /www", func(p *corev1.Pod) {
		p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 80, HostPort: 18080, Protocol: corev1.ProtocolTCP}}
	})
	pod := node.waitPod("hp", "Running", podReady)
	gw := node.cidr.Addr().Next()
	var body string
	apitest.WaitFor(t, 10*time.Second, "the pod through its hostPort", func() bool {
		resp, err := (&http.Client{Timeout: time.Second}).Get(fmt.Sprintf("http://%s:18080/index.html", gw))
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
		return true
	})
	if strings.TrimSpace(body) != "via hostPort" {
		t.Errorf("body %q", body)
	}
	if err := api.Client.CoreV1().Pods("default").Delete(context.Background(), "hp", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	apitest.WaitFor(t, 30*time.Second, "hp cleaned up", func() bool { return len(node.leftovers(string(pod.UID))) == 0 })
	if nat, _ := exec.Command("iptables-save", "-t", "nat").Output(); strings.Contains(string(nat), pod.Status.PodIP+":80") {
		t.Errorf("port mapping left after deletion:\n%s", nat)
	}
}

// An agent restarted while pods run adopts them: the same containers and
// IPs, no restarts, no second CNI ADD (one veth and one reservation per
// pod), Ready throughout.
func TestAgentRestart(t *testing.T) {
	api := apitest.Start(t, apitest.Options{})
	node := newTestNode(t, api)
	// Ten pods, as issue 4 asks.
	var names []string
	for i := range 10 {
		names = append(names, fmt.Sprintf("p%d", i))
	}
	for _, n := range names {
		node.createPod(n, `trap "exit 0" TERM; while true; do sleep 1; done`, func(p *corev1.Pod) {
			p.Spec.Containers[0].ReadinessProbe = &corev1.Probe{PeriodSeconds: 1,
				ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"true"}}}}
		})
	}
	before := map[string]*corev1.Pod{}
	for _, n := range names {
		before[n] = node.waitPod(n, "Ready", podReady)
	}
	countLinks := func() int {
		out, _ := exec.Command("ip", "-o", "link", "show", "master", node.cfg.CNIBridge).Output()
		return strings.Count(string(out), "\n")
	}
	if n := countLinks(); n != len(names) {
		t.Fatalf("%d veths before the restart", n)
	}

	// The new agent settles: every pod synced and probed by it, then
	// synced once more (so whatever the probes found is in the status).
	node.stop()
	prog := newProgress()
	node.cfg.hooks = prog.hooks()
	node.start()
	var uids []types.UID
	for _, n := range names {
		uids = append(uids, before[n].UID)
	}
	apitest.WaitFor(t, 30*time.Second, "every pod synced and probed by the new agent", func() bool {
		return prog.all(uids, func(syncs, probes int) bool { return syncs > 0 && probes > 0 })
	})
	base := prog.syncCounts()
	node.agent.pods.mu.Lock()
	for _, w := range node.agent.pods.workers {
		w.wake()
	}
	node.agent.pods.mu.Unlock()
	apitest.WaitFor(t, 30*time.Second, "a sync of every pod after its probes", func() bool {
		return prog.all(uids, func(syncs, _ int) bool { return syncs > 0 }) && prog.syncedSince(base, uids)
	})
	for _, n := range names {
		p := node.waitPod(n, "Ready after the restart", podReady)
		b, a := before[n].Status, p.Status
		if a.PodIP != b.PodIP || a.ContainerStatuses[0].ContainerID != b.ContainerStatuses[0].ContainerID ||
			a.ContainerStatuses[0].RestartCount != 0 || !a.StartTime.Equal(b.StartTime) {
			t.Errorf("%s changed: IP %s → %s, container %s → %s, restarts %d", n, b.PodIP, a.PodIP,
				b.ContainerStatuses[0].ContainerID, a.ContainerStatuses[0].ContainerID, a.ContainerStatuses[0].RestartCount)
		}
		if c := findCondition(p.Status.Conditions, corev1.PodReady); !c.LastTransitionTime.Equal(&findCondition(before[n].Status.Conditions, corev1.PodReady).LastTransitionTime) {
			t.Errorf("%s: Ready flapped (transition at %v)", n, c.LastTransitionTime)
		}
	}
	if n := countLinks(); n != len(names) {
		t.Errorf("%d veths after the restart", n)
	}
	res, _ := filepath.Glob(filepath.Join(node.cfg.StateDir, "ipam", "10.*"))
	if len(res) != len(names) {
		t.Errorf("reservations after the restart: %q", res)
	}
}

// Pods deleted while the agent was down are cleaned up when it starts.
func TestCleanupAfterDowntime(t *testing.T) {
	api := apitest.Start(t, apitest.Options{})
	node := newTestNode(t, api)
	pod := node.createPod("ghost", `trap "exit 0" TERM; while true; do sleep 1; done`)
	node.waitPod("ghost", "Running", podReady)
	node.stop()
	if err := api.Client.CoreV1().Pods("default").Delete(context.Background(), "ghost",
		metav1.DeleteOptions{GracePeriodSeconds: ptr.To(int64(0))}); err != nil {
		t.Fatal(err)
	}
	if left := node.leftovers(string(pod.UID)); len(left) == 0 {
		t.Fatal("nothing to clean up: the test is broken")
	}
	node.start()
	var left []string
	apitest.WaitFor(t, 30*time.Second, "the deleted pod cleaned up", func() bool {
		left = node.leftovers(string(pod.UID))
		return len(left) == 0
	})
}

// A hostNetwork pod runs in the node's network namespace with the node's
// IP, and no CNI attachment.
func TestHostNetworkPod(t *testing.T) {
	api := apitest.Start(t, apitest.Options{})
	node := newTestNode(t, api)
	node.createPod("hostnet", `trap "exit 0" TERM; while true; do sleep 1; done`, func(p *corev1.Pod) { p.Spec.HostNetwork = true })
	p := node.waitPod("hostnet", "Running", podReady)
	if p.Status.PodIP != node.cfg.NodeIP {
		t.Errorf("podIP %s, want the node's %s", p.Status.PodIP, node.cfg.NodeIP)
	}
	linkNames := func(out string) []string {
		var names []string
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			if f := strings.Fields(l); len(f) > 1 {
				names = append(names, f[1])
			}
		}
		return names
	}
	in, _ := node.exec(p, "ip", "-o", "link")
	host, _ := exec.Command("ip", "-o", "link").Output()
	if !slices.Equal(linkNames(in), linkNames(string(host))) {
		t.Errorf("links in the pod %q, on the node %q", linkNames(in), linkNames(string(host)))
	}
	if left := node.leftovers(string(p.UID)); slices.ContainsFunc(left, func(s string) bool { return strings.HasPrefix(s, "ipam") }) {
		t.Errorf("a hostNetwork pod got an address: %q", left)
	}
}

// An image that cannot be pulled (no network here) waits in
// ErrImagePull / ImagePullBackOff with the registry's error, and the
// agent goes on with other pods.
func TestImagePullOffline(t *testing.T) {
	api := apitest.Start(t, apitest.Options{})
	node := newTestNode(t, api)
	node.createPod("nopull", "true", func(p *corev1.Pod) { p.Spec.Containers[0].Image = "registry.example/nothing:1" })
	p := node.waitPod("nopull", "ErrImagePull or ImagePullBackOff", func(p *corev1.Pod) bool {
		cs := p.Status.ContainerStatuses
		return len(cs) == 1 && cs[0].State.Waiting != nil &&
			(cs[0].State.Waiting.Reason == "ErrImagePull" || cs[0].State.Waiting.Reason == "ImagePullBackOff")
	})
	if w := p.Status.ContainerStatuses[0].State.Waiting; w.Reason == "ErrImagePull" && !strings.Contains(w.Message, "registry.example") {
		t.Errorf("message: %q", w.Message)
	}
	if p.Status.Phase != corev1.PodPending {
		t.Errorf("phase %s", p.Status.Phase)
	}
	node.createPod("fine", "sleep 1000")
	node.waitPod("fine", "Ready", podReady)
}

// nodeState is what pods could leak on a node, for before/after checks.
func (n *testNode) nodeState() map[string][]string {
	s := map[string][]string{}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	for _, l := range strings.Split(string(mounts), "\n") {
		if f := strings.Fields(l); len(f) > 4 {
			s["mounts"] = append(s["mounts"], f[4])
		}
	}
	links, _ := exec.Command("ip", "-o", "link", "show", "type", "veth").Output()
	for _, l := range strings.Split(strings.TrimSpace(string(links)), "\n") {
		if f := strings.Fields(l); len(f) > 1 {
			s["veths"] = append(s["veths"], f[1])
		}
	}
	for name, glob := range map[string]string{
		"ipam":       filepath.Join(n.cfg.StateDir, "ipam", "1*"),
		"containers": filepath.Join(n.rt.Config().Root, "containers", "*"),
		"runc":       filepath.Join(n.cfg.RunDir, "runc", "*"),
		"netns":      filepath.Join(n.cfg.RunDir, "netns", "*"),
		"sandboxes":  filepath.Join(n.cfg.RunDir, "sandboxes", "*"),
		"pods":       filepath.Join(n.cfg.StateDir, "pods", "*"),
		"logs":       filepath.Join(n.cfg.StateDir, "logs", "*"),
		"cni-cache":  filepath.Join(n.cfg.StateDir, "cni-cache", "*", "*"),
	} {
		s[name], _ = filepath.Glob(glob)
	}
	// Only this test's shims: other test packages run their own at the
	// same time, each in a network namespace of its own.
	ownNet, _ := os.Readlink("/proc/self/ns/net")
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		netns, _ := os.Readlink(filepath.Join(filepath.Dir(p), "ns", "net"))
		if cmd, err := os.ReadFile(p); err == nil && bytes.HasPrefix(cmd, []byte("kite-runtime-shim")) && netns == ownNet {
			s["shims"] = append(s["shims"], string(cmd))
		}
	}
	for _, v := range s {
		slices.Sort(v)
	}
	return s
}

// 200 pods created and deleted, half gracefully and half by force, in
// batches of 10, leave the node as it was.
func TestCreateDeleteCycles(t *testing.T) {
	if testing.Short() {
		t.Skip("200 pods: not in -short")
	}
	api := apitest.Start(t, apitest.Options{})
	node := newTestNode(t, api)
	node.createPod("warm", "sleep 1")
	node.waitPod("warm", "started", func(p *corev1.Pod) bool { return p.Status.PodIP != "" })
	api.Client.CoreV1().Pods("default").Delete(context.Background(), "warm", metav1.DeleteOptions{GracePeriodSeconds: ptr.To(int64(0))})
	apitest.WaitFor(t, 30*time.Second, "warm-up pod cleaned up", func() bool { return len(node.nodeState()["pods"]) == 0 })
	before := node.nodeState()
	ctx := context.Background()
	for batch := range 20 {
		var names []string
		for i := range 10 {
			name := fmt.Sprintf("cyc-%d-%d", batch, i)
			names = append(names, name)
			node.createPod(name, `trap "exit 0" TERM; while true; do sleep 1; done`)
		}
		for _, name := range names {
			node.waitPod(name, "Ready", podReady)
		}
		for i, name := range names {
			opts := metav1.DeleteOptions{}
			if i%2 == 1 {
				opts.GracePeriodSeconds = ptr.To(int64(0))
			}
			if err := api.Client.CoreV1().Pods("default").Delete(ctx, name, opts); err != nil {
				t.Fatal(err)
			}
		}
		apitest.WaitFor(t, 60*time.Second, "batch deleted", func() bool {
			l, err := api.Client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
			return err == nil && len(l.Items) == 0
		})
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		after, diff := node.nodeState(), ""
		for k, v := range before {
			if !slices.Equal(v, after[k]) {
				diff += fmt.Sprintf("%s: before %q after %q\n", k, v, after[k])
			}
		}
		if diff == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the node changed:\n%s", diff)
		}
	}
}

// S6 on one node with kite's kuard demo image (needs bin/kite: make
// build): kuard Ready behind its readiness probe; from a second pod,
// /env/api shows the kuard pod's HOSTNAME and the kubernetes Service
// variables, and the request page shows the client pod's own IP (no NAT);
// readiness switched off and on through kuard's API follows into Ready.
func TestKuardS6(t *testing.T) {
	kite, err := filepath.Abs("../../bin/kite")
	if err == nil {
		err = exec.Command(kite, "kuard", "--help").Run()
	}
	if err != nil {
		t.Skipf("no kite binary with kuard at %s (make build): %v", kite, err)
	}
	api := apitest.Start(t, apitest.Options{})
	node := newTestNodeWith(t, api, kite)
	kuard := func(p *corev1.Pod) {
		p.Spec.Containers[0].Image = "gcr.io/kuar-demo/kuard-amd64:1"
		p.Spec.Containers[0].Command = nil
		p.Spec.Containers[0].Ports = []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}
		p.Spec.Containers[0].ReadinessProbe = &corev1.Probe{PeriodSeconds: 1, FailureThreshold: 1,
			ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/ready", Port: intstr.FromInt32(8080)}}}
	}
	node.createPod("kuard", "", kuard)
	srv := node.waitPod("kuard", "Ready", podReady)
	node.createPod("shell", `trap "exit 0" TERM; while true; do sleep 1; done`, func(p *corev1.Pod) {
		p.Spec.Containers[0].Image = "gcr.io/kuar-demo/kuard-amd64:1"
	})
	shell := node.waitPod("shell", "Ready", podReady)
	url := "http://" + srv.Status.PodIP + ":8080"

	out, code := node.exec(shell, "wget", "-q", "-O", "-", url+"/env/api")
	var env struct {
		CommandLine []string          `json:"commandLine"`
		Env         map[string]string `json:"env"`
	}
	if err := json.Unmarshal([]byte(out), &env); err != nil || code != 0 {
		t.Fatalf("/env/api: %d %q: %v", code, out, err)
	}
	if env.Env["HOSTNAME"] != "kuard" || env.Env["KUBERNETES_SERVICE_HOST"] != "10.96.0.1" ||
		env.Env["KUBERNETES_PORT"] != "tcp://10.96.0.1:443" || !slices.Equal(env.CommandLine, []string{"/kuard"}) {
		t.Errorf("/env/api: %+v", env)
	}
	// The image's /kuard is the host's kite binary itself (bound over the
	// layer's copy), so that its pages are the ones every kite process
	// already has in memory.
	var host unix.Stat_t
	if err := unix.Stat(kite, &host); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"/kuard", "/kite"} {
		if got, _ := node.exec(shell, "stat", "-L", "-c", "%d:%i", f); strings.TrimSpace(got) != fmt.Sprintf("%d:%d", host.Dev, host.Ino) {
			t.Errorf("%s in the pod is file %q, not the host's kite binary %d:%d", f, strings.TrimSpace(got), host.Dev, host.Ino)
		}
	}
	if page, _ := node.exec(shell, "wget", "-q", "-O", "-", url+"/"); !strings.Contains(page, shell.Status.PodIP) {
		t.Errorf("the request page does not show the client's IP %s:\n%s", shell.Status.PodIP, page)
	}
	node.exec(shell, "wget", "-q", "-O", "-", "--post-data=", url+"/ready/fail")
	node.waitPod("kuard", "not Ready", func(p *corev1.Pod) bool { return !podReady(p) })
	node.exec(shell, "wget", "-q", "-O", "-", "--post-data=", url+"/ready/ok")
	node.waitPod("kuard", "Ready again", podReady)
}

// progress counts the pod workers' completed syncs and probe attempts
// (through the agent's test hooks).
type progress struct {
	mu            sync.Mutex
	syncs, probes map[types.UID]int
}

func newProgress() *progress {
	return &progress{syncs: map[types.UID]int{}, probes: map[types.UID]int{}}
}

func (p *progress) hooks() *testHooks {
	count := func(m map[types.UID]int) func(types.UID) {
		return func(uid types.UID) {
			p.mu.Lock()
			defer p.mu.Unlock()
			m[uid]++
		}
	}
	return &testHooks{synced: count(p.syncs), probed: count(p.probes)}
}

// all: cond holds for every pod's counts.
func (p *progress) all(uids []types.UID, cond func(syncs, probes int) bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, u := range uids {
		if !cond(p.syncs[u], p.probes[u]) {
			return false
		}
	}
	return true
}

func (p *progress) syncCounts() map[types.UID]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return maps.Clone(p.syncs)
}

// syncedSince: every pod completed a sync since base was taken.
func (p *progress) syncedSince(base map[types.UID]int, uids []types.UID) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, u := range uids {
		if p.syncs[u] <= base[u] {
			return false
		}
	}
	return true
}

// The reference bridge + host-local plugins (Debian's
// containernetworking-plugins) instead of kite's: a conflist put first in
// the node's conf dir is the one pods get (as with kubelet, the first
// file in lexical order). Two pods take addresses from host-local, reach
// each other over the reference bridge, and their deletion releases the
// addresses and removes their veths.
func TestReferenceBridgeConflist(t *testing.T) {
	for _, p := range []string{"bridge", "host-local", "portmap"} {
		if _, err := os.Stat(filepath.Join(referenceCNIBinDir, p)); err != nil {
			t.Skipf("no reference %s plugin in %s (Debian: containernetworking-plugins)", p, referenceCNIBinDir)
		}
	}
	api := apitest.Start(t, apitest.Options{})
	node := newTestNode(t, api)
	bridge := fmt.Sprintf("rb%d", node.n)
	leases := filepath.Join(t.TempDir(), "host-local")
	t.Cleanup(func() { exec.Command("ip", "link", "del", bridge).Run() })
	conf := fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": "reference",
  "plugins": [
    {"type": "bridge", "bridge": %q, "isGateway": true, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": %q}]], "routes": [{"dst": "0.0.0.0/0"}], "dataDir": %q}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}`, bridge, node.cidr.String(), leases)
	if err := os.MkdirAll(node.cfg.CNIConfDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(node.cfg.CNIConfDir, "05-reference.conflist"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}

	node.createPod("ref-web", `mkdir -p /www && echo hello from ref-web > /www/index.html && exec httpd -f -p 8080 -h /www`)
	node.createPod("ref-client", `trap "exit 0" TERM; while true; do sleep 1; done`)
	web := node.waitPod("ref-web", "Ready", podReady)
	client := node.waitPod("ref-client", "Ready", podReady)
	for _, p := range []*corev1.Pod{web, client} {
		ip, err := netip.ParseAddr(p.Status.PodIP)
		if err != nil || !node.cidr.Contains(ip) {
			t.Fatalf("%s has IP %q, want one of %s", p.Name, p.Status.PodIP, node.cidr)
		}
		if _, err := os.Stat(filepath.Join(leases, "reference", p.Status.PodIP)); err != nil {
			t.Errorf("%s's address %s is not host-local's: %v", p.Name, p.Status.PodIP, err)
		}
	}
	if out, _ := exec.Command("ip", "-o", "link", "show", "master", bridge).Output(); strings.Count(string(out), "\n") != 2 {
		t.Errorf("veths on the reference bridge %s:\n%s", bridge, out)
	}
	var out string
	apitest.WaitFor(t, 20*time.Second, "the client reaching the web pod over the reference bridge", func() bool {
		out, _ = node.exec(client, "wget", "-q", "-O", "-", "http://"+web.Status.PodIP+":8080/")
		return strings.Contains(out, "hello from ref-web")
	})

	for _, name := range []string{"ref-web", "ref-client"} {
		if err := api.Client.CoreV1().Pods("default").Delete(context.Background(), name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To(int64(1))}); err != nil {
			t.Fatal(err)
		}
	}
	apitest.WaitFor(t, 30*time.Second, "both pods gone, their addresses released and veths removed", func() bool {
		for _, name := range []string{"ref-web", "ref-client"} {
			if _, err := node.pods().Get(context.Background(), name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				return false
			}
		}
		for _, ip := range []string{web.Status.PodIP, client.Status.PodIP} {
			if _, err := os.Stat(filepath.Join(leases, "reference", ip)); err == nil {
				return false
			}
		}
		out, _ := exec.Command("ip", "-o", "link", "show", "master", bridge).Output()
		return strings.TrimSpace(string(out)) == ""
	})
	for _, p := range []*corev1.Pod{web, client} {
		if left := node.leftovers(string(p.UID)); len(left) > 0 {
			t.Errorf("%s left behind: %q", p.Name, left)
		}
	}
}

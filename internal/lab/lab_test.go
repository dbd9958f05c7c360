package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// kiteBin is the kite binary the lab's nodes run: $KITE_BIN, default
// ../../bin/kite (`make build`).
func kiteBin(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("KITE_BIN")
	if bin == "" {
		bin = "../../bin/kite"
	}
	abs, err := filepath.Abs(bin)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(abs); err != nil || st.Mode()&0o111 == 0 {
		t.Fatalf("kite binary %s is missing or not executable: run `make build` in the repository root first (or set KITE_BIN)", abs)
	}
	return abs
}

var hostOnce sync.Once

// labHost prepares this test process's private namespace as the labs'
// host: /run/netns private to it (so `ip netns add` pins never reach the
// machine's /run/netns), and a HOME of its own for the user's kubeconfig.
func labHost(t *testing.T) (home string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	hostOnce.Do(func() {
		if !isMountPoint(netnsDir) {
			if err := os.MkdirAll(netnsDir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := unix.Mount("tmpfs", netnsDir, "tmpfs", 0, "mode=0755"); err != nil {
				t.Fatal(err)
			}
		}
	})
	home = t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("KUBECONFIG", "")
	// kubectl's discovery cache would otherwise go to ~/.kube/cache,
	// which `kite down` rightly leaves alone.
	t.Setenv("KUBECACHEDIR", t.TempDir())
	return home
}

// testWriter sends progress to the test log, line by line.
type testWriter struct {
	t   *testing.T
	mu  sync.Mutex
	buf bytes.Buffer
	all bytes.Buffer
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.all.Write(p)
	w.buf.Write(p)
	for {
		line, err := w.buf.ReadString('\n')
		if err != nil {
			w.buf.WriteString(line)
			return len(p), nil
		}
		w.t.Log(strings.TrimRight(line, "\n"))
	}
}

func (w *testWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.all.String()
}

// run runs a command and returns its output, failing the test on error.
func run(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// inNode runs a command inside a lab node the way `kite node shell NODE --
// CMD` does.
func inNode(t *testing.T, cfg Config, node string, args ...string) string {
	t.Helper()
	cmd, err := NodeCommand(cfg, node, args)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, nil, nil
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kite node shell %s -- %s: %v\n%s", node, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// hostState is what a lab may change on its host, as text to compare:
// everything named or placed as the given clusters would name or place it
// (the tests may share their namespace with other packages' tests, under
// hack/netns.sh).
type hostState struct {
	Netns, Links, Mounts, NFT, Procs, Cgroups []string
}

// labScope describes what could belong to the test's clusters.
type labScope struct {
	names     map[string]bool // node namespaces and links
	stateDirs []string
	cgroups   []string // glob patterns of the clusters' cgroups
	// Other test packages run labs with the same names at the same time,
	// each in network namespaces of its own: a process is this test's only
	// in this test's own network namespace or in one of its nodes'.
	ownNet nsID
	nets   map[nsID]bool
}

func newLabScope(clusters map[string]int, stateDirs ...string) labScope {
	s := labScope{names: map[string]bool{}, stateDirs: stateDirs, nets: map[nsID]bool{}}
	s.ownNet, _ = nsOf("/proc/self/ns/net")
	for name, nodes := range clusters {
		s.names[bridgePrefix+name] = true
		s.names[name+"-lb"] = true
		s.names[vethName(name, lbVethIndex)] = true
		for i := range nodes {
			s.names[nodeName(name, i)] = true
			s.names[vethName(name, i)] = true
		}
		// The cluster's state dir is given, or its parent.
		for _, d := range stateDirs {
			for _, sd := range []string{d, filepath.Join(d, name)} {
				s.cgroups = append(s.cgroups, "/sys/fs/cgroup/*"+(&Cluster{Name: name, StateDir: sd}).cgroupRoot())
			}
		}
	}
	return s
}

// adopt records the network namespaces of a running cluster's nodes.
func (s labScope) adopt(cl *Cluster) {
	for _, n := range cl.netNamespaces() {
		if id, ok := nsOf(cl.netnsPin(n.Name)); ok && isNSFS(cl.netnsPin(n.Name)) {
			s.nets[id] = true
		}
	}
}

// ownsProcess: the process runs in this test's namespaces and belongs to
// its clusters.
func (s labScope) ownsProcess(pid int, text string) bool {
	id, ok := nsOf(fmt.Sprintf("/proc/%d/ns/net", pid))
	if !ok || (id != s.ownNet && !s.nets[id]) {
		return false
	}
	return s.mentions(text) || s.nets[id]
}

func (s labScope) mentions(text string) bool {
	for _, d := range s.stateDirs {
		if strings.Contains(text, d) {
			return true
		}
	}
	for n := range s.names {
		if strings.Contains(text, "/"+n) || strings.Contains(text, " "+n+" ") {
			return true
		}
	}
	return strings.Contains(text, helperName)
}

func snapshot(t *testing.T, scope labScope) hostState {
	t.Helper()
	var s hostState
	entries, _ := os.ReadDir(netnsDir)
	for _, e := range entries {
		if scope.names[e.Name()] {
			s.Netns = append(s.Netns, e.Name())
		}
	}
	for _, l := range strings.Split(strings.TrimSpace(run(t, nil, "ip", "-o", "link", "show")), "\n") {
		if f := strings.Fields(l); len(f) > 1 {
			if name := strings.TrimSuffix(strings.SplitN(f[1], "@", 2)[0], ":"); scope.names[name] {
				s.Links = append(s.Links, name)
			}
		}
	}
	mounts, err := readMountinfo("self")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range mounts {
		if line := m.Point + " " + m.FSType + " " + m.Source + " " + m.Root; m.FSType == "nsfs" && scope.mentions(line) || scope.mentions(m.Point) {
			s.Mounts = append(s.Mounts, line)
		}
	}
	for _, table := range strings.Split(strings.TrimSpace(run(t, nil, "nft", "list", "tables")), "\n") {
		if strings.Contains(table, "kite") {
			s.NFT = append(s.NFT, table)
		}
	}
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid := atoi(p.Name())
		if pid == 0 || pid == os.Getpid() {
			continue
		}
		cmdline, _ := os.ReadFile("/proc/" + p.Name() + "/cmdline")
		text := " " + strings.ReplaceAll(string(cmdline), "\x00", " ") + " "
		if st, _, _, err := procStat(pid); err == nil && st != 'Z' && scope.ownsProcess(pid, text) {
			s.Procs = append(s.Procs, text)
		}
	}
	for _, pattern := range scope.cgroups {
		matches, _ := filepath.Glob(pattern)
		s.Cgroups = append(s.Cgroups, matches...)
	}
	for _, l := range [][]string{s.Netns, s.Links, s.Mounts, s.NFT, s.Procs, s.Cgroups} {
		sort.Strings(l)
	}
	return s
}

// nodeNamespaces are the namespaces of a cluster's nodes, to check that
// no process is left in them.
func nodeNamespaces(cl *Cluster) map[nsID]bool {
	nss := map[nsID]bool{}
	for _, n := range cl.Nodes {
		for _, p := range []string{cl.mntPin(n.Name), cl.netnsPin(n.Name)} {
			if id, ok := nsOf(p); ok && isNSFS(p) {
				nss[id] = true
			}
		}
	}
	return nss
}

func atoi(s string) int {
	var n int
	fmt.Sscan(s, &n)
	return n
}

// kubectl runs the real kubectl (compiled into kite) on the host, with the
// user's kubeconfig (the test's HOME).
func kubectl(t *testing.T, bin string, args ...string) string {
	t.Helper()
	return run(t, nil, bin, append([]string{"kubectl"}, args...)...)
}

// TestLab is the end-to-end tier of the lab: `kite up --nodes 3` in the
// test's private namespace, the cluster used from the host and from a node,
// a killed agent restarted, a second cluster beside it brought down and
// back (data kept) and brought back after a crash, and `kite down` leaving
// the host as it found it.
func TestLab(t *testing.T) {
	bin := kiteBin(t)
	home := labHost(t)
	ctx := context.Background()
	out := &testWriter{t: t}
	states := t.TempDir()
	cfg := Config{Name: "kite", Nodes: 3, StateDir: filepath.Join(states, "kite"), Binary: bin, Wait: 60 * time.Second, Out: out}
	scope := newLabScope(map[string]int{"kite": 3, "two": 1}, states)
	before := snapshot(t, scope)
	downCfg := cfg
	downCfg.Purge = true
	t.Cleanup(func() { _ = Down(context.Background(), downCfg) })

	start := time.Now()
	if err := Up(ctx, cfg); err != nil {
		t.Fatalf("kite up: %v", err)
	}
	t.Logf("kite up --nodes 3: usable with 3 Ready nodes after %s", time.Since(start).Round(time.Millisecond))
	for _, re := range []string{`API server https://172\.30\.\d+\.2:6443 ready \(.*, at .*\)`, `3 node\(s\) Ready \(.*, at .*\)`} {
		if !regexp.MustCompile(re).MatchString(out.String()) {
			t.Errorf("kite up printed no line matching %q", re)
		}
	}
	cl, err := loadCluster(cfg.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	scope.adopt(cl)
	underlay := netip.MustParsePrefix(cl.Underlay)

	t.Run("nodes from the host", func(t *testing.T) {
		if got := strings.TrimSpace(kubectl(t, bin, "config", "current-context")); got != "kite" {
			t.Errorf("current context %q, want kite", got)
		}
		server := kubectl(t, bin, "config", "view", "-o", "jsonpath={.clusters[?(@.name==\"kite\")].cluster.server}")
		if server != "https://"+cl.ControlPlane().IP+":6443" {
			t.Errorf("kubeconfig server %q", server)
		}
		wide := kubectl(t, bin, "get", "nodes", "-o", "wide")
		t.Logf("kubectl get nodes -o wide:\n%s", wide)
		ips := strings.Fields(kubectl(t, bin, "get", "nodes", "-o", `jsonpath={.items[*].status.addresses[?(@.type=="InternalIP")].address}`))
		if len(ips) != 3 {
			t.Fatalf("InternalIPs %v, want 3", ips)
		}
		for _, ip := range ips {
			if !underlay.Contains(netip.MustParseAddr(ip)) || !strings.Contains(wide, ip) {
				t.Errorf("InternalIP %s not on the underlay %s (or not in -o wide)", ip, underlay)
			}
		}
		for _, n := range []string{"kite-control-plane", "kite-worker", "kite-worker2"} {
			if !regexp.MustCompile(`(?m)^` + n + `\s+Ready\s`).MatchString(wide) {
				t.Errorf("node %s not Ready in:\n%s", n, wide)
			}
		}
		if got := kubectl(t, bin, "get", "node", "kite-control-plane", "-o", "jsonpath={.metadata.labels}"); !strings.Contains(got, controlPlaneRole) {
			t.Errorf("control-plane labels %s", got)
		}
		netns := run(t, nil, "ip", "netns", "list")
		for _, n := range cl.Nodes {
			if !strings.Contains(netns, n.Name) {
				t.Errorf("ip netns list lacks %s:\n%s", n.Name, netns)
			}
		}
	})

	t.Run("pods across nodes", func(t *testing.T) {
		// S1, S4, S7: kuard pods spread over the nodes, each with an IP
		// in its node's pod CIDR, reachable from every node.
		kubectl(t, bin, "create", "deployment", "kuard", "--image=gcr.io/kuar-demo/kuard-amd64:1", "--replicas=6")
		deadline := time.Now().Add(90 * time.Second)
		var pods []string
		for {
			out := kubectl(t, bin, "get", "pods", "-l", "app=kuard", "-o",
				`jsonpath={range .items[*]}{.metadata.name} {.status.podIP} {.spec.nodeName} {.status.phase}{"\n"}{end}`)
			pods = nil
			for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
				if f := strings.Fields(l); len(f) == 4 && f[3] == "Running" {
					pods = append(pods, l)
				}
			}
			if len(pods) == 6 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("kuard pods not all Running within 90s:\n%s", out)
			}
			time.Sleep(200 * time.Millisecond)
		}
		cidrs := map[string]netip.Prefix{}
		for _, l := range strings.Split(strings.TrimSpace(kubectl(t, bin, "get", "nodes", "-o", `jsonpath={range .items[*]}{.metadata.name} {.spec.podCIDR}{"\n"}{end}`)), "\n") {
			f := strings.Fields(l)
			cidrs[f[0]] = netip.MustParsePrefix(f[1])
		}
		nodesUsed := map[string]bool{}
		for _, p := range pods {
			f := strings.Fields(p)
			name, ip, node := f[0], f[1], f[2]
			nodesUsed[node] = true
			if !cidrs[node].Contains(netip.MustParseAddr(ip)) {
				t.Errorf("pod %s IP %s is not in node %s's podCIDR %s", name, ip, node, cidrs[node])
			}
			for _, from := range []string{"kite-control-plane", "kite-worker", "kite-worker2"} {
				// Running is not listening yet (kuard has no readiness
				// probe): curl retries a refused connection, for up to
				// 20 s.
				body := inNode(t, cfg, from, "curl", "-s", "-m", "5", "--retry", "20", "--retry-delay", "1", "--retry-connrefused", "http://"+ip+":8080/env/api")
				if !strings.Contains(body, `"HOSTNAME":"`+name+`"`) {
					t.Errorf("curl %s:8080/env/api from %s: %q", ip, from, body)
				}
			}
		}
		if len(nodesUsed) < 2 {
			t.Errorf("pods on %d node(s), want them spread", len(nodesUsed))
		}
		kubectl(t, bin, "delete", "deployment", "kuard")
	})

	t.Run("node shell", func(t *testing.T) {
		shell := Config{} // the cluster from the node's name; state dir given as the test's
		shell.StateDir = cfg.StateDir
		got := inNode(t, shell, "kite-worker", "kubectl", "get", "nodes")
		if strings.Count(got, " Ready ") != 3 {
			t.Errorf("kubectl get nodes in kite-worker:\n%s", got)
		}
		if got := inNode(t, shell, "kite-worker", "sh", "-c", "hostname; echo $KUBECONFIG; pwd; ls /sys/class/net; ip -4 -o addr show dev eth0; ls ~/.kube /etc/kubernetes"); !strings.Contains(got, "kite-worker\n/etc/kubernetes/admin.conf\n/root\n") ||
			!strings.Contains(got, cl.Nodes[1].IP+"/24") || strings.Contains(got, cl.Bridge) || !strings.Contains(got, "config") || !strings.Contains(got, "admin.conf") {
			t.Errorf("inside kite-worker:\n%s", got)
		}
		// S7: kubectl there uses ~/.kube/config too.
		if got := inNode(t, shell, "kite-control-plane", "sh", "-c", "unset KUBECONFIG; kubectl get po -A -o wide; kubectl config current-context"); !strings.Contains(got, "kite") {
			t.Errorf("kubectl with ~/.kube/config in kite-control-plane:\n%s", got)
		}
		ls := inNode(t, shell, "kite-worker", "ls", "/opt/cni/bin")
		for _, p := range []string{"kite", "bridge", "host-local", "portmap"} {
			if _, err := os.Stat("/usr/lib/cni/" + p); (p == "kite" || err == nil) && !regexp.MustCompile(`(?m)^`+p+`$`).MatchString(ls) {
				t.Errorf("/opt/cni/bin in kite-worker lacks %s:\n%s", p, ls)
			}
		}
	})

	t.Run("conflist only in the node", func(t *testing.T) {
		conflist := "/etc/cni/net.d/10-kite.conflist"
		got := inNode(t, Config{StateDir: cfg.StateDir}, "kite-worker", "cat", conflist)
		if !strings.Contains(got, `"cniVersion"`) {
			t.Errorf("%s in kite-worker:\n%s", conflist, got)
		}
		if _, err := os.Stat(conflist); !os.IsNotExist(err) {
			t.Errorf("%s on the host: %v, want absent", conflist, err)
		}
		if _, err := os.Stat(cl.nodeHostPath("kite-worker", conflist)); err != nil {
			t.Errorf("not in the node's state directory: %v", err)
		}
		for _, d := range []string{"/etc/cni", "/opt/cni", "/var/lib/cni", "/etc/kubernetes"} {
			if _, err := os.Stat(d); err == nil {
				t.Logf("note: %s exists on this machine (not made by the lab: nodes mount over it)", d)
			}
		}
	})

	t.Run("killed agent restarts", func(t *testing.T) {
		rec, err := readProcRecord(cl.childRecord("kite-worker", "agent"))
		if err != nil || !rec.alive() {
			t.Fatalf("agent record %+v: %v", rec, err)
		}
		if err := syscall.Kill(rec.PID, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		killed := time.Now()
		deadline := time.Now().Add(10 * time.Second)
		for {
			now, err := readProcRecord(cl.childRecord("kite-worker", "agent"))
			if err == nil && now.PID != rec.PID && now.alive() {
				t.Logf("agent pid %d killed, restarted as pid %d after %s", rec.PID, now.PID, time.Since(killed).Round(time.Millisecond))
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("agent not restarted within 10s; log:\n%s", tail(cl.logFile("kite-worker", "agent")))
			}
			time.Sleep(20 * time.Millisecond)
		}
		if log := tail(cl.path("logs", "supervisor.log")); !strings.Contains(log, "restarting") {
			t.Errorf("supervisor log says nothing of the restart:\n%s", log)
		}
	})

	t.Run("up again", func(t *testing.T) {
		err := Up(ctx, Config{Name: "kite", StateDir: cfg.StateDir, Binary: bin, Out: out})
		if !IsAlreadyUp(err) || !strings.Contains(err.Error(), "nothing changed") {
			t.Fatalf("second kite up = %v, want already up", err)
		}
		t.Logf("second kite up: %v", err)
	})

	t.Run("second cluster", func(t *testing.T) {
		two := Config{Name: "two", Nodes: 1, Underlay: "172.31.200.0/24", StateDir: filepath.Join(states, "two"), Binary: bin, Wait: 60 * time.Second, Out: out}
		twoDown := two
		twoDown.Purge = true
		defer func() {
			if err := Down(ctx, twoDown); err != nil {
				t.Errorf("kite down --name two --purge: %v", err)
			}
			if _, err := os.Stat(two.StateDir); !os.IsNotExist(err) {
				t.Errorf("state dir after --purge: %v", err)
			}
		}()
		if err := Up(ctx, two); err != nil {
			t.Fatalf("kite up --name two: %v", err)
		}
		if got := strings.TrimSpace(kubectl(t, bin, "config", "current-context")); got != "kite-two" {
			t.Errorf("current context %q, want kite-two", got)
		}
		if got := kubectl(t, bin, "--context", "kite-two", "get", "nodes", "-o", "wide"); !strings.Contains(got, "two-control-plane") || !strings.Contains(got, "172.31.200.2") {
			t.Errorf("cluster two's nodes:\n%s", got)
		}
		if got := kubectl(t, bin, "--context", "kite", "get", "nodes"); strings.Count(got, " Ready ") != 3 {
			t.Errorf("cluster kite beside two:\n%s", got)
		}
		kubectl(t, bin, "--context", "kite-two", "create", "configmap", "keep-me", "--from-literal=a=b")

		// Down without --purge, then up: the same cluster, data kept.
		if err := Down(ctx, two); err != nil {
			t.Fatalf("kite down --name two: %v", err)
		}
		if got := kubectl(t, bin, "config", "get-contexts", "-o", "name"); strings.Contains(got, "kite-two") || !strings.Contains(got, "kite") {
			t.Errorf("contexts after kite down --name two: %q", got)
		}
		if got := kubectl(t, bin, "--context", "kite", "get", "nodes"); strings.Count(got, " Ready ") != 3 {
			t.Errorf("cluster kite after two is down:\n%s", got)
		}
		start := time.Now()
		if err := Up(ctx, Config{Name: "two", StateDir: two.StateDir, Binary: bin, Wait: 60 * time.Second, Out: out}); err != nil {
			t.Fatalf("kite up --name two, again: %v", err)
		}
		t.Logf("cluster two back in %s", time.Since(start).Round(time.Millisecond))
		if got := kubectl(t, bin, "--context", "kite-two", "get", "configmap", "keep-me", "-o", "jsonpath={.data.a}"); got != "b" {
			t.Errorf("configmap after down and up: %q", got)
		}
		if got := kubectl(t, bin, "--context", "kite-two", "get", "nodes", "-o", "wide"); !strings.Contains(got, "172.31.200.2") {
			t.Errorf("two's node after down and up:\n%s", got)
		}

		// Cluster two's own before/after: down leaves none of it.
		twoScope := newLabScope(map[string]int{"two": 1}, two.StateDir)
		if cl2, err := loadCluster(two.StateDir); err == nil {
			twoScope.adopt(cl2)
		}
		twoBefore := snapshot(t, twoScope)
		// The bridge and the veths of the node and of kite lb; the node's
		// and kite lb's namespaces; supervisor, server, agent, lb and more.
		if len(twoBefore.Links) != 3 || len(twoBefore.Netns) != 2 || len(twoBefore.Procs) < 4 {
			t.Errorf("cluster two seen on the host: %+v", twoBefore)
		}
		// A crash: the supervisor dies, its children run on unsupervised.
		// `kite up` finds the leftovers, removes them and starts again.
		cl2, _ := loadCluster(two.StateDir)
		sup, ok := cl2.supervisor()
		if !ok {
			t.Fatal("no supervisor for two")
		}
		syscall.Kill(sup.PID, syscall.SIGKILL)
		waitGone([]procRecord{sup}, 5*time.Second)
		if err := Up(ctx, Config{Name: "two", StateDir: two.StateDir, Binary: bin, Wait: 60 * time.Second, Out: out}); err != nil {
			t.Fatalf("kite up --name two after a crash: %v", err)
		}
		if !strings.Contains(out.String(), "found what an earlier run") {
			t.Error("kite up after the crash did not report the leftovers")
		}
	})

	nss := nodeNamespaces(cl)
	if len(nss) != 6 {
		t.Errorf("found %d node namespaces, want 6 (a network and a mount namespace per node)", len(nss))
	}
	start = time.Now()
	if err := Down(ctx, downCfg); err != nil {
		t.Fatalf("kite down --purge: %v", err)
	}
	t.Logf("kite down --purge of 3 nodes: %s", time.Since(start).Round(time.Millisecond))
	if left := processesIn(nss); len(left) > 0 {
		t.Errorf("processes left in the nodes' namespaces: %+v", left)
	}
	after := snapshot(t, scope)
	if diff := cmp.Diff(before, after); diff != "" {
		t.Errorf("host after kite down differs from before kite up (-before +after):\n%s", diff)
	}
	if _, err := os.Stat(filepath.Join(home, ".kube")); !os.IsNotExist(err) {
		t.Errorf("~/.kube after kite down: %v (kite up made it)", err)
	}
	if _, err := os.Stat(cfg.StateDir); !os.IsNotExist(err) {
		t.Errorf("state dir after kite down --purge: %v", err)
	}
	// Idempotent.
	if err := Down(ctx, downCfg); err != nil {
		t.Errorf("second kite down: %v", err)
	}
}

// tail is the end of a log file, for failure messages.
func tail(path string) string {
	data, _ := os.ReadFile(path)
	if len(data) > 3000 {
		data = data[len(data)-3000:]
	}
	return string(data)
}

// TestBadInput: a missing prerequisite, an overlapping CIDR and a bad
// name each get one clear sentence, and nothing is made.
func TestBadInput(t *testing.T) {
	bin := kiteBin(t)
	labHost(t)
	ctx := context.Background()

	t.Run("missing runc", func(t *testing.T) {
		// A PATH with every command but runc.
		dir := t.TempDir()
		for _, c := range []string{"ip", "nsenter", "unshare", "nft", "sh", "mount"} {
			p, err := exec.LookPath(c)
			if err != nil {
				t.Fatal(err)
			}
			os.Symlink(p, filepath.Join(dir, c))
		}
		t.Setenv("PATH", dir)
		state := filepath.Join(t.TempDir(), "x")
		err := Up(ctx, Config{Name: "x", StateDir: state, Binary: bin})
		if !IsPrereq(err) || !strings.Contains(err.Error(), "runc is missing") || !strings.Contains(err.Error(), "apt-get install runc") {
			t.Fatalf("kite up without runc = %v", err)
		}
		t.Logf("without runc: %v", err)
		if _, err := os.Stat(state); !os.IsNotExist(err) {
			t.Errorf("state dir made: %v", err)
		}
	})

	t.Run("overlapping CIDR", func(t *testing.T) {
		run(t, nil, "ip", "link", "add", "ovl-test", "type", "bridge")
		defer run(t, nil, "ip", "link", "del", "ovl-test")
		run(t, nil, "ip", "addr", "add", "10.96.7.1/24", "dev", "ovl-test")
		run(t, nil, "ip", "link", "set", "ovl-test", "up")
		linksBefore := run(t, nil, "ip", "-o", "link", "show")
		state := filepath.Join(t.TempDir(), "x")
		err := Up(ctx, Config{Name: "x", StateDir: state, Binary: bin})
		if err == nil || !strings.Contains(err.Error(), "--service-cidr 10.96.0.0/16 overlaps the host's") || !strings.Contains(err.Error(), "ovl-test") {
			t.Fatalf("kite up with 10.96.7.0/24 routed = %v", err)
		}
		t.Logf("overlap: %v", err)
		if _, err := os.Stat(state); !os.IsNotExist(err) {
			t.Errorf("state dir made: %v", err)
		}
		if got := run(t, nil, "ip", "-o", "link", "show"); got != linksBefore {
			t.Errorf("links changed:\n%s", got)
		}
		// The underlay too: the default pick avoids it, a given one is refused.
		err = Up(ctx, Config{Name: "x", StateDir: state, Binary: bin, ServiceCIDR: "10.97.0.0/16", Underlay: "10.96.7.0/24"})
		if err == nil || !strings.Contains(err.Error(), "--underlay 10.96.7.0/24 overlaps") {
			t.Errorf("kite up --underlay 10.96.7.0/24 = %v", err)
		}
	})

	t.Run("bad name", func(t *testing.T) {
		err := Up(ctx, Config{Name: "Not_OK", Binary: bin})
		if err == nil || !strings.Contains(err.Error(), "cluster name") {
			t.Errorf("kite up --name Not_OK = %v", err)
		}
	})

	t.Run("not root", func(t *testing.T) {
		// The real binary as nobody, from a directory nobody may read
		// (t.TempDir's parent is not).
		dir, err := os.MkdirTemp("", "kite-notroot-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		exe := filepath.Join(dir, "kite")
		data, err := os.ReadFile(bin)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(exe, data, 0o755); err != nil {
			t.Fatal(err)
		}
		state := filepath.Join(dir, "state")
		for _, args := range [][]string{{"up", "--name", "nr"}, {"down", "--name", "nr"}, {"node", "add", "--name", "nr"}} {
			cmd := exec.Command(exe, append(args, "--state-dir", state)...)
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
			cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() == 0 {
				t.Fatalf("kite %s as nobody: %v\n%s", args[0], err, out)
			}
			if lines := strings.Split(strings.TrimSpace(string(out)), "\n"); len(lines) != 1 || !strings.Contains(lines[0], "kite "+args[0]+" cannot run here") || !strings.Contains(lines[0], "root") || !strings.Contains(lines[0], "sudo") {
				t.Errorf("kite %s as nobody said %q, want one sentence on running it as root (sudo)", args[0], out)
			}
			t.Logf("kite %s as nobody: %s", args[0], strings.TrimSpace(string(out)))
		}
		if _, err := os.Stat(state); !os.IsNotExist(err) {
			t.Errorf("state dir made by kite up as nobody: %v", err)
		}
		if _, err := netlinkLinkExists(bridgePrefix + "nr"); err == nil {
			t.Errorf("link %s made by kite up as nobody", bridgePrefix+"nr")
		}
	})

	t.Run("down of nothing", func(t *testing.T) {
		var out bytes.Buffer
		if err := Down(ctx, Config{Name: "none", StateDir: filepath.Join(t.TempDir(), "none"), Out: &out}); err != nil || !strings.Contains(out.String(), "nothing to do") {
			t.Errorf("kite down of no cluster = %v, %q", err, out.String())
		}
	})
}

// TestPinMountNamespace: pinning a new mount namespace works whichever CPU
// it is first tried on (see runPinningMountNS for the kernel quirk this
// works around); the CPUs where a plain attempt fails are logged.
func TestPinMountNamespace(t *testing.T) {
	labHost(t)
	ctx := context.Background()
	dir := t.TempDir()
	if err := unix.Mount(dir, dir, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(dir, unix.MNT_DETACH)
	if err := unix.Mount("", dir, "", unix.MS_PRIVATE, ""); err != nil {
		t.Fatal(err)
	}
	pin := func(name string, run func(args ...string) error) error {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		err := run("unshare", "--mount="+p, "--propagation", "private", "true")
		if isNSFS(p) {
			unix.Unmount(p, unix.MNT_DETACH)
		}
		return err
	}
	for _, cpu := range allowedCPUs() {
		plain := pin(fmt.Sprintf("plain-%d", cpu), func(args ...string) error { return runOnCPU(ctx, cpu, args[0], args[1:]...) })
		t.Logf("CPU %d: plain pin: %v", cpu, plain)
		if err := pin(fmt.Sprintf("retry-%d", cpu), func(args ...string) error { return runPinningMountNS(ctx, cpu, func() {}, args[0], args[1:]...) }); err != nil {
			t.Errorf("CPU %d first: %v", cpu, err)
		}
	}
}

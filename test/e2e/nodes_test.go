package e2e

// Issue 6: `kite node add` and `kite node rm` grow and shrink a running
// lab. A node added is Ready, survives `kite down` + `kite up`, runs pods
// that pods on other nodes reach without NAT; removed, its pods are
// recreated elsewhere and nothing of it is left: no Node, link, network
// namespace, mount, process, cgroup or file, and no route to its pod CIDR
// on the other nodes.

import (
	"context"
	"fmt"
	"hash/fnv"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestNodeAddRemove(t *testing.T) {
	l := startLab(t, 2, "--route-pods")
	k := l.kubectl(t, kubectlVersions(t)[0], "default")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const added = "kite-worker2"

	out, err := l.kite(ctx, "node", "add", "--state-dir", l.state)
	if err != nil {
		t.Fatalf("kite node add: %v\n%s", err, out)
	}
	wantMatch(t, out, `Adding node kite-worker2 \(172\.30\.\d+\.4\)`, `node kite-worker2 Ready`, `Node kite-worker2 added to cluster "kite"`)
	veth := nodeVeth(t, l, added)

	readyNodes := func(t *testing.T) []string {
		return strings.Fields(k.run(t, "get", "nodes", "-o",
			`jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status} {end}`))
	}
	wantReady := []string{"kite-control-plane=True", "kite-worker=True", "kite-worker2=True"}
	if got := readyNodes(t); strings.Join(got, " ") != strings.Join(wantReady, " ") {
		t.Fatalf("nodes after kite node add: %v, want %v", got, wantReady)
	}
	out, err = l.kite(ctx, "status", "--state-dir", l.state)
	if err != nil {
		t.Fatalf("kite status: %v\n%s", err, out)
	}
	wantMatch(t, out, `(?m)^kite-worker2\s+172\.30\.\d+\.4\s+10\.244\.\d+\.0/24\s+True\s+agent pid \d+`)

	t.Run("the added node survives kite down and kite up", func(t *testing.T) {
		if out, err := l.kite(ctx, "down", "--state-dir", l.state); err != nil {
			t.Fatalf("kite down: %v\n%s", err, out)
		}
		if out, err := l.kite(ctx, "up", "--state-dir", l.state, "--wait", "60s"); err != nil {
			t.Fatalf("kite up: %v\n%s", err, out)
		}
		if got := readyNodes(t); strings.Join(got, " ") != strings.Join(wantReady, " ") {
			t.Fatalf("nodes after kite down + up: %v, want %v", got, wantReady)
		}
	})
	podCIDR := k.run(t, "get", "node", added, "-o", "jsonpath={.spec.podCIDR}")
	if !regexp.MustCompile(`^10\.244\.\d+\.0/24$`).MatchString(podCIDR) {
		t.Fatalf("pod CIDR of %s: %q", added, podCIDR)
	}
	hostRoutes := func() string {
		out, err := exec.Command("ip", "route", "show").CombinedOutput()
		if err != nil {
			t.Fatalf("ip route: %v\n%s", err, out)
		}
		return string(out)
	}
	waitFor(t, 30*time.Second, "a host route to "+podCIDR+" (--route-pods)", func() error {
		if routes := hostRoutes(); !strings.Contains(routes, podCIDR+" via ") {
			return fmt.Errorf("host routes:\n%s", routes)
		}
		return nil
	})

	t.Run("a name in use is refused and nothing is made", func(t *testing.T) {
		before, _ := os.ReadDir("/run/netns")
		out, err := l.kite(ctx, "node", "add", "kite-worker", "--state-dir", l.state)
		if err == nil || !regexp.MustCompile(`^error: cluster "kite" already has a node "kite-worker"\n$`).MatchString(out) {
			t.Errorf("kite node add kite-worker: %v\n%s", err, out)
		}
		if after, _ := os.ReadDir("/run/netns"); len(after) != len(before) {
			t.Errorf("network namespaces %d before, %d after", len(before), len(after))
		}
	})

	// A client pod away from the new node, then servers only on it:
	// cordoning steers the scheduler.
	k.run(t, "cordon", added)
	k.run(t, "create", "deployment", "client", "--image="+kuardImage1)
	wantMatch(t, k.run(t, "rollout", "status", "deployment/client", "--timeout="+rolloutTimeout), `successfully rolled out`)
	k.run(t, "uncordon", added)
	k.run(t, "cordon", "kite-control-plane", "kite-worker")
	k.run(t, "create", "deployment", "kuard", "--image="+kuardImage1, "--replicas=2")
	wantMatch(t, k.run(t, "rollout", "status", "deployment/kuard", "--timeout="+rolloutTimeout), `successfully rolled out`)
	k.run(t, "uncordon", "kite-control-plane", "kite-worker")
	client := podsOf(t, k, "app=client")[0]
	servers := podsOf(t, k, "app=kuard")
	for _, s := range servers {
		if s.node != added {
			t.Fatalf("kuard pod %s on %s, want it on %s", s.name, s.node, added)
		}
	}
	if client.node == added {
		t.Fatalf("client pod on %s, want it on another node", added)
	}

	t.Run("a pod on another node reaches a pod on the new node without NAT", func(t *testing.T) {
		out := k.run(t, "exec", client.name, "--", "wget", "-q", "-O", "-", fmt.Sprintf("http://%s:8080/?format=json", servers[0].ip))
		m := regexp.MustCompile(`"remoteIP": *"([^"]+)"`).FindStringSubmatch(out)
		if m == nil || m[1] != client.ip {
			t.Errorf("%s (%s on %s) → %s on %s: server saw %v, want %s", client.name, client.ip, client.node, servers[0].ip, added, m, client.ip)
		}
	})

	t.Run("the control-plane node and unknown nodes are refused", func(t *testing.T) {
		for node, want := range map[string]string{
			"kite-control-plane": `^error: kite-control-plane is the control-plane node of cluster "kite" and cannot be removed[^\n]*\n$`,
			"kite-nope":          `^error: cluster "kite" has no node "kite-nope" \(its nodes: kite-control-plane, kite-worker, kite-worker2\)\n$`,
		} {
			out, err := l.kite(ctx, "node", "rm", node, "--state-dir", l.state)
			if err == nil {
				t.Errorf("kite node rm %s succeeded:\n%s", node, out)
			}
			if !regexp.MustCompile(want).MatchString(out) {
				t.Errorf("kite node rm %s said %q, want a match for %s", node, out, want)
			}
		}
		if got := readyNodes(t); len(got) != 3 {
			t.Errorf("nodes after refused removals: %v", got)
		}
	})

	inNode := processesInNetns(t, filepath.Join("/run/netns", added))
	if len(inNode) == 0 {
		t.Fatalf("no process in %s's network namespace", added)
	}
	out, err = l.kite(ctx, "node", "rm", added, "--state-dir", l.state)
	if err != nil {
		t.Fatalf("kite node rm %s: %v\n%s", added, err, out)
	}
	wantMatch(t, out, `cordoned kite-worker2`, `deleted its \d+ pod\(s\)`, `Node kite-worker2 removed from cluster "kite"`)

	t.Run("the Node is gone and its pods run elsewhere", func(t *testing.T) {
		if got := readyNodes(t); strings.Join(got, " ") != "kite-control-plane=True kite-worker=True" {
			t.Errorf("nodes after kite node rm: %v", got)
		}
		wantMatch(t, k.run(t, "rollout", "status", "deployment/kuard", "--timeout="+rolloutTimeout), `successfully rolled out`)
		waitFor(t, 60*time.Second, "kuard pods Running on the remaining nodes", func() error {
			ps := podsOf(t, k, "app=kuard")
			if len(ps) != 2 {
				return fmt.Errorf("%d kuard pods: %v", len(ps), ps)
			}
			for _, p := range ps {
				if p.node == added || p.ip == "" {
					return fmt.Errorf("pod %s on %q with IP %q", p.name, p.node, p.ip)
				}
			}
			return nil
		})
	})

	t.Run("nothing of the node is left", func(t *testing.T) {
		if _, err := os.Lstat(filepath.Join("/run/netns", added)); err == nil {
			t.Errorf("/run/netns/%s is still there", added)
		}
		if _, err := os.Lstat(filepath.Join("/sys/class/net", veth)); err == nil {
			t.Errorf("link %s is still there", veth)
		}
		for _, p := range []string{filepath.Join(l.state, "nodes", added), filepath.Join(l.state, "ns", added+".mnt"),
			filepath.Join(l.state, "ns", added+".uts"), filepath.Join(l.state, "run", added+"-agent.json")} {
			if _, err := os.Lstat(p); err == nil {
				t.Errorf("%s is still there", p)
			}
		}
		mounts, err := os.ReadFile("/proc/self/mountinfo")
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(mounts), "\n") {
			if strings.Contains(line, added) {
				t.Errorf("mount left: %s", line)
			}
		}
		for pid, start := range inNode {
			if s, err := procStart(pid); err == nil && s == start {
				cmdline, _ := os.ReadFile(filepath.Join("/proc", pid, "cmdline"))
				t.Errorf("process %s of the node still runs: %s", pid, strings.ReplaceAll(string(cmdline), "\x00", " "))
			}
		}
		cgroup := labCgroup(l) + "/" + added
		if procs := processesInCgroup(t, cgroup); len(procs) > 0 {
			t.Errorf("processes left in cgroup %s: %v", cgroup, procs)
		}
		cgroups, _ := filepath.Glob("/sys/fs/cgroup/*" + cgroup)
		more, _ := filepath.Glob("/sys/fs/cgroup" + cgroup)
		if left := append(cgroups, more...); len(left) > 0 {
			t.Errorf("cgroups left: %v", left)
		}
		waitFor(t, 30*time.Second, "the host drops its route to "+podCIDR, func() error {
			if routes := hostRoutes(); strings.Contains(routes, podCIDR) {
				return fmt.Errorf("host routes:\n%s", routes)
			}
			return nil
		})
		for _, node := range []string{"kite-control-plane", "kite-worker"} {
			waitFor(t, 30*time.Second, node+" drops its route to "+podCIDR, func() error {
				if routes := l.nodeShell(t, node, "ip route"); strings.Contains(routes, podCIDR) {
					return fmt.Errorf("routes of %s:\n%s", node, routes)
				}
				return nil
			})
		}
	})

	t.Run("the next node added gets the freed name and address", func(t *testing.T) {
		out, err := l.kite(ctx, "node", "add", "--state-dir", l.state)
		if err != nil {
			t.Fatalf("kite node add: %v\n%s", err, out)
		}
		wantMatch(t, out, `Adding node kite-worker2 \(172\.30\.\d+\.4\)`)
		if got := readyNodes(t); strings.Join(got, " ") != strings.Join(wantReady, " ") {
			t.Errorf("nodes: %v, want %v", got, wantReady)
		}
	})
}

type podPlace struct{ name, ip, node string }

// podsOf lists the pods matching a selector with their IPs and nodes.
func podsOf(t *testing.T, k *kubectl, selector string) []podPlace {
	t.Helper()
	var ps []podPlace
	out := k.run(t, "get", "pods", "-l", selector, "-o",
		`jsonpath={range .items[*]}{.metadata.name} {.status.podIP} {.spec.nodeName} {.metadata.deletionTimestamp}{"\n"}{end}`)
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 3 {
			ps = append(ps, podPlace{f[0], f[1], f[2]})
		} else if len(f) == 2 { // not yet with an IP
			ps = append(ps, podPlace{name: f[0], node: f[1]})
		}
	}
	if len(ps) == 0 {
		t.Fatalf("no pods %s:\n%s", selector, out)
	}
	return ps
}

// processesInNetns maps the PIDs of the processes in the network
// namespace pinned at pin to their start times.
func processesInNetns(t *testing.T, pin string) map[string]string {
	t.Helper()
	var want unix.Stat_t
	if err := unix.Stat(pin, &want); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range entries {
		var st unix.Stat_t
		if unix.Stat(filepath.Join("/proc", e.Name(), "ns", "net"), &st) != nil || st.Ino != want.Ino || st.Dev != want.Dev {
			continue
		}
		if start, err := procStart(e.Name()); err == nil {
			out[e.Name()] = start
		}
	}
	return out
}

// procStart is a process's start time (field 22 of /proc/PID/stat), which
// tells it from a later process with its PID; a zombie (exited, not yet
// reaped) has none.
func procStart(pid string) (string, error) {
	data, err := os.ReadFile(filepath.Join("/proc", pid, "stat"))
	if err != nil {
		return "", err
	}
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 20 {
		return "", fmt.Errorf("/proc/%s/stat: %q", pid, s)
	}
	if f[0] == "Z" || f[0] == "X" {
		return "", fmt.Errorf("process %s has exited", pid)
	}
	return f[19], nil
}

// labCgroup is the lab's cgroup, /kite/<name>-<FNV-1a of its state dir>,
// as internal/lab names it: no other lab on the machine has it.
func labCgroup(l *lab) string {
	h := fnv.New32a()
	h.Write([]byte(l.state))
	return fmt.Sprintf("/kite/kite-%08x", h.Sum32())
}

// processesInCgroup lists the processes in cgroup (or below it), in any
// hierarchy.
func processesInCgroup(t *testing.T, cgroup string) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cgroup"))
		if err == nil && strings.Contains(string(data), cgroup) {
			out = append(out, e.Name())
		}
	}
	return out
}

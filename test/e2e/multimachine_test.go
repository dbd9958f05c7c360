package e2e

// Issue 6: a cluster across machines over a routed network, as README.md
// ("Several machines") says to make one. Two "machines" are network,
// mount and UTS namespaces on two subnets joined by a router namespace
// (forwarding on, no NAT); each has a lab node's file system with its own
// /var/lib/kite, /run, /etc/cni/net.d, /opt/cni/bin (`kite-lab machine`,
// the lab's node set-up). Machine A runs `kite server` and `kite agent`,
// machine B `kite agent --server https://A:6443 --token … --certificate-
// authority ca.crt --pod-network vxlan`. The test's own namespace is a
// third subnet on the router: the admin's machine running kubectl.
//
// Addresses (all inside namespaces this test makes):
//
//	192.168.10.0/24  machine A (.2), router (.1)
//	192.168.20.0/24  machine B (.2), router (.1)
//	192.168.30.0/24  the test's namespace (.2), router (.1)

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const (
	machineA, machineB = "machine-a", "machine-b"
	machineAIP         = "192.168.10.2"
	machineBIP         = "192.168.20.2"
	mmRouter           = "mm-router"
)

// mmNetwork is the routed network of the machines: one ip -batch for the
// test's namespace, one per namespace after it.
var mmNetwork = []struct{ netns, batch string }{
	{"", `netns add mm-router
netns add machine-a
netns add machine-b
link add mm-a type veth peer name eth0 netns machine-a
link add mm-b type veth peer name eth0 netns machine-b
link add mm-host type veth peer name eth2
link set mm-a netns mm-router
link set mm-b netns mm-router
link set eth2 netns mm-router
addr add 192.168.30.2/24 dev mm-host
link set mm-host up
route add 192.168.10.0/24 via 192.168.30.1
route add 192.168.20.0/24 via 192.168.30.1
`},
	{mmRouter, `link set lo up
link set mm-a name eth0
link set mm-b name eth1
addr add 192.168.10.1/24 dev eth0
addr add 192.168.20.1/24 dev eth1
addr add 192.168.30.1/24 dev eth2
link set eth0 up
link set eth1 up
link set eth2 up
`},
	{machineA, `link set lo up
addr add 192.168.10.2/24 dev eth0
link set eth0 up
route add default via 192.168.10.1
`},
	{machineB, `link set lo up
addr add 192.168.20.2/24 dev eth0
link set eth0 up
route add default via 192.168.20.1
`},
}

// machine is one namespace "machine": its network namespace, and the
// directory holding its own /var/lib/kite, /etc/cni/net.d, /opt/cni/bin, …
type machine struct {
	name, ip, root string
	procs          []*exec.Cmd
	logs           []string
}

func TestMultiMachine(t *testing.T) {
	privateNetnsDir(t)
	bin := kiteBin(t)
	dir := t.TempDir()
	helper := filepath.Join(dir, "kite-lab")
	if err := os.Symlink(bin, helper); err != nil {
		t.Fatal(err)
	}
	a := &machine{name: machineA, ip: machineAIP, root: filepath.Join(dir, machineA)}
	b := &machine{name: machineB, ip: machineBIP, root: filepath.Join(dir, machineB)}
	t.Cleanup(func() { removeMachines(t, a, b) })
	for _, step := range mmNetwork {
		args := []string{"-batch", "-"}
		if step.netns != "" {
			args = append([]string{"-n", step.netns}, args...)
		}
		c := exec.Command("ip", args...)
		c.Stdin = strings.NewReader(step.batch)
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	if out, err := exec.Command("ip", "netns", "exec", mmRouter, "sysctl", "-qw", "net.ipv4.ip_forward=1").CombinedOutput(); err != nil {
		t.Fatalf("router forwarding: %v\n%s", err, out)
	}
	// Each machine gets the kite CNI plugin in its /opt/cni/bin, as
	// README's install step puts it there.
	for _, m := range []*machine{a, b} {
		plugins := filepath.Join(m.root, "opt/cni/bin")
		for _, d := range []string{plugins, filepath.Join(m.root, "var/lib/kite")} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Symlink(bin, filepath.Join(plugins, "kite")); err != nil {
			t.Fatal(err)
		}
	}

	// Machine A: the server, then its own agent joining it like any
	// other machine's.
	a.start(t, helper, bin, "server", "--listen", "0.0.0.0:6443", "--advertise-address", machineAIP)
	pkiDir := filepath.Join(a.root, "var/lib/kite/server/pki")
	var token []byte
	waitFor(t, 60*time.Second, "the server's bootstrap token and CA", func() error {
		var err error
		if token, err = os.ReadFile(filepath.Join(pkiDir, "bootstrap.token")); err != nil {
			return err
		}
		_, err = os.Stat(filepath.Join(a.root, "var/lib/kite/server/admin.kubeconfig"))
		return err
	})
	// The CA goes to each machine as /var/lib/kite/ca.crt.
	ca, err := os.ReadFile(filepath.Join(pkiDir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []*machine{a, b} {
		if err := os.WriteFile(filepath.Join(m.root, "var/lib/kite/ca.crt"), ca, 0o644); err != nil {
			t.Fatal(err)
		}
		m.start(t, helper, bin, "agent", "--server", "https://"+machineAIP+":6443", "--token", strings.TrimSpace(string(token)),
			"--certificate-authority", "/var/lib/kite/ca.crt", "--node-name", m.name, "--node-ip", m.ip, "--pod-network", "vxlan")
	}

	k := kubectlFor(t, kubectlVersions(t)[0], filepath.Join(a.root, "var/lib/kite/server/admin.kubeconfig"), "default")
	waitFor(t, 90*time.Second, "both machines' Nodes Ready", func() error {
		r := k.try(t, nil, "", "get", "nodes", "-o", `jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status} {end}`)
		if got := strings.TrimSpace(r.stdout); r.err != nil || got != "machine-a=True machine-b=True" {
			return fmt.Errorf("nodes %q: %v %s", got, r.err, r.stderr)
		}
		return nil
	})
	wantMatch(t, k.run(t, "get", "nodes", "-o", `jsonpath={range .items[*]}{.metadata.name} {.status.addresses[?(@.type=="InternalIP")].address}{"\n"}{end}`),
		`(?m)^machine-a 192\.168\.10\.2$`, `(?m)^machine-b 192\.168\.20\.2$`)

	// One kuard pod on each machine: cordoning steers the scheduler.
	onMachine := func(deployment, node, other string) podPlace {
		t.Helper()
		k.run(t, "cordon", other)
		k.run(t, "create", "deployment", deployment, "--image="+kuardImage1)
		wantMatch(t, k.run(t, "rollout", "status", "deployment/"+deployment, "--timeout="+rolloutTimeout), `successfully rolled out`)
		k.run(t, "uncordon", other)
		p := podsOf(t, k, "app="+deployment)[0]
		if p.node != node {
			t.Fatalf("pod %s on %s, want it on %s", p.name, p.node, node)
		}
		return p
	}
	pa := onMachine("on-a", machineA, machineB)
	pb := onMachine("on-b", machineB, machineA)

	remoteIP := regexp.MustCompile(`"remoteIP": *"([^"]+)"`)
	t.Run("pods on two machines reach each other by pod IP, without NAT", func(t *testing.T) {
		for _, pair := range [][2]podPlace{{pa, pb}, {pb, pa}} {
			from, to := pair[0], pair[1]
			url := fmt.Sprintf("http://%s:8080/?format=json", to.ip)
			var out string
			waitFor(t, 30*time.Second, from.name+" → "+url, func() error {
				r := k.try(t, nil, "", "exec", from.name, "--", "wget", "-q", "-O", "-", url)
				out = r.stdout
				if r.err != nil {
					return fmt.Errorf("%w: %s%s", r.err, r.stdout, r.stderr)
				}
				return nil
			})
			if m := remoteIP.FindStringSubmatch(out); m == nil || m[1] != from.ip {
				t.Errorf("%s (%s on %s) → %s (on %s): server saw %v, want %s", from.name, from.ip, from.node, to.ip, to.node, m, from.ip)
			}
			env := k.run(t, "exec", from.name, "--", "wget", "-q", "-O", "-", fmt.Sprintf("http://%s:8080/env/api", to.ip))
			if !strings.Contains(env, `"HOSTNAME":"`+to.name+`"`) {
				t.Errorf("%s → %s:8080/env/api: %q, want HOSTNAME %s", from.name, to.ip, env, to.name)
			}
		}
	})
	t.Run("a ClusterIP Service across machines", func(t *testing.T) {
		k.run(t, "expose", "deployment", "on-b", "--port=80", "--target-port=8080")
		ip := k.run(t, "get", "service", "on-b", "-o", "jsonpath={.spec.clusterIP}")
		var env string
		waitFor(t, 30*time.Second, "ClusterIP "+ip+" from "+pa.name, func() error {
			r := k.try(t, nil, "", "exec", pa.name, "--", "wget", "-q", "-O", "-", "http://"+ip+"/env/api")
			env = r.stdout
			if r.err != nil {
				return fmt.Errorf("%w: %s%s", r.err, r.stdout, r.stderr)
			}
			return nil
		})
		if !strings.Contains(env, `"HOSTNAME":"`+pb.name+`"`) {
			t.Errorf("%s → ClusterIP %s: %q, want HOSTNAME %s", pa.name, ip, env, pb.name)
		}
	})
}

// TestMultiMachineREADME: README's commands for several machines are the
// ones TestMultiMachine runs.
func TestMultiMachineREADME(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(readme), "\\\n  ", "")
	for _, want := range []string{
		"kite server --listen 0.0.0.0:6443 --advertise-address " + machineAIP,
		"kite agent --server https://" + machineAIP + ":6443 --token <A's pki/bootstrap.token> --certificate-authority /var/lib/kite/ca.crt " +
			"--node-name <this machine's name> --node-ip <this machine's IP> --pod-network vxlan",
		"install -D bin/kite /opt/cni/bin/kite",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("README.md lacks %q", want)
		}
	}
}

// start runs a kite command inside the machine: its network namespace,
// and fresh mount and UTS namespaces set up by the lab's helper.
func (m *machine) start(t *testing.T, helper, bin string, args ...string) {
	t.Helper()
	log, err := os.Create(filepath.Join(filepath.Dir(m.root), m.name+"-"+args[0]+".log"))
	if err != nil {
		t.Fatal(err)
	}
	m.logs = append(m.logs, log.Name())
	defer log.Close()
	argv := append([]string{"--net=/run/netns/" + m.name, "--", "unshare", "--mount", "--uts", "--propagation", "private", "--",
		helper, "machine", m.root, m.name, "--", bin}, args...)
	c := exec.Command("nsenter", argv...)
	c.Stdout, c.Stderr = log, log
	c.Env = append(os.Environ(), "KUBECONFIG=")
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	go c.Wait() //nolint:errcheck // reaped here; removeMachines waits for it to go
	m.procs = append(m.procs, c)
}

// removeMachines stops everything the machines run (the processes the
// test started, and the containers below them: everything in the
// machines' network namespaces or their nodes' cgroups), then removes
// the namespaces and the cgroups.
func removeMachines(t *testing.T, ms ...*machine) {
	if t.Failed() {
		for _, m := range ms {
			for _, p := range m.logs {
				t.Logf("last lines of %s:\n%s", p, tail(p, 40))
			}
		}
	}
	for _, m := range ms {
		for _, c := range m.procs {
			_ = c.Process.Signal(syscall.SIGTERM)
		}
	}
	var pids []string
	for _, m := range ms {
		pin := filepath.Join("/run/netns", m.name)
		if _, err := os.Stat(pin); err == nil {
			for pid := range processesInNetns(t, pin) {
				pids = append(pids, pid)
			}
		}
		pids = append(pids, processesInCgroup(t, "/kite/"+m.name)...)
	}
	deadline := time.Now().Add(15 * time.Second)
	for _, pid := range pids {
		var n int
		fmt.Sscan(pid, &n)
		_ = syscall.Kill(n, syscall.SIGTERM)
	}
	for _, m := range ms {
		for time.Now().Before(deadline) && (len(processesInCgroup(t, "/kite/"+m.name)) > 0 || anyInNetns(t, m.name)) {
			time.Sleep(50 * time.Millisecond)
		}
		for _, pid := range append(processesInCgroup(t, "/kite/"+m.name), netnsPIDs(t, m.name)...) {
			var n int
			fmt.Sscan(pid, &n)
			_ = syscall.Kill(n, syscall.SIGKILL)
		}
	}
	for _, m := range ms {
		removeCgroupDirs(t, "/kite/"+m.name)
	}
	for _, ns := range []string{machineA, machineB, mmRouter} {
		if _, err := os.Stat(filepath.Join("/run/netns", ns)); err == nil {
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
				t.Errorf("ip netns del %s: %v\n%s", ns, err, out)
			}
		}
	}
	_ = exec.Command("ip", "link", "del", "mm-host").Run()
}

func netnsPIDs(t *testing.T, name string) []string {
	pin := filepath.Join("/run/netns", name)
	if _, err := os.Stat(pin); err != nil {
		return nil
	}
	var pids []string
	for pid := range processesInNetns(t, pin) {
		pids = append(pids, pid)
	}
	return pids
}

func anyInNetns(t *testing.T, name string) bool { return len(netnsPIDs(t, name)) > 0 }

// removeCgroupDirs removes a cgroup and its descendants in every
// hierarchy, deepest first.
func removeCgroupDirs(t *testing.T, cgroup string) {
	roots, _ := filepath.Glob("/sys/fs/cgroup/*" + cgroup)
	if _, err := os.Stat("/sys/fs/cgroup" + cgroup); err == nil {
		roots = append(roots, "/sys/fs/cgroup"+cgroup)
	}
	for _, r := range roots {
		var dirs []string
		_ = filepath.WalkDir(r, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
		for _, d := range dirs {
			if err := unix.Rmdir(d); err != nil && !os.IsNotExist(err) {
				t.Errorf("removing cgroup %s: %v", d, err)
			}
		}
	}
}

package lab

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"kite/internal/pki"
)

// ErrAlreadyUp means `kite up` found the cluster running; it changed
// nothing.
var ErrAlreadyUp = errors.New("lab cluster already up")

// IsAlreadyUp reports whether err is ErrAlreadyUp.
func IsAlreadyUp(err error) bool { return errors.Is(err, ErrAlreadyUp) }

// Up makes a lab cluster and starts it (see doc.go): it checks the machine
// and the address ranges first, so that bad input leaves nothing behind;
// makes the underlay and the nodes; starts the supervisor, which runs the
// server and the agents; merges the admin context into the user's
// kubeconfig; and waits up to cfg.Wait for the API and every Node to be
// Ready. A cluster that is down (or whose processes all died) is brought
// back from its state directory with the same addresses and data.
func Up(ctx context.Context, cfg Config) error {
	p := newProgress(cfg.Out)
	given := cfg
	cfg, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	p.w = cfg.Out
	if err := validateName(cfg.Name); err != nil {
		return err
	}
	warnings, err := checkPrereqs(ctx, cfg.Binary)
	if err != nil {
		return err
	}
	if err := checkBinaryVisible(cfg.Binary); err != nil {
		return err
	}

	cl, err := loadCluster(cfg.StateDir)
	fresh := IsNoCluster(err)
	switch {
	case err == nil:
		if r, ok := cl.supervisor(); ok {
			return fmt.Errorf("%w: cluster %q runs (supervisor pid %d, state in %s); nothing changed. `kite down%s` stops it",
				ErrAlreadyUp, cl.Name, r.PID, cl.StateDir, nameFlag(cl.Name))
		}
		if err := sameShape(given, cl); err != nil {
			return err
		}
		cl.Binary, cl.Helper, cl.Kubeconfig = cfg.Binary, cfg.Helper, cfg.Kubeconfig
	case IsNoCluster(err):
		if cl, err = newClusterChecked(cfg); err != nil {
			return err
		}
	default:
		return err
	}

	fmt.Fprintf(p.w, "Starting lab cluster %q: %d node(s) on %s, pods %s, services %s\n",
		cl.Name, len(cl.Nodes), cl.Underlay, cl.PodCIDR, cl.ServiceCIDR)
	for _, w := range warnings {
		fmt.Fprintf(p.w, " ! %s\n", w)
	}
	p.step("prerequisites")

	if err := makeStateDir(cl); err != nil {
		return err
	}
	unlock, err := lock(cl.StateDir)
	if err != nil {
		return err
	}
	defer unlock()
	// Under the lock: another `kite up` may have won the race.
	if r, ok := cl.supervisor(); ok {
		return fmt.Errorf("%w: cluster %q runs (supervisor pid %d)", ErrAlreadyUp, cl.Name, r.PID)
	}
	if leftovers(cl) {
		fmt.Fprintf(p.w, " ! found what an earlier run of %q left (its processes are gone): removing it first\n", cl.Name)
		if err := teardown(ctx, cl, io.Discard); err != nil {
			return fmt.Errorf("removing the leftovers of cluster %q: %w", cl.Name, err)
		}
	}
	if !fresh {
		// The host may have gained a route into the cluster's ranges
		// since it was made.
		if err := checkHostRanges(cl); err != nil {
			return err
		}
	}

	if err := bringUp(ctx, cl, p); err != nil {
		if fresh {
			unlock()
			err = errors.Join(err, purge(cl))
		}
		return err
	}
	return waitUsable(ctx, cl, cfg.Wait, p)
}

func nameFlag(name string) string {
	if name == DefaultName {
		return ""
	}
	return " --name " + name
}

// sameShape refuses flags that contradict what an existing cluster was
// made with (a zero field means "as before").
func sameShape(cfg Config, cl *Cluster) error {
	diff := func(flag, want, have string) error {
		if want != "" && want != have {
			return fmt.Errorf("cluster %q (%s) was made with %s %s, not %s: `kite down%s --purge` first to make it anew",
				cl.Name, cl.StateDir, flag, have, want, nameFlag(cl.Name))
		}
		return nil
	}
	var nodes error
	if cfg.Nodes != 0 && cfg.Nodes != len(cl.Nodes) {
		// Nodes come and go on a running cluster: say how.
		nodes = fmt.Errorf("cluster %q (%s) has %d nodes, not %d: `kite up%s` brings it back as it is, then `kite node add` or `kite node rm NODE` change it (or `kite down%s --purge` first to make it anew)",
			cl.Name, cl.StateDir, len(cl.Nodes), cfg.Nodes, nameFlag(cl.Name), nameFlag(cl.Name))
	}
	return errors.Join(
		diff("--name", cfg.Name, cl.Name),
		nodes,
		diff("--pod-cidr", cfg.PodCIDR, cl.PodCIDR),
		diff("--service-cidr", cfg.ServiceCIDR, cl.ServiceCIDR),
		diff("--underlay", cfg.Underlay, cl.Underlay),
		diff("--lb-pool", cfg.LBPool, cl.LBPool),
		diff("--lb-mode", cfg.LBMode, cmp.Or(cl.LBMode, LBModeLB)))
}

// newClusterChecked derives a new cluster from cfg after checking that its
// names are free and its ranges overlap nothing. It changes nothing.
func newClusterChecked(cfg Config) (*Cluster, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	// The names must be free: a bridge or namespace of this name made by
	// a cluster with another state directory is not ours to take.
	if _, err := netlinkLinkExists(bridgePrefix + cfg.Name); err == nil {
		return nil, fmt.Errorf("a link %s exists but %s records no cluster: is a cluster %q running with another --state-dir?",
			bridgePrefix+cfg.Name, cfg.StateDir, cfg.Name)
	}
	if exists(filepath.Join(netnsDir, nodeName(cfg.Name, 0))) {
		return nil, fmt.Errorf("a network namespace %s exists but %s records no cluster: is a cluster %q running with another --state-dir?",
			nodeName(cfg.Name, 0), cfg.StateDir, cfg.Name)
	}
	used, err := hostRanges()
	if err != nil {
		return nil, err
	}
	used = append(used, otherClusters(DefaultStateRoot, cfg.StateDir)...)
	pod, svc := netip.MustParsePrefix(cfg.PodCIDR), netip.MustParsePrefix(cfg.ServiceCIDR)
	if cfg.Underlay == "" {
		u, err := pickUnderlay(used, pod, svc)
		if err != nil {
			return nil, err
		}
		cfg.Underlay = u.String()
	}
	if err := checkOverlaps([]wanted{{"--underlay", netip.MustParsePrefix(cfg.Underlay)}, {"--pod-cidr", pod}, {"--service-cidr", svc}}, used); err != nil {
		return nil, err
	}
	return newCluster(cfg)
}

// checkHostRanges checks an existing cluster's ranges against the host
// again before it is brought back.
func checkHostRanges(cl *Cluster) error {
	used, err := hostRanges()
	if err != nil {
		return err
	}
	used = append(used, otherClusters(DefaultStateRoot, cl.StateDir)...)
	return checkOverlaps([]wanted{
		{"--underlay", netip.MustParsePrefix(cl.Underlay)},
		{"--pod-cidr", netip.MustParsePrefix(cl.PodCIDR)},
		{"--service-cidr", netip.MustParsePrefix(cl.ServiceCIDR)},
	}, used)
}

// checkBinaryVisible: the nodes run the kite binary by its path, resolved
// inside their mount namespaces, where the node's own directories hide
// the host's.
func checkBinaryVisible(bin string) error {
	real, err := filepath.EvalSymlinks(bin)
	if err != nil {
		return err
	}
	for _, p := range append(nodePaths, "/run", nodeBinDir) {
		if under(real, p) || under(bin, p) {
			return fmt.Errorf("the kite binary %s is under %s, which every node has its own of: install it elsewhere (e.g. /usr/local/bin)", bin, p)
		}
	}
	return nil
}

// makeStateDir makes the state directory, remembering which of its
// parents it had to make (for `kite down --purge`).
func makeStateDir(cl *Cluster) error {
	if exists(cl.StateDir) {
		return nil
	}
	var made []string
	for d := cl.StateDir; !exists(d); d = filepath.Dir(d) {
		made = append(made, d)
	}
	if err := os.MkdirAll(cl.StateDir, 0o755); err != nil {
		return err
	}
	cl.MadeDirs = made[1:] // the state dir itself goes anyway
	return nil
}

// lock takes an exclusive lock on the state directory for up and down.
func lock(dir string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s is locked: another kite up or kite down of this cluster is running", dir)
	}
	var once sync.Once
	return func() { once.Do(func() { f.Close() }) }, nil
}

// leftovers reports whether anything of the cluster exists on the host
// although its supervisor does not run.
func leftovers(cl *Cluster) bool {
	if _, err := netlinkLinkExists(cl.Bridge); err == nil {
		return true
	}
	for _, n := range cl.Nodes {
		if exists(cl.netnsPin(n.Name)) || exists(cl.mntPin(n.Name)) || exists(cl.childRecord(n.Name, "agent")) {
			return true
		}
	}
	if cl.LB != nil && (exists(cl.netnsPin(cl.LB.Name)) || exists(cl.childRecord(cl.LB.Name, "lb"))) {
		return true
	}
	return exists(cl.nsDir()) || exists(cl.supervisorRecord())
}

// bringUp makes the cluster's network, nodes and files and starts the
// supervisor. On failure it removes what it made.
func bringUp(ctx context.Context, cl *Cluster, p *progress) (err error) {
	defer func() {
		if err != nil {
			if terr := teardown(context.WithoutCancel(ctx), cl, io.Discard); terr != nil {
				err = errors.Join(err, fmt.Errorf("and removing what was made: %w", terr))
			}
		}
	}()
	if err := makeFiles(cl); err != nil {
		return err
	}
	netnsWasMount := isMountPoint(netnsDir)
	// Saved before anything is made, so that `kite down` can undo a
	// bring-up that crashed half-way.
	if err := cl.save(); err != nil {
		return err
	}
	if err := runCmd(ctx, hostUpBatch(cl), "ip", "-batch", "-"); err != nil {
		return fmt.Errorf("making the underlay and the node namespaces: %w", err)
	}
	if !netnsWasMount && isMountPoint(netnsDir) && !cl.MadeNetnsMount {
		cl.MadeNetnsMount = true
		if err := cl.save(); err != nil {
			return err
		}
	}
	for _, n := range cl.netNamespaces() {
		if err := runCmd(ctx, nodeUpBatch(cl, n), "ip", "-n", n.Name, "-batch", "-"); err != nil {
			return fmt.Errorf("node %s: network: %w", n.Name, err)
		}
	}
	p.step(fmt.Sprintf("underlay bridge %s %s/%d, node network namespaces", cl.Bridge, cl.Gateway, netip.MustParsePrefix(cl.Underlay).Bits()))
	if err := makeMountNamespaces(ctx, cl); err != nil {
		return err
	}
	var names []string
	for _, n := range cl.Nodes {
		names = append(names, fmt.Sprintf("%s %s", n.Name, n.IP))
	}
	p.step("nodes " + strings.Join(names, ", "))
	pid, err := startSupervisor(cl)
	if err != nil {
		return err
	}
	lb := ""
	if cl.LB != nil {
		lb = fmt.Sprintf(", kite lb on %s %s for LoadBalancers %s", cl.LB.Name, cl.LB.IP, cl.LBPool)
	} else if cl.LBMode == LBModeL2 {
		lb = fmt.Sprintf(", LoadBalancers %s announced by the nodes (L2)", cl.LBPool)
	}
	p.step(fmt.Sprintf("supervisor pid %d: kite server on %s, kite agent on every node%s (logs in %s)", pid, cl.ControlPlane().Name, lb, cl.logDir()))
	return nil
}

// makeFiles makes the state directory's tree: the helper link, the
// nodes' bin directory (kite, kubectl), and each node's own directories
// with /opt/cni/bin holding the kite plugin and the reference plugins.
func makeFiles(cl *Cluster) error {
	for _, d := range []string{cl.logDir(), cl.runDir(), cl.nsDir(), cl.nodeBinSource(), cl.imagesDir()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	links := map[string]string{
		cl.helperPath(): cl.Helper,
		filepath.Join(cl.nodeBinSource(), "kite"):    cl.Binary,
		filepath.Join(cl.nodeBinSource(), "kubectl"): cl.Binary,
	}
	refPlugins, _ := filepath.Glob("/usr/lib/cni/*")
	for _, n := range cl.Nodes {
		for _, p := range nodePaths {
			mode := os.FileMode(0o755)
			if p == "/root/.kube" {
				mode = 0o700
			}
			if err := os.MkdirAll(cl.nodeHostPath(n.Name, p), mode); err != nil {
				return err
			}
		}
		bin := cl.nodeHostPath(n.Name, "/opt/cni/bin")
		for _, plugin := range refPlugins {
			links[filepath.Join(bin, filepath.Base(plugin))] = plugin
		}
		links[filepath.Join(bin, "kite")] = cl.Binary
	}
	for link, target := range links {
		if cur, err := os.Readlink(link); err == nil && cur == target {
			continue
		}
		_ = os.Remove(link)
		if err := os.Symlink(target, link); err != nil {
			return err
		}
	}
	return nil
}

// makeMountNamespaces gives every node its mount and UTS namespaces,
// pinned as <state-dir>/ns/<node>.{mnt,uts}. The pins must sit on a mount
// that does not propagate (else the kernel refuses to pin a mount
// namespace, as it could loop), so ns/ is bound on itself, private.
func makeMountNamespaces(ctx context.Context, cl *Cluster) error {
	if !isMountPoint(cl.nsDir()) {
		if err := unix.Mount(cl.nsDir(), cl.nsDir(), "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("binding %s on itself: %w", cl.nsDir(), err)
		}
	}
	if err := unix.Mount("", cl.nsDir(), "", unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("making %s private: %w", cl.nsDir(), err)
	}
	errs := make([]error, len(cl.Nodes))
	var wg sync.WaitGroup
	for i, n := range cl.Nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = makeMountNamespace(ctx, cl, n)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func makeMountNamespace(ctx context.Context, cl *Cluster, n Node) error {
	for _, pin := range []string{cl.mntPin(n.Name), cl.utsPin(n.Name)} {
		if err := os.WriteFile(pin, nil, 0o600); err != nil {
			return err
		}
	}
	// nsenter puts unshare in the node's network namespace, so the sysfs
	// the helper mounts is the node's; unshare pins the new namespaces
	// from the host's mount namespace before the helper starts.
	args := []string{"--net=" + cl.netnsPin(n.Name), "--",
		"unshare", "--mount=" + cl.mntPin(n.Name), "--uts=" + cl.utsPin(n.Name), "--propagation", "private", "--",
		cl.helperPath(), "node-init", cl.StateDir, n.Name}
	// A failed attempt may have pinned the UTS namespace already.
	unpin := func() {
		for _, pin := range []string{cl.mntPin(n.Name), cl.utsPin(n.Name)} {
			_ = unmountPin(pin)
		}
	}
	if err := runPinningMountNS(ctx, -1, unpin, "nsenter", args...); err != nil {
		return fmt.Errorf("node %s: mount namespace: %w", n.Name, err)
	}
	return nil
}

// runPinningMountNS runs a command that pins a new mount namespace (on CPU
// first, or anywhere if first is -1), calling reset before each retry.
//
// Pinning a mount namespace is refused (EINVAL) unless the new
// namespace's ID is above that of the namespace binding it (the kernel's
// mnt_ns_loop check). Kernel 6.18 hands out those IDs per CPU, so a
// namespace made on another CPU than the host's may get a lower one:
// checked here, it failed every time on one CPU and never on the other.
// Made on the CPU the host's was made on it succeeds, so on EINVAL this
// tries each CPU in turn.
func runPinningMountNS(ctx context.Context, first int, reset func(), name string, args ...string) error {
	var err error
	if first < 0 {
		err = runCmd(ctx, "", name, args...)
	} else {
		err = runOnCPU(ctx, first, name, args...)
	}
	for _, cpu := range allowedCPUs() {
		if err == nil || !strings.Contains(err.Error(), "Invalid argument") {
			break
		}
		reset()
		err = runOnCPU(ctx, cpu, name, args...)
	}
	return err
}

// allowedCPUs lists the CPUs this process may run on.
func allowedCPUs() []int {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil
	}
	var cpus []int
	for i := 0; i < 8*int(unsafe.Sizeof(set)); i++ {
		if set.IsSet(i) {
			cpus = append(cpus, i)
		}
	}
	return cpus
}

// runOnCPU is runCmd with the command confined to one CPU: it is started
// from this goroutine's OS thread, locked and confined for the fork (the
// child inherits the thread's affinity), then restored.
func runOnCPU(ctx context.Context, cpu int, name string, args ...string) error {
	runtime.LockOSThread()
	var old, one unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		runtime.UnlockOSThread()
		return err
	}
	one.Set(cpu)
	if err := unix.SchedSetaffinity(0, &one); err != nil {
		runtime.UnlockOSThread()
		return err
	}
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Start()
	if unix.SchedSetaffinity(0, &old) == nil {
		runtime.UnlockOSThread() // else the thread ends with this goroutine
	}
	if err == nil {
		err = cmd.Wait()
	}
	if err != nil {
		return fmt.Errorf("%s %s (on CPU %d): %w: %s", name, strings.Join(args, " "), cpu, err, strings.TrimSpace(out.String()))
	}
	return nil
}

// startSupervisor starts the supervisor in its own session, so that it
// outlives `kite up` and the terminal, and records its PID.
func startSupervisor(cl *Cluster) (int, error) {
	logf, err := os.OpenFile(filepath.Join(cl.logDir(), "supervisor.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return 0, err
	}
	defer logf.Close()
	cmd := exec.Command(cl.helperPath(), "supervise", cl.StateDir)
	cmd.Args[0] = helperName
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("starting the supervisor: %w", err)
	}
	go cmd.Wait() // reap it, should it exit while this process lives
	r, err := newProcRecord(cmd.Process.Pid, "supervisor")
	if err != nil {
		return 0, fmt.Errorf("the supervisor exited at once: see %s", logf.Name())
	}
	return r.PID, writeProcRecord(cl.supervisorRecord(), r)
}

// runCmd runs a command with stdin, returning its stderr in the error.
func runCmd(ctx context.Context, stdin, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// isMountPoint reports whether p is a mount point in this process's mount
// namespace.
func isMountPoint(p string) bool {
	mounts, err := readMountinfo("self")
	if err != nil {
		return false
	}
	for _, m := range mounts {
		if m.Point == p {
			return true
		}
	}
	return false
}

// progress prints one line per step of `kite up`, with the step's time and
// the time since the start.
type progress struct {
	w           io.Writer
	start, last time.Time
}

func newProgress(w io.Writer) *progress {
	if w == nil {
		w = io.Discard
	}
	now := time.Now()
	return &progress{w: w, start: now, last: now}
}

func (p *progress) step(msg string) {
	now := time.Now()
	fmt.Fprintf(p.w, " ✓ %s (%s, at %s)\n", msg, roundDur(now.Sub(p.last)), roundDur(now.Sub(p.start)))
	p.last = now
}

func roundDur(d time.Duration) time.Duration {
	if d < 10*time.Millisecond {
		return d.Round(100 * time.Microsecond)
	}
	return d.Round(time.Millisecond)
}

// mergeUserKubeconfig merges the cluster's context into the user's
// kubeconfig and makes it current, remembering whether the file (and its
// directories) had to be made.
func mergeUserKubeconfig(cl *Cluster) error {
	if !exists(cl.Kubeconfig) {
		cl.MadeKubeconfig = true
		cl.MadeKubeconfigDirs = nil
		for d := filepath.Dir(cl.Kubeconfig); !exists(d); d = filepath.Dir(d) {
			cl.MadeKubeconfigDirs = append(cl.MadeKubeconfigDirs, d)
		}
	}
	if err := pki.MergeKubeconfig(cl.Kubeconfig, cl.hostKubeconfig(), true); err != nil {
		return err
	}
	return cl.save()
}

package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Down stops a lab cluster and removes everything it made on the host —
// processes, namespaces, links, mounts, the kubeconfig context — and
// nothing else. It works from the state directory alone, so it also
// cleans up after a crash, and it is idempotent: with nothing to do it
// says so and succeeds. Without cfg.Purge the cluster's data (etcd, PKI,
// node directories, logs) stays for the next `kite up`.
func Down(ctx context.Context, cfg Config) error {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	if err := validateName(cfg.Name); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return &PrereqError{Command: "kite down", Problems: []string{"it must run as root: run it with sudo"}}
	}
	cl, err := loadCluster(cfg.StateDir)
	if IsNoCluster(err) {
		fmt.Fprintf(cfg.Out, "No lab cluster %q (nothing recorded in %s): nothing to do.\n", cfg.Name, cfg.StateDir)
		if _, lerr := netlinkLinkExists(bridgePrefix + cfg.Name); lerr == nil {
			fmt.Fprintf(cfg.Out, " ! a link %s exists: was the cluster made with another --state-dir?\n", bridgePrefix+cfg.Name)
		}
		return nil
	}
	if err != nil {
		return err
	}
	if cl.Name != cfg.Name {
		return fmt.Errorf("%s holds cluster %q, not %q: give --name %s", cl.StateDir, cl.Name, cfg.Name, cl.Name)
	}
	unlock, err := lock(cl.StateDir)
	if err != nil {
		return err
	}
	defer unlock()
	start := time.Now()
	if err := teardown(ctx, cl, cfg.Out); err != nil {
		return err
	}
	if cfg.Purge {
		unlock()
		if err := purge(cl); err != nil {
			return err
		}
		fmt.Fprintf(cfg.Out, "Cluster %q removed, its data too (%s).\n", cl.Name, roundDur(time.Since(start)))
		return nil
	}
	fmt.Fprintf(cfg.Out, "Cluster %q is down (%s); its data stays in %s for the next `kite up%s` (`kite down%s --purge` removes it).\n",
		cl.Name, roundDur(time.Since(start)), cl.StateDir, nameFlag(cl.Name), nameFlag(cl.Name))
	return nil
}

// teardown undoes a bring-up, whatever part of it happened: processes
// first (nothing may hold what is removed next), then the mount and UTS
// namespace pins, the network namespaces and links, the user's kubeconfig
// context, and the state directory's runtime files. It goes on past
// failures and reports them all.
func teardown(ctx context.Context, cl *Cluster, out io.Writer) error {
	var errs []error
	note := func(format string, args ...any) { fmt.Fprintf(out, " ✓ "+format+"\n", args...) }

	// 1. The supervisor stops its children itself.
	if r, err := readProcRecord(cl.supervisorRecord()); err == nil && r.alive() {
		if err := stopProcess(r, stopGrace+5*time.Second); err != nil {
			errs = append(errs, err)
		}
		note("stopped the supervisor (pid %d)", r.PID)
	}
	// 2. After a crash, children may have outlived it; and whatever runs
	// inside a node (container shims, containers) goes too.
	nss := map[nsID]bool{}
	for _, n := range cl.netNamespaces() {
		for _, p := range []string{cl.mntPin(n.Name), cl.netnsPin(n.Name)} {
			if id, ok := nsOf(p); ok && id.ino != 0 && isNSFS(p) {
				nss[id] = true
			}
		}
	}
	var kite []procRecord
	for _, n := range cl.netNamespaces() {
		for _, role := range []string{"server", "agent", "lb"} {
			if r, ok := cl.running(n.Name, role); ok {
				kite = append(kite, r)
			}
		}
	}
	if len(kite) > 0 {
		if err := killAll(kite, 5*time.Second); err != nil {
			errs = append(errs, err)
		}
		note("stopped %d kite process(es) that outlived the supervisor", len(kite))
	}
	// The pods' processes and their shims are killed outright, as
	// `docker rm -f` ends a kind node: the cluster is going away, and a
	// container's graceful shutdown (kite-dns's lame duck is 5 s) would
	// only delay that. `kite up` starts the pods again.
	if rest := processesIn(nss); len(rest) > 0 {
		if err := killAll(rest, 0); err != nil {
			errs = append(errs, err)
		}
		note("stopped %d process(es) left in the nodes (pods)", len(rest))
	}
	// 3. Namespace pins in the state directory: with no process left in
	// them, unmounting a pin frees its namespace and every mount in it.
	for _, n := range cl.Nodes {
		for _, p := range []string{cl.mntPin(n.Name), cl.utsPin(n.Name)} {
			errs = append(errs, unmountAndRemove(p))
		}
	}
	if isMountPoint(cl.nsDir()) {
		if err := unix.Unmount(cl.nsDir(), unix.MNT_DETACH); err != nil {
			errs = append(errs, fmt.Errorf("unmounting %s: %w", cl.nsDir(), err))
		}
	}
	if err := os.Remove(cl.nsDir()); err != nil && !os.IsNotExist(err) {
		errs = append(errs, err)
	}
	errs = append(errs, removeCgroups(cl))
	// 4. Network namespaces and links.
	links := map[string]bool{}
	if ls, err := netlink.LinkList(); err == nil {
		for _, l := range ls {
			links[l.Attrs().Name] = true
		}
	}
	netns := map[string]bool{}
	for _, n := range cl.netNamespaces() {
		netns[n.Name] = exists(cl.netnsPin(n.Name))
	}
	if batch := hostDownBatch(cl, links, netns); batch != "" {
		if err := runCmd(ctx, batch, "ip", "-force", "-batch", "-"); err != nil {
			errs = append(errs, err)
		}
		note("removed the node namespaces and the underlay %s", cl.Bridge)
	}
	if cl.MadeNetnsMount {
		if entries, err := os.ReadDir(netnsDir); err == nil && len(entries) == 0 && isMountPoint(netnsDir) {
			errs = append(errs, unix.Unmount(netnsDir, unix.MNT_DETACH))
		}
	}
	// 5. The user's kubeconfig context.
	if cl.Kubeconfig != "" {
		removed, err := removeContext(cl.Kubeconfig, cl.Context, cl.APIServer(), cl.MadeKubeconfig)
		errs = append(errs, err)
		if removed {
			note("removed context %q from %s", cl.Context, cl.Kubeconfig)
			if cl.MadeKubeconfig && !exists(cl.Kubeconfig) {
				for _, d := range cl.MadeKubeconfigDirs {
					_ = os.Remove(d) // only if empty
				}
			}
		}
	}
	// 6. Runtime files; the data stays.
	for _, p := range []string{cl.runDir(), cl.path("bin"), cl.hostKubeconfig()} {
		errs = append(errs, os.RemoveAll(p))
	}
	return errors.Join(errs...)
}

// removeCgroups removes the nodes' cgroups, /kite/<node> in every cgroup
// hierarchy (where the agents put their containers), now that no process
// is left in them; and /kite itself if nothing else is in it.
func removeCgroups(cl *Cluster) error {
	mounts, err := readMountinfo("self")
	if err != nil {
		return err
	}
	var errs []error
	for _, m := range mounts {
		if m.FSType != "cgroup" && m.FSType != "cgroup2" {
			continue
		}
		errs = append(errs, removeCgroupTree(filepath.Join(m.Point, cl.cgroupRoot())))
		_ = os.Remove(filepath.Join(m.Point, cgroupTop))
	}
	return errors.Join(errs...)
}

// removeCgroupTree removes a cgroup and its descendants, deepest first
// (a cgroup directory holds only files, which rmdir ignores, and
// sub-cgroups).
func removeCgroupTree(dir string) error {
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.IsDir() {
			if err := removeCgroupTree(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	// A process just killed still holds its cgroup until it is reaped
	// (by init, once its shim died with it): EBUSY for a moment.
	deadline := time.Now().Add(cgroupBusyWait)
	for {
		err := unix.Rmdir(dir)
		switch {
		case err == nil || errors.Is(err, unix.ENOENT):
			return nil
		case errors.Is(err, unix.EBUSY) && time.Now().Before(deadline):
			time.Sleep(cgroupBusyPoll)
		default:
			return fmt.Errorf("removing cgroup %s: %w", dir, err)
		}
	}
}

// How long removing a cgroup waits for its last processes to be reaped.
const (
	cgroupBusyWait = 5 * time.Second
	cgroupBusyPoll = 20 * time.Millisecond
)

// purge removes the state directory and the parents `kite up` made for it.
func purge(cl *Cluster) error {
	if err := os.RemoveAll(cl.StateDir); err != nil {
		return err
	}
	dirs := append([]string(nil), cl.MadeDirs...)
	sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
	for _, d := range dirs {
		_ = os.Remove(d) // only if empty: another cluster may live there
	}
	return nil
}

// unmountAndRemove unmounts a namespace pin (if mounted) and removes it.
func unmountAndRemove(p string) error {
	if err := unmountPin(p); err != nil {
		return err
	}
	return removeIfExists(p)
}

// unmountPin unmounts whatever namespaces are pinned on p (a retried pin
// may have stacked two).
func unmountPin(p string) error {
	for i := 0; isNSFS(p); i++ {
		if err := unix.Unmount(p, unix.MNT_DETACH); err != nil || i == 10 {
			return fmt.Errorf("unmounting %s: %w", p, err)
		}
	}
	return nil
}

// isNSFS reports whether p is a namespace file (a pin), not the empty
// file it is mounted on.
func isNSFS(p string) bool {
	var st unix.Statfs_t
	return unix.Statfs(p, &st) == nil && st.Type == unix.NSFS_MAGIC
}

func netlinkLinkExists(name string) (netlink.Link, error) { return netlink.LinkByName(name) }

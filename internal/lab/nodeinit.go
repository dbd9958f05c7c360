package lab

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// nodeInit runs as the node helper (helper.go) inside a node's network
// namespace, in the fresh mount and UTS namespaces `unshare` made for it and
// pinned in the state directory. It gives the node its own file system
// view and exits; the namespaces live on through their pins.
//
// Order matters: every source is opened before anything is mounted over
// the paths that lead to it (a state directory under /var/lib would
// otherwise be reached through the node's overlay of /var/lib).
func nodeInit(stateDir, node string) error {
	cl, err := loadCluster(stateDir)
	if err != nil {
		return err
	}
	if _, ok := cl.Node(node); !ok {
		return fmt.Errorf("no node %q in %s", node, stateDir)
	}
	if err := initNodeFS(node, nodeMounts(cl, node)); err != nil {
		return fmt.Errorf("node %s: %w", node, err)
	}
	return nil
}

// machineExec makes a namespace "machine" for tests of kite across
// machines (test/e2e/multimachine_test.go): run in fresh network, mount
// and UTS namespaces, it gives them the file system of a lab node whose
// own directories (nodePaths) are root/<path>, and becomes argv.
func machineExec(root, hostname string, argv []string) error {
	var specs []mountSpec
	for _, p := range nodePaths {
		src := filepath.Join(root, p)
		if err := os.MkdirAll(src, 0o755); err != nil {
			return err
		}
		specs = append(specs, mountSpec{Source: src, Target: p})
	}
	if err := initNodeFS(hostname, specs); err != nil {
		return fmt.Errorf("machine %s: %w", hostname, err)
	}
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return err
	}
	return syscall.Exec(path, argv, os.Environ())
}

// initNodeFS gives the calling process's fresh mount and UTS namespaces
// a node's hostname and file system: specs bound over the host's
// directories (see doc.go).
func initNodeFS(node string, specs []mountSpec) error {
	if err := unix.Sethostname([]byte(node)); err != nil {
		return fmt.Errorf("hostname: %w", err)
	}
	mounts, err := readMountinfo("self")
	if err != nil {
		return err
	}
	// This mount namespace started as a copy of the host's, including
	// its pins of other namespaces (other nodes' /run/netns entries, other
	// clusters' UTS pins). A copy keeps its namespace alive, so another
	// node or cluster could never be deleted while this node lives: drop
	// them all.
	if err := detachNSFS(mounts); err != nil {
		return err
	}

	sources := make([]*os.File, len(specs))
	for i, m := range specs {
		if sources[i], err = openPath(m.Source); err != nil {
			return err
		}
	}
	// A target below an earlier one gets its mount point in the node's
	// own directory; only the others may need one on the host.
	var targets []string
	for i, m := range specs {
		nested := false
		for _, o := range specs[:i] {
			nested = nested || under(m.Target, o.Target)
		}
		if !nested {
			targets = append(targets, m.Target)
		}
	}
	roots, err := overlayRoots(targets, exists)
	if err != nil {
		return err
	}
	// What is mounted below an overlaid directory must stay visible in it.
	type sub struct {
		point string
		f     *os.File
	}
	var subs []sub
	for _, r := range roots {
		for _, p := range topSubmounts(mounts, r) {
			if f, err := openPath(p); err == nil {
				subs = append(subs, sub{p, f})
			}
		}
	}
	cgroup, _ := openPath("/sys/fs/cgroup")
	resolve, _ := openPath("/run/systemd/resolve")

	if err := mountSys(cgroup); err != nil {
		return err
	}
	if err := mountRun(resolve); err != nil {
		return err
	}
	if err := mountOverlays(roots); err != nil {
		return err
	}
	for _, s := range subs {
		if err := bindFD(s.f, s.point, false, true); err != nil {
			return fmt.Errorf("keeping %s visible in the node: %w", s.point, err)
		}
	}
	for i, m := range specs {
		if err := bindFD(sources[i], m.Target, m.ReadOnly, false); err != nil {
			return fmt.Errorf("%s: %w", m, err)
		}
	}
	return nil
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

func openPath(p string) (*os.File, error) {
	fd, err := unix.Open(p, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: p, Err: err}
	}
	return os.NewFile(uintptr(fd), p), nil
}

// fdPath names an open file so that mount(2) follows it to the very mount
// it was opened on, even if its path is now covered by another mount.
func fdPath(f *os.File) string { return fmt.Sprintf("/proc/self/fd/%d", f.Fd()) }

// detachNSFS lazily unmounts every namespace pin, deepest first.
func detachNSFS(mounts []mountEntry) error {
	var points []string
	for _, m := range mounts {
		if m.FSType == "nsfs" {
			points = append(points, m.Point)
		}
	}
	sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
	for _, p := range points {
		if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("detaching the copy of %s: %w", p, err)
		}
	}
	return nil
}

// mountSys mounts a sysfs of the node's network namespace on /sys (so
// /sys/class/net lists the node's interfaces, as `ip netns exec` does),
// and puts the host's cgroup file systems back under it for runc.
func mountSys(cgroup *os.File) error {
	if err := unix.Mount("sysfs", "/sys", "sysfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mounting sysfs on /sys: %w", err)
	}
	if cgroup == nil {
		return nil
	}
	if err := unix.Mount(fdPath(cgroup), "/sys/fs/cgroup", "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("binding the cgroup file systems on /sys/fs/cgroup: %w", err)
	}
	return nil
}

// mountRun gives the node an empty /run, as after a boot: what the node's
// runtime pins there (pod namespaces, runc state) is the node's own and
// goes with it. The host's resolver directory is kept, for an
// /etc/resolv.conf that links into it.
func mountRun(resolve *os.File) error {
	if err := unix.Mount("tmpfs", "/run", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755"); err != nil {
		return fmt.Errorf("mounting a tmpfs on /run: %w", err)
	}
	if err := os.Mkdir("/run/lock", 0o1777); err != nil {
		return err
	}
	if resolve != nil {
		return bindFD(resolve, "/run/systemd/resolve", true, true)
	}
	return nil
}

// mountOverlays puts an overlay on each root: the host's directory below,
// a tmpfs above, so mount points (and whatever a user writes there from a
// node shell) never reach the host's disk. The tmpfs is mounted on a
// scratch directory only while the overlays are made: overlayfs keeps its
// own private reference to the upper layer, so the scratch mount is then
// detached and the node's /run stays clean.
func mountOverlays(roots []string) error {
	if len(roots) == 0 {
		return nil
	}
	scratch := "/run/.kite-lab-overlays"
	if err := os.Mkdir(scratch, 0o700); err != nil {
		return err
	}
	if err := unix.Mount("tmpfs", scratch, "tmpfs", 0, "mode=0700"); err != nil {
		return fmt.Errorf("overlay scratch tmpfs: %w", err)
	}
	for i, r := range roots {
		upper := filepath.Join(scratch, fmt.Sprint(i), "upper")
		work := filepath.Join(scratch, fmt.Sprint(i), "work")
		for _, d := range []string{upper, work} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return err
			}
		}
		if strings.ContainsAny(r, ",:\\") {
			return fmt.Errorf("cannot overlay %q: ',', ':' or '\\' in the path", r)
		}
		opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", r, upper, work)
		if err := unix.Mount("overlay", r, "overlay", 0, opts); err != nil {
			return fmt.Errorf("overlay on %s (for mount points that do not exist on the host): %w", r, err)
		}
	}
	if err := unix.Unmount(scratch, unix.MNT_DETACH); err != nil {
		return err
	}
	return os.Remove(scratch)
}

// bindFD bind-mounts the open file f on target, making the mount point
// (a directory, or an empty file for a file) if needed.
func bindFD(f *os.File, target string, readOnly, recursive bool) error {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		if err := os.MkdirAll(target, 0o755); err != nil {
			return err
		}
	} else if !exists(target) {
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(target, nil, 0o644); err != nil {
			return err
		}
	}
	flags := uintptr(unix.MS_BIND)
	if recursive {
		flags |= unix.MS_REC
	}
	if err := unix.Mount(fdPath(f), target, "", flags, ""); err != nil {
		return err
	}
	if readOnly {
		return unix.Mount("", target, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, "")
	}
	return nil
}

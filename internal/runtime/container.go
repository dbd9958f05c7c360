package runtime

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"
)

// Timeouts the caller's context does not cover.
const (
	// createTimeout bounds `runc create` run by the shim.
	createTimeout = time.Minute
	// killWait bounds the wait for a SIGKILLed container to be reaped.
	killWait = 10 * time.Second
	// pollInterval is how often a wait for an exit looks again.
	pollInterval = 10 * time.Millisecond
)

// CreateContainer writes the bundle, mounts the root file system (overlay
// of cfg.LowerDirs under the container's own upper dir) and starts the
// shim, which runs `runc create`. On failure nothing is left behind.
func (r *Runtime) CreateContainer(ctx context.Context, cfg ContainerConfig) (err error) {
	if err := checkID("container", cfg.ID); err != nil {
		return err
	}
	if len(cfg.Args) == 0 {
		return fmt.Errorf("container %s: %w: no command", cfg.ID, ErrInvalid)
	}
	if len(cfg.LowerDirs) == 0 {
		return fmt.Errorf("container %s: %w: no image layers", cfg.ID, ErrInvalid)
	}
	for _, m := range cfg.Mounts {
		if !filepath.IsAbs(m.Source) || !filepath.IsAbs(m.Destination) {
			return fmt.Errorf("container %s: mount %s on %s: %w: paths must be absolute", cfg.ID, m.Source, m.Destination, ErrInvalid)
		}
	}
	sb, err := r.sandbox(cfg.SandboxID)
	if err != nil {
		return fmt.Errorf("container %s: %w", cfg.ID, err)
	}
	dir := r.containerDir(cfg.ID)
	if err := os.MkdirAll(r.containersDir(), 0o711); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("container %s: %w", cfg.ID, ErrAlreadyExists)
		}
		return fmt.Errorf("container %s: %w", cfg.ID, err)
	}
	defer func() {
		if err != nil {
			if rerr := r.RemoveContainer(context.WithoutCancel(ctx), cfg.ID); rerr != nil {
				err = errors.Join(err, fmt.Errorf("clean up: %w", rerr))
			}
		}
	}()

	rec := containerRecord{ID: cfg.ID, SandboxID: cfg.SandboxID, Labels: cfg.Labels, LogPath: cfg.LogPath, CreatedAt: time.Now().UTC()}
	if rec.LogPath == "" {
		rec.LogPath, rec.OwnLog = filepath.Join(dir, fileLog), true
	} else if err := os.MkdirAll(filepath.Dir(rec.LogPath), 0o755); err != nil {
		return fmt.Errorf("container %s: log dir: %w", cfg.ID, err)
	}
	if err := writeJSONAtomic(filepath.Join(dir, fileRecord), rec); err != nil {
		return fmt.Errorf("container %s: %w", cfg.ID, err)
	}
	if err := mountRootfs(dir, cfg.LowerDirs); err != nil {
		return fmt.Errorf("container %s: %w", cfg.ID, err)
	}
	spec := buildSpec(cfg, sb, dirRootfs, r.cgroupsPath(cfg.ID))
	if err := writeJSONAtomic(filepath.Join(dir, fileSpec), spec); err != nil {
		return fmt.Errorf("container %s: %w", cfg.ID, err)
	}
	shim := shimConfig{ID: cfg.ID, RuncPath: r.cfg.RuncPath, RuncRoot: r.cfg.RuncRoot, LogPath: rec.LogPath,
		Stdin: cfg.Stdin, StdinOnce: cfg.StdinOnce, TTY: cfg.TTY}
	if err := writeJSONAtomic(filepath.Join(dir, fileShim), shim); err != nil {
		return fmt.Errorf("container %s: %w", cfg.ID, err)
	}
	timeout := createTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	if err := r.startShim(dir, timeout); err != nil {
		return fmt.Errorf("container %s: %w", cfg.ID, err)
	}
	klog.FromContext(ctx).WithName("runtime").V(2).Info("container created", "container", cfg.ID, "sandbox", cfg.SandboxID)
	return nil
}

// mountRootfs mounts the overlay. overlayfs lists lower dirs top first;
// the caller gives them bottom first.
func mountRootfs(dir string, lowerBottomFirst []string) error {
	for _, d := range []string{dirRootfs, dirUpper, dirWork} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
	}
	lower := make([]string, len(lowerBottomFirst))
	for i, l := range lowerBottomFirst {
		if strings.ContainsAny(l, ":,") {
			return fmt.Errorf("layer dir %q: %w: ':' and ',' cannot be passed to overlayfs", l, ErrInvalid)
		}
		lower[len(lower)-1-i] = l
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s",
		strings.Join(lower, ":"), filepath.Join(dir, dirUpper), filepath.Join(dir, dirWork))
	// mount(2) takes at most a page of options.
	if len(opts) >= os.Getpagesize() {
		return fmt.Errorf("overlay options are %d bytes, more than a page: %w (too many or too long layer paths)", len(opts), ErrInvalid)
	}
	if err := unix.Mount("overlay", filepath.Join(dir, dirRootfs), "overlay", 0, opts); err != nil {
		return fmt.Errorf("mount overlay rootfs: %w", err)
	}
	return nil
}

// StartContainer runs `runc start`: the created container's process execs
// its command.
func (r *Runtime) StartContainer(ctx context.Context, id string) error {
	if err := checkID("container", id); err != nil {
		return err
	}
	dir := r.containerDir(id)
	if !exists(filepath.Join(dir, fileRecord)) {
		return fmt.Errorf("container %s: %w", id, ErrNotFound)
	}
	started := filepath.Join(dir, fileStarted)
	if err := os.WriteFile(started, []byte(time.Now().UTC().Format(time.RFC3339Nano)), 0o600); err != nil {
		return fmt.Errorf("container %s: %w", id, err)
	}
	if _, err := r.runc(ctx, "start", id); err != nil {
		os.Remove(started)
		if errors.Is(err, errRuncNoContainer) {
			return fmt.Errorf("container %s: %w: runc does not know it", id, ErrWrongState)
		}
		return fmt.Errorf("container %s: %w", id, err)
	}
	klog.FromContext(ctx).WithName("runtime").V(2).Info("container started", "container", id)
	return nil
}

// StopContainer stops a created or running container: SIGTERM, up to grace
// to exit, then SIGKILL. It returns once the shim has recorded the exit.
func (r *Runtime) StopContainer(ctx context.Context, id string, grace time.Duration) error {
	st, err := r.ContainerStatus(ctx, id)
	if err != nil {
		return err
	}
	if st.State != StateRunning && st.State != StateCreated {
		return nil
	}
	if err := r.kill(ctx, id, "TERM"); err != nil {
		return err
	}
	if grace > 0 {
		gctx, cancel := context.WithTimeout(ctx, grace)
		exited := r.waitExit(gctx, id, st.Pid)
		cancel()
		if exited {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("stop container %s: %w", id, ctx.Err())
		}
	}
	klog.FromContext(ctx).WithName("runtime").V(2).Info("container did not stop in its grace period, killing", "container", id, "grace", grace)
	return r.killAndWait(ctx, id, st.Pid)
}

// killAndWait sends SIGKILL and waits for the exit to be recorded.
func (r *Runtime) killAndWait(ctx context.Context, id string, pid int) error {
	if err := r.kill(ctx, id, "KILL"); err != nil {
		return err
	}
	kctx, cancel := context.WithTimeout(ctx, killWait)
	defer cancel()
	if !r.waitExit(kctx, id, pid) {
		return fmt.Errorf("container %s: no exit %v after SIGKILL: %w", id, killWait, kctx.Err())
	}
	return nil
}

// kill signals the container's init; a container that is already gone is
// not an error.
func (r *Runtime) kill(ctx context.Context, id, sig string) error {
	_, err := r.runc(ctx, "kill", id, sig)
	if err != nil && !errors.Is(err, errRuncNoContainer) && !errors.Is(err, ErrWrongState) && !strings.Contains(err.Error(), "finished") {
		return fmt.Errorf("container %s: %w", id, err)
	}
	return nil
}

// waitExit waits until the container's exit is recorded (exit.json), or,
// when its shim is gone, until its init pid is gone. It reports whether
// that happened before ctx ended.
func (r *Runtime) waitExit(ctx context.Context, id string, pid int) bool {
	dir := r.containerDir(id)
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		if exists(filepath.Join(dir, fileExit)) || (!shimAlive(dir) && !processAlive(pid)) {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
}

// ReopenContainerLog signals the container's shim to reopen its log
// file, and waits for the new file.
func (r *Runtime) ReopenContainerLog(ctx context.Context, id string) error {
	if err := checkID("container", id); err != nil {
		return err
	}
	dir := r.containerDir(id)
	var rec containerRecord
	if err := readJSON(filepath.Join(dir, fileRecord), &rec); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("container %s: %w", id, ErrNotFound)
		}
		return err
	}
	pid, err := readPidFile(filepath.Join(dir, fileLock))
	if err != nil || !shimAlive(dir) || exists(filepath.Join(dir, fileExit)) {
		return fmt.Errorf("reopen log of container %s: no shim copies its output: %w", id, ErrWrongState)
	}
	// A shim from before log rotation would die of SIGUSR1.
	if !catches(pid, unix.SIGUSR1) {
		return fmt.Errorf("reopen log of container %s: its shim (pid %d) cannot reopen logs: %w", id, pid, ErrWrongState)
	}
	if err := unix.Kill(pid, unix.SIGUSR1); err != nil {
		return fmt.Errorf("reopen log of container %s: signal shim %d: %w", id, pid, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for !exists(rec.LogPath) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("reopen log of container %s: %s not recreated: %w", id, rec.LogPath, ctx.Err())
		case <-t.C:
		}
	}
	return nil
}

// catches reports whether process pid has a handler for sig (SigCgt in
// /proc/<pid>/status).
func catches(pid int, sig unix.Signal) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "SigCgt:"); ok {
			mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && mask&(1<<(uint(sig)-1)) != 0
		}
	}
	return false
}

// shimAlive reports whether a shim holds the container's lock file.
func shimAlive(dir string) bool {
	f, err := os.Open(filepath.Join(dir, fileLock))
	if err != nil {
		return false
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB); err != nil {
		return err == unix.EWOULDBLOCK
	}
	unix.Flock(int(f.Fd()), unix.LOCK_UN)
	return false
}

// processAlive reports whether pid exists and is not a zombie.
func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) S ...: the state follows the last ')'.
	s := string(stat)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z' && s[i+2] != 'X'
	}
	return true
}

// RemoveContainer kills what still runs, deletes runc's state (and so the
// cgroup), stops a lingering shim, unmounts the root file system and
// deletes the container's directory.
func (r *Runtime) RemoveContainer(ctx context.Context, id string) error {
	if err := checkID("container", id); err != nil {
		return err
	}
	dir := r.containerDir(id)
	hasState := exists(filepath.Join(r.cfg.RuncRoot, id))
	if !exists(dir) && !hasState {
		return nil
	}
	if hasState {
		if st, err := r.runcState(ctx, id); err == nil && st.Status != "stopped" {
			if err := r.killAndWait(ctx, id, st.Pid); err != nil {
				return fmt.Errorf("remove container %s: %w", id, err)
			}
		}
		if _, err := r.runc(ctx, "delete", "--force", id); err != nil && !errors.Is(err, errRuncNoContainer) {
			return fmt.Errorf("remove container %s: %w", id, err)
		}
	}
	if err := stopShim(ctx, dir); err != nil {
		return fmt.Errorf("remove container %s: %w", id, err)
	}
	rootfs := filepath.Join(dir, dirRootfs)
	if err := unix.Unmount(rootfs, 0); err != nil && err != unix.EINVAL && err != unix.ENOENT {
		if err := unix.Unmount(rootfs, unix.MNT_DETACH); err != nil && err != unix.EINVAL {
			return fmt.Errorf("remove container %s: unmount rootfs: %w", id, err)
		}
	}
	// Never recurse into a root file system that is still mounted.
	if mounted, err := isMountPoint(rootfs); err != nil || mounted {
		return fmt.Errorf("remove container %s: rootfs still mounted (%v)", id, err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove container %s: %w", id, err)
	}
	klog.FromContext(ctx).WithName("runtime").V(2).Info("container removed", "container", id)
	return nil
}

// stopShim waits briefly for the shim to finish draining after its
// container is gone, then kills it and waits for it to go.
func stopShim(ctx context.Context, dir string) error {
	if waitShim(ctx, dir, 3*time.Second) {
		return nil
	}
	pid, err := readPidFile(filepath.Join(dir, fileLock))
	if err != nil {
		return fmt.Errorf("shim does not exit and has no pid: %w", err)
	}
	unix.Kill(pid, unix.SIGKILL)
	if !waitShim(ctx, dir, killWait) {
		return fmt.Errorf("shim %d does not exit after SIGKILL", pid)
	}
	return nil
}

// waitShim reports whether the shim is gone within timeout.
func waitShim(ctx context.Context, dir string, timeout time.Duration) bool {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for shimAlive(dir) {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
	return true
}

// ContainerStatus reads a container's state: exit.json if the shim wrote
// one, else runc's state. A container directory without a record (a crash
// during CreateContainer) is reported in StateUnknown, so that it can be
// listed and removed.
func (r *Runtime) ContainerStatus(ctx context.Context, id string) (ContainerStatus, error) {
	if err := checkID("container", id); err != nil {
		return ContainerStatus{}, err
	}
	return r.status(ctx, id, nil)
}

// status computes a container's status; states, when not nil, is runc's
// list (saving a `runc state` per container).
func (r *Runtime) status(ctx context.Context, id string, states map[string]runcState) (ContainerStatus, error) {
	dir := r.containerDir(id)
	st := ContainerStatus{ID: id, ExitCode: -1}
	var rec containerRecord
	if err := readJSON(filepath.Join(dir, fileRecord), &rec); err != nil {
		if !exists(dir) {
			return ContainerStatus{}, fmt.Errorf("container %s: %w", id, ErrNotFound)
		}
		st.State, st.Message = StateUnknown, fmt.Sprintf("incomplete container directory: %v", err)
		return st, nil
	}
	st.SandboxID, st.Labels, st.LogPath, st.CreatedAt = rec.SandboxID, rec.Labels, rec.LogPath, rec.CreatedAt
	if data, err := os.ReadFile(filepath.Join(dir, fileStarted)); err == nil {
		st.StartedAt, _ = time.Parse(time.RFC3339Nano, strings.TrimSpace(string(data)))
	}
	if r.readExit(dir, &st) {
		return st, nil
	}

	var rs runcState
	var err error
	if states != nil {
		var ok bool
		if rs, ok = states[id]; !ok {
			err = errRuncNoContainer
		}
	} else {
		rs, err = r.runcState(ctx, id)
	}
	switch {
	case errors.Is(err, errRuncNoContainer):
		st.State, st.Message = StateExited, "exit status lost: runc has no state for the container (machine rebooted?)"
	case err != nil:
		st.State, st.Message = StateUnknown, err.Error()
	case rs.Status == "created":
		st.State, st.Pid = StateCreated, rs.Pid
	case rs.Status == "stopped":
		// The init is gone; the shim records the exit within
		// milliseconds, unless it is gone too.
		wctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		r.waitExit(wctx, id, 0)
		if r.readExit(dir, &st) {
			return st, nil
		}
		st.State, st.Message = StateExited, "exit status lost: the shim exited without recording it"
	default: // running, pausing, paused
		st.State, st.Pid = StateRunning, rs.Pid
	}
	return st, nil
}

// readExit fills st from exit.json and reports whether there was one.
func (r *Runtime) readExit(dir string, st *ContainerStatus) bool {
	var ex exitRecord
	if readJSON(filepath.Join(dir, fileExit), &ex) != nil {
		return false
	}
	st.State, st.Pid = StateExited, 0
	st.ExitCode, st.OOMKilled, st.FinishedAt = ex.ExitCode, ex.OOMKilled, ex.FinishedAt
	if ex.ExitCode < 0 {
		st.Message = "exit status lost: the shim could not wait for the container's init"
	}
	return true
}

// ListContainers returns the status of every container directory, with
// one `runc list` for all of them.
func (r *Runtime) ListContainers(ctx context.Context) ([]ContainerStatus, error) {
	entries, err := os.ReadDir(r.containersDir())
	if errors.Is(err, fs.ErrNotExist) {
		return []ContainerStatus{}, nil
	}
	if err != nil {
		return nil, err
	}
	states, err := r.runcList(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]ContainerStatus, 0, len(entries))
	for _, e := range entries {
		if !e.IsDir() || checkID("container", e.Name()) != nil {
			continue
		}
		st, err := r.status(ctx, e.Name(), states)
		if IsNotFound(err) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

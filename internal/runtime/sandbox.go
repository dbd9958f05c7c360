package runtime

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"
)

// CreateSandbox makes the pod's namespaces in a helper process started with
// CLONE_NEWNET|CLONE_NEWUTS|CLONE_NEWIPC (so that the hostname is set
// inside the new UTS namespace by a process living there, and no thread of
// the agent ever switches namespaces), bind-mounts the helper's
// /proc/<pid>/ns/{net,uts,ipc} onto RunDir/{netns,utsns,ipcns}/<id> as
// `ip netns add` does, and lets the helper exit: the mounts keep the
// namespaces alive. The network namespace has only lo, up.
//
// If it fails, nothing is left behind. A leftover of an earlier crash
// (namespace files without a record) makes it fail with ErrAlreadyExists;
// RemoveSandbox clears it.
func (r *Runtime) CreateSandbox(ctx context.Context, cfg SandboxConfig) (sb Sandbox, err error) {
	if err := checkID("sandbox", cfg.ID); err != nil {
		return Sandbox{}, err
	}
	if cfg.HostNetwork {
		cfg.Hostname = ""
	} else if cfg.Hostname == "" || len(cfg.Hostname) > 64 || strings.ContainsAny(cfg.Hostname, "/ \x00") {
		return Sandbox{}, fmt.Errorf("sandbox %s: hostname %q: %w", cfg.ID, cfg.Hostname, ErrInvalid)
	}
	if exists(r.sandboxRecord(cfg.ID)) {
		return Sandbox{}, fmt.Errorf("sandbox %s: %w", cfg.ID, ErrAlreadyExists)
	}
	sb = Sandbox{ID: cfg.ID, Hostname: cfg.Hostname, HostNetwork: cfg.HostNetwork, Labels: cfg.Labels, CreatedAt: time.Now().UTC()}
	flags := uintptr(syscall.CLONE_NEWIPC)
	pins := map[string]*string{"ipc": &sb.IPCNSPath}
	if !cfg.HostNetwork {
		flags |= syscall.CLONE_NEWNET | syscall.CLONE_NEWUTS
		pins["net"], pins["uts"] = &sb.NetNSPath, &sb.UTSNSPath
	}

	// The namespace files are created exclusively: they reserve the ID.
	var made []string
	defer func() {
		if err != nil {
			for _, f := range made {
				unpin(f)
			}
		}
	}()
	for _, k := range nsKinds {
		dst, ok := pins[k.proc]
		if !ok {
			continue
		}
		f := r.nsPath(k.dir, cfg.ID)
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			return Sandbox{}, fmt.Errorf("sandbox %s: %w", cfg.ID, err)
		}
		fd, err := os.OpenFile(f, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
		if errors.Is(err, fs.ErrExist) {
			return Sandbox{}, fmt.Errorf("sandbox %s: %s exists: %w", cfg.ID, f, ErrAlreadyExists)
		}
		if err != nil {
			return Sandbox{}, fmt.Errorf("sandbox %s: %w", cfg.ID, err)
		}
		fd.Close()
		made = append(made, f)
		*dst = f
	}

	if err := r.pinNamespaces(ctx, cfg.Hostname, flags, pins); err != nil {
		return Sandbox{}, fmt.Errorf("sandbox %s: %w", cfg.ID, err)
	}
	if err := os.MkdirAll(r.sandboxesDir(), 0o755); err != nil {
		return Sandbox{}, fmt.Errorf("sandbox %s: %w", cfg.ID, err)
	}
	if err := writeJSONAtomic(r.sandboxRecord(cfg.ID), sb); err != nil {
		return Sandbox{}, fmt.Errorf("sandbox %s: record: %w", cfg.ID, err)
	}
	klog.FromContext(ctx).WithName("runtime").V(2).Info("sandbox created", "sandbox", cfg.ID, "netns", sb.NetNSPath)
	return sb, nil
}

// pinNamespaces starts the sandbox helper in new namespaces and bind-mounts
// them onto the files in pins (keyed by /proc/<pid>/ns name).
func (r *Runtime) pinNamespaces(ctx context.Context, hostname string, flags uintptr, pins map[string]*string) error {
	cmd := r.helperCommand(modeSandbox, hostname)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: flags, Pdeathsig: syscall.SIGKILL}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("namespace helper: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { cmd.Process.Kill() })
	defer stop()
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	var pinErr error
	if strings.TrimSpace(line) == "ok" {
		for name, file := range pins {
			src := fmt.Sprintf("/proc/%d/ns/%s", cmd.Process.Pid, name)
			if err := unix.Mount(src, *file, "none", unix.MS_BIND, ""); err != nil {
				pinErr = fmt.Errorf("pin %s namespace on %s: %w", name, *file, err)
				break
			}
		}
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("namespace helper: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	if pinErr == nil && strings.TrimSpace(line) != "ok" {
		return fmt.Errorf("namespace helper said %q", line)
	}
	return pinErr
}

// unpin unmounts a pinned namespace and removes its file; both are
// skipped when already done.
func unpin(file string) error {
	if err := unix.Unmount(file, unix.MNT_DETACH); err != nil && err != unix.EINVAL && err != unix.ENOENT {
		return fmt.Errorf("unmount %s: %w", file, err)
	}
	if err := os.Remove(file); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// RemoveSandbox unmounts and removes the sandbox's namespace files and its
// record. The namespaces themselves disappear when no process uses them any
// more. Whatever is already gone is skipped.
func (r *Runtime) RemoveSandbox(ctx context.Context, id string) error {
	if err := checkID("sandbox", id); err != nil {
		return err
	}
	var errs []error
	for _, k := range nsKinds {
		if err := unpin(r.nsPath(k.dir, id)); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		if err := os.Remove(r.sandboxRecord(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove sandbox %s: %w", id, err)
	}
	klog.FromContext(ctx).WithName("runtime").V(2).Info("sandbox removed", "sandbox", id)
	return nil
}

// ListSandboxes returns the recorded sandboxes, plus (with only ID and
// paths set) namespace files left without a record by a crash during
// CreateSandbox, so that the caller can remove them.
func (r *Runtime) ListSandboxes(ctx context.Context) ([]Sandbox, error) {
	found := map[string]*Sandbox{}
	entries, err := os.ReadDir(r.sandboxesDir())
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok {
			continue
		}
		var sb Sandbox
		if err := readJSON(filepath.Join(r.sandboxesDir(), e.Name()), &sb); err != nil {
			return nil, fmt.Errorf("sandbox %s: %w", id, err)
		}
		found[id] = &sb
	}
	for _, k := range nsKinds {
		entries, err := os.ReadDir(filepath.Join(r.cfg.RunDir, k.dir))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		for _, e := range entries {
			if found[e.Name()] != nil {
				continue
			}
			sb := &Sandbox{ID: e.Name()}
			for _, k := range nsKinds {
				f := r.nsPath(k.dir, e.Name())
				if !exists(f) {
					continue
				}
				switch k.proc {
				case "net":
					sb.NetNSPath = f
				case "uts":
					sb.UTSNSPath = f
				case "ipc":
					sb.IPCNSPath = f
				}
			}
			found[e.Name()] = sb
		}
	}
	out := make([]Sandbox, 0, len(found))
	for _, sb := range found {
		out = append(out, *sb)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// sandbox reads a sandbox's record.
func (r *Runtime) sandbox(id string) (Sandbox, error) {
	var sb Sandbox
	err := readJSON(r.sandboxRecord(id), &sb)
	if errors.Is(err, fs.ErrNotExist) {
		return Sandbox{}, fmt.Errorf("sandbox %s: %w", id, ErrNotFound)
	}
	return sb, err
}

package runtime

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"sort"
	"sync"
	"time"
)

// Fake is an in-memory Interface for the agent's unit tests. Sandboxes and
// containers follow the real runtime's rules (IDs unique, containers need
// their sandbox, Start only from created, removals idempotent); nothing
// runs. A test drives what the processes would do (Exit, StopExitCode,
// ExecFunc), injects errors (FailNext) and inspects what was asked (Calls,
// ContainerConfig, Sandboxes).
type Fake struct {
	// ExecFunc answers Exec for a running container; nil means exit code 0
	// and no output.
	ExecFunc func(id string, cfg ExecConfig) (int, error)
	// AttachFunc answers Attach to a running container; nil means the
	// attach ends at once without output.
	AttachFunc func(id string, cfg AttachConfig) error
	// StopExitCode is the exit code of a container stopped with the given
	// grace; nil means 0 (it honoured SIGTERM) when grace > 0, else 137.
	StopExitCode func(id string, grace time.Duration) int
	// Now is the fake's clock; nil means time.Now.
	Now func() time.Time

	mu         sync.Mutex
	sandboxes  map[string]Sandbox
	containers map[string]*fakeContainer
	calls      []string
	fail       map[string][]error
	lastPid    int
}

type fakeContainer struct {
	cfg    ContainerConfig
	status ContainerStatus
}

var _ Interface = (*Fake)(nil)

// NewFake returns an empty Fake.
func NewFake() *Fake {
	return &Fake{sandboxes: map[string]Sandbox{}, containers: map[string]*fakeContainer{}, fail: map[string][]error{}}
}

// FailNext makes the next call of method (e.g. "CreateContainer") return
// err without doing anything. Several calls queue.
func (f *Fake) FailNext(method string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail[method] = append(f.fail[method], err)
}

// Calls returns the calls made so far, one string each: the method and
// its ID ("CreateSandbox pod1", "StopContainer c1 30s", "Exec c1 [ls /]").
func (f *Fake) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// ResetCalls forgets the recorded calls.
func (f *Fake) ResetCalls() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = nil
}

// Sandboxes returns the current sandboxes, sorted by ID.
func (f *Fake) Sandboxes() []Sandbox {
	sbs, _ := f.ListSandboxes(context.Background())
	return sbs
}

// ContainerConfig returns the config a container was created with.
func (f *Fake) ContainerConfig(id string) (ContainerConfig, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.containers[id]
	if !ok {
		return ContainerConfig{}, false
	}
	return c.cfg, true
}

// Exit makes a created or running container exit with code, as if its
// process ended (oomKilled: killed by the OOM killer).
func (f *Fake) Exit(id string, code int, oomKilled bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.containers[id]
	if !ok {
		return fmt.Errorf("container %s: %w", id, ErrNotFound)
	}
	if c.status.State != StateRunning && c.status.State != StateCreated {
		return fmt.Errorf("container %s: %w", id, ErrWrongState)
	}
	f.exit(c, code)
	c.status.OOMKilled = oomKilled
	return nil
}

func (f *Fake) exit(c *fakeContainer, code int) {
	c.status.State, c.status.Pid, c.status.ExitCode, c.status.FinishedAt = StateExited, 0, code, f.now()
}

func (f *Fake) now() time.Time {
	if f.Now != nil {
		return f.Now()
	}
	return time.Now()
}

// call records a call and returns an injected error, if any. f.mu is held.
func (f *Fake) call(method string, args ...any) error {
	s := method
	for _, a := range args {
		s += fmt.Sprint(" ", a)
	}
	f.calls = append(f.calls, s)
	if errs := f.fail[method]; len(errs) > 0 {
		f.fail[method] = errs[1:]
		return errs[0]
	}
	return nil
}

func (f *Fake) CreateSandbox(ctx context.Context, cfg SandboxConfig) (Sandbox, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("CreateSandbox", cfg.ID); err != nil {
		return Sandbox{}, err
	}
	if err := checkID("sandbox", cfg.ID); err != nil {
		return Sandbox{}, err
	}
	if cfg.Hostname == "" && !cfg.HostNetwork {
		return Sandbox{}, fmt.Errorf("sandbox %s: hostname: %w", cfg.ID, ErrInvalid)
	}
	if _, ok := f.sandboxes[cfg.ID]; ok {
		return Sandbox{}, fmt.Errorf("sandbox %s: %w", cfg.ID, ErrAlreadyExists)
	}
	sb := Sandbox{ID: cfg.ID, Hostname: cfg.Hostname, HostNetwork: cfg.HostNetwork, Labels: maps.Clone(cfg.Labels),
		CreatedAt: f.now(), IPCNSPath: "/fake/ipcns/" + cfg.ID}
	if cfg.HostNetwork {
		sb.Hostname = ""
	} else {
		sb.NetNSPath, sb.UTSNSPath = "/fake/netns/"+cfg.ID, "/fake/utsns/"+cfg.ID
	}
	f.sandboxes[cfg.ID] = sb
	return sb, nil
}

func (f *Fake) RemoveSandbox(ctx context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("RemoveSandbox", id); err != nil {
		return err
	}
	delete(f.sandboxes, id)
	return nil
}

func (f *Fake) ListSandboxes(ctx context.Context) ([]Sandbox, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("ListSandboxes"); err != nil {
		return nil, err
	}
	out := make([]Sandbox, 0, len(f.sandboxes))
	for _, sb := range f.sandboxes {
		out = append(out, sb)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func (f *Fake) CreateContainer(ctx context.Context, cfg ContainerConfig) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("CreateContainer", cfg.ID); err != nil {
		return err
	}
	if err := checkID("container", cfg.ID); err != nil {
		return err
	}
	if len(cfg.Args) == 0 || len(cfg.LowerDirs) == 0 {
		return fmt.Errorf("container %s: %w: no command or no image layers", cfg.ID, ErrInvalid)
	}
	if _, ok := f.sandboxes[cfg.SandboxID]; !ok {
		return fmt.Errorf("container %s: sandbox %s: %w", cfg.ID, cfg.SandboxID, ErrNotFound)
	}
	if _, ok := f.containers[cfg.ID]; ok {
		return fmt.Errorf("container %s: %w", cfg.ID, ErrAlreadyExists)
	}
	f.lastPid++
	logPath := cfg.LogPath
	if logPath == "" {
		logPath = "/fake/containers/" + cfg.ID + "/" + fileLog
	}
	f.containers[cfg.ID] = &fakeContainer{cfg: cfg, status: ContainerStatus{
		ID: cfg.ID, SandboxID: cfg.SandboxID, Labels: maps.Clone(cfg.Labels), State: StateCreated,
		Pid: 1000 + f.lastPid, ExitCode: -1, CreatedAt: f.now(), LogPath: logPath,
	}}
	return nil
}

func (f *Fake) StartContainer(ctx context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("StartContainer", id); err != nil {
		return err
	}
	c, ok := f.containers[id]
	if !ok {
		return fmt.Errorf("container %s: %w", id, ErrNotFound)
	}
	if c.status.State != StateCreated {
		return fmt.Errorf("container %s is %s: %w", id, c.status.State, ErrWrongState)
	}
	c.status.State, c.status.StartedAt = StateRunning, f.now()
	return nil
}

func (f *Fake) StopContainer(ctx context.Context, id string, grace time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("StopContainer", id, grace); err != nil {
		return err
	}
	c, ok := f.containers[id]
	if !ok {
		return fmt.Errorf("container %s: %w", id, ErrNotFound)
	}
	if c.status.State != StateRunning && c.status.State != StateCreated {
		return nil
	}
	code := 137
	if f.StopExitCode != nil {
		code = f.StopExitCode(id, grace)
	} else if grace > 0 {
		code = 0
	}
	f.exit(c, code)
	return nil
}

func (f *Fake) RemoveContainer(ctx context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("RemoveContainer", id); err != nil {
		return err
	}
	delete(f.containers, id)
	return nil
}

func (f *Fake) ContainerStatus(ctx context.Context, id string) (ContainerStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("ContainerStatus", id); err != nil {
		return ContainerStatus{}, err
	}
	c, ok := f.containers[id]
	if !ok {
		return ContainerStatus{}, fmt.Errorf("container %s: %w", id, ErrNotFound)
	}
	return c.status, nil
}

func (f *Fake) ListContainers(ctx context.Context) ([]ContainerStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("ListContainers"); err != nil {
		return nil, err
	}
	out := make([]ContainerStatus, 0, len(f.containers))
	for _, c := range f.containers {
		out = append(out, c.status)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func (f *Fake) Exec(ctx context.Context, id string, cfg ExecConfig) (int, error) {
	f.mu.Lock()
	err := f.call("Exec", id, cfg.Cmd)
	c, ok := f.containers[id]
	running := ok && c.status.State == StateRunning
	fn := f.ExecFunc
	f.mu.Unlock()
	switch {
	case err != nil:
		return -1, err
	case !ok:
		return -1, fmt.Errorf("exec in %s: %w", id, ErrNotFound)
	case !running:
		return -1, fmt.Errorf("exec in %s: %w", id, ErrWrongState)
	case fn != nil:
		return fn(id, cfg)
	}
	return 0, nil
}

func (f *Fake) Attach(ctx context.Context, id string, cfg AttachConfig) error {
	f.mu.Lock()
	err := f.call("Attach", id)
	c, ok := f.containers[id]
	running := ok && c.status.State == StateRunning
	fn := f.AttachFunc
	f.mu.Unlock()
	switch {
	case err != nil:
		return err
	case !ok:
		return fmt.Errorf("attach to %s: %w", id, ErrNotFound)
	case !running:
		return fmt.Errorf("attach to %s: %w", id, ErrWrongState)
	case fn != nil:
		return fn(id, cfg)
	}
	return nil
}

// ReopenContainerLog creates the running container's log file afresh, as
// the shim does; the Fake never writes to it.
func (f *Fake) ReopenContainerLog(ctx context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("ReopenContainerLog", id); err != nil {
		return err
	}
	c, ok := f.containers[id]
	switch {
	case !ok:
		return fmt.Errorf("container %s: %w", id, ErrNotFound)
	case c.status.State != StateRunning:
		return fmt.Errorf("container %s: %w", id, ErrWrongState)
	case c.cfg.LogPath == "":
		return nil
	}
	lf, err := os.OpenFile(c.cfg.LogPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return err
	}
	return lf.Close()
}

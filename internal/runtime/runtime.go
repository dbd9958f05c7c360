package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"time"
)

// Interface is what the agent needs from a container runtime. *Runtime
// implements it over runc; *Fake implements it in memory for unit tests.
//
// IDs are chosen by the caller (deterministic IDs make adoption after an
// agent restart a matter of listing). Operations on different IDs are
// independent; the caller serialises operations on one ID (the agent has one
// worker per pod), except that Exec and ContainerStatus may run at any time.
type Interface interface {
	// CreateSandbox pins a new network, UTS (hostname set) and IPC
	// namespace for a pod. ErrAlreadyExists if the ID is taken.
	CreateSandbox(ctx context.Context, cfg SandboxConfig) (Sandbox, error)
	// RemoveSandbox unpins the sandbox's namespaces and forgets it. Its
	// containers must have been removed first. Removing a sandbox that does
	// not exist (or half exists) is not an error.
	RemoveSandbox(ctx context.Context, id string) error
	// ListSandboxes returns every sandbox this runtime's directories hold,
	// sorted by ID; an empty list when there are none.
	ListSandboxes(ctx context.Context) ([]Sandbox, error)

	// CreateContainer writes the container's bundle, mounts its root
	// filesystem and creates it (state Created, process not yet running).
	// ErrAlreadyExists if the ID is taken; ErrNotFound if the sandbox is
	// missing.
	CreateContainer(ctx context.Context, cfg ContainerConfig) error
	// StartContainer runs a Created container's process.
	StartContainer(ctx context.Context, id string) error
	// StopContainer sends SIGTERM, waits up to grace for the container to
	// exit, then sends SIGKILL and waits for the exit (bounded by ctx). A
	// container that is not running is left as it is.
	StopContainer(ctx context.Context, id string, grace time.Duration) error
	// RemoveContainer kills the container if it still runs and deletes its
	// runc state, root filesystem mount and bundle. The log file is removed
	// only when the runtime chose its path. Removing a missing container is
	// not an error.
	RemoveContainer(ctx context.Context, id string) error
	// ContainerStatus reports a container's state from disk and runc; it
	// is accurate across agent restarts. ErrNotFound if there is no such
	// container.
	ContainerStatus(ctx context.Context, id string) (ContainerStatus, error)
	// ListContainers returns the status of every container, sorted by ID.
	ListContainers(ctx context.Context) ([]ContainerStatus, error)

	// Exec runs a command in a running container and returns its exit
	// code (128+n when killed by signal n). err is non-nil only when the
	// command could not be run or waited for, never for a non-zero exit.
	Exec(ctx context.Context, id string, cfg ExecConfig) (exitCode int, err error)

	// Attach connects to a running container's main process: cfg.Stdin
	// goes to its stdin (when it was created with Stdin), and its output
	// from now on goes to cfg.Stdout and cfg.Stderr. It returns nil once
	// the container exited and its output was delivered, ctx.Err() when
	// ctx ends first; ErrWrongState if the container is not running.
	Attach(ctx context.Context, id string, cfg AttachConfig) error

	// ReopenContainerLog makes a running container write its output to
	// a new file at its LogPath, after the caller renamed the current one
	// away (log rotation); it returns once the new file exists.
	// ErrWrongState if the container's output is no longer being copied.
	ReopenContainerLog(ctx context.Context, id string) error
}

// SandboxConfig describes a pod sandbox.
type SandboxConfig struct {
	ID string
	// Hostname is set in the sandbox's UTS namespace (the pod's name, or
	// spec.hostname). Required unless HostNetwork.
	Hostname string
	// HostNetwork shares the runtime's own network and UTS namespaces
	// instead of making new ones (hostNetwork pods). The IPC namespace is
	// still the pod's own.
	HostNetwork bool
	// Labels are stored with the sandbox and returned by ListSandboxes
	// (pod namespace/name/UID, for adoption).
	Labels map[string]string
}

// Sandbox is a created pod sandbox.
type Sandbox struct {
	ID          string            `json:"id"`
	Hostname    string            `json:"hostname,omitempty"`
	HostNetwork bool              `json:"hostNetwork,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	CreatedAt   time.Time         `json:"createdAt"`
	// NetNSPath is the pinned network namespace, for CNI and for
	// containers; empty for HostNetwork sandboxes.
	NetNSPath string `json:"netnsPath,omitempty"`
	// UTSNSPath is the pinned UTS namespace; empty for HostNetwork.
	UTSNSPath string `json:"utsnsPath,omitempty"`
	// IPCNSPath is the pinned IPC namespace.
	IPCNSPath string `json:"ipcnsPath"`
}

// ContainerConfig describes a container to create in a sandbox.
type ContainerConfig struct {
	ID        string
	SandboxID string
	// Labels are stored with the container and returned in its status.
	Labels map[string]string

	// LowerDirs are the image's layer directories, bottom layer first.
	// They are never written; the container writes to its own upper dir.
	LowerDirs []string

	// Args is the process's command line (entrypoint + cmd already
	// resolved against the image config by the caller).
	Args []string
	// Env is the complete environment ("K=V").
	Env []string
	// Cwd defaults to "/".
	Cwd string
	// UID, GID and AdditionalGIDs are numeric; names are resolved by the
	// caller (from the image's /etc/passwd) if at all.
	UID            uint32
	GID            uint32
	AdditionalGIDs []uint32

	// Mounts are bind mounts added after the standard ones (/proc, /dev,
	// /dev/pts, /dev/shm, /dev/mqueue, /sys): the agent's /etc/hosts,
	// /etc/resolv.conf, /etc/hostname, volumes.
	Mounts []Mount

	// LogPath is where the container's stdout and stderr go, in the CRI
	// log format. Empty means container.log in the container's directory
	// (removed with the container); a caller-chosen path survives
	// RemoveContainer (for `kubectl logs --previous`).
	LogPath string

	// Resources are optional cgroup limits; nil means none.
	Resources *Resources

	// Stdin keeps the process's stdin open on a pipe that attachers
	// (Attach) write to; without it stdin is /dev/null.
	Stdin bool
	// StdinOnce closes the process's stdin when the first attacher that
	// sent stdin ends its input or disconnects (`kubectl run -i`).
	StdinOnce bool
	// TTY runs the process on a pseudo-terminal: its output goes to the
	// log as stdout, attach input (with Stdin) and window sizes to the
	// terminal.
	TTY bool
}

// Mount is a bind mount into a container.
type Mount struct {
	Source      string
	Destination string
	ReadOnly    bool
}

// Resources are cgroup limits. Zero values mean "not set".
type Resources struct {
	MemoryLimitBytes int64
	CPUShares        uint64
	// CPUQuota per CPUPeriod microseconds (CFS); CPUPeriod defaults to
	// 100000 when CPUQuota is set.
	CPUQuota  int64
	CPUPeriod uint64
	PidsLimit int64
}

// ContainerState is a container's life-cycle state.
type ContainerState string

const (
	StateCreated ContainerState = "created"
	StateRunning ContainerState = "running"
	StateExited  ContainerState = "exited"
	// StateUnknown: the runtime cannot tell (e.g. runc fails).
	StateUnknown ContainerState = "unknown"
)

// ContainerStatus is what the runtime knows about a container.
type ContainerStatus struct {
	ID        string
	SandboxID string
	Labels    map[string]string
	State     ContainerState
	// Pid is the container's init process on the host; 0 once exited.
	Pid int
	// ExitCode is the process's exit status, 128+n when killed by signal
	// n; meaningful in StateExited only. -1 when the exit status was lost
	// (the shim was killed, or the machine rebooted).
	ExitCode int
	// OOMKilled is true when the container's cgroup saw an OOM kill.
	OOMKilled  bool
	CreatedAt  time.Time
	StartedAt  time.Time
	FinishedAt time.Time
	LogPath    string
	// Message explains StateUnknown or a lost exit code.
	Message string
}

// ExecConfig describes a command to run in a container. Its process
// inherits the container's user, working directory, capabilities and
// environment; Env adds to (and overrides) the environment.
type ExecConfig struct {
	Cmd []string
	Env []string
	// TTY runs the command on a pseudo-terminal: Stdout receives the
	// terminal's output (there is no separate stderr) and Resize changes
	// its window size.
	TTY    bool
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	Resize <-chan Size
}

// AttachConfig describes an attach to a container's main process.
type AttachConfig struct {
	// Stdin is copied to the process's stdin if the container has one
	// (else discarded). Its EOF ends this attacher's input; with
	// StdinOnce it closes the process's stdin (with a TTY: sends ^D).
	Stdin io.Reader
	// Stdout and Stderr receive the output from now on; nil discards it.
	// A TTY container has only stdout.
	Stdout io.Writer
	Stderr io.Writer
	// TTY is what the client asked for; the container's own TTY setting
	// decides how its output comes.
	TTY bool
	// Resize changes a TTY container's window size.
	Resize <-chan Size
}

// Size is a terminal window size.
type Size struct {
	Width  uint16
	Height uint16
}

var (
	// ErrNotFound: no sandbox or container with that ID.
	ErrNotFound = errors.New("not found")
	// ErrAlreadyExists: the ID is taken.
	ErrAlreadyExists = errors.New("already exists")
	// ErrWrongState: the container's state does not allow the operation
	// (start of a container that is not created, exec in one that is not
	// running).
	ErrWrongState = errors.New("wrong state")
	// ErrInvalid: a config or ID is invalid.
	ErrInvalid = errors.New("invalid")
)

// IsNotFound reports whether err means a missing sandbox or container.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// IsAlreadyExists reports whether err means the ID is taken.
func IsAlreadyExists(err error) bool { return errors.Is(err, ErrAlreadyExists) }

// Config configures a Runtime. Every directory is created on demand.
type Config struct {
	// Root holds one directory per container (bundle, rootfs mount,
	// upper/work dirs, shim state): Root/containers/<id>. It must be on a
	// file system that overlayfs accepts as upper dir. Default
	// /var/lib/kite.
	Root string
	// RunDir holds what does not outlive a reboot: the pinned namespaces
	// (RunDir/netns/<id>, utsns/<id>, ipcns/<id>) and sandbox records
	// (RunDir/sandboxes/<id>.json). Default /run/kite.
	RunDir string
	// RuncPath is the runc binary. Default: "runc" from $PATH.
	RuncPath string
	// RuncRoot is runc's state directory (runc --root). Default
	// RunDir/runc, so that kite's containers are not mixed with others'.
	RuncRoot string
	// CgroupParent is the cgroup under which every container gets
	// CgroupParent/<id>. Default /kite.
	CgroupParent string
	// ShimPath is the binary re-executed as the shim and namespace helper;
	// it must import this package (its init recognises the shim). Default:
	// the running executable.
	ShimPath string
}

// Defaults returns cfg with empty fields set to their defaults.
func (cfg Config) Defaults() Config {
	if cfg.Root == "" {
		cfg.Root = "/var/lib/kite"
	}
	if cfg.RunDir == "" {
		cfg.RunDir = "/run/kite"
	}
	if cfg.RuncPath == "" {
		cfg.RuncPath = "runc"
	}
	if cfg.RuncRoot == "" {
		cfg.RuncRoot = filepath.Join(cfg.RunDir, "runc")
	}
	if cfg.CgroupParent == "" {
		cfg.CgroupParent = "/kite"
	}
	return cfg
}

// Validate checks a defaulted Config.
func (cfg Config) Validate() error {
	for _, f := range []struct{ name, path string }{
		{"Root", cfg.Root}, {"RunDir", cfg.RunDir}, {"RuncRoot", cfg.RuncRoot}, {"CgroupParent", cfg.CgroupParent},
	} {
		if !filepath.IsAbs(f.path) {
			return fmt.Errorf("runtime config: %s %q: %w: not an absolute path", f.name, f.path, ErrInvalid)
		}
	}
	return nil
}

// Runtime runs pods' sandboxes and containers with runc. It keeps no state
// in memory: everything is read back from its directories and from runc, so
// a new Runtime over the same directories adopts what an earlier one made.
type Runtime struct {
	cfg Config
}

var _ Interface = (*Runtime)(nil)

// New returns a Runtime; it checks that runc and the shim binary exist.
func New(cfg Config) (*Runtime, error) {
	cfg = cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	runc, err := exec.LookPath(cfg.RuncPath)
	if err != nil {
		return nil, fmt.Errorf("runtime: runc: %w", err)
	}
	cfg.RuncPath = runc
	if cfg.ShimPath == "" {
		if cfg.ShimPath, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("runtime: shim binary: %w", err)
		}
	}
	if _, err := os.Stat(cfg.ShimPath); err != nil {
		return nil, fmt.Errorf("runtime: shim binary: %w", err)
	}
	return &Runtime{cfg: cfg}, nil
}

// Config returns the runtime's defaulted configuration.
func (r *Runtime) Config() Config { return r.cfg }

// validID keeps IDs usable as file names and runc container IDs.
var validID = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$`)

func checkID(kind, id string) error {
	if !validID.MatchString(id) {
		return fmt.Errorf("%s ID %q: %w: want [a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}", kind, id, ErrInvalid)
	}
	return nil
}

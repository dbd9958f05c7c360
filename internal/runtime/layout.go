package runtime

import (
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Files of a container's directory, Root/containers/<id>. Together with
// runc's state they are the whole truth about a container.
const (
	fileSpec    = "config.json" // the OCI config (the directory is the bundle)
	dirRootfs   = "rootfs"      // overlayfs mount point
	dirUpper    = "upper"       // overlay upper dir: the container's writes
	dirWork     = "work"        // overlay work dir
	fileRecord  = "kite.json"   // containerRecord: what the caller asked for
	fileShim    = "shim.json"   // shimConfig: what the shim needs to know
	fileShimLog = "shim.log"    // the shim's own stdout and stderr
	fileLock    = "shim.lock"   // flock held by the shim for its whole life; holds its pid
	fileInitPid = "init.pid"    // the container's init pid (runc --pid-file)
	fileRuncLog = "runc.log"    // runc's JSON log (errors of runc create)
	fileStarted = "started"     // StartedAt, written by StartContainer
	fileExit    = "exit.json"   // exitRecord, written by the shim when the container exits
	fileLog     = "container.log"
	// fileAttach is the shim's attach socket and fileConsole the socket on
	// which runc hands it a TTY container's terminal. Both are reached
	// through /proc/<pid>/fd/<dir fd>/ (see withDirPath), which keeps the
	// address within a socket path's 108 bytes however deep Root is.
	fileAttach  = "attach.sock"
	fileConsole = "console.sock"
)

// containerRecord is stored as kite.json when a container is created.
type containerRecord struct {
	ID        string            `json:"id"`
	SandboxID string            `json:"sandboxID"`
	Labels    map[string]string `json:"labels,omitempty"`
	LogPath   string            `json:"logPath"`
	// OwnLog: the runtime chose LogPath (inside the container's
	// directory), so it goes with the container.
	OwnLog    bool      `json:"ownLog,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
}

// exitRecord is written by the shim once the container's init is reaped
// and its output drained.
type exitRecord struct {
	ExitCode   int       `json:"exitCode"`
	Signal     int       `json:"signal,omitempty"`
	OOMKilled  bool      `json:"oomKilled,omitempty"`
	FinishedAt time.Time `json:"finishedAt"`
}

// shimConfig is shim.json: the shim's instructions.
type shimConfig struct {
	ID       string `json:"id"`
	RuncPath string `json:"runcPath"`
	RuncRoot string `json:"runcRoot"`
	LogPath  string `json:"logPath"`
	// Stdin, StdinOnce and TTY are ContainerConfig's.
	Stdin     bool `json:"stdin,omitempty"`
	StdinOnce bool `json:"stdinOnce,omitempty"`
	TTY       bool `json:"tty,omitempty"`
}

func (r *Runtime) containersDir() string         { return filepath.Join(r.cfg.Root, "containers") }
func (r *Runtime) containerDir(id string) string { return filepath.Join(r.containersDir(), id) }
func (r *Runtime) cgroupsPath(id string) string  { return path.Join(r.cfg.CgroupParent, id) }

func (r *Runtime) sandboxesDir() string { return filepath.Join(r.cfg.RunDir, "sandboxes") }
func (r *Runtime) sandboxRecord(id string) string {
	return filepath.Join(r.sandboxesDir(), id+".json")
}

// nsKinds are the namespaces a sandbox pins, each in RunDir/<dir>/<id>.
var nsKinds = []struct {
	dir  string // under RunDir
	proc string // /proc/<pid>/ns/<proc>
}{
	{"netns", "net"},
	{"utsns", "uts"},
	{"ipcns", "ipc"},
}

func (r *Runtime) nsPath(dir, id string) string { return filepath.Join(r.cfg.RunDir, dir, id) }

// writeJSONAtomic writes v to file through a temporary file and a rename,
// so readers see the old content or the new, never a part.
func writeJSONAtomic(file string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, file)
}

func readJSON(file string, v any) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	return nil
}

func readPidFile(file string) (int, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("pid file %s: %w: %q", file, ErrInvalid, data)
	}
	return pid, nil
}

func exists(file string) bool {
	_, err := os.Lstat(file)
	return err == nil
}

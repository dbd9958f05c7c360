package runtime

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// shimArgv0 is the argv[0] under which the runtime re-executes its own
// binary (Config.ShimPath) as a helper process. Any binary that imports
// this package becomes the helper when started under that name; under any
// other name the init below does nothing.
const shimArgv0 = "kite-runtime-shim"

// Helper modes, the first argument after argv[0].
const (
	modeDaemonize = "daemonize" // start the container shim in its own session, then exit
	modeContainer = "container" // the container shim: runc create, logs, exit status
	modeSandbox   = "sandbox"   // hold new namespaces while the parent pins them
	modeExec      = "exec"      // run `runc exec -d` and wait for its process (TTY exec)
)

func init() {
	if filepath.Base(os.Args[0]) == shimArgv0 {
		os.Exit(shimMain(os.Args[1:]))
	}
}

func shimMain(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, shimArgv0+": missing mode")
		return 2
	}
	switch mode, args := args[0], args[1:]; {
	case mode == modeDaemonize && len(args) == 1:
		return shimDaemonize(args[0])
	case mode == modeContainer && len(args) == 1:
		return shimContainer(args[0])
	case mode == modeSandbox && len(args) == 1:
		return shimSandbox(args[0])
	case mode == modeExec && len(args) >= 2:
		return shimExec(args[0], args[1:])
	default:
		fmt.Fprintf(os.Stderr, "%s: bad arguments %q\n", shimArgv0, os.Args[1:])
		return 2
	}
}

// helperCommand returns a command re-executing the shim binary in a mode.
func (r *Runtime) helperCommand(mode string, args ...string) *exec.Cmd {
	cmd := exec.Command(r.cfg.ShimPath, append([]string{mode}, args...)...)
	cmd.Args[0] = shimArgv0
	return cmd
}

// readyFD is the file descriptor on which the daemonized shim reports
// "ok" or "error: ..." once `runc create` has finished.
const readyFD = 3

// startShim starts the container shim for dir, detached from the calling
// process, and waits until it has created the container with runc. The
// shim is started through an intermediate process that exits at once
// (reaped here), so the shim is nobody's child in the agent and needs no
// goroutine or wait there.
func (r *Runtime) startShim(dir string, timeout time.Duration) error {
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return err
	}
	defer readyR.Close()
	cmd := r.helperCommand(modeDaemonize, dir)
	cmd.ExtraFiles = []*os.File{readyW}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	err = cmd.Run()
	readyW.Close()
	if err != nil {
		return fmt.Errorf("start shim: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	// The shim closes its end after `runc create`; EOF without a word
	// means it died.
	readyR.SetReadDeadline(time.Now().Add(timeout))
	msg, err := io.ReadAll(readyR)
	if err != nil {
		return fmt.Errorf("shim: waiting for runc create: %w", err)
	}
	switch s := strings.TrimSpace(string(msg)); {
	case s == "ok":
		return nil
	case strings.HasPrefix(s, "error: "):
		return errors.New(strings.TrimPrefix(s, "error: "))
	default:
		log, _ := os.ReadFile(filepath.Join(dir, fileShimLog))
		return fmt.Errorf("shim exited without reporting: %q %s", s, strings.TrimSpace(string(log)))
	}
}

// shimDaemonize starts the container shim in a new session, its stdio on
// /dev/null and shim.log, hands it the ready pipe, and returns without
// waiting: the shim is reparented to the nearest subreaper (or init).
func shimDaemonize(dir string) int {
	ready := os.NewFile(readyFD, "ready")
	logf, err := os.OpenFile(filepath.Join(dir, fileShimLog), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		fmt.Fprintf(ready, "error: shim log: %v\n", err)
		return 1
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintf(ready, "error: shim binary: %v\n", err)
		return 1
	}
	cmd := exec.Command(self, modeContainer, dir)
	cmd.Args[0] = shimArgv0
	cmd.Dir = "/"
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.ExtraFiles = []*os.File{ready}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(ready, "error: start shim: %v\n", err)
		return 1
	}
	return 0
}

// shimContainer is the container shim. It
//   - takes the lock file (held until it exits: "the shim is alive");
//   - becomes a child subreaper, so the container's init, orphaned when
//     `runc create` exits, is reparented to it and can be waited for;
//   - runs `runc create` with stdout and stderr on two pipes, which the
//     container's process inherits (and, with Stdin, stdin on a third);
//     with a TTY, `runc create --console-socket` hands it the terminal's
//     master instead;
//   - serves attach.sock (attach.go): attachers' input goes to stdin,
//     output to every attacher;
//   - reports on the ready pipe, then copies the output into the log file
//     in the CRI format (and to attachers) until the container exits;
//   - writes exit.json with the exit status and whether the cgroup saw an
//     OOM kill, ends the attachers and exits.
func shimContainer(dir string) int {
	ready := os.NewFile(readyFD, "ready")
	fail := func(format string, args ...any) int {
		fmt.Fprintf(ready, "error: "+format+"\n", args...)
		ready.Close()
		fmt.Fprintf(os.Stderr, format+"\n", args...)
		return 1
	}
	// Signals meant for the agent's process group or terminal are not ours.
	signal.Ignore(syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGPIPE)
	// SIGUSR1: reopen the log file (ReopenContainerLog). Caught from the
	// start: its default action would end the shim.
	reopen := make(chan os.Signal, 1)
	signal.Notify(reopen, syscall.SIGUSR1)

	var cfg shimConfig
	if err := readJSON(filepath.Join(dir, fileShim), &cfg); err != nil {
		return fail("shim config: %v", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, fileLock), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fail("shim lock: %v", err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return fail("shim lock: %v (another shim runs for %s)", err, cfg.ID)
	}
	lock.Truncate(0)
	lock.WriteString(strconv.Itoa(os.Getpid()) + "\n")
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fail("subreaper: %v", err)
	}
	logf, err := os.OpenFile(cfg.LogPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return fail("container log: %v", err)
	}
	dirFD, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fail("open %s: %v", dir, err)
	}
	// Sockets are bound through the directory's descriptor: short paths.
	shortPath := func(name string) string { return fmt.Sprintf("/proc/%d/fd/%d/%s", os.Getpid(), dirFD, name) }
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: shortPath(fileAttach), Net: "unix"})
	if err != nil {
		return fail("attach socket: %v", err)
	}
	ln.SetUnlinkOnClose(false) // the path is only valid while dirFD is open
	hub := &attachHub{ln: ln, conns: map[*attacher]struct{}{}, stdinOnce: cfg.StdinOnce}

	runcLog := filepath.Join(dir, fileRuncLog)
	args := []string{"--root", cfg.RuncRoot, "--log", runcLog, "--log-format", "json",
		"create", "--bundle", dir, "--pid-file", filepath.Join(dir, fileInitPid)}
	create := exec.Command(cfg.RuncPath)
	create.Dir = dir
	// The process's output: two pipes, or the terminal's master.
	outputs := map[string]io.Reader{}
	var closeAfterCreate []*os.File
	var console chan recvResult
	if cfg.TTY {
		cln, err := net.ListenUnix("unix", &net.UnixAddr{Name: shortPath(fileConsole), Net: "unix"})
		if err != nil {
			return fail("console socket: %v", err)
		}
		cln.SetUnlinkOnClose(false)
		defer os.Remove(filepath.Join(dir, fileConsole))
		defer cln.Close()
		console = make(chan recvResult, 1)
		go func() {
			cln.SetDeadline(time.Now().Add(createTimeout))
			f, err := receiveConsole(cln)
			console <- recvResult{f, err}
		}()
		args = append(args, "--console-socket", shortPath(fileConsole))
		var runcOut strings.Builder
		create.Stdout, create.Stderr = &runcOut, &runcOut
	} else {
		outR, outW, err := os.Pipe()
		if err != nil {
			return fail("pipe: %v", err)
		}
		errR, errW, err := os.Pipe()
		if err != nil {
			return fail("pipe: %v", err)
		}
		create.Stdout, create.Stderr = outW, errW
		outputs[StreamStdout], outputs[StreamStderr] = outR, errR
		closeAfterCreate = append(closeAfterCreate, outW, errW)
		if cfg.Stdin {
			inR, inW, err := os.Pipe()
			if err != nil {
				return fail("pipe: %v", err)
			}
			create.Stdin, hub.stdin = inR, inW
			closeAfterCreate = append(closeAfterCreate, inR)
		}
	}
	create.Args = append(append(create.Args, args...), cfg.ID)
	err = create.Run()
	for _, f := range closeAfterCreate {
		f.Close()
	}
	if err != nil {
		return fail("runc create: %v: %s", err, runcErrors(runcLog))
	}
	if cfg.TTY {
		got := <-console
		if got.err != nil {
			return fail("runc create: console: %v", got.err)
		}
		hub.tty = got.f
		outputs[StreamStdout] = got.f
		if cfg.Stdin {
			hub.stdin = got.f
		}
	}
	pid, err := readPidFile(filepath.Join(dir, fileInitPid))
	if err != nil {
		return fail("runc create: %v", err)
	}
	go hub.serve()
	fmt.Fprintln(ready, "ok")
	ready.Close()

	logger := &criLogger{w: logf, now: time.Now}
	go reopenLogs(logger, cfg.LogPath, reopen)
	var copying sync.WaitGroup
	for stream, r := range outputs {
		copying.Add(1)
		go func() {
			defer copying.Done()
			if err := copyOutput(logger, hub, stream, r); err != nil {
				fmt.Fprintf(os.Stderr, "%s: %v\n", stream, err)
			}
		}()
	}

	rec := exitRecord{ExitCode: -1}
	ws, err := reap(pid)
	if err != nil {
		fmt.Fprintf(os.Stderr, "wait for container init %d: %v\n", pid, err)
	} else {
		rec.ExitCode, rec.Signal = exitCode(ws)
	}
	rec.FinishedAt = time.Now().UTC()
	rec.OOMKilled = sawOOMKill(cfg.RuncRoot, cfg.ID)

	// With its own PID namespace, every process of the container died with
	// its init, so the pipes close at once; the timeout covers a process
	// that somehow kept a copy.
	drained := make(chan struct{})
	go func() { copying.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(2 * time.Second):
		fmt.Fprintln(os.Stderr, "container output still open 2s after exit; closing the log")
	}
	logger.mu.Lock()
	logger.w.(*os.File).Sync()
	logger.mu.Unlock()
	if err := writeJSONAtomic(filepath.Join(dir, fileExit), rec); err != nil {
		fmt.Fprintf(os.Stderr, "exit record: %v\n", err)
		return 1
	}
	// Attachers end after the exit is recorded: what they do next (read
	// the status) sees it.
	hub.close(2 * time.Second)
	return 0
}

// reopenLogs switches the logger to a new file at path on every signal:
// the caller has renamed the current one away. Entries are never split
// between the files (the switch holds the logger's lock).
func reopenLogs(logger *criLogger, path string, signals <-chan os.Signal) {
	for range signals {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
		if err != nil {
			fmt.Fprintf(os.Stderr, "reopen container log: %v\n", err)
			continue
		}
		logger.mu.Lock()
		old := logger.w.(*os.File)
		logger.w = f
		logger.mu.Unlock()
		old.Close()
	}
}

type recvResult struct {
	f   *os.File
	err error
}

// reap waits for pid, which must be (or become, by reparenting) a child of
// this subreaper, reaping any other child that exits meanwhile.
func reap(pid int) (unix.WaitStatus, error) {
	for {
		var ws unix.WaitStatus
		got, err := unix.Wait4(-1, &ws, 0, nil)
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return 0, err
		case got == pid:
			return ws, nil
		}
	}
}

// exitCode is the shell's convention: the status, or 128+n for signal n.
func exitCode(ws unix.WaitStatus) (code, signal int) {
	if ws.Signaled() {
		return 128 + int(ws.Signal()), int(ws.Signal())
	}
	return ws.ExitStatus(), 0
}

// sawOOMKill reads the container's memory cgroup (from runc's state file:
// the cgroup v1 memory hierarchy, or the unified one) for an OOM kill.
func sawOOMKill(runcRoot, id string) bool {
	var st struct {
		CgroupPaths map[string]string `json:"cgroup_paths"`
	}
	if readJSON(filepath.Join(runcRoot, id, "state.json"), &st) != nil {
		return false
	}
	file := ""
	if p := st.CgroupPaths["memory"]; p != "" {
		file = filepath.Join(p, "memory.oom_control")
	} else if p := st.CgroupPaths[""]; p != "" {
		file = filepath.Join(p, "memory.events")
	}
	f, err := os.Open(file)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), " "); ok && k == "oom_kill" {
			n, _ := strconv.Atoi(v)
			return n > 0
		}
	}
	return false
}

// runcErrors returns the error messages of a runc JSON log.
func runcErrors(file string) string {
	f, err := os.Open(file)
	if err != nil {
		return ""
	}
	defer f.Close()
	var msgs []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e struct{ Level, Msg string }
		if json.Unmarshal(sc.Bytes(), &e) == nil && (e.Level == "error" || e.Level == "fatal") {
			msgs = append(msgs, e.Msg)
		}
	}
	return strings.Join(msgs, "; ")
}

// shimSandbox runs in new namespaces (the parent's Cloneflags): it sets
// the hostname, brings loopback up, says "ok" on stdout and waits for stdin
// to close while the parent bind-mounts its namespaces.
func shimSandbox(hostname string) int {
	if hostname != "" {
		if err := unix.Sethostname([]byte(hostname)); err != nil {
			fmt.Fprintf(os.Stderr, "sethostname: %v\n", err)
			return 1
		}
	}
	if err := loopbackUp(); err != nil {
		fmt.Fprintf(os.Stderr, "lo up: %v\n", err)
		return 1
	}
	fmt.Println("ok")
	io.Copy(io.Discard, os.Stdin)
	return 0
}

func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

// execResult is what the exec helper prints on stdout.
type execResult struct {
	ExitCode int    `json:"exitCode"`
	Error    string `json:"error,omitempty"`
}

// shimExec runs `runc exec -d ... --pid-file pidFile` (argv) as a child
// subreaper, so the detached process is reparented to it, waits for that
// process and prints its exit code as an execResult.
func shimExec(pidFile string, argv []string) int {
	out := json.NewEncoder(os.Stdout)
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		out.Encode(execResult{Error: "subreaper: " + err.Error()})
		return 0
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	var runcOut strings.Builder
	cmd.Stdout, cmd.Stderr = &runcOut, &runcOut
	if err := cmd.Run(); err != nil {
		out.Encode(execResult{Error: fmt.Sprintf("runc exec: %v: %s", err, strings.TrimSpace(runcOut.String()))})
		return 0
	}
	pid, err := readPidFile(pidFile)
	if err != nil {
		out.Encode(execResult{Error: err.Error()})
		return 0
	}
	ws, err := reap(pid)
	if err != nil {
		out.Encode(execResult{Error: fmt.Sprintf("wait for exec process %d: %v", pid, err)})
		return 0
	}
	code, _ := exitCode(ws)
	out.Encode(execResult{ExitCode: code})
	return 0
}

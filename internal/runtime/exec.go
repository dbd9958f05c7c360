package runtime

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Exec runs cfg.Cmd in the container with `runc exec`.
//
// Without a TTY, runc runs in the foreground: it copies the given streams
// and exits with the command's status. With a TTY, `runc exec -d -t
// --console-socket` sends the pseudo-terminal's master back over the
// socket (SCM_RIGHTS); Exec copies between it and the streams and applies
// Resize to it, while the exec helper (a child subreaper, so the detached
// command becomes its child) waits for the command and reports its status.
//
// Cancelling ctx kills the command. As with os/exec, a goroutine blocked
// reading cfg.Stdin after the command exits is abandoned.
func (r *Runtime) Exec(ctx context.Context, id string, cfg ExecConfig) (int, error) {
	if err := checkID("container", id); err != nil {
		return -1, err
	}
	if len(cfg.Cmd) == 0 {
		return -1, fmt.Errorf("exec in %s: %w: no command", id, ErrInvalid)
	}
	if !exists(filepath.Join(r.containerDir(id), fileRecord)) {
		return -1, fmt.Errorf("exec in %s: %w", id, ErrNotFound)
	}
	tmp, err := r.execDir()
	if err != nil {
		return -1, fmt.Errorf("exec in %s: %w", id, err)
	}
	defer os.RemoveAll(tmp)
	args := []string{"--root", r.cfg.RuncRoot, "--log", filepath.Join(tmp, "runc.log"), "--log-format", "json",
		"exec", "--pid-file", filepath.Join(tmp, "pid")}
	for _, e := range cfg.Env {
		args = append(args, "--env", e)
	}
	var code int
	if cfg.TTY {
		code, err = r.execTTY(ctx, id, cfg, tmp, args)
	} else {
		code, err = r.execPipes(ctx, id, cfg, tmp, args)
	}
	if err != nil {
		return -1, fmt.Errorf("exec in %s: %w", id, err)
	}
	return code, nil
}

// execDir makes a private directory for one exec's pid file, runc log and
// console socket, short enough for a socket path (108 bytes).
func (r *Runtime) execDir() (string, error) {
	base := filepath.Join(r.cfg.RunDir, "exec")
	if len(base) > 80 {
		base = os.TempDir()
	}
	if err := os.MkdirAll(base, 0o700); err != nil {
		return "", err
	}
	return os.MkdirTemp(base, "exec-")
}

// killExec kills the exec'd process named by the pid file, if it has one.
func killExec(tmp string) bool {
	pid, err := readPidFile(filepath.Join(tmp, "pid"))
	if err != nil {
		return false
	}
	return unix.Kill(pid, unix.SIGKILL) == nil
}

func (r *Runtime) execPipes(ctx context.Context, id string, cfg ExecConfig, tmp string, args []string) (int, error) {
	args = append(append(args, id), cfg.Cmd...)
	cmd := exec.Command(r.cfg.RuncPath, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = cfg.Stdin, cfg.Stdout, cfg.Stderr
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		return -1, err
	}
	stop := context.AfterFunc(ctx, func() {
		if !killExec(tmp) {
			cmd.Process.Kill()
		}
	})
	defer stop()
	err := cmd.Wait()
	var ee *exec.ExitError
	switch {
	case err == nil, errors.Is(err, exec.ErrWaitDelay):
		return 0, nil
	case errors.As(err, &ee):
		// runc exits with the command's status, and also with 1 when it
		// fails itself: then its log says why.
		if msg := runcErrors(filepath.Join(tmp, "runc.log")); msg != "" {
			return -1, fmt.Errorf("runc exec: %w", runcStateError(msg))
		}
		if ctx.Err() != nil {
			return -1, ctx.Err()
		}
		if ws, ok := ee.Sys().(interface{ Signaled() bool }); ok && ws.Signaled() {
			return -1, fmt.Errorf("runc exec: %w", err)
		}
		return ee.ExitCode(), nil
	default:
		return -1, err
	}
}

func (r *Runtime) execTTY(ctx context.Context, id string, cfg ExecConfig, tmp string, args []string) (int, error) {
	sock := filepath.Join(tmp, "console.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		return -1, err
	}
	defer ln.Close()
	args = append(append(args, "-d", "-t", "--console-socket", sock, id), cfg.Cmd...)
	helper := r.helperCommand(modeExec, append([]string{filepath.Join(tmp, "pid"), r.cfg.RuncPath}, args...)...)
	var stdout, stderr bytes.Buffer
	helper.Stdout, helper.Stderr = &stdout, &stderr
	if err := helper.Start(); err != nil {
		return -1, fmt.Errorf("exec helper: %w", err)
	}
	helperDone := make(chan error, 1)
	go func() { helperDone <- helper.Wait() }()
	stop := context.AfterFunc(ctx, func() {
		if !killExec(tmp) {
			helper.Process.Kill()
		}
	})
	defer stop()

	type recv struct {
		f   *os.File
		err error
	}
	got := make(chan recv, 1)
	go func() {
		ln.SetDeadline(time.Now().Add(createTimeout))
		f, err := receiveConsole(ln)
		got <- recv{f, err}
	}()
	var master *os.File
	select {
	case rv := <-got:
		if rv.err != nil {
			helper.Process.Kill()
			<-helperDone
			return -1, fmt.Errorf("console socket: %w (%s)", rv.err, execHelperMessage(&stdout, &stderr))
		}
		master = rv.f
	case err := <-helperDone:
		ln.Close()
		if rv := <-got; rv.f != nil {
			rv.f.Close()
		}
		var res execResult
		if json.Unmarshal(stdout.Bytes(), &res) == nil && res.Error != "" {
			return -1, runcStateError(res.Error)
		}
		return -1, fmt.Errorf("exec helper ended before sending a console: %v: %s", err, execHelperMessage(&stdout, &stderr))
	}
	defer master.Close()

	done := make(chan struct{})
	defer close(done)
	if cfg.Resize != nil {
		go func() {
			for {
				select {
				case sz, ok := <-cfg.Resize:
					if !ok {
						return
					}
					setWinsize(master, sz)
				case <-done:
					return
				}
			}
		}()
	}
	if cfg.Stdin != nil {
		go io.Copy(master, cfg.Stdin)
	}
	copied := make(chan struct{})
	go func() {
		// Ends with EIO once every process holding the terminal exited.
		if cfg.Stdout != nil {
			io.Copy(cfg.Stdout, master)
		} else {
			io.Copy(io.Discard, master)
		}
		close(copied)
	}()

	err = <-helperDone
	var res execResult
	if jerr := json.Unmarshal(stdout.Bytes(), &res); jerr != nil {
		return -1, fmt.Errorf("exec helper: %v: %s", err, execHelperMessage(&stdout, &stderr))
	}
	if res.Error != "" {
		return -1, runcStateError(res.Error)
	}
	select {
	case <-copied:
	case <-time.After(2 * time.Second):
		// A background process keeps the terminal open: stop reading.
		master.SetReadDeadline(time.Now())
		<-copied
	}
	if ctx.Err() != nil {
		return -1, ctx.Err()
	}
	return res.ExitCode, nil
}

func execHelperMessage(stdout, stderr *bytes.Buffer) string {
	return strings.TrimSpace(stdout.String() + " " + stderr.String())
}

// receiveConsole accepts runc's connection on the console socket and
// returns the pseudo-terminal master it sends with SCM_RIGHTS.
func receiveConsole(ln *net.UnixListener) (*os.File, error) {
	conn, err := ln.AcceptUnix()
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	buf := make([]byte, 4096) // runc sends the terminal's name along
	oob := make([]byte, unix.CmsgSpace(4))
	_, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
	if err != nil {
		return nil, err
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return nil, err
	}
	if len(msgs) != 1 {
		return nil, fmt.Errorf("want one control message, got %d", len(msgs))
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil {
		return nil, err
	}
	if len(fds) != 1 {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return nil, fmt.Errorf("want one file descriptor, got %d", len(fds))
	}
	unix.SetNonblock(fds[0], true)
	return os.NewFile(uintptr(fds[0]), "pty-master"), nil
}

// setWinsize sets a terminal's window size (through SyscallConn: Fd would
// switch the file to blocking mode and break its deadlines).
func setWinsize(f *os.File, sz Size) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ioErr error
	err = rc.Control(func(fd uintptr) {
		ioErr = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, &unix.Winsize{Row: sz.Height, Col: sz.Width})
	})
	if err != nil {
		return err
	}
	return ioErr
}

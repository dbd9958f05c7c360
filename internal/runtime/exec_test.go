package runtime

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

func TestExecPipes(t *testing.T) {
	rt := newTestRuntime(t)
	before := snapshot(t, rt)
	layer := newPod(t, rt, "kuard")
	ctx := testCtx(t)
	runContainer(t, rt, shellContainer("c", "kuard", layer, "sleep 1000"))

	for _, tc := range []struct {
		name           string
		cmd            []string
		env            []string
		stdin          string
		code           int
		stdout, stderr string
	}{
		{name: "exit code and streams", cmd: []string{"sh", "-c", "echo out; echo err >&2; exit 4"}, code: 4, stdout: "out\n", stderr: "err\n"},
		{name: "stdin", cmd: []string{"cat"}, stdin: "hello\nworld", stdout: "hello\nworld"},
		{name: "hostname is the pod's", cmd: []string{"hostname"}, stdout: "kuard\n"},
		{name: "env adds to the container's", cmd: []string{"sh", "-c", "echo $FOO $PATH"}, env: []string{"FOO=bar"}, stdout: "bar /bin\n"},
		{name: "missing command", cmd: []string{"sh", "-c", "/nope"}, code: 127, stderr: "sh: /nope: not found\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			cfg := ExecConfig{Cmd: tc.cmd, Env: tc.env, Stdout: &stdout, Stderr: &stderr}
			if tc.stdin != "" {
				cfg.Stdin = strings.NewReader(tc.stdin)
			}
			code, err := rt.Exec(ctx, "c", cfg)
			if err != nil {
				t.Fatal(err)
			}
			if code != tc.code || stdout.String() != tc.stdout || stderr.String() != tc.stderr {
				t.Errorf("got %d, %q, %q; want %d, %q, %q", code, stdout.String(), stderr.String(), tc.code, tc.stdout, tc.stderr)
			}
		})
	}

	// A command that runc cannot start is an error, not an exit code.
	if code, err := rt.Exec(ctx, "c", ExecConfig{Cmd: []string{"/nope"}}); err == nil {
		t.Errorf("exec of a missing binary: code %d, no error", code)
	} else {
		t.Logf("exec of a missing binary: %v", err)
	}
	if _, err := rt.Exec(ctx, "nope", ExecConfig{Cmd: []string{"true"}}); !IsNotFound(err) {
		t.Errorf("exec in a missing container: %v", err)
	}

	// Cancelling the context kills the command.
	cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := rt.Exec(cctx, "c", ExecConfig{Cmd: []string{"sleep", "1000"}}); err == nil {
		t.Error("cancelled exec: no error")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("cancelled exec returned after %v", d)
	}
	var ps bytes.Buffer
	rt.Exec(ctx, "c", ExecConfig{Cmd: []string{"ps", "-o", "args"}, Stdout: &ps})
	if strings.Count(ps.String(), "sleep 1000") != 1 {
		t.Errorf("processes after a cancelled exec:\n%s", ps.String())
	}

	// Exec in an exited container fails.
	if err := rt.StopContainer(ctx, "c", 0); err != nil {
		t.Fatal(err)
	}
	for _, tty := range []bool{false, true} {
		if code, err := rt.Exec(ctx, "c", ExecConfig{Cmd: []string{"true"}, TTY: tty}); !errors.Is(err, ErrWrongState) {
			t.Errorf("exec (tty %v) in an exited container: code %d, %v; want ErrWrongState", tty, code, err)
		}
	}
	if err := rt.StartContainer(ctx, "c"); !errors.Is(err, ErrWrongState) {
		t.Errorf("start of an exited container: %v; want ErrWrongState", err)
	}
	rt.RemoveContainer(ctx, "c")
	rt.RemoveSandbox(ctx, "kuard")
	checkNoLeak(t, rt, before)
}

func TestExecTTY(t *testing.T) {
	rt := newTestRuntime(t)
	before := snapshot(t, rt)
	layer := newPod(t, rt, "kuard")
	ctx := testCtx(t)
	runContainer(t, rt, shellContainer("c", "kuard", layer, "sleep 1000"))

	stdinR, stdinW := io.Pipe()
	resize := make(chan Size)
	var out bytes.Buffer
	done := make(chan struct{})
	var code int
	var err error
	go func() {
		defer close(done)
		code, err = rt.Exec(ctx, "c", ExecConfig{
			Cmd:    []string{"sh", "-c", "read line; stty size; hostname; [ -t 0 ] && echo on-a-tty; echo got $line; exit 5"},
			TTY:    true,
			Stdin:  stdinR,
			Stdout: &out,
			Resize: resize,
		})
	}()
	// The resize loop applies one size before it takes the next: after the
	// second send the first is in place.
	resize <- Size{Width: 100, Height: 30}
	resize <- Size{Width: 100, Height: 30}
	io.WriteString(stdinW, "go\n")
	<-done
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(out.String(), "\r\n", "\n")
	for _, want := range []string{"30 100\n", "kuard\n", "on-a-tty\n", "got go\n"} {
		if !strings.Contains(text, want) {
			t.Errorf("terminal output %q lacks %q", text, want)
		}
	}
	if code != 5 {
		t.Errorf("exit code %d, want 5", code)
	}

	// Cancelling kills a TTY command too.
	cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, err := rt.Exec(cctx, "c", ExecConfig{Cmd: []string{"sleep", "1000"}, TTY: true, Stdout: io.Discard}); err == nil {
		t.Error("cancelled TTY exec: no error")
	}
	// A TTY exec of a missing binary is an error.
	if _, err := rt.Exec(ctx, "c", ExecConfig{Cmd: []string{"/nope"}, TTY: true, Stdout: io.Discard}); err == nil {
		t.Error("TTY exec of a missing binary: no error")
	} else {
		t.Logf("TTY exec of a missing binary: %v", err)
	}

	rt.RemoveContainer(ctx, "c")
	rt.RemoveSandbox(ctx, "kuard")
	checkNoLeak(t, rt, before)
}

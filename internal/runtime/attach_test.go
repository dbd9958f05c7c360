package runtime

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"
)

// attachSession is an Attach running in the background.
type attachSession struct {
	stdin  *io.PipeWriter
	out    *syncBuffer
	errOut *syncBuffer
	cancel context.CancelFunc
	done   chan error
}

func startAttach(t *testing.T, rt *Runtime, id string, tty bool, resize <-chan Size) *attachSession {
	t.Helper()
	ctx, cancel := context.WithCancel(testCtx(t))
	inR, inW := io.Pipe()
	s := &attachSession{stdin: inW, out: &syncBuffer{}, errOut: &syncBuffer{}, cancel: cancel, done: make(chan error, 1)}
	go func() {
		s.done <- rt.Attach(ctx, id, AttachConfig{Stdin: inR, Stdout: s.out, Stderr: s.errOut, TTY: tty, Resize: resize})
	}()
	t.Cleanup(cancel)
	return s
}

// wait returns Attach's result, failing the test if it does not end.
func (s *attachSession) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-s.done:
		return err
	case <-time.After(20 * time.Second):
		t.Fatal("attach did not end")
		return nil
	}
}

func (s *attachSession) waitOutput(t *testing.T, want string) {
	t.Helper()
	waitFor(t, "attach output "+want, 10*time.Second, func() bool { return strings.Contains(s.out.String(), want) })
}

// stdinContainer runs cat-like script with stdin open.
func stdinContainer(id, sandbox, layer, script string, once bool) ContainerConfig {
	c := shellContainer(id, sandbox, layer, script)
	c.Stdin, c.StdinOnce = true, once
	return c
}

func TestAttachStdin(t *testing.T) {
	rt := newTestRuntime(t)
	before := snapshot(t, rt)
	layer := newPod(t, rt, "pod")
	ctx := testCtx(t)
	st := runContainer(t, rt, stdinContainer("cat", "pod", layer, "cat; echo stdin closed >&2", false))

	// Input reaches the process; its output comes back, and goes to the log.
	a := startAttach(t, rt, "cat", false, nil)
	io.WriteString(a.stdin, "hello\n")
	a.waitOutput(t, "hello\n")
	// Detaching (and ending this attacher's stdin) leaves stdin open.
	a.stdin.Close()
	a.cancel()
	if err := a.wait(t); !errors.Is(err, context.Canceled) {
		t.Errorf("detach: %v, want context.Canceled", err)
	}
	b := startAttach(t, rt, "cat", false, nil)
	io.WriteString(b.stdin, "again\n")
	b.waitOutput(t, "again\n")
	if s, _ := rt.ContainerStatus(ctx, "cat"); s.State != StateRunning {
		t.Fatalf("after a detach without stdinOnce: %s, want running", s.State)
	}
	// The attach ends when the container does, with all of its output.
	if err := rt.StopContainer(ctx, "cat", 0); err != nil {
		t.Fatal(err)
	}
	if err := b.wait(t); err != nil {
		t.Errorf("attach to a container that exited: %v", err)
	}
	if got := logText(logEntries(t, st.LogPath), StreamStdout); got != "hello\nagain\n" {
		t.Errorf("log stdout %q, want hello and again", got)
	}
	if err := rt.Attach(ctx, "cat", AttachConfig{}); !errors.Is(err, ErrWrongState) {
		t.Errorf("attach to an exited container: %v, want ErrWrongState", err)
	}
	if err := rt.Attach(ctx, "nope", AttachConfig{}); !IsNotFound(err) {
		t.Errorf("attach to a missing container: %v, want not found", err)
	}
	rt.RemoveContainer(ctx, "cat")
	rt.RemoveSandbox(ctx, "pod")
	checkNoLeak(t, rt, before)
}

func TestAttachStdinOnce(t *testing.T) {
	rt := newTestRuntime(t)
	layer := newPod(t, rt, "pod")

	// kubectl run -i: the attacher's stdin ends, so does the process's;
	// the attach ends with the container, stderr kept apart.
	runContainer(t, rt, stdinContainer("eof", "pod", layer, "cat; echo stdin closed >&2", true))
	a := startAttach(t, rt, "eof", false, nil)
	io.WriteString(a.stdin, "one\n")
	a.stdin.Close()
	if err := a.wait(t); err != nil {
		t.Fatal(err)
	}
	if a.out.String() != "one\n" || a.errOut.String() != "stdin closed\n" {
		t.Errorf("stdout %q, stderr %q; want one, stdin closed", a.out.String(), a.errOut.String())
	}
	if st := waitExited(t, rt, "eof"); st.ExitCode != 0 {
		t.Errorf("exit code %d, want 0", st.ExitCode)
	}

	// The first attacher's detach closes stdin as well.
	st := runContainer(t, rt, stdinContainer("detach", "pod", layer, "cat; echo stdin closed", true))
	b := startAttach(t, rt, "detach", false, nil)
	io.WriteString(b.stdin, "two\n")
	b.waitOutput(t, "two\n")
	b.cancel()
	b.wait(t)
	if st := waitExited(t, rt, "detach"); st.ExitCode != 0 {
		t.Errorf("exit code %d, want 0", st.ExitCode)
	}
	if got := logText(logEntries(t, st.LogPath), StreamStdout); got != "two\nstdin closed\n" {
		t.Errorf("log stdout %q", got)
	}
}

func TestAttachTTY(t *testing.T) {
	rt := newTestRuntime(t)
	before := snapshot(t, rt)
	layer := newPod(t, rt, "pod")
	ctx := testCtx(t)
	cfg := stdinContainer("sh", "pod", layer, "", true)
	cfg.Args, cfg.TTY = []string{"sh"}, true
	st := runContainer(t, rt, cfg)

	resize := make(chan Size)
	a := startAttach(t, rt, "sh", true, resize)
	// The resize loop sends one size before it takes the next: after the
	// second send the first is on the wire, ahead of the input below.
	resize <- Size{Width: 100, Height: 30}
	resize <- Size{Width: 100, Height: 30}
	io.WriteString(a.stdin, "echo hi; stty size; [ -t 0 ] && echo on-a-tty; echo $((40+2))\n")
	a.waitOutput(t, "42")
	io.WriteString(a.stdin, "exit 3\n")
	if err := a.wait(t); err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(a.out.String(), "\r\n", "\n")
	for _, want := range []string{"\nhi\n", "\n30 100\n", "\non-a-tty\n", "\n42\n"} {
		if !strings.Contains(text, want) {
			t.Errorf("terminal output %q lacks %q", text, want)
		}
	}
	if a.errOut.String() != "" {
		t.Errorf("a TTY has no stderr, got %q", a.errOut.String())
	}
	if st := waitExited(t, rt, "sh"); st.ExitCode != 3 {
		t.Errorf("exit code %d, want 3", st.ExitCode)
	}
	if got := logText(logEntries(t, st.LogPath), StreamStdout); !strings.Contains(got, "42") {
		t.Errorf("log stdout %q lacks the terminal's output", got)
	}
	rt.RemoveContainer(ctx, "sh")
	rt.RemoveSandbox(ctx, "pod")
	checkNoLeak(t, rt, before)
}

// syncBuffer is a strings.Builder safe for a writer and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

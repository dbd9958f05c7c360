package runtime

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// ReopenContainerLog (log rotation): after the log file is renamed away
// and the shim told, output goes on into a new file at LogPath; nothing
// is lost or repeated across the two files. An exited container cannot
// reopen.
func TestReopenContainerLog(t *testing.T) {
	rt := newTestRuntime(t)
	layer := newPod(t, rt, "pod")
	ctx := testCtx(t)
	cfg := shellContainer("chatty", "pod", layer, `trap 'exit 0' TERM; i=0; while [ $i -lt 2000 ]; do echo line$i; i=$((i+1)); sleep 0.01; done`)
	cfg.LogPath = filepath.Join(t.TempDir(), "logs", "0.log")
	runContainer(t, rt, cfg)
	waitFor(t, "some output", 10*time.Second, func() bool {
		data, _ := os.ReadFile(cfg.LogPath)
		return strings.Contains(string(data), "line5\n")
	})
	rotated := cfg.LogPath + ".20260101-000000"
	if err := os.Rename(cfg.LogPath, rotated); err != nil {
		t.Fatal(err)
	}
	if err := rt.ReopenContainerLog(ctx, "chatty"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "output in the new file", 10*time.Second, func() bool {
		data, _ := os.ReadFile(cfg.LogPath)
		return strings.Count(string(data), "\n") >= 5
	})
	if err := rt.StopContainer(ctx, "chatty", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	old, cur := logText(logEntries(t, rotated), StreamStdout), logText(logEntries(t, cfg.LogPath), StreamStdout)
	lines := strings.Split(strings.TrimSuffix(old+cur, "\n"), "\n")
	for i, l := range lines {
		if l != fmt.Sprintf("line%d", i) {
			t.Fatalf("line %d is %q (rotated file %d bytes, new %d)", i, l, len(old), len(cur))
		}
	}
	if old == "" || cur == "" {
		t.Errorf("rotated %q, new %q: want output in both", old, cur)
	}
	if err := rt.ReopenContainerLog(ctx, "chatty"); !errors.Is(err, ErrWrongState) {
		t.Errorf("reopen of an exited container: %v", err)
	}
}

// catches tells a process that handles SIGUSR1 (any Go program, the shim)
// from one that would die of it (sleep, or a shim from before log
// rotation).
func TestCatches(t *testing.T) {
	if !catches(os.Getpid(), unix.SIGUSR1) {
		t.Error("this Go process does not catch SIGUSR1?")
	}
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	if catches(cmd.Process.Pid, unix.SIGUSR1) {
		t.Error("sleep catches SIGUSR1?")
	}
}

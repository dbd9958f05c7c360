package runtime

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"kite/internal/testutil"
)

// Kernel-tier tests: real runc, real namespaces, inside the fresh network
// and mount namespace testutil.MainInNetns makes, so every namespace and
// mount they create vanishes with the test process. Containers run a
// busybox root file system built in t.TempDir(); the only traffic is on
// 127.0.0.1 inside a sandbox.
func TestMain(m *testing.M) { testutil.MainInNetns(m) }

// needRunc skips a test when runc or busybox is missing.
func needRunc(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("runc"); err != nil {
		t.Skip("runc is not installed (apt-get install runc):", err)
	}
	if _, err := exec.LookPath("busybox"); err != nil {
		t.Skip("busybox is not installed (apt-get install busybox-static):", err)
	}
}

var cgroupSeq atomic.Int64

// newTestRuntime returns a Runtime over fresh directories with its own
// cgroup parent. At the end of the test it removes whatever the test left
// and fails if anything could not be removed.
func newTestRuntime(t *testing.T) *Runtime {
	t.Helper()
	needRunc(t)
	dir := t.TempDir()
	parent := fmt.Sprintf("/kite-test-%d-%d", os.Getpid(), cgroupSeq.Add(1))
	rt, err := New(Config{
		Root:         filepath.Join(dir, "root"),
		RunDir:       filepath.Join(dir, "run"),
		CgroupParent: parent,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		cs, _ := rt.ListContainers(ctx)
		for _, c := range cs {
			if err := rt.RemoveContainer(ctx, c.ID); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
		sbs, _ := rt.ListSandboxes(ctx)
		for _, sb := range sbs {
			if err := rt.RemoveSandbox(ctx, sb.ID); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
		for _, d := range cgroupDirs(parent) {
			if err := os.Remove(d); err != nil && !os.IsNotExist(err) {
				t.Errorf("cleanup: cgroup: %v", err)
			}
		}
	})
	return rt
}

// cgroupDirs lists the directories a cgroup path has in the mounted
// hierarchies (v1 controllers and the unified one).
func cgroupDirs(cgroup string) []string {
	var out []string
	entries, _ := os.ReadDir("/sys/fs/cgroup")
	for _, e := range entries {
		d := filepath.Join("/sys/fs/cgroup", e.Name(), cgroup)
		if _, err := os.Stat(d); err == nil {
			out = append(out, d)
		}
	}
	if _, err := os.Stat(filepath.Join("/sys/fs/cgroup", cgroup)); err == nil {
		out = append(out, filepath.Join("/sys/fs/cgroup", cgroup))
	}
	return out
}

// busyboxRootfs builds an image layer with a static busybox and its applets.
func busyboxRootfs(t *testing.T) string {
	t.Helper()
	bb, err := exec.LookPath("busybox")
	if err != nil {
		t.Skip("busybox is not installed:", err)
	}
	root := filepath.Join(t.TempDir(), "busybox")
	for _, d := range []string{"bin", "etc", "proc", "sys", "dev", "tmp", "root"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(filepath.Join(root, "tmp"), 0o1777)
	data, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "bin", "busybox"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	list, err := exec.Command(bb, "--list").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, applet := range strings.Fields(string(list)) {
		if applet == "busybox" {
			continue
		}
		if err := os.Symlink("busybox", filepath.Join(root, "bin", applet)); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(root, "etc", "passwd"), []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"), 0o644)
	os.WriteFile(filepath.Join(root, "etc", "group"), []byte("root:x:0:\nnogroup:x:65534:\n"), 0o644)
	return root
}

var testEnv = []string{"PATH=/bin", "HOME=/root"}

// shellContainer is a container config running script under sh.
func shellContainer(id, sandbox, layer, script string) ContainerConfig {
	return ContainerConfig{
		ID:        id,
		SandboxID: sandbox,
		LowerDirs: []string{layer},
		Args:      []string{"sh", "-c", script},
		Env:       testEnv,
	}
}

// testCtx is a context bounded well below the test binary's timeout.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// logEntries parses a CRI log file.
func logEntries(t *testing.T, path string) []LogEntry {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []LogEntry
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		e, err := ParseLogLine(sc.Bytes())
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, e)
	}
	return out
}

// logText joins a log's entries of one stream into the output text.
func logText(entries []LogEntry, stream string) string {
	var b strings.Builder
	for _, e := range entries {
		if e.Stream != stream {
			continue
		}
		b.Write(e.Content)
		if !e.Partial {
			b.WriteByte('\n')
		}
	}
	return b.String()
}

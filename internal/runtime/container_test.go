package runtime

import (
	"context"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// newPod makes a sandbox and returns the busybox layer for its containers.
func newPod(t *testing.T, rt *Runtime, id string) string {
	t.Helper()
	if _, err := rt.CreateSandbox(testCtx(t), SandboxConfig{ID: id, Hostname: id}); err != nil {
		t.Fatal(err)
	}
	return busyboxRootfs(t)
}

func runContainer(t *testing.T, rt *Runtime, cfg ContainerConfig) ContainerStatus {
	t.Helper()
	ctx := testCtx(t)
	if err := rt.CreateContainer(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if err := rt.StartContainer(ctx, cfg.ID); err != nil {
		t.Fatal(err)
	}
	st, err := rt.ContainerStatus(ctx, cfg.ID)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// waitExited waits for a container to exit and returns its status.
func waitExited(t *testing.T, rt *Runtime, id string) ContainerStatus {
	t.Helper()
	var st ContainerStatus
	waitFor(t, id+" to exit", 20*time.Second, func() bool {
		var err error
		st, err = rt.ContainerStatus(testCtx(t), id)
		if err != nil {
			t.Fatal(err)
		}
		return st.State == StateExited
	})
	return st
}

func TestContainersShareSandboxNetwork(t *testing.T) {
	rt := newTestRuntime(t)
	layer := newPod(t, rt, "pod")
	runContainer(t, rt, shellContainer("server", "pod", layer,
		"mkdir -p /www && echo hello-from-server > /www/index.html && exec httpd -f -p 127.0.0.1:8080 -h /www"))
	client := runContainer(t, rt, shellContainer("client", "pod", layer,
		"until wget -q -O - http://127.0.0.1:8080/; do sleep 0.1; done"))
	st := waitExited(t, rt, "client")
	if st.ExitCode != 0 {
		t.Fatalf("client exit code %d, want 0", st.ExitCode)
	}
	if got := logText(logEntries(t, client.LogPath), StreamStdout); got != "hello-from-server\n" {
		t.Errorf("client stdout = %q, want the server's page", got)
	}
}

func TestExitCodes(t *testing.T) {
	rt := newTestRuntime(t)
	layer := newPod(t, rt, "pod")
	for _, tc := range []struct {
		script string
		code   int
	}{
		{"exit 0", 0},
		{"exit 3", 3},
		{"exit 255", 255},
		{"exec /does/not/exist", 127},
	} {
		id := fmt.Sprintf("c%d", tc.code)
		runContainer(t, rt, shellContainer(id, "pod", layer, tc.script))
		st := waitExited(t, rt, id)
		if st.ExitCode != tc.code || st.Pid != 0 || st.FinishedAt.Before(st.StartedAt) {
			t.Errorf("%q: status %+v; want exit code %d, no pid, finished after started", tc.script, st, tc.code)
		}
	}
	// runc checks the command when it creates the container: a missing
	// one fails CreateContainer, leaving nothing behind.
	ctx := testCtx(t)
	cfg := ContainerConfig{ID: "nocmd", SandboxID: "pod", LowerDirs: []string{layer}, Args: []string{"/nope"}, Env: testEnv}
	err := rt.CreateContainer(ctx, cfg)
	if err == nil || !strings.Contains(err.Error(), "/nope") {
		t.Errorf("create with a missing command: %v; want runc's error naming it", err)
	}
	if _, err := rt.ContainerStatus(ctx, "nocmd"); !IsNotFound(err) {
		t.Errorf("status after failed create: %v, want not found", err)
	}
}

func TestStopGrace(t *testing.T) {
	rt := newTestRuntime(t)
	layer := newPod(t, rt, "pod")
	ctx := testCtx(t)
	runContainer(t, rt, shellContainer("polite", "pod", layer, `trap 'echo bye; exit 0' TERM; echo ready; sleep 1000 & wait`))
	runContainer(t, rt, shellContainer("stubborn", "pod", layer, `trap '' TERM; echo ready; sleep 1000 & wait`))
	for _, id := range []string{"polite", "stubborn"} {
		st, _ := rt.ContainerStatus(ctx, id)
		waitFor(t, id+" to trap", 10*time.Second, func() bool {
			data, _ := os.ReadFile(st.LogPath)
			return strings.Contains(string(data), "ready")
		})
	}

	start := time.Now()
	if err := rt.StopContainer(ctx, "polite", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("polite container took %v to stop", d)
	}
	st, _ := rt.ContainerStatus(ctx, "polite")
	if st.State != StateExited || st.ExitCode != 0 {
		t.Errorf("polite: %+v; want exited 0", st)
	}
	if got := logText(logEntries(t, st.LogPath), StreamStdout); got != "ready\nbye\n" {
		t.Errorf("polite stdout = %q", got)
	}

	const grace = 700 * time.Millisecond
	start = time.Now()
	if err := rt.StopContainer(ctx, "stubborn", grace); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < grace || d > grace+5*time.Second {
		t.Errorf("stubborn container stopped after %v; want just after the %v grace", d, grace)
	}
	st, _ = rt.ContainerStatus(ctx, "stubborn")
	if st.State != StateExited || st.ExitCode != 137 {
		t.Errorf("stubborn: %+v; want exited 137 (SIGKILL)", st)
	}
	// Stopping again, or stopping an exited container, is a no-op.
	if err := rt.StopContainer(ctx, "stubborn", grace); err != nil {
		t.Error(err)
	}
	// A created container that never started can be stopped too.
	if err := rt.CreateContainer(ctx, shellContainer("never", "pod", layer, "sleep 1000")); err != nil {
		t.Fatal(err)
	}
	if err := rt.StopContainer(ctx, "never", time.Second); err != nil {
		t.Fatal(err)
	}
	if st, _ := rt.ContainerStatus(ctx, "never"); st.State != StateExited {
		t.Errorf("stopped created container: %+v", st)
	}
}

func TestRemoveLeavesNothing(t *testing.T) {
	rt := newTestRuntime(t)
	layer := busyboxRootfs(t)
	ctx := testCtx(t)
	before := snapshot(t, rt)

	if _, err := rt.CreateSandbox(ctx, SandboxConfig{ID: "pod", Hostname: "pod"}); err != nil {
		t.Fatal(err)
	}
	runContainer(t, rt, shellContainer("running", "pod", layer, "sleep 1000"))
	runContainer(t, rt, shellContainer("exited", "pod", layer, "exit 1"))
	if err := rt.CreateContainer(ctx, shellContainer("created", "pod", layer, "sleep 1000")); err != nil {
		t.Fatal(err)
	}
	waitExited(t, rt, "exited")
	during := snapshot(t, rt)
	if len(during.Mounts) != len(before.Mounts)+6 { // 3 namespaces, 3 rootfs
		t.Errorf("while running: %d mounts, want %d", len(during.Mounts), len(before.Mounts)+6)
	}
	if len(during.Processes) < 4 { // 3 shims (one exited), 2 inits + sleep
		t.Errorf("while running: processes %q", during.Processes)
	}

	// Remove kills what runs.
	for _, id := range []string{"running", "exited", "created"} {
		if err := rt.RemoveContainer(ctx, id); err != nil {
			t.Fatal(err)
		}
		if _, err := rt.ContainerStatus(ctx, id); !IsNotFound(err) {
			t.Errorf("status after remove: %v, want not found", err)
		}
	}
	if err := rt.RemoveSandbox(ctx, "pod"); err != nil {
		t.Fatal(err)
	}
	checkNoLeak(t, rt, before)

	// Both are idempotent.
	if err := rt.RemoveContainer(ctx, "running"); err != nil {
		t.Error(err)
	}
	if err := rt.RemoveSandbox(ctx, "pod"); err != nil {
		t.Error(err)
	}
}

func TestCyclesLeakNothing(t *testing.T) {
	rt := newTestRuntime(t)
	layer := busyboxRootfs(t)
	ctx := testCtx(t)
	before := snapshot(t, rt)
	cycles := 50
	if raceEnabled {
		cycles = 10 // each helper process is a race-instrumented binary
	}
	start := time.Now()
	for i := range cycles {
		sb := fmt.Sprintf("pod%d", i)
		id := fmt.Sprintf("ctr%d", i)
		if _, err := rt.CreateSandbox(ctx, SandboxConfig{ID: sb, Hostname: sb}); err != nil {
			t.Fatal(err)
		}
		if err := rt.CreateContainer(ctx, shellContainer(id, sb, layer, "echo $HOSTNAME; sleep 1000")); err != nil {
			t.Fatal(err)
		}
		if err := rt.StartContainer(ctx, id); err != nil {
			t.Fatal(err)
		}
		if err := rt.StopContainer(ctx, id, 0); err != nil {
			t.Fatal(err)
		}
		if err := rt.RemoveContainer(ctx, id); err != nil {
			t.Fatal(err)
		}
		if err := rt.RemoveSandbox(ctx, sb); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d sandbox+container create/start/stop/remove cycles in %v", cycles, time.Since(start))
	checkNoLeak(t, rt, before)
}

func TestRestartSafety(t *testing.T) {
	rt := newTestRuntime(t)
	layer := newPod(t, rt, "pod")
	ctx := testCtx(t)
	running := runContainer(t, rt, shellContainer("web", "pod", layer, "sleep 1000"))
	runContainer(t, rt, shellContainer("job", "pod", layer, "sleep 0.3; exit 7"))
	if err := rt.CreateContainer(ctx, shellContainer("later", "pod", layer, "echo started late; sleep 1000")); err != nil {
		t.Fatal(err)
	}

	// A new Runtime over the same directories: the agent restarted.
	again, err := New(rt.Config())
	if err != nil {
		t.Fatal(err)
	}
	sbs, err := again.ListSandboxes(ctx)
	if err != nil || len(sbs) != 1 || sbs[0].ID != "pod" || sbs[0].Hostname != "pod" || sbs[0].NetNSPath == "" {
		t.Fatalf("sandboxes after restart: %+v, %v", sbs, err)
	}
	list, err := again.ListContainers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]ContainerStatus{}
	for _, st := range list {
		got[st.ID] = st
	}
	if st := got["web"]; st.State != StateRunning || st.Pid != running.Pid || !st.StartedAt.Equal(running.StartedAt) {
		t.Errorf("web after restart: %+v; want running, pid %d", st, running.Pid)
	}
	if st := got["later"]; st.State != StateCreated {
		t.Errorf("later after restart: %+v; want created", st)
	}
	if len(got) != 3 {
		t.Errorf("listed %d containers, want 3: %+v", len(got), list)
	}
	// The job exits while "no agent" watches; its code is there afterwards.
	st := waitExited(t, again, "job")
	if st.ExitCode != 7 {
		t.Errorf("job: %+v; want exit code 7", st)
	}
	// The new Runtime drives containers made by the old one.
	if err := again.StartContainer(ctx, "later"); err != nil {
		t.Fatal(err)
	}
	if err := again.StopContainer(ctx, "web", time.Second); err != nil {
		t.Fatal(err)
	}
	if st, _ := again.ContainerStatus(ctx, "web"); st.State != StateExited || st.ExitCode != 137 {
		t.Errorf("web after stop: %+v", st)
	}
	if st, _ := again.ContainerStatus(context.Background(), "later"); st.State != StateRunning {
		t.Errorf("later after start: %+v", st)
	}
}

func TestCreateErrors(t *testing.T) {
	rt := newTestRuntime(t)
	layer := newPod(t, rt, "pod")
	ctx := testCtx(t)
	before := snapshot(t, rt)
	for name, cfg := range map[string]ContainerConfig{
		"bad id":         shellContainer("../x", "pod", layer, "true"),
		"no sandbox":     shellContainer("c", "nopod", layer, "true"),
		"no layers":      {ID: "c", SandboxID: "pod", Args: []string{"true"}},
		"missing layer":  {ID: "c", SandboxID: "pod", Args: []string{"true"}, LowerDirs: []string{"/does/not/exist"}},
		"relative mount": {ID: "c", SandboxID: "pod", Args: []string{"true"}, LowerDirs: []string{layer}, Mounts: []Mount{{Source: "etc/hosts", Destination: "/etc/hosts"}}},
		"missing mount":  {ID: "c", SandboxID: "pod", Args: []string{"true"}, LowerDirs: []string{layer}, Mounts: []Mount{{Source: "/does/not/exist", Destination: "/x"}}},
	} {
		err := rt.CreateContainer(ctx, cfg)
		t.Logf("%s: %v", name, err)
		if err == nil {
			t.Errorf("%s: created", name)
		}
	}
	checkNoLeak(t, rt, before)

	runContainer(t, rt, shellContainer("dup", "pod", layer, "sleep 1000"))
	if err := rt.CreateContainer(ctx, shellContainer("dup", "pod", layer, "true")); !IsAlreadyExists(err) {
		t.Errorf("second create: %v, want already exists", err)
	}
	if _, err := rt.CreateSandbox(ctx, SandboxConfig{ID: "pod", Hostname: "pod"}); !IsAlreadyExists(err) {
		t.Errorf("second sandbox: %v, want already exists", err)
	}
	if err := rt.StartContainer(ctx, "nope"); !IsNotFound(err) {
		t.Errorf("start of a missing container: %v", err)
	}
	if _, err := rt.ContainerStatus(ctx, "nope"); !IsNotFound(err) {
		t.Errorf("status of a missing container: %v", err)
	}
}

func TestShimKilled(t *testing.T) {
	rt := newTestRuntime(t)
	layer := newPod(t, rt, "pod")
	ctx := testCtx(t)
	running := runContainer(t, rt, shellContainer("c", "pod", layer, "sleep 1000"))
	dir := rt.containerDir("c")
	pid, err := readPidFile(dir + "/" + fileLock)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the shim to die", 5*time.Second, func() bool { return !shimAlive(dir) })

	// The container runs on; runc still knows it.
	st, err := rt.ContainerStatus(ctx, "c")
	if err != nil || st.State != StateRunning || st.Pid != running.Pid {
		t.Fatalf("after the shim died: %+v, %v; want running", st, err)
	}
	if err := rt.StopContainer(ctx, "c", 0); err != nil {
		t.Fatal(err)
	}
	st, _ = rt.ContainerStatus(ctx, "c")
	if st.State != StateExited || st.ExitCode != -1 || st.Message == "" {
		t.Errorf("after stop without a shim: %+v; want exited, code -1, a message", st)
	}
	t.Logf("status: %s", st.Message)
}

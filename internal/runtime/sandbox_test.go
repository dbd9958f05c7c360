package runtime

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSandboxHostnameAndLogs(t *testing.T) {
	rt := newTestRuntime(t)
	ctx := testCtx(t)
	layer := busyboxRootfs(t)

	sb, err := rt.CreateSandbox(ctx, SandboxConfig{ID: "pod1", Hostname: "kuard-5d8f"})
	if err != nil {
		t.Fatal(err)
	}
	// The pinned UTS namespace carries the hostname.
	out, err := exec.Command("nsenter", "--uts="+sb.UTSNSPath, "hostname").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "kuard-5d8f" {
		t.Fatalf("hostname in sandbox UTS namespace = %q, %v; want kuard-5d8f", out, err)
	}
	out, err = exec.Command("nsenter", "--net="+sb.NetNSPath, "ip", "-o", "link").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "lo:") || !strings.Contains(string(out), "UP") {
		t.Fatalf("links in sandbox netns: %q, %v; want lo, up", out, err)
	}

	c := shellContainer("c1", "pod1", layer, "hostname; echo hi; echo oops >&2; sleep 1000")
	if err := rt.CreateContainer(ctx, c); err != nil {
		t.Fatal(err)
	}
	st, err := rt.ContainerStatus(ctx, "c1")
	if err != nil || st.State != StateCreated || st.Pid == 0 {
		t.Fatalf("after create: %+v, %v; want created with a pid", st, err)
	}
	if err := rt.StartContainer(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	st, err = rt.ContainerStatus(ctx, "c1")
	if err != nil || st.State != StateRunning || st.StartedAt.IsZero() {
		t.Fatalf("after start: %+v, %v; want running", st, err)
	}
	waitFor(t, "two lines on stdout", 10*time.Second, func() bool {
		data, _ := os.ReadFile(st.LogPath)
		return strings.Count(string(data), " stdout F ") >= 2
	})
	entries := logEntries(t, st.LogPath)
	if got, want := logText(entries, StreamStdout), "kuard-5d8f\nhi\n"; got != want {
		t.Errorf("stdout = %q, want %q", got, want)
	}
	if got, want := logText(entries, StreamStderr), "oops\n"; got != want {
		t.Errorf("stderr = %q, want %q", got, want)
	}
	raw, _ := os.ReadFile(st.LogPath)
	t.Logf("log file:\n%s", raw)
	for _, e := range entries {
		if time.Since(e.Time) > time.Minute || e.Time.Location() != time.UTC {
			t.Errorf("entry time %v: want recent, UTC", e.Time)
		}
	}
}

func TestContainerEnvironment(t *testing.T) {
	rt := newTestRuntime(t)
	layer := newPod(t, rt, "pod")
	ctx := testCtx(t)
	// Files the agent writes for the pod, bind-mounted into its containers.
	podDir := t.TempDir()
	files := map[string]string{"hosts": "10.244.1.5\tpod\n", "resolv.conf": "nameserver 10.96.0.10\noptions ndots:5\n", "hostname": "pod\n"}
	var mounts []Mount
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(podDir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		mounts = append(mounts, Mount{Source: filepath.Join(podDir, name), Destination: "/etc/" + name, ReadOnly: name == "resolv.conf"})
	}
	logPath := filepath.Join(t.TempDir(), "pods", "ns_pod_uid", "c", "0.log")
	cfg := ContainerConfig{
		ID: "env", SandboxID: "pod", LowerDirs: []string{layer},
		Args: []string{"sh", "-c", strings.Join([]string{
			"echo uid=$(id -u) gid=$(id -g) groups=$(id -G)",
			"echo cwd=$(pwd)",
			"echo caps=$(grep CapBnd /proc/self/status | cut -f2)",
			"cat /etc/hosts /etc/resolv.conf",
			"echo rw > /etc/resolv.conf 2>/dev/null || echo resolv.conf read-only",
			"touch /sys/x 2>/dev/null || echo sys read-only",
			"ls /dev | tr '\\n' ' '; echo",
			"echo pid1=$(cat /proc/1/cmdline | tr '\\0' ' ')",
			"echo shm > /dev/shm/x && cat /dev/shm/x",
			"echo upper > /tmp/written && cat /tmp/written",
		}, "; ")},
		Env: testEnv,
		Cwd: "/tmp",
		UID: 65534, GID: 65534, AdditionalGIDs: []uint32{5},
		Mounts:  mounts,
		LogPath: logPath,
	}
	runContainer(t, rt, cfg)
	st := waitExited(t, rt, "env")
	out := logText(logEntries(t, logPath), StreamStdout)
	t.Logf("container output:\n%s", out)
	for _, want := range []string{
		"uid=65534 gid=65534 groups=65534 5\n",
		"cwd=/tmp\n",
		"caps=00000000a80425fb\n", // Docker's default set
		files["hosts"], files["resolv.conf"],
		"resolv.conf read-only\n",
		"sys read-only\n",
		"full mqueue null ptmx pts random shm stderr stdin stdout tty urandom zero",
		"pid1=sh -c",
		"shm\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if st.ExitCode != 0 {
		t.Errorf("exit code %d", st.ExitCode)
	}
	// Writes went to the container's upper dir, not the image layer.
	if _, err := os.Stat(filepath.Join(layer, "tmp", "written")); err == nil {
		t.Error("the container wrote into its image layer")
	}
	// A log path the caller chose outlives the container.
	if err := rt.RemoveContainer(ctx, "env"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(logPath); err != nil {
		t.Errorf("caller's log file after remove: %v", err)
	}
}

func TestHostNetworkSandbox(t *testing.T) {
	rt := newTestRuntime(t)
	layer := busyboxRootfs(t)
	ctx := testCtx(t)
	sb, err := rt.CreateSandbox(ctx, SandboxConfig{ID: "hostnet", Hostname: "ignored", HostNetwork: true})
	if err != nil {
		t.Fatal(err)
	}
	if sb.NetNSPath != "" || sb.UTSNSPath != "" || sb.IPCNSPath == "" {
		t.Fatalf("host network sandbox: %+v", sb)
	}
	// A listener in the test's own namespace is reachable from the
	// container.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			c.Write([]byte("from-host\n"))
			c.Close()
		}
	}()
	host, _ := os.Hostname()
	runContainer(t, rt, shellContainer("c", "hostnet", layer, "hostname; nc "+strings.Replace(ln.Addr().String(), ":", " ", 1)))
	st := waitExited(t, rt, "c")
	if got := logText(logEntries(t, st.LogPath), StreamStdout); got != host+"\nfrom-host\n" {
		t.Errorf("output %q, want the host's name and the host listener's greeting", got)
	}
}

func TestListSandboxesAfterCrash(t *testing.T) {
	rt := newTestRuntime(t)
	ctx := testCtx(t)
	before := snapshot(t, rt)
	for _, id := range []string{"b", "a"} {
		if _, err := rt.CreateSandbox(ctx, SandboxConfig{ID: id, Hostname: id, Labels: map[string]string{"pod": id}}); err != nil {
			t.Fatal(err)
		}
	}
	// A crash between pinning and recording leaves namespace files only.
	if err := os.Remove(rt.sandboxRecord("b")); err != nil {
		t.Fatal(err)
	}
	sbs, err := rt.ListSandboxes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(sbs) != 2 || sbs[0].ID != "a" || sbs[0].Labels["pod"] != "a" || sbs[1].ID != "b" || sbs[1].NetNSPath == "" || sbs[1].Labels != nil {
		t.Fatalf("sandboxes: %+v", sbs)
	}
	if _, err := rt.CreateSandbox(ctx, SandboxConfig{ID: "b", Hostname: "b"}); !IsAlreadyExists(err) {
		t.Errorf("create over leftovers: %v, want already exists", err)
	}
	for _, sb := range sbs {
		if err := rt.RemoveSandbox(ctx, sb.ID); err != nil {
			t.Fatal(err)
		}
	}
	checkNoLeak(t, rt, before)
}

func TestOOMKilled(t *testing.T) {
	rt := newTestRuntime(t)
	layer := newPod(t, rt, "pod")
	cfg := ContainerConfig{
		ID: "hog", SandboxID: "pod", LowerDirs: []string{layer}, Env: testEnv,
		// dd allocates its 256 MiB block at once and fills it.
		Args:      []string{"dd", "if=/dev/zero", "of=/dev/null", "bs=256M", "count=1"},
		Resources: &Resources{MemoryLimitBytes: 32 << 20},
	}
	runContainer(t, rt, cfg)
	st := waitExited(t, rt, "hog")
	if st.ExitCode != 137 || !st.OOMKilled {
		t.Errorf("memory hog: exit %d, OOMKilled %v; want 137, true", st.ExitCode, st.OOMKilled)
	}
}

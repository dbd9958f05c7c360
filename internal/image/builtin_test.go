package image

import (
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"kite/internal/testutil"
)

func needBusybox(t *testing.T) {
	t.Helper()
	if _, err := os.Stat("/bin/busybox"); err != nil {
		if _, err := exec.LookPath("busybox"); err != nil {
			t.Skip("busybox is not installed (apt-get install busybox-static)")
		}
	}
}

// noNetwork is a transport that fails the test if a registry is asked.
type noNetwork struct{ t *testing.T }

func (n noNetwork) RoundTrip(r *http.Request) (*http.Response, error) {
	n.t.Errorf("registry asked: %s %s", r.Method, r.URL)
	return nil, errors.New("no network in this test")
}

// layerFile finds p in the union of layer dirs (top layer first), as the
// container would, without overlayfs.
func layerFile(dirs []string, p string) (string, os.FileInfo) {
	for i := len(dirs) - 1; i >= 0; i-- {
		full := filepath.Join(dirs[i], p)
		if fi, err := os.Lstat(full); err == nil {
			return full, fi
		}
	}
	return "", nil
}

func TestBuiltins(t *testing.T) {
	needBusybox(t)
	exe := fakeKite(t, "kite binary v1\n")
	s := newStore(t, func(c *Config) {
		c.Executable = exe
		c.Transport = noNetwork{t}
	})
	ctx := testCtx(t)
	if err := s.EnsureBuiltins(ctx); err != nil {
		t.Fatal(err)
	}

	list, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, img := range list {
		listed = append(listed, strings.Join(img.Names, ",")+" "+img.Builtin)
	}
	want := []string{
		"docker.io/library/busybox:latest busybox",
		"gcr.io/kuar-demo/kuard-amd64:1,kite.dev/kuard:latest kuard",
		"kite.dev/system:latest system",
	}
	if !slices.Equal(listed, want) {
		t.Errorf("List:\n%s\nwant\n%s", strings.Join(listed, "\n"), strings.Join(want, "\n"))
	}

	// The seed's name is kite's demo, and says so.
	kuard, err := s.Get("gcr.io/kuar-demo/kuard-amd64:1")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(kuard.Description, "kuard-compatible") || !strings.Contains(kuard.Description, "not the upstream") ||
		kuard.Annotations[AnnotationDescription] != kuard.Description || kuard.Config.Labels[AnnotationBuiltin] != "kuard" {
		t.Errorf("kuard does not say what it is: %q %v", kuard.Description, kuard.Annotations)
	}
	if !slices.Equal(kuard.Config.Entrypoint, []string{"/kuard"}) || !slices.Equal(kuard.Config.ExposedPorts, []string{"8080/tcp"}) ||
		!slices.Contains(kuard.Config.Env, "HOME=/") || !strings.HasPrefix(kuard.Config.Env[0], "PATH=") {
		t.Errorf("kuard config %+v", kuard.Config)
	}
	sys, _ := s.Get(SystemImage)
	bb, _ := s.Get("busybox")
	if !slices.Equal(sys.Config.Entrypoint, []string{"/kite"}) || !slices.Equal(bb.Config.Cmd, []string{"sh"}) {
		t.Errorf("system %+v, busybox %+v", sys.Config, bb.Config)
	}
	if len(bb.Layers) != 1 || bb.Layers[0] != kuard.Layers[0] || sys.Layers[1] != kuard.Layers[1] {
		t.Errorf("the built-ins do not share their layers: busybox %v kuard %v system %v", bb.Layers, kuard.Layers, sys.Layers)
	}

	// The unpacked kuard image has /kuard (the kite binary) and busybox's
	// applets.
	dirs, err := s.Unpack(ctx, "gcr.io/kuar-demo/kuard-amd64:1")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"kuard", "kite"} {
		full, fi := layerFile(dirs, p)
		if fi == nil || fi.Mode().Perm() != 0o755 {
			t.Errorf("/%s: %v", p, fi)
			continue
		}
		if data, _ := os.ReadFile(full); string(data) != "kite binary v1\n" {
			t.Errorf("/%s = %q, want the kite binary", p, data)
		}
	}
	for _, applet := range []string{"sh", "ash", "wget", "hostname", "ifconfig", "nslookup", "ping", "cat", "ls", "ps",
		"env", "sleep", "ip", "route", "netstat", "top", "vi"} {
		full, fi := layerFile(dirs, "bin/"+applet)
		if fi == nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Errorf("/bin/%s: %v", applet, fi)
			continue
		}
		if target, _ := os.Readlink(full); target != "busybox" {
			t.Errorf("/bin/%s → %s", applet, target)
		}
	}
	for _, p := range []string{"bin/busybox", "etc/passwd", "etc/group", "etc/nsswitch.conf", "tmp"} {
		if _, fi := layerFile(dirs, p); fi == nil {
			t.Errorf("/%s missing", p)
		}
	}
	if _, fi := layerFile(dirs, "tmp"); fi != nil && fi.Mode()&os.ModeSticky == 0 {
		t.Errorf("/tmp mode %v, want sticky", fi.Mode())
	}

	// Always, for a built-in, asks no registry (noNetwork would fail).
	for _, ref := range []string{"busybox", "gcr.io/kuar-demo/kuard-amd64:1", SystemImage} {
		if _, err := s.Pull(ctx, ref, PullAlways, nil); err != nil {
			t.Errorf("Always %s: %v", ref, err)
		}
	}

	// Nothing changed: nothing is rebuilt.
	stampBefore, _ := os.ReadFile(s.path(fileBuiltins))
	indexBefore, _ := os.Stat(s.path(fileIndex))
	if err := s.EnsureBuiltins(ctx); err != nil {
		t.Fatal(err)
	}
	stampAfter, _ := os.ReadFile(s.path(fileBuiltins))
	indexAfter, _ := os.Stat(s.path(fileIndex))
	if string(stampBefore) != string(stampAfter) || !indexBefore.ModTime().Equal(indexAfter.ModTime()) {
		t.Error("EnsureBuiltins rebuilt with nothing changed")
	}

	// A new kite binary: the kite layer changes, busybox's stays, and the
	// old kite layer's blob goes.
	if err := os.WriteFile(exe, []byte("kite binary v2, longer\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := s.EnsureBuiltins(ctx); err != nil {
		t.Fatal(err)
	}
	kuard2, _ := s.Get(KuardImage)
	bb2, _ := s.Get(BusyboxImage)
	if kuard2.Digest == kuard.Digest || kuard2.Layers[1].Digest == kuard.Layers[1].Digest {
		t.Error("the kuard image did not change with the kite binary")
	}
	if bb2.Digest != bb.Digest || kuard2.Layers[0] != kuard.Layers[0] {
		t.Error("busybox changed with the kite binary")
	}
	if slices.Contains(blobs(t, s), kuard.Layers[1].Digest) {
		t.Error("the old kite layer's blob is still there")
	}
	dirs2, _ := s.Unpack(ctx, KuardImage)
	if full, _ := layerFile(dirs2, "kuard"); full == "" {
		t.Error("no /kuard after the rebuild")
	} else if data, _ := os.ReadFile(full); string(data) != "kite binary v2, longer\n" {
		t.Errorf("/kuard = %q after the rebuild", data)
	}

	// A removed built-in comes back.
	if _, err := s.Remove(ctx, "busybox"); err != nil {
		t.Fatal(err)
	}
	if err := s.EnsureBuiltins(ctx); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get("busybox"); err != nil || got.Digest != bb.Digest {
		t.Errorf("busybox after remove and ensure: %v %s", err, got.Digest)
	}
	tmpEmpty(t, s)
}

// TestBuiltinsDeterministic: the same inputs give the same digests, in
// any store.
func TestBuiltinsDeterministic(t *testing.T) {
	needBusybox(t)
	exe := fakeKite(t, "same\n")
	var digests [][]string
	for range 2 {
		s := newStore(t, func(c *Config) { c.Executable = exe })
		if err := s.EnsureBuiltins(testCtx(t)); err != nil {
			t.Fatal(err)
		}
		var d []string
		for _, n := range BuiltinNames() {
			img, _ := s.Get(n)
			d = append(d, img.Digest)
		}
		digests = append(digests, d)
	}
	if !slices.Equal(digests[0], digests[1]) {
		t.Errorf("two builds differ: %v", digests)
	}
}

// TestBuiltinsYield: a busybox the user loaded keeps the name; kite.dev
// names are always kite's.
func TestBuiltinsYield(t *testing.T) {
	needBusybox(t)
	s := newStore(t, func(c *Config) { c.Executable = fakeKite(t, "k\n") })
	ctx := testCtx(t)
	loadImage(t, s, "busybox:latest", randomImage(t, 1))
	loadImage(t, s, "kite.dev/kuard:latest", randomImage(t, 1))
	mine, err := s.Get("busybox")
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := s.EnsureBuiltins(ctx); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.Get("busybox"); got.Digest != mine.Digest || got.Builtin != "" {
			t.Errorf("busybox is %s (%q), want the loaded %s", got.Digest, got.Builtin, mine.Digest)
		}
		if got, _ := s.Get(KuardImage); got.Builtin != "kuard" {
			t.Errorf("%s is not the built-in", KuardImage)
		}
	}
	stamp, _ := os.ReadFile(s.path(fileBuiltins))
	if strings.Contains(string(stamp), BusyboxImage) {
		t.Errorf("stamp records the user's busybox: %s", stamp)
	}
}

// TestBuiltinKuardRuns mounts the kuard image as a container would and
// runs its /kuard and its busybox in it: the kite binary (here the test
// binary, dynamically linked or not) finds what it needs to run.
func TestBuiltinKuardRuns(t *testing.T) {
	needBusybox(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	s := newStore(t, func(c *Config) { c.Executable = self })
	ctx := testCtx(t)
	if err := s.EnsureBuiltins(ctx); err != nil {
		t.Fatal(err)
	}
	dirs, err := s.Unpack(ctx, UpstreamKuardImage)
	if err != nil {
		t.Fatal(err)
	}
	root := mountOverlay(t, dirs)
	run := func(env []string, args ...string) string {
		t.Helper()
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Env = env
		cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root}
		cmd.Dir = "/"
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v in the image: %v\n%s", args, err, out)
		}
		return string(out)
	}
	if out := run([]string{helperEnv + "=hello", testutil.EnvNetnsChild + "=1"}, "/kuard", "-test.run=^TestHelperProcess$"); !strings.Contains(out, "hello from /kuard") {
		t.Errorf("/kuard said %q", out)
	}
	if out := run([]string{"PATH=/bin"}, "/bin/sh", "-c", "wget --help 2>&1 | head -1; hostname && echo hostname-ok"); !strings.Contains(out, "BusyBox") || !strings.Contains(out, "hostname-ok") {
		t.Errorf("busybox in the image said %q", out)
	}
}

// TestBuiltinsConcurrent: agents starting together (goroutines with stores
// of their own, and another process) build the built-ins once, together,
// without tripping over each other.
func TestBuiltinsConcurrent(t *testing.T) {
	needBusybox(t)
	exe := fakeKite(t, "concurrent kite\n")
	s := newStore(t, func(c *Config) { c.Executable = exe })
	ctx := testCtx(t)

	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	child := exec.Command(self, "-test.run=^TestHelperProcess$")
	child.Env = append(os.Environ(), helperEnv+"=ensure", "STORE_ROOT="+s.Root(), "STORE_EXE="+exe)
	var childOut strings.Builder
	child.Stdout, child.Stderr = &childOut, &childOut
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := Open(s.cfg)
			if err == nil {
				err = st.EnsureBuiltins(ctx)
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	if err := child.Wait(); err != nil {
		t.Errorf("the other process: %v\n%s", err, childOut.String())
	}
	for i, err := range errs {
		if err != nil {
			t.Errorf("goroutine %d: %v", i, err)
		}
	}

	// One consistent result: every name, every blob referenced, nothing
	// half-made.
	idx, err := s.readIndex()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range idx.Manifests {
		names = append(names, d.Annotations[AnnotationRefName])
	}
	want := BuiltinNames()
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Errorf("index names %v, want %v", names, want)
	}
	referenced := map[string]bool{}
	for _, d := range idx.Manifests {
		referenced[d.Digest.String()] = true
		m, err := s.manifest(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		referenced[m.Config.Digest.String()] = true
		for _, l := range m.Layers {
			referenced[l.Digest.String()] = true
		}
	}
	for _, b := range blobs(t, s) {
		if !referenced[b] {
			t.Errorf("unreferenced blob %s", b)
		}
	}
	for _, n := range want {
		if _, err := s.Unpack(ctx, n); err != nil {
			t.Errorf("unpack %s: %v", n, err)
		}
	}
	tmpEmpty(t, s)
}

func TestBuiltinsNeedStaticBusybox(t *testing.T) {
	// /bin/true is dynamically linked on Debian.
	if deps, err := elfDeps("/bin/true"); err != nil || len(deps) == 0 {
		t.Skip("/bin/true is not a dynamically linked binary here")
	}
	s := newStore(t, func(c *Config) {
		c.Executable = fakeKite(t, "k")
		c.Busybox = "/bin/true"
	})
	if err := s.EnsureBuiltins(testCtx(t)); err == nil || !strings.Contains(err.Error(), "static busybox") {
		t.Errorf("EnsureBuiltins with a dynamic busybox: %v", err)
	}
}

func TestElfDeps(t *testing.T) {
	deps, err := elfDeps("/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	if len(deps) > 0 && !strings.Contains(deps[0], "ld-linux") {
		t.Errorf("first dependency %s, want the interpreter", deps[0])
	}
	for _, d := range deps {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("%s: %v", d, err)
		}
	}
	if deps, err := elfDeps("/bin/busybox"); err == nil && len(deps) != 0 {
		t.Errorf("static busybox needs %v", deps)
	}
	if deps, err := elfDeps(fakeKite(t, "#!/bin/sh\n")); err != nil || deps != nil {
		t.Errorf("a script: %v %v", deps, err)
	}
}

// TestSharedKite: the current kuard and system images name the kite binary
// they were made of; busybox, other images and a build the binary has
// since changed from do not.
func TestSharedKite(t *testing.T) {
	needBusybox(t)
	exe := fakeKite(t, "one\n")
	s := newStore(t, func(c *Config) { c.Executable = exe })
	ctx := testCtx(t)
	if err := s.EnsureBuiltins(ctx); err != nil {
		t.Fatal(err)
	}
	real, err := filepath.EvalSymlinks(exe)
	if err != nil {
		t.Fatal(err)
	}
	digest := func(ref string) string {
		img, err := s.Get(ref)
		if err != nil {
			t.Fatal(err)
		}
		return img.Digest
	}
	old := digest(SystemImage)
	for _, ref := range []string{KuardImage, UpstreamKuardImage, SystemImage} {
		if got := s.SharedKite(digest(ref)); got != real {
			t.Errorf("SharedKite(%s) = %q, want %q", ref, got, real)
		}
	}
	if got := s.SharedKite(digest(BusyboxImage)); got != "" {
		t.Errorf("SharedKite(busybox) = %q, want none", got)
	}
	if got := s.SharedKite("sha256:" + strings.Repeat("0", 64)); got != "" {
		t.Errorf("SharedKite(unknown) = %q, want none", got)
	}
	// The binary changes: until the built-ins are rebuilt, nothing is
	// shared; then the new build is, and the old one is not.
	if err := os.WriteFile(exe, []byte("#!/bin/sh\necho two\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if got := s.SharedKite(old); got != "" {
		t.Errorf("SharedKite of a build from an older binary = %q, want none", got)
	}
	if err := s.EnsureBuiltins(ctx); err != nil {
		t.Fatal(err)
	}
	if got := s.SharedKite(digest(SystemImage)); got != real {
		t.Errorf("after the rebuild: SharedKite(system) = %q, want %q", got, real)
	}
	if got := s.SharedKite(old); got != "" {
		t.Errorf("after the rebuild: SharedKite of the old build = %q, want none", got)
	}
}

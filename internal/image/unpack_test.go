package image

import (
	"archive/tar"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"
)

// mountOverlay mounts dirs (bottom first, as Unpack returns them) as a
// read-only overlay and returns the mount point; unmounted at cleanup.
// The test process has a mount namespace of its own (MainInNetns).
func mountOverlay(t *testing.T, dirs []string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("overlay mounts need root")
	}
	target := t.TempDir()
	top := slices.Clone(dirs)
	slices.Reverse(top)
	if len(top) == 1 {
		// overlayfs wants two lower layers when there is no upper one.
		top = append(top, t.TempDir())
	}
	if err := unix.Mount("overlay", target, "overlay", unix.MS_RDONLY, "lowerdir="+strings.Join(top, ":")); err != nil {
		t.Fatalf("mount overlay: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(target, unix.MNT_DETACH) })
	return target
}

func TestUnpackWhiteouts(t *testing.T) {
	s := newStore(t, nil)
	ctx := testCtx(t)
	lower := layerOf(t,
		tarEntry{name: "a/", typ: tar.TypeDir},
		tarEntry{name: "a/keep", body: "kept"},
		tarEntry{name: "a/gone", body: "removed by the upper layer"},
		tarEntry{name: "o/", typ: tar.TypeDir},
		tarEntry{name: "o/old", body: "hidden by the opaque dir"},
		tarEntry{name: "o/sub/", typ: tar.TypeDir},
		tarEntry{name: "top", body: "top file"},
	)
	upper := layerOf(t,
		tarEntry{name: "a/", typ: tar.TypeDir},
		tarEntry{name: "a/.wh.gone"},
		tarEntry{name: ".wh.top"},
		tarEntry{name: "o/", typ: tar.TypeDir},
		tarEntry{name: "o/.wh..wh..opq"},
		tarEntry{name: "o/new", body: "new"},
		// The opaque marker may come before its directory's entry too.
		tarEntry{name: "p/.wh..wh..opq"},
		tarEntry{name: "p/", typ: tar.TypeDir, mode: 0o750},
	)
	loadImage(t, s, "example.com/whiteouts:1", imageOf(t, v1.Config{}, lower, upper))
	dirs, err := s.Unpack(ctx, "example.com/whiteouts:1")
	if err != nil {
		t.Fatal(err)
	}
	up := dirs[1]
	for _, wh := range []string{"a/gone", "top"} {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(up, wh), &st); err != nil {
			t.Errorf("whiteout %s: %v", wh, err)
			continue
		}
		if st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
			t.Errorf("whiteout %s: mode %o rdev %d, want a 0/0 character device", wh, st.Mode, st.Rdev)
		}
	}
	for _, d := range []string{"o", "p"} {
		buf := make([]byte, 8)
		n, err := unix.Lgetxattr(filepath.Join(up, d), xattrOpaque, buf)
		if err != nil || string(buf[:n]) != "y" {
			t.Errorf("%s: %s = %q, %v; want y", d, xattrOpaque, buf[:n], err)
		}
	}
	if fi, err := os.Stat(filepath.Join(up, "p")); err != nil || fi.Mode().Perm() != 0o750 {
		t.Errorf("p: %v %v, want mode 0750 from its entry", fi.Mode(), err)
	}
	for _, name := range []string{".wh.top", "a/.wh.gone", "o/.wh..wh..opq"} {
		if _, err := os.Lstat(filepath.Join(up, name)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s is on disk: %v", name, err)
		}
	}

	// What a container sees through overlayfs.
	root := mountOverlay(t, dirs)
	for p, want := range map[string]string{"a/keep": "kept", "o/new": "new", "a/gone": "", "top": "", "o/old": "", "o/sub": ""} {
		data, err := os.ReadFile(filepath.Join(root, p))
		switch {
		case want == "" && !errors.Is(err, fs.ErrNotExist):
			t.Errorf("%s visible through the overlay (%v)", p, err)
		case want != "" && (err != nil || string(data) != want):
			t.Errorf("%s: %q %v, want %q", p, data, err, want)
		}
	}
}

func TestUnpackFileKinds(t *testing.T) {
	s := newStore(t, nil)
	l := layerOf(t,
		tarEntry{name: "bin/", typ: tar.TypeDir},
		tarEntry{name: "bin/tool", body: "#!/bin/sh\n", mode: 0o4755},
		tarEntry{name: "bin/alias", typ: tar.TypeSymlink, link: "tool"},
		tarEntry{name: "bin/hard", typ: tar.TypeLink, link: "bin/tool"},
		tarEntry{name: "dev/null", typ: tar.TypeChar, mode: 0o666},
		tarEntry{name: "run/fifo", typ: tar.TypeFifo, mode: 0o600},
		tarEntry{name: "etc/secret", body: "s", mode: 0o600, pax: map[string]string{
			"SCHILY.xattr.user.kite": "yes",
			// A layer must not steer overlayfs.
			"SCHILY.xattr.trusted.overlay.redirect": "/elsewhere",
		}},
		tarEntry{name: "etc/secret", body: "replaced", mode: 0o640}, // a later entry wins
		tarEntry{name: "./././etc/../etc/dots", body: "dots"},
	)
	loadImage(t, s, "kinds:1", imageOf(t, v1.Config{}, l))
	dirs, err := s.Unpack(testCtx(t), "kinds:1")
	if err != nil {
		t.Fatal(err)
	}
	d := dirs[0]
	if fi, err := os.Lstat(filepath.Join(d, "bin/tool")); err != nil || fi.Mode()&fs.ModeSetuid == 0 || fi.Mode().Perm() != 0o755 {
		t.Errorf("bin/tool: %v %v, want setuid 0755", fi.Mode(), err)
	}
	if target, err := os.Readlink(filepath.Join(d, "bin/alias")); err != nil || target != "tool" {
		t.Errorf("bin/alias → %q %v", target, err)
	}
	var a, b unix.Stat_t
	unix.Lstat(filepath.Join(d, "bin/tool"), &a)
	unix.Lstat(filepath.Join(d, "bin/hard"), &b)
	if a.Ino != b.Ino || a.Nlink != 2 {
		t.Errorf("bin/hard is not a hard link of bin/tool (inodes %d %d, links %d)", a.Ino, b.Ino, a.Nlink)
	}
	if fi, err := os.Lstat(filepath.Join(d, "dev/null")); err != nil || fi.Mode()&fs.ModeCharDevice == 0 {
		t.Errorf("dev/null: %v %v", fi.Mode(), err)
	}
	if fi, err := os.Lstat(filepath.Join(d, "run/fifo")); err != nil || fi.Mode()&fs.ModeNamedPipe == 0 {
		t.Errorf("run/fifo: %v %v", fi.Mode(), err)
	}
	if data, _ := os.ReadFile(filepath.Join(d, "etc/secret")); string(data) != "replaced" {
		t.Errorf("etc/secret = %q, want the later entry", data)
	}
	if _, err := unix.Lgetxattr(filepath.Join(d, "etc/secret"), "trusted.overlay.redirect", make([]byte, 64)); err == nil {
		t.Error("a layer's trusted.overlay.* xattr was applied")
	}
	if data, _ := os.ReadFile(filepath.Join(d, "etc/dots")); string(data) != "dots" {
		t.Errorf("etc/dots = %q", data)
	}
}

// TestUnpackConfined: a layer cannot write outside its directory, through
// "..", absolute names or its own symbolic links.
func TestUnpackConfined(t *testing.T) {
	outside := t.TempDir()
	for name, entries := range map[string][]tarEntry{
		"write through a link": {
			{name: "evil", typ: tar.TypeSymlink, link: outside},
			{name: "evil/pwned", body: "x"},
		},
		"hard link through a link": {
			{name: "evil", typ: tar.TypeSymlink, link: outside},
			{name: "stolen", typ: tar.TypeLink, link: "evil/victim"},
		},
		"whiteout through a link": {
			{name: "evil", typ: tar.TypeSymlink, link: outside},
			{name: "evil/.wh.victim"},
		},
	} {
		t.Run(name, func(t *testing.T) {
			os.WriteFile(filepath.Join(outside, "victim"), []byte("host file"), 0o644)
			s := newStore(t, nil)
			loadImage(t, s, "evil:1", imageOf(t, v1.Config{}, layerOf(t, entries...)))
			if _, err := s.Unpack(testCtx(t), "evil:1"); err == nil {
				t.Error("unpacked")
			}
			got, _ := os.ReadDir(outside)
			if len(got) != 1 || got[0].Name() != "victim" {
				t.Errorf("outside now holds %v", got)
			}
			if data, _ := os.ReadFile(filepath.Join(outside, "victim")); string(data) != "host file" {
				t.Errorf("victim changed: %q", data)
			}
			layers, _ := os.ReadDir(s.path(dirLayers))
			if len(layers) != 0 {
				t.Errorf("a failed unpack left %v", layers)
			}
			tmpEmpty(t, s)
		})
	}

	// ".." and absolute names are cleaned into the layer.
	s := newStore(t, nil)
	loadImage(t, s, "dots:1", imageOf(t, v1.Config{}, layerOf(t,
		tarEntry{name: "../../escape", body: "in"},
		tarEntry{name: "/abs/file", body: "in"},
	)))
	dirs, err := s.Unpack(testCtx(t), "dots:1")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"escape", "abs/file"} {
		if _, err := os.Stat(filepath.Join(dirs[0], p)); err != nil {
			t.Errorf("%s not inside the layer: %v", p, err)
		}
	}
}

func TestUnpackVerifiesDiffID(t *testing.T) {
	s := newStore(t, nil)
	img := imageOf(t, v1.Config{}, layerOf(t, tarEntry{name: "f", body: "original"}))
	p := filepath.Join(t.TempDir(), "plain.tar")
	writeDockerArchiveUncompressed(t, p, "check:1", img)
	if _, err := s.Load(testCtx(t), p); err != nil {
		t.Fatal(err)
	}
	got, _ := s.Get("check:1")
	// Corrupt the stored blob behind the store's back.
	h, _ := v1.NewHash(got.Layers[0].Digest)
	blob := s.blobPath(h)
	os.Chmod(blob, 0o644)
	data, _ := os.ReadFile(blob)
	os.WriteFile(blob, []byte(strings.Replace(string(data), "original", "modified", 1)), 0o644)
	if _, err := s.Unpack(testCtx(t), "check:1"); err == nil || !strings.Contains(err.Error(), "diffID") {
		t.Errorf("unpack of a corrupt layer: %v", err)
	}
}

func TestUnpackConcurrent(t *testing.T) {
	s := newStore(t, nil)
	loadImage(t, s, "shared:1", randomImage(t, 3))
	other, err := Open(s.cfg) // a second Store on the same root, as another agent
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	results := make([][]string, 6)
	errs := make([]error, 6)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := s
			if i%2 == 1 {
				st = other
			}
			results[i], errs[i] = st.Unpack(testCtx(t), "shared:1")
		}()
	}
	wg.Wait()
	for i := range results {
		if errs[i] != nil || !slices.Equal(results[i], results[0]) {
			t.Errorf("unpack %d: %v %v", i, results[i], errs[i])
		}
	}
	tmpEmpty(t, s)
}

func TestGetByIDAndDigest(t *testing.T) {
	s := newStore(t, nil)
	img := randomImage(t, 1)
	loadImage(t, s, "example.com/x:1", img)
	got, err := s.Get("example.com/x:1")
	if err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{got.ID, got.Digest, strings.TrimPrefix(got.ID, "sha256:"), "example.com/x@" + got.Digest, "other.example/y@" + got.Digest} {
		g, err := s.Get(ref)
		if err != nil || g.Digest != got.Digest {
			t.Errorf("Get(%s): %v %s", ref, err, g.Digest)
		}
	}
	for _, ref := range []string{"example.com/x:2", "sha256:" + strings.Repeat("0", 64), "x@sha256:" + strings.Repeat("0", 64)} {
		if _, err := s.Get(ref); !IsNotFound(err) {
			t.Errorf("Get(%s): %v, want not found", ref, err)
		}
	}
	if _, err := s.Get("NOT VALID"); !errors.Is(err, ErrInvalidName) {
		t.Errorf("Get of a bad name: %v", err)
	}
}

func TestRemoveAndPrune(t *testing.T) {
	s := newStore(t, nil)
	ctx := testCtx(t)
	shared := layerOf(t, tarEntry{name: "shared", body: "both"})
	a := imageOf(t, v1.Config{Cmd: []string{"a"}}, shared, layerOf(t, tarEntry{name: "a", body: "a"}))
	b := imageOf(t, v1.Config{Cmd: []string{"b"}}, shared)
	loadImage(t, s, "a:1", a)
	loadImage(t, s, "a:also", a)
	loadImage(t, s, "b:1", b)
	dirsA, err := s.Unpack(ctx, "a:1")
	if err != nil {
		t.Fatal(err)
	}
	before := len(blobs(t, s))

	// A name: that name only, no blob goes.
	removed, err := s.Remove(ctx, "a:also")
	if err != nil || !slices.Equal(removed, []string{"docker.io/library/a:also"}) {
		t.Fatalf("remove a:also: %v %v", removed, err)
	}
	if _, err := s.Get("a:1"); err != nil {
		t.Errorf("a:1 went with a:also: %v", err)
	}
	if n := len(blobs(t, s)); n != before {
		t.Errorf("removing one of two names deleted blobs (%d → %d)", before, n)
	}
	// The ID: the image under all its names; blobs only it had go.
	img, _ := s.Get("a:1")
	removed, err = s.Remove(ctx, img.ID)
	if err != nil || !slices.Equal(removed, []string{"docker.io/library/a:1"}) {
		t.Fatalf("remove by ID: %v %v", removed, err)
	}
	if n := len(blobs(t, s)); n != before-3 {
		t.Errorf("blobs %d → %d, want 3 fewer (manifest, config, own layer)", before, n)
	}
	if _, err := s.Unpack(ctx, "b:1"); err != nil {
		t.Errorf("b lost its shared layer: %v", err)
	}
	if _, err := s.Remove(ctx, "a:1"); !IsNotFound(err) {
		t.Errorf("removing again: %v", err)
	}

	// Prune: a's own layer goes unless in use; the shared one stays.
	if got, err := s.Prune(ctx, []string{dirsA[1]}); err != nil || len(got) != 0 {
		t.Errorf("prune with a's layer in use: %v %v", got, err)
	}
	got, err := s.Prune(ctx, nil)
	if err != nil || !slices.Equal(got, []string{dirsA[1]}) {
		t.Errorf("prune: %v %v, want %s", got, err, dirsA[1])
	}
	if _, err := os.Stat(dirsA[0]); err != nil {
		t.Errorf("the shared layer was pruned: %v", err)
	}
}

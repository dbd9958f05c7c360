package image

import (
	"archive/tar"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"

	"kite/internal/version"
)

// Names of the built-in images.
const (
	// KuardImage is kite's kuard-compatible demo app: /kuard (the kite
	// binary, which runs `kite kuard` when invoked as kuard) and busybox.
	KuardImage = "kite.dev/kuard:latest"
	// UpstreamKuardImage is the name the seed walkthrough uses; in kite it
	// is KuardImage, so the seed's commands run verbatim offline.
	UpstreamKuardImage = "gcr.io/kuar-demo/kuard-amd64:1"
	// SystemImage is for kite's own pods (DNS, …): /kite and busybox.
	SystemImage = "kite.dev/system:latest"
	// BusyboxImage is busybox alone ("busybox", "busybox:latest").
	BusyboxImage = "docker.io/library/busybox:latest"
)

// builtinFormat changes whenever what EnsureBuiltins builds changes
// other than through its inputs, so that stores built by an older kite
// are rebuilt.
const builtinFormat = 1

// defaultPath is the PATH of the built-in images.
const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// reservedPrefix: names under it are always the built-ins. Other built-in
// names (busybox, the upstream kuard name) yield to an image the user
// pulled or loaded under them.
const reservedPrefix = "kite.dev/"

type builtin struct {
	kind        string
	names       []string
	title       string
	description string
	withKite    bool // the kite layer on top of busybox's
	config      v1.Config
}

var builtins = []builtin{
	{
		kind:        "kuard",
		names:       []string{KuardImage, UpstreamKuardImage},
		title:       "kuard (kite)",
		description: "kite's kuard-compatible demo app (`kite kuard` as /kuard) with busybox, built locally by kite; not the upstream gcr.io/kuar-demo/kuard-amd64 image",
		withKite:    true,
		config: v1.Config{
			Entrypoint: []string{"/kuard"},
			// HOME=/ as S6 shows it (upstream kuard runs as nobody, whose
			// home is /). kite's runs as root, so that ping and the like
			// work in `kubectl exec` shells.
			Env:          []string{defaultPath, "HOME=/"},
			ExposedPorts: map[string]struct{}{"8080/tcp": {}},
			WorkingDir:   "/",
		},
	},
	{
		kind:        "system",
		names:       []string{SystemImage},
		title:       "kite system",
		description: "kite's image for its own pods (the kite binary as /kite) with busybox, built locally by kite",
		withKite:    true,
		config:      v1.Config{Entrypoint: []string{"/kite"}, Env: []string{defaultPath}, WorkingDir: "/"},
	},
	{
		kind:        "busybox",
		names:       []string{BusyboxImage},
		title:       "busybox (kite)",
		description: "this machine's static busybox, built locally by kite; not the Docker Hub image",
		config:      v1.Config{Cmd: []string{"sh"}, Env: []string{defaultPath}},
	},
}

// BuiltinNames are the names EnsureBuiltins makes.
func BuiltinNames() []string {
	var out []string
	for _, b := range builtins {
		out = append(out, b.names...)
	}
	return out
}

// builtinsStamp records what the built-ins were last built from.
type builtinsStamp struct {
	Format  int               `json:"format"`
	Sources []sourceFile      `json:"sources"`
	Names   map[string]string `json:"names"` // name → manifest digest
}

// sourceFile identifies a file's content cheaply: any write changes its
// ctime, any replacement its inode.
type sourceFile struct {
	Path  string `json:"path"`
	Dev   uint64 `json:"dev"`
	Ino   uint64 `json:"ino"`
	Size  int64  `json:"size"`
	Mtime int64  `json:"mtime"`
	Ctime int64  `json:"ctime"`
}

func statSource(p string) (sourceFile, error) {
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		return sourceFile{}, &fs.PathError{Op: "stat", Path: p, Err: err}
	}
	return sourceFile{Path: p, Dev: st.Dev, Ino: st.Ino, Size: st.Size,
		Mtime: st.Mtim.Nano(), Ctime: st.Ctim.Nano()}, nil
}

// sources are the host files the built-ins are made of.
type sources struct {
	kite, busybox string
	// libs are the kite binary's ELF interpreter and shared libraries
	// (none for a static build): image path → host file.
	libs  [][2]string
	files []sourceFile
}

func (s *Store) builtinSources() (*sources, error) {
	src := &sources{}
	exe := s.cfg.Executable
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("built-in images: the kite binary: %w", err)
		}
	}
	bb := s.cfg.Busybox
	if bb == "" {
		bb = "/bin/busybox"
		if _, err := os.Stat(bb); err != nil {
			if bb, err = exec.LookPath("busybox"); err != nil {
				return nil, errors.New("built-in images: no busybox (Debian: apt-get install busybox-static)")
			}
		}
	}
	var err error
	if src.kite, err = filepath.EvalSymlinks(exe); err != nil {
		return nil, fmt.Errorf("built-in images: the kite binary: %w", err)
	}
	if src.busybox, err = filepath.EvalSymlinks(bb); err != nil {
		return nil, fmt.Errorf("built-in images: busybox: %w", err)
	}
	if deps, err := elfDeps(src.busybox); err != nil {
		return nil, fmt.Errorf("built-in images: busybox: %w", err)
	} else if len(deps) > 0 {
		return nil, fmt.Errorf("built-in images: %s is dynamically linked; the images need a static busybox (Debian: busybox-static)", src.busybox)
	}
	deps, err := elfDeps(src.kite)
	if err != nil {
		return nil, fmt.Errorf("built-in images: the kite binary: %w", err)
	}
	for _, d := range deps {
		host, err := filepath.EvalSymlinks(d)
		if err != nil {
			return nil, fmt.Errorf("built-in images: the kite binary needs %s: %w", d, err)
		}
		src.libs = append(src.libs, [2]string{d, host})
	}
	for _, p := range append([]string{src.kite, src.busybox}, libHosts(src.libs)...) {
		f, err := statSource(p)
		if err != nil {
			return nil, fmt.Errorf("built-in images: %w", err)
		}
		src.files = append(src.files, f)
	}
	return src, nil
}

func libHosts(libs [][2]string) []string {
	var out []string
	for _, l := range libs {
		out = append(out, l[1])
	}
	return out
}

// EnsureBuiltins makes the built-in images, with no network: the kuard
// demo (KuardImage, also named UpstreamKuardImage), the system image
// (SystemImage) and busybox (BusyboxImage). They are made of this
// machine's kite binary (cfg.Executable, with its shared libraries when
// it is not statically linked) and static busybox (cfg.Busybox), in
// layers built the same way every time, so the same inputs give the same
// digests. They are rebuilt when those files change (or a built-in name
// was removed); otherwise EnsureBuiltins only compares file status with
// builtins.json and returns. The kuard and system images are unpacked
// too, so that the first pod does not wait for it.
//
// A name outside kite.dev/ that points at an image the user pulled or
// loaded keeps pointing at it.
func (s *Store) EnsureBuiltins(ctx context.Context) error {
	src, err := s.builtinSources()
	if err != nil {
		return err
	}
	if s.builtinsCurrent(src) {
		return nil
	}
	bl, err := s.lock(ctx, lockBuiltins, unix.LOCK_EX)
	if err != nil {
		return err
	}
	defer bl.unlock()
	if s.builtinsCurrent(src) {
		return nil // another process built them while we waited
	}
	if err := s.buildBuiltins(ctx, src); err != nil {
		return err
	}
	if err := s.tryCollectGarbage(ctx); err != nil {
		klog.FromContext(ctx).WithName("image").Error(err, "garbage collection after rebuilding the built-in images")
	}
	for _, ref := range []string{KuardImage, SystemImage} {
		if _, err := s.Unpack(ctx, ref); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) readStamp() (*builtinsStamp, error) {
	data, err := os.ReadFile(s.path(fileBuiltins))
	if err != nil {
		return nil, err
	}
	var st builtinsStamp
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// builtinsCurrent: the stamp matches the sources, and every name it
// recorded still points at what was built.
func (s *Store) builtinsCurrent(src *sources) bool {
	st, err := s.readStamp()
	if err != nil || st.Format != builtinFormat || !slices.Equal(st.Sources, src.files) {
		return false
	}
	idx, err := s.readIndex()
	if err != nil {
		return false
	}
	for _, n := range BuiltinNames() {
		dig, ok := st.Names[n]
		if !ok {
			// Yielded to the user's image; current while that stays.
			if d, _, err := s.find(idx, n); err != nil || d.Annotations[AnnotationBuiltin] != "" {
				return false
			}
			continue
		}
		d, _, err := s.find(idx, n)
		if err != nil || d.Digest.String() != dig {
			return false
		}
	}
	return true
}

func (s *Store) buildBuiltins(ctx context.Context, src *sources) error {
	log := klog.FromContext(ctx).WithName("image")
	start := time.Now()
	cl, err := s.lock(ctx, lockContent, unix.LOCK_SH)
	if err != nil {
		return err
	}
	defer cl.unlock()

	applets, err := busyboxApplets(ctx, src.busybox)
	if err != nil {
		return err
	}
	bbLayer, err := s.buildLayer(func(b *tarBuilder) error { return writeBusyboxLayer(b, src.busybox, applets) })
	if err != nil {
		return fmt.Errorf("built-in images: busybox layer: %w", err)
	}
	kiteLayer, err := s.buildLayer(func(b *tarBuilder) error { return writeKiteLayer(b, src.kite, src.libs) })
	if err != nil {
		return fmt.Errorf("built-in images: kite layer: %w", err)
	}

	type made struct {
		b    builtin
		desc v1.Descriptor
	}
	var all []made
	for _, b := range builtins {
		layers := []v1.Descriptor{bbLayer}
		history := []v1.History{{Created: epoch(), CreatedBy: "kite: busybox " + src.busybox + " with its applets in /bin"}}
		if b.withKite {
			layers = append(layers, kiteLayer)
			history = append(history, v1.History{Created: epoch(), CreatedBy: "kite: the kite binary as /kite and /kuard"})
		}
		cf := v1.ConfigFile{
			Architecture: runtime.GOARCH,
			OS:           "linux",
			Created:      epoch(),
			Config:       b.config,
			RootFS:       v1.RootFS{Type: "layers"},
			History:      history,
		}
		cf.Config.Labels = map[string]string{AnnotationBuiltin: b.kind, AnnotationDescription: b.description}
		for _, l := range layers {
			cf.RootFS.DiffIDs = append(cf.RootFS.DiffIDs, l.Digest) // uncompressed: digest = diffID
		}
		cfgDig, cfgSize, err := s.putJSONBlob(cf)
		if err != nil {
			return err
		}
		m := v1.Manifest{
			SchemaVersion: 2,
			MediaType:     types.OCIManifestSchema1,
			Config:        v1.Descriptor{MediaType: types.OCIConfigJSON, Digest: cfgDig, Size: cfgSize},
			Layers:        layers,
			Annotations: map[string]string{
				AnnotationBuiltin:                  b.kind,
				AnnotationTitle:                    b.title,
				AnnotationDescription:              b.description,
				"org.opencontainers.image.version": version.Version,
			},
		}
		mDig, mSize, err := s.putJSONBlob(m)
		if err != nil {
			return err
		}
		all = append(all, made{b, v1.Descriptor{MediaType: m.MediaType, Digest: mDig, Size: mSize,
			Annotations: map[string]string{AnnotationBuiltin: b.kind}}})
	}

	stamp := builtinsStamp{Format: builtinFormat, Sources: src.files, Names: map[string]string{}}
	err = s.updateIndex(ctx, func(idx *v1.IndexManifest) error {
		for _, m := range all {
			for _, n := range m.b.names {
				if d, _, err := s.find(idx, n); err == nil && d.Annotations[AnnotationBuiltin] == "" && !strings.HasPrefix(n, reservedPrefix) {
					log.Info("built-in image name kept by the user's image", "image", n, "digest", d.Digest.String())
					continue
				}
				setName(idx, n, m.desc)
				stamp.Names[n] = m.desc.Digest.String()
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	data, err := json.MarshalIndent(stamp, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(s.path(fileBuiltins), append(data, '\n')); err != nil {
		return fmt.Errorf("built-in images: %w", err)
	}
	log.Info("built-in images built", "kite", src.kite, "busybox", src.busybox, "names", len(stamp.Names), "took", time.Since(start))
	return nil
}

func epoch() v1.Time { return v1.Time{Time: time.Unix(0, 0).UTC()} }

// buildLayer stores the uncompressed tar write makes as a blob and returns
// its descriptor (the digest is also the diffID).
func (s *Store) buildLayer(write func(*tarBuilder) error) (v1.Descriptor, error) {
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		err := write(&tarBuilder{tw: tw})
		if err == nil {
			err = tw.Close()
		}
		pw.CloseWithError(err)
	}()
	dig, size, err := s.putBlob(pr, v1.Hash{})
	pr.CloseWithError(errors.New("layer not stored")) // stops the writer if putBlob failed
	if err != nil {
		return v1.Descriptor{}, err
	}
	return v1.Descriptor{MediaType: types.OCIUncompressedLayer, Digest: dig, Size: size}, nil
}

// tarBuilder writes layer entries owned by root, dated at the epoch, so
// the same content always gives the same tar.
type tarBuilder struct{ tw *tar.Writer }

func (b *tarBuilder) header(h *tar.Header) error {
	h.ModTime = time.Unix(0, 0)
	h.Format = tar.FormatPAX
	return b.tw.WriteHeader(h)
}

func (b *tarBuilder) dir(name string, mode int64) error {
	return b.header(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode})
}

func (b *tarBuilder) file(name string, mode int64, content []byte) error {
	if err := b.header(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(content))}); err != nil {
		return err
	}
	_, err := b.tw.Write(content)
	return err
}

// copyFile writes the host file src as name.
func (b *tarBuilder) copyFile(name string, mode int64, src string) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if err := b.header(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: fi.Size()}); err != nil {
		return err
	}
	if _, err := io.Copy(b.tw, f); err != nil {
		return fmt.Errorf("%s: %w", src, err)
	}
	return nil
}

func (b *tarBuilder) symlink(name, target string) error {
	return b.header(&tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777})
}

func (b *tarBuilder) hardlink(name, target string) error {
	return b.header(&tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: target, Mode: 0o755})
}

// busyboxApplets lists the applets the busybox binary has.
func busyboxApplets(ctx context.Context, busybox string) ([]string, error) {
	out, err := exec.CommandContext(ctx, busybox, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("built-in images: %s --list: %w", busybox, err)
	}
	var applets []string
	for _, a := range strings.Fields(string(out)) {
		if a != "busybox" && !strings.ContainsAny(a, "/\x00") {
			applets = append(applets, a)
		}
	}
	slices.Sort(applets)
	return slices.Compact(applets), nil
}

// writeBusyboxLayer: the base of every built-in image — a root file
// system skeleton, busybox with a link per applet in /bin, and the files
// a shell and a resolver look for.
func writeBusyboxLayer(b *tarBuilder, busybox string, applets []string) error {
	for _, d := range []struct {
		name string
		mode int64
	}{
		{"bin", 0o755}, {"dev", 0o755}, {"etc", 0o755}, {"home", 0o755}, {"proc", 0o555}, {"root", 0o700},
		{"run", 0o755}, {"sys", 0o555}, {"tmp", 0o1777}, {"usr", 0o755}, {"usr/bin", 0o755},
		{"usr/sbin", 0o755}, {"var", 0o755}, {"var/tmp", 0o1777},
	} {
		if err := b.dir(d.name, d.mode); err != nil {
			return err
		}
	}
	if err := b.copyFile("bin/busybox", 0o755, busybox); err != nil {
		return err
	}
	for _, a := range applets {
		if err := b.symlink("bin/"+a, "busybox"); err != nil {
			return err
		}
	}
	for _, f := range []struct{ name, content string }{
		{"etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"},
		{"etc/group", "root:x:0:\nnogroup:x:65534:\n"},
		{"etc/nsswitch.conf", "hosts: files dns\n"},
	} {
		if err := b.file(f.name, 0o644, []byte(f.content)); err != nil {
			return err
		}
	}
	return nil
}

// writeKiteLayer: the kite binary as /kite, /kuard a hard link to it (the
// binary dispatches on argv[0]), and the interpreter and shared libraries
// a dynamically linked build needs, where the loader looks for them.
func writeKiteLayer(b *tarBuilder, kite string, libs [][2]string) error {
	if err := b.copyFile("kite", 0o755, kite); err != nil {
		return err
	}
	if err := b.hardlink("kuard", "kite"); err != nil {
		return err
	}
	made := map[string]bool{}
	for _, l := range libs {
		name := strings.TrimPrefix(l[0], "/")
		var parents []string
		for d := path.Dir(name); d != "."; d = path.Dir(d) {
			parents = append(parents, d)
		}
		for i := len(parents) - 1; i >= 0; i-- {
			if !made[parents[i]] {
				made[parents[i]] = true
				if err := b.dir(parents[i], 0o755); err != nil {
					return err
				}
			}
		}
		if err := b.copyFile(name, 0o755, l[1]); err != nil {
			return err
		}
	}
	return nil
}

// libraryDirs are where the dynamic loader looks by default, multiarch
// directories first (Debian).
func libraryDirs() []string {
	var dirs []string
	for _, pat := range []string{"/lib/*-linux-gnu*", "/usr/lib/*-linux-gnu*"} {
		m, _ := filepath.Glob(pat)
		dirs = append(dirs, m...)
	}
	return append(dirs, "/lib64", "/usr/lib64", "/lib", "/usr/lib")
}

// elfDeps lists what the dynamic loader needs to run the ELF file p: its
// interpreter and its shared libraries, recursively, as absolute paths
// (where the loader finds them). A static binary, or a file that is not
// ELF, needs nothing.
func elfDeps(p string) ([]string, error) {
	magic := make([]byte, len(elf.ELFMAG))
	if fh, err := os.Open(p); err != nil {
		return nil, err
	} else {
		_, err := io.ReadFull(fh, magic)
		fh.Close()
		if err != nil || string(magic) != elf.ELFMAG {
			return nil, nil // not ELF: a script, say
		}
	}
	f, err := elf.Open(p)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	defer f.Close()
	var out []string
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			data, err := io.ReadAll(prog.Open())
			if err != nil {
				return nil, fmt.Errorf("%s: interpreter: %w", p, err)
			}
			out = append(out, strings.TrimRight(string(data), "\x00"))
		}
	}
	needed, err := f.ImportedLibraries()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	seen := map[string]bool{}
	for _, o := range out {
		seen[path.Base(o)] = true
	}
	dirs := libraryDirs()
	for len(needed) > 0 {
		lib := needed[0]
		needed = needed[1:]
		if seen[lib] {
			continue
		}
		seen[lib] = true
		found := ""
		for _, d := range dirs {
			if _, err := os.Stat(filepath.Join(d, lib)); err == nil {
				found = filepath.Join(d, lib)
				break
			}
		}
		if found == "" {
			return nil, fmt.Errorf("%s: needs %s, not found in %v", p, lib, dirs)
		}
		out = append(out, found)
		lf, err := elf.Open(found)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", found, err)
		}
		more, err := lf.ImportedLibraries()
		lf.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", found, err)
		}
		needed = append(needed, more...)
	}
	return out, nil
}

// SharedKite is, for the image with manifest digest, the host file its
// /kite (and /kuard, a hard link to it) was copied from — when the image
// is the current build of a built-in image with the kite layer, so that
// file is byte for byte the layer's — and "" otherwise. A container may
// bind it over the layer's copy: the layer's is a file of its own, so its
// pages would be a second copy of the binary in memory; the host's are
// already those of every kite process on the machine.
func (s *Store) SharedKite(digest string) string {
	src, err := s.builtinSources()
	if err != nil || !s.builtinsCurrent(src) {
		return ""
	}
	st, err := s.readStamp()
	if err != nil {
		return ""
	}
	for _, b := range builtins {
		if !b.withKite {
			continue
		}
		for _, n := range b.names {
			if d, ok := st.Names[n]; ok && d == digest {
				return src.kite
			}
		}
	}
	return ""
}

package image

import (
	"archive/tar"
	"compress/gzip"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func TestLoadDockerArchive(t *testing.T) {
	s := newStore(t, nil)
	ctx := testCtx(t)
	a, b := randomImage(t, 2), randomImage(t, 1)
	p := filepath.Join(t.TempDir(), "images.tar")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	// Two images, the first under two tags: what `docker save a b` makes.
	err = tarball.MultiRefWrite(map[name.Reference]v1.Image{
		name.MustParseReference("example.com/team/a:1"): a,
		name.MustParseReference("a-too:latest"):         a,
		name.MustParseReference("example.com/team/b:2"): b,
	}, f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	names, err := s.Load(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	if want := []string{"docker.io/library/a-too:latest", "example.com/team/a:1", "example.com/team/b:2"}; !slices.Equal(names, want) {
		t.Errorf("loaded %v, want %v", names, want)
	}
	img, err := s.Get("example.com/team/a:1")
	if err != nil {
		t.Fatal(err)
	}
	cfgName, _ := a.ConfigName()
	if img.ID != cfgName.String() {
		t.Errorf("ID %s, want the config digest %s (docker's image ID)", img.ID, cfgName)
	}
	if want := []string{"docker.io/library/a-too:latest", "example.com/team/a:1"}; !slices.Equal(img.Names, want) {
		t.Errorf("names %v, want %v", img.Names, want)
	}
	if !equalConfig(img.Config, ImageConfig{Entrypoint: []string{"/app"}, Cmd: []string{"--serve"}, Env: []string{"PATH=/bin", "A=b"},
		WorkingDir: "/srv", User: "1000:1000", ExposedPorts: []string{"8080/tcp", "9090/udp"}}) {
		t.Errorf("config %+v", img.Config)
	}
	srcLayers, _ := a.Layers()
	for i, l := range img.Layers {
		d, _ := srcLayers[i].Digest()
		id, _ := srcLayers[i].DiffID()
		if l.Digest != d.String() || l.DiffID != id.String() || l.MediaType != string(types.OCILayer) {
			t.Errorf("layer %d: %+v, want digest %s diffID %s gzip", i, l, d, id)
		}
	}
	dirs, err := s.Unpack(ctx, "example.com/team/a:1")
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) != 2 {
		t.Fatalf("unpacked %v", dirs)
	}
	for i, d := range dirs {
		id, _ := srcLayers[i].DiffID()
		if d != s.LayerDir(id) {
			t.Errorf("layer %d unpacked into %s, want %s", i, d, s.LayerDir(id))
		}
		if entries, _ := os.ReadDir(d); len(entries) == 0 {
			t.Errorf("layer %d: %s is empty", i, d)
		}
	}
	tmpEmpty(t, s)

	// The same archive gzipped loads the same images.
	gz := filepath.Join(t.TempDir(), "images.tar.gz")
	gzipFile(t, p, gz)
	s2 := newStore(t, nil)
	if _, err := s2.Load(ctx, gz); err != nil {
		t.Fatal(err)
	}
	if img2, err := s2.Get("example.com/team/a:1"); err != nil || img2.Digest != img.Digest {
		t.Errorf("from gzip: %v %s, want %s", err, img2.Digest, img.Digest)
	}
}

// TestLoadUncompressedLayers: layers stored plain in the archive stay
// plain (no gzip pass), their digest being their diffID.
func TestLoadUncompressedLayers(t *testing.T) {
	s := newStore(t, nil)
	img := imageOf(t, v1.Config{Cmd: []string{"sh"}}, layerOf(t, tarEntry{name: "hello", body: "world"}))
	p := filepath.Join(t.TempDir(), "plain.tar")
	writeDockerArchiveUncompressed(t, p, "plain:1", img)
	if _, err := s.Load(testCtx(t), p); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get("plain:1")
	if err != nil {
		t.Fatal(err)
	}
	if l := got.Layers[0]; l.MediaType != string(types.OCIUncompressedLayer) || l.Digest != l.DiffID {
		t.Errorf("layer %+v, want uncompressed with digest = diffID", l)
	}
	dirs, err := s.Unpack(testCtx(t), "plain:1")
	if err != nil {
		t.Fatal(err)
	}
	if data, err := os.ReadFile(filepath.Join(dirs[0], "hello")); err != nil || string(data) != "world" {
		t.Errorf("hello: %q %v", data, err)
	}
}

// writeDockerArchiveUncompressed writes a docker-archive whose layers are
// plain tars (as `docker save` before 25 did).
func writeDockerArchiveUncompressed(t *testing.T, p, tag string, img v1.Image) {
	t.Helper()
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	add := func(name string, r io.Reader, size int64) {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: size, Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(tw, r); err != nil {
			t.Fatal(err)
		}
	}
	raw, _ := img.RawConfigFile()
	add("config.json", strings.NewReader(string(raw)), int64(len(raw)))
	layers, _ := img.Layers()
	var paths []string
	for i, l := range layers {
		rc, _ := l.Uncompressed()
		data, _ := io.ReadAll(rc)
		rc.Close()
		p := "layer" + string(rune('0'+i)) + "/layer.tar"
		add(p, strings.NewReader(string(data)), int64(len(data)))
		paths = append(paths, `"`+p+`"`)
	}
	m := `[{"Config":"config.json","RepoTags":["` + tag + `"],"Layers":[` + strings.Join(paths, ",") + `]}]`
	add("manifest.json", strings.NewReader(m), int64(len(m)))
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
}

func gzipFile(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	zw := gzip.NewWriter(out)
	if _, err := io.Copy(zw, in); err != nil {
		t.Fatal(err)
	}
	zw.Close()
	out.Close()
}

// tarDir writes dir as a tar file (an OCI archive, for a layout).
func tarDir(t *testing.T, dir, dst string) {
	t.Helper()
	f, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		info, err := d.Info()
		if err != nil {
			return err
		}
		hdr, err := tar.FileInfoHeader(info, "")
		if err != nil {
			return err
		}
		hdr.Name = rel
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if d.Type().IsRegular() {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			tw.Write(data)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestLoadOCIArchive(t *testing.T) {
	s := newStore(t, nil)
	ctx := testCtx(t)
	dir := t.TempDir()
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	named, containerd, bare := randomImage(t, 1), randomImage(t, 2), randomImage(t, 1)
	if err := lp.AppendImage(named, layout.WithAnnotations(map[string]string{AnnotationRefName: "example.com/oci/named:2"})); err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendImage(containerd, layout.WithAnnotations(map[string]string{
		AnnotationContainerdName: "docker.io/library/ctr:1", AnnotationRefName: "1"})); err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendImage(bare, layout.WithAnnotations(map[string]string{AnnotationRefName: "latest"})); err != nil {
		t.Fatal(err)
	}
	// A multi-platform index: this machine's image is taken from it.
	other := randomImage(t, 1)
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: other, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "s390x"}}},
		mutate.IndexAddendum{Add: named, Descriptor: v1.Descriptor{Platform: &s.cfg.Platform}},
	)
	if err := lp.AppendIndex(idx, layout.WithAnnotations(map[string]string{AnnotationRefName: "example.com/oci/multi:3"})); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "oci.tar")
	tarDir(t, dir, p)

	names, err := s.Load(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"example.com/oci/named:2", "docker.io/library/ctr:1", digestOf(t, bare), "example.com/oci/multi:3"}
	if !slices.Equal(names, want) {
		t.Errorf("loaded %v, want %v", names, want)
	}
	for ref, img := range map[string]v1.Image{"example.com/oci/named:2": named, "ctr:1": containerd, digestOf(t, bare): bare, "example.com/oci/multi:3": named} {
		got, err := s.Get(ref)
		if err != nil {
			t.Errorf("%s: %v", ref, err)
			continue
		}
		if got.Digest != digestOf(t, img) {
			t.Errorf("%s: digest %s, want %s (kept from the archive)", ref, got.Digest, digestOf(t, img))
		}
		if _, err := s.Unpack(ctx, ref); err != nil {
			t.Errorf("unpack %s: %v", ref, err)
		}
	}
	if list, _ := s.List(); len(list) != 3 {
		t.Errorf("List: %d images, want 3", len(list))
	}
	tmpEmpty(t, s)
}

func TestLoadRejects(t *testing.T) {
	s := newStore(t, nil)
	ctx := testCtx(t)
	dir := t.TempDir()
	notArchive := filepath.Join(dir, "x.tar")
	tw := tar.NewWriter(mustCreate(t, notArchive))
	tw.WriteHeader(&tar.Header{Name: "hello", Size: 1, Mode: 0o644})
	tw.Write([]byte("x"))
	tw.Close()
	if _, err := s.Load(ctx, notArchive); err == nil || !strings.Contains(err.Error(), "neither") {
		t.Errorf("a tar of nothing: %v", err)
	}

	// An OCI layout whose blob does not match its name.
	lp, _ := layout.Write(filepath.Join(dir, "bad"), empty.Index)
	img := randomImage(t, 1)
	lp.AppendImage(img, layout.WithAnnotations(map[string]string{AnnotationRefName: "bad:1"}))
	layers, _ := img.Layers()
	d, _ := layers[0].Digest()
	os.Chmod(filepath.Join(dir, "bad", "blobs", "sha256", d.Hex), 0o644)
	os.WriteFile(filepath.Join(dir, "bad", "blobs", "sha256", d.Hex), []byte("tampered"), 0o644)
	p := filepath.Join(dir, "bad.tar")
	tarDir(t, filepath.Join(dir, "bad"), p)
	if _, err := s.Load(ctx, p); err == nil || !strings.Contains(err.Error(), "hashes to") {
		t.Errorf("a tampered blob: %v", err)
	}
	if _, err := s.Get("bad:1"); !IsNotFound(err) {
		t.Errorf("a failed load left the image: %v", err)
	}
	tmpEmpty(t, s)
}

func mustCreate(t *testing.T, p string) *os.File {
	t.Helper()
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

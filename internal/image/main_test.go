package image

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"kite/internal/testutil"
)

// Every test runs inside a fresh network and mount namespace
// (testutil.MainInNetns): registries are httptest servers on 127.0.0.1
// there, nothing can reach another address, and the overlay mounts the
// tests make vanish with the namespace. Stores live in t.TempDir().
func TestMain(m *testing.M) { testutil.MainInNetns(m) }

// helperEnv makes the test binary, re-run by a test, act as a helper
// process (see TestHelperProcess) instead of running tests.
const helperEnv = "KITE_IMAGE_TEST_HELPER"

// TestHelperProcess is not a test: it is what a re-executed test binary
// does when helperEnv is set.
func TestHelperProcess(t *testing.T) {
	switch os.Getenv(helperEnv) {
	case "":
		t.Skip("helper process only")
	case "hello":
		// Run as /kuard from the built-in image's root file system.
		fmt.Printf("hello from %s\n", os.Args[0])
	case "ensure":
		s, err := Open(Config{Root: os.Getenv("STORE_ROOT"), Executable: os.Getenv("STORE_EXE")})
		if err == nil {
			err = s.EnsureBuiltins(context.Background())
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	os.Exit(0)
}

// fakeKite writes a stand-in for the kite binary (not ELF, so it needs no
// libraries) and returns its path.
func fakeKite(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "kite")
	if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// newStore opens a store in a fresh directory; its built-ins would be
// made of a fake kite binary.
func newStore(t *testing.T, mod func(*Config)) *Store {
	t.Helper()
	cfg := Config{Root: filepath.Join(t.TempDir(), "images"), Executable: filepath.Join(t.TempDir(), "no-kite")}
	if mod != nil {
		mod(&cfg)
	}
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// registry is an in-memory registry served on 127.0.0.1 inside the test's
// network namespace, counting the requests it gets.
type registry struct {
	host string
	mu   sync.Mutex
	hits map[string]int // "manifests", "blobs", "other"
}

func startRegistry(t *testing.T, wrap func(http.Handler) http.Handler) *registry {
	t.Helper()
	if !testutil.InNetns() {
		t.Skip("serves only inside the private network namespace of testutil.MainInNetns")
	}
	r := &registry{hits: map[string]int{}}
	var h http.Handler = ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		kind := "other"
		switch {
		case strings.Contains(req.URL.Path, "/manifests/"):
			kind = "manifests"
		case strings.Contains(req.URL.Path, "/blobs/"):
			kind = "blobs"
		}
		r.mu.Lock()
		r.hits[kind]++
		r.mu.Unlock()
		h.ServeHTTP(w, req)
	}))
	t.Cleanup(srv.Close)
	r.host = strings.TrimPrefix(srv.URL, "http://")
	return r
}

// counts returns and resets the request counts.
func (r *registry) counts() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.hits
	r.hits = map[string]int{}
	return c
}

func (r *registry) push(t *testing.T, ref string, img v1.Image) {
	t.Helper()
	tag, err := name.ParseReference(r.host + "/" + ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tag, img); err != nil {
		t.Fatal(err)
	}
}

func (r *registry) pushIndex(t *testing.T, ref string, idx v1.ImageIndex) {
	t.Helper()
	tag, err := name.ParseReference(r.host + "/" + ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(tag, idx); err != nil {
		t.Fatal(err)
	}
}

// tarEntry is one entry of a hand-made layer.
type tarEntry struct {
	name, body, link string
	typ              byte
	mode             int64
	pax              map[string]string
}

// layerOf makes an uncompressed layer of entries.
func layerOf(t *testing.T, entries ...tarEntry) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		mode := e.mode
		if mode == 0 {
			mode = 0o644
			if typ == tar.TypeDir {
				mode = 0o755
			}
		}
		hdr := &tar.Header{Typeflag: typ, Name: e.name, Linkname: e.link, Mode: mode, Size: int64(len(e.body)),
			ModTime: time.Unix(1700000000, 0), PAXRecords: e.pax}
		if typ != tar.TypeReg {
			hdr.Size = 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if typ == tar.TypeReg {
			tw.Write([]byte(e.body))
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// imageOf makes an image of layers, bottom first, with a config.
func imageOf(t *testing.T, cfg v1.Config, layers ...v1.Layer) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		t.Fatal(err)
	}
	img, err = mutate.Config(img, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// loadImage puts img into s under tag through a docker-archive.
func loadImage(t *testing.T, s *Store, tag string, img v1.Image) {
	t.Helper()
	ref, err := name.NewTag(tag)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "image.tar")
	if err := tarball.WriteToFile(p, ref, img); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(testCtx(t), p); err != nil {
		t.Fatal(err)
	}
}

func digestOf(t *testing.T, img v1.Image) string {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// blobs lists the store's blob digests.
func blobs(t *testing.T, s *Store) []string {
	t.Helper()
	entries, err := os.ReadDir(s.path(dirBlobs))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, "sha256:"+e.Name())
	}
	return out
}

// tmpEmpty fails the test if the store's tmp/ holds anything.
func tmpEmpty(t *testing.T, s *Store) {
	t.Helper()
	entries, _ := os.ReadDir(s.path(dirTmp))
	for _, e := range entries {
		t.Errorf("left in tmp/: %s", e.Name())
	}
}

// remoteWrite pushes img with credentials from kc.
func remoteWrite(ref string, img v1.Image, kc authn.Keychain) error {
	r, err := name.ParseReference(ref)
	if err != nil {
		return err
	}
	return remote.Write(r, img, remote.WithAuthFromKeychain(kc))
}

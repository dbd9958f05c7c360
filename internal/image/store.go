package image

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"
)

// DefaultRoot is the machine's image store.
const DefaultRoot = "/var/lib/kite/images"

// Names inside the store's root (see the package doc).
const (
	fileLayout   = "oci-layout"
	fileIndex    = "index.json"
	fileBuiltins = "builtins.json"
	dirBlobs     = "blobs/sha256"
	dirLayers    = "layers"
	dirTmp       = "tmp"
	dirLocks     = "locks"
)

// Annotations kite reads and writes.
const (
	// AnnotationRefName, on an index.json entry, is the image's full name
	// (Normalize's form).
	AnnotationRefName = "org.opencontainers.image.ref.name"
	// AnnotationContainerdName is the full name in OCI archives written by
	// containerd and docker; Load reads it.
	AnnotationContainerdName = "io.containerd.image.name"
	// AnnotationTitle and AnnotationDescription, on a built-in image's
	// manifest, say what it is (List shows Description).
	AnnotationTitle       = "org.opencontainers.image.title"
	AnnotationDescription = "org.opencontainers.image.description"
	// AnnotationBuiltin, on a built-in image's manifest and index entries,
	// is which built-in it is ("kuard", "system", "busybox").
	AnnotationBuiltin = "dev.kite.image.builtin"
	// AnnotationSourceDigest, on an index.json entry of a pulled image, is
	// the digest the registry gave for the name: an image index's for a
	// multi-platform image, else the manifest's. A pull with policy Always
	// compares it with the registry's answer.
	AnnotationSourceDigest = "dev.kite.image.source-digest"
)

// Config configures a Store.
type Config struct {
	// Root is the store's directory; default DefaultRoot.
	Root string
	// Executable is the kite binary the built-in images carry as /kite and
	// /kuard; default os.Executable().
	Executable string
	// Busybox is the statically linked busybox the built-in images carry;
	// default /bin/busybox, else busybox on PATH (Debian: busybox-static).
	Busybox string
	// Platform is what a pull picks from a multi-platform image; default
	// linux and this machine's architecture.
	Platform v1.Platform
	// Transport carries registry requests; nil means go-containerregistry's
	// default (proxies from the environment).
	Transport http.RoundTripper
}

// Default fills the zero fields (except Executable and Busybox, which
// EnsureBuiltins finds when it needs them).
func (c *Config) Default() {
	if c.Root == "" {
		c.Root = DefaultRoot
	}
	if c.Platform.OS == "" {
		c.Platform.OS = "linux"
	}
	if c.Platform.Architecture == "" {
		c.Platform.Architecture = runtime.GOARCH
	}
}

// Validate reports a config Open cannot work with.
func (c *Config) Validate() error {
	if !filepath.IsAbs(c.Root) {
		return fmt.Errorf("image store: root %q is not an absolute path", c.Root)
	}
	return nil
}

// Store is the machine's image store. Its methods are safe for concurrent
// use, also by several processes on one root.
type Store struct {
	cfg  Config
	root string
}

// Open opens (creating if needed) the store at cfg.Root.
func Open(cfg Config) (*Store, error) {
	cfg.Default()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Store{cfg: cfg, root: filepath.Clean(cfg.Root)}
	for _, d := range []string{dirBlobs, dirLayers, dirTmp, dirLocks} {
		if err := os.MkdirAll(s.path(d), 0o755); err != nil {
			return nil, fmt.Errorf("image store: %w", err)
		}
	}
	if _, err := os.Stat(s.path(fileLayout)); errors.Is(err, fs.ErrNotExist) {
		if err := writeFileAtomic(s.path(fileLayout), []byte(`{"imageLayoutVersion":"1.0.0"}`+"\n")); err != nil {
			return nil, fmt.Errorf("image store: %w", err)
		}
	}
	return s, nil
}

// Root is the store's directory.
func (s *Store) Root() string { return s.root }

func (s *Store) path(elem ...string) string {
	return filepath.Join(append([]string{s.root}, elem...)...)
}

func (s *Store) blobPath(h v1.Hash) string { return s.path(dirBlobs, h.Hex) }

// LayerDir is where the layer with the given diffID is (or would be)
// unpacked.
func (s *Store) LayerDir(diffID v1.Hash) string { return s.path(dirLayers, diffID.Hex) }

func (s *Store) lock(ctx context.Context, name string, how int) (*fileLock, error) {
	return lockFile(ctx, s.path(dirLocks, name), how)
}

// ---- index.json ----

func (s *Store) readIndex() (*v1.IndexManifest, error) {
	data, err := os.ReadFile(s.path(fileIndex))
	if errors.Is(err, fs.ErrNotExist) {
		return &v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{}}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("image store: %w", err)
	}
	idx, err := v1.ParseIndexManifest(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("image store: %s: %w", s.path(fileIndex), err)
	}
	return idx, nil
}

// updateIndex applies fn to index.json under the index lock and replaces
// the file with the result in one rename.
func (s *Store) updateIndex(ctx context.Context, fn func(*v1.IndexManifest) error) error {
	l, err := s.lock(ctx, lockIndex, unix.LOCK_EX)
	if err != nil {
		return err
	}
	defer l.unlock()
	idx, err := s.readIndex()
	if err != nil {
		return err
	}
	if err := fn(idx); err != nil {
		return err
	}
	slices.SortStableFunc(idx.Manifests, func(a, b v1.Descriptor) int {
		return strings.Compare(a.Annotations[AnnotationRefName], b.Annotations[AnnotationRefName])
	})
	data, err := json.MarshalIndent(idx, "", "  ")
	if err != nil {
		return fmt.Errorf("image store: index: %w", err)
	}
	return writeFileAtomic(s.path(fileIndex), append(data, '\n'))
}

// setName points name at desc in idx, replacing what it pointed at.
func setName(idx *v1.IndexManifest, norm string, desc v1.Descriptor) {
	desc.Annotations = cloneMap(desc.Annotations)
	desc.Annotations[AnnotationRefName] = norm
	desc.Platform = nil
	for i, d := range idx.Manifests {
		if d.Annotations[AnnotationRefName] == norm {
			idx.Manifests[i] = desc
			return
		}
	}
	idx.Manifests = append(idx.Manifests, desc)
}

// addUnnamed records an image that came without a name (so that it can
// be found by ID), unless the manifest is already in idx.
func addUnnamed(idx *v1.IndexManifest, desc v1.Descriptor) {
	for _, d := range idx.Manifests {
		if d.Digest == desc.Digest {
			return
		}
	}
	desc.Platform = nil
	idx.Manifests = append(idx.Manifests, desc)
}

func cloneMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m)+1)
	for k, v := range m {
		out[k] = v
	}
	return out
}

// ---- blobs ----

func (s *Store) hasBlob(h v1.Hash) bool {
	_, err := os.Stat(s.blobPath(h))
	return err == nil
}

func (s *Store) readBlob(h v1.Hash) ([]byte, error) {
	data, err := os.ReadFile(s.blobPath(h))
	if err != nil {
		return nil, fmt.Errorf("image store: blob %s: %w", h, err)
	}
	return data, nil
}

// putBlob stores what r yields as a blob and returns its digest and size.
// With want set the content must hash to it. The blob appears under its
// name in one rename, complete and synced, or not at all.
func (s *Store) putBlob(r io.Reader, want v1.Hash) (v1.Hash, int64, error) {
	f, err := os.CreateTemp(s.path(dirTmp), "blob-")
	if err != nil {
		return v1.Hash{}, 0, fmt.Errorf("image store: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), r)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return v1.Hash{}, 0, fmt.Errorf("image store: write blob: %w", err)
	}
	got := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}
	if want != (v1.Hash{}) && got != want {
		return v1.Hash{}, 0, fmt.Errorf("image store: blob %s: content hashes to %s", want, got)
	}
	if err := os.Chmod(tmp, 0o444); err != nil {
		return v1.Hash{}, 0, fmt.Errorf("image store: %w", err)
	}
	if !s.hasBlob(got) {
		if err := os.Rename(tmp, s.blobPath(got)); err != nil {
			return v1.Hash{}, 0, fmt.Errorf("image store: %w", err)
		}
	}
	return got, n, nil
}

func (s *Store) putJSONBlob(v any) (v1.Hash, int64, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return v1.Hash{}, 0, fmt.Errorf("image store: %w", err)
	}
	return s.putBlob(bytes.NewReader(data), v1.Hash{})
}

// writeFileAtomic replaces path with data in one rename.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o644)
	}
	if err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// ---- images ----

// Image is an image in the store, as the agent needs it to run containers.
type Image struct {
	// Name is the name it was found under (Normalize's form); empty when
	// looked up by ID or by a digest it is not named by.
	Name string
	// Names are all the names of this manifest in the store, sorted.
	Names []string
	// Digest is the manifest's digest ("sha256:…").
	Digest string
	// ID is the config's digest, the image ID.
	ID string
	// RepoDigests are "<repository>@<digest>" for each name: the digest
	// the registry gave when pulled (an index's, for multi-platform
	// images), else the manifest's. The first is kubelet's imageID.
	RepoDigests []string
	MediaType   string
	Config      ImageConfig
	// Layers are bottom first.
	Layers []Layer
	// Size is the bytes the image takes in the store (blobs, not unpacked).
	Size    int64
	Created time.Time
	// Builtin is which built-in image this is ("kuard", "system",
	// "busybox"), empty for pulled and loaded images.
	Builtin string
	// Description says what the image is, for built-ins: e.g. that the
	// kuard image is kite's kuard-compatible demo, not the upstream image.
	Description string
	// Annotations are the manifest's.
	Annotations map[string]string
	// Pulled is set by Pull when it downloaded the image (kubelet's
	// "Pulled" event), not when it found it present.
	Pulled bool
}

// ImageConfig is what the image says about running it.
type ImageConfig struct {
	Entrypoint []string
	Cmd        []string
	Env        []string
	WorkingDir string
	// User is as written in the image ("", "1000", "nobody:nogroup", …).
	User string
	// ExposedPorts are "8080/tcp" and the like, sorted.
	ExposedPorts []string
	Labels       map[string]string
	StopSignal   string
}

// Layer is one layer of an image.
type Layer struct {
	// Digest is the blob's (compressed) digest; DiffID the digest of the
	// uncompressed tar, which keys the unpacked directory.
	Digest, DiffID string
	MediaType      string
	Size           int64
}

// Get returns the image ref names: a name (normalized as by Normalize), a
// name with a digest ("repo@sha256:…", matching the pulled or the manifest
// digest), or an image ID or manifest digest alone ("sha256:…" or the 64
// hex digits). Absent images are ErrNotFound.
func (s *Store) Get(ref string) (Image, error) {
	idx, err := s.readIndex()
	if err != nil {
		return Image{}, err
	}
	return s.get(idx, ref)
}

func (s *Store) get(idx *v1.IndexManifest, ref string) (Image, error) {
	desc, norm, err := s.find(idx, ref)
	if err != nil {
		return Image{}, err
	}
	img, err := s.image(idx, desc)
	if err != nil {
		return Image{}, err
	}
	img.Name = norm
	return img, nil
}

// find resolves ref to an index entry, and gives the name it matched
// (empty for an ID).
func (s *Store) find(idx *v1.IndexManifest, ref string) (v1.Descriptor, string, error) {
	if id := idOf(ref); id != "" {
		for _, d := range idx.Manifests {
			if d.Digest.String() == id {
				return d, "", nil
			}
		}
		for _, d := range idx.Manifests {
			if m, err := s.manifest(d.Digest); err == nil && m.Config.Digest.String() == id {
				return d, "", nil
			}
		}
		return v1.Descriptor{}, "", fmt.Errorf("%w: %s", ErrNotFound, ref)
	}
	_, norm, err := parseRef(ref)
	if err != nil {
		return v1.Descriptor{}, "", err
	}
	for _, d := range idx.Manifests {
		if d.Annotations[AnnotationRefName] == norm {
			return d, norm, nil
		}
	}
	if i := strings.LastIndex(norm, "@"); i >= 0 {
		// A digest names content: any entry with it will do, one of the
		// same repository first.
		repo, dig := norm[:i], norm[i+1:]
		var found *v1.Descriptor
		for _, d := range idx.Manifests {
			if d.Digest.String() != dig && d.Annotations[AnnotationSourceDigest] != dig {
				continue
			}
			if repository(d.Annotations[AnnotationRefName]) == repo {
				return d, norm, nil
			}
			if found == nil {
				found = &d
			}
		}
		if found != nil {
			return *found, norm, nil
		}
	}
	return v1.Descriptor{}, "", fmt.Errorf("%w: %s", ErrNotFound, norm)
}

func (s *Store) manifest(h v1.Hash) (*v1.Manifest, error) {
	data, err := s.readBlob(h)
	if err != nil {
		return nil, err
	}
	m, err := v1.ParseManifest(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("image store: manifest %s: %w", h, err)
	}
	return m, nil
}

func (s *Store) configFile(h v1.Hash) (*v1.ConfigFile, error) {
	data, err := s.readBlob(h)
	if err != nil {
		return nil, err
	}
	cf, err := v1.ParseConfigFile(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("image store: config %s: %w", h, err)
	}
	return cf, nil
}

// image reads desc's manifest and config into an Image.
func (s *Store) image(idx *v1.IndexManifest, desc v1.Descriptor) (Image, error) {
	m, err := s.manifest(desc.Digest)
	if err != nil {
		return Image{}, err
	}
	cf, err := s.configFile(m.Config.Digest)
	if err != nil {
		return Image{}, err
	}
	if len(cf.RootFS.DiffIDs) != len(m.Layers) {
		return Image{}, fmt.Errorf("image store: image %s: %d layers but %d diff_ids", desc.Digest, len(m.Layers), len(cf.RootFS.DiffIDs))
	}
	img := Image{
		Digest:      desc.Digest.String(),
		ID:          m.Config.Digest.String(),
		MediaType:   string(m.MediaType),
		Size:        desc.Size + m.Config.Size,
		Created:     cf.Created.Time,
		Builtin:     m.Annotations[AnnotationBuiltin],
		Description: m.Annotations[AnnotationDescription],
		Annotations: m.Annotations,
		Config: ImageConfig{
			Entrypoint: cf.Config.Entrypoint,
			Cmd:        cf.Config.Cmd,
			Env:        cf.Config.Env,
			WorkingDir: cf.Config.WorkingDir,
			User:       cf.Config.User,
			Labels:     cf.Config.Labels,
			StopSignal: cf.Config.StopSignal,
		},
	}
	if img.MediaType == "" {
		img.MediaType = string(desc.MediaType)
	}
	for p := range cf.Config.ExposedPorts {
		img.Config.ExposedPorts = append(img.Config.ExposedPorts, p)
	}
	slices.Sort(img.Config.ExposedPorts)
	for i, l := range m.Layers {
		img.Layers = append(img.Layers, Layer{Digest: l.Digest.String(), DiffID: cf.RootFS.DiffIDs[i].String(),
			MediaType: string(l.MediaType), Size: l.Size})
		img.Size += l.Size
	}
	for _, d := range idx.Manifests {
		if d.Digest != desc.Digest {
			continue
		}
		n := d.Annotations[AnnotationRefName]
		if n == "" {
			continue
		}
		img.Names = append(img.Names, n)
		dig := d.Annotations[AnnotationSourceDigest]
		if dig == "" {
			dig = d.Digest.String()
		}
		img.RepoDigests = append(img.RepoDigests, repository(n)+"@"+dig)
	}
	slices.Sort(img.Names)
	slices.Sort(img.RepoDigests)
	img.RepoDigests = slices.Compact(img.RepoDigests)
	return img, nil
}

// List returns every image in the store, one per manifest with all its
// names, sorted by first name (unnamed images last, by ID).
func (s *Store) List() ([]Image, error) {
	idx, err := s.readIndex()
	if err != nil {
		return nil, err
	}
	var out []Image
	seen := map[v1.Hash]bool{}
	for _, d := range idx.Manifests {
		if seen[d.Digest] {
			continue
		}
		seen[d.Digest] = true
		img, err := s.image(idx, d)
		if err != nil {
			return nil, err
		}
		out = append(out, img)
	}
	slices.SortFunc(out, func(a, b Image) int {
		switch {
		case len(a.Names) == 0 && len(b.Names) == 0:
			return strings.Compare(a.ID, b.ID)
		case len(a.Names) == 0:
			return 1
		case len(b.Names) == 0:
			return -1
		}
		return strings.Compare(a.Names[0], b.Names[0])
	})
	return out, nil
}

// Remove removes ref from the store: a name removes that name; an ID or a
// manifest digest removes the image with all its names. Blobs no image
// refers to any more are deleted. Unpacked layers stay (containers may be
// running on them): Prune removes them. It returns the names removed
// (the digest, for an unnamed image); an absent ref is ErrNotFound.
//
// Removing a built-in image lasts until the next EnsureBuiltins.
func (s *Store) Remove(ctx context.Context, ref string) ([]string, error) {
	cl, err := s.lock(ctx, lockContent, unix.LOCK_EX)
	if err != nil {
		return nil, err
	}
	defer cl.unlock()
	var removed []string
	err = s.updateIndex(ctx, func(idx *v1.IndexManifest) error {
		desc, norm, err := s.find(idx, ref)
		if err != nil {
			return err
		}
		// A name removes that name; an ID, or a digest no entry is
		// named by, removes the image under all its names.
		exact := norm != "" && desc.Annotations[AnnotationRefName] == norm
		kept := idx.Manifests[:0]
		for _, d := range idx.Manifests {
			name := d.Annotations[AnnotationRefName]
			if exact && name == norm || !exact && d.Digest == desc.Digest {
				if name == "" {
					name = d.Digest.String()
				}
				removed = append(removed, name)
				continue
			}
			kept = append(kept, d)
		}
		idx.Manifests = kept
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := s.collectGarbage(ctx); err != nil {
		return removed, err
	}
	return removed, nil
}

// collectGarbage deletes blobs no index entry refers to (through its
// manifest and config) and everything left in tmp/. The caller holds the
// content lock exclusively, so no writer is half way.
func (s *Store) collectGarbage(ctx context.Context) error {
	idx, err := s.readIndex()
	if err != nil {
		return err
	}
	keep := map[string]bool{}
	for _, d := range idx.Manifests {
		keep[d.Digest.Hex] = true
		m, err := s.manifest(d.Digest)
		if err != nil {
			// Keep what can be kept; a broken entry must not take
			// other images' blobs with it.
			return fmt.Errorf("image store: garbage collection stopped: %w", err)
		}
		keep[m.Config.Digest.Hex] = true
		for _, l := range m.Layers {
			keep[l.Digest.Hex] = true
		}
	}
	log := klog.FromContext(ctx).WithName("image")
	entries, err := os.ReadDir(s.path(dirBlobs))
	if err != nil {
		return fmt.Errorf("image store: %w", err)
	}
	for _, e := range entries {
		if !keep[e.Name()] {
			if err := os.Remove(s.path(dirBlobs, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("image store: %w", err)
			}
			log.V(2).Info("blob deleted", "digest", "sha256:"+e.Name())
		}
	}
	tmps, err := os.ReadDir(s.path(dirTmp))
	if err != nil {
		return fmt.Errorf("image store: %w", err)
	}
	for _, e := range tmps {
		if err := os.RemoveAll(s.path(dirTmp, e.Name())); err != nil {
			return fmt.Errorf("image store: %w", err)
		}
	}
	return nil
}

// tryCollectGarbage collects garbage if no writer is busy, else leaves it
// for later.
func (s *Store) tryCollectGarbage(ctx context.Context) error {
	l, err := tryLockFile(s.path(dirLocks, lockContent), unix.LOCK_EX)
	if err != nil || l == nil {
		return err
	}
	defer l.unlock()
	return s.collectGarbage(ctx)
}

// Prune deletes unpacked layer directories that no image in the store
// refers to, except those in inUse (lower directories of containers that
// still exist, on any node sharing the store: overlayfs must not see its
// lower layers change). It returns the directories deleted.
func (s *Store) Prune(ctx context.Context, inUse []string) ([]string, error) {
	cl, err := s.lock(ctx, lockContent, unix.LOCK_EX)
	if err != nil {
		return nil, err
	}
	defer cl.unlock()
	idx, err := s.readIndex()
	if err != nil {
		return nil, err
	}
	keep := map[string]bool{}
	for _, d := range inUse {
		keep[filepath.Clean(d)] = true
	}
	for _, d := range idx.Manifests {
		m, err := s.manifest(d.Digest)
		if err != nil {
			return nil, fmt.Errorf("image store: prune stopped: %w", err)
		}
		cf, err := s.configFile(m.Config.Digest)
		if err != nil {
			return nil, fmt.Errorf("image store: prune stopped: %w", err)
		}
		for _, id := range cf.RootFS.DiffIDs {
			keep[s.LayerDir(id)] = true
		}
	}
	entries, err := os.ReadDir(s.path(dirLayers))
	if err != nil {
		return nil, fmt.Errorf("image store: %w", err)
	}
	var removed []string
	for _, e := range entries {
		dir := s.path(dirLayers, e.Name())
		if keep[dir] {
			continue
		}
		if err := os.RemoveAll(dir); err != nil {
			return removed, fmt.Errorf("image store: prune: %w", err)
		}
		os.Remove(s.path(dirLocks, layerLockName(e.Name())))
		removed = append(removed, dir)
	}
	return removed, nil
}

package image

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"
)

// maxMetadata bounds the archive's JSON files read into memory.
const maxMetadata = 16 << 20

// Load imports the images of an archive file and returns the names it
// stored them under (the manifest digest for an image without a name).
// Two formats are read, plain or gzip-compressed:
//
//   - docker-archive (`docker save`, go-containerregistry's tarball.Write):
//     manifest.json lists each image's config, layers and RepoTags; the
//     image is stored with an OCI manifest made for it, its layers as
//     they are in the archive (so its ID, the config digest, is kept);
//   - OCI archive (an OCI image layout in a tar: oci-layout, index.json,
//     blobs/): index.json's entries are named by their
//     io.containerd.image.name annotation, else by
//     org.opencontainers.image.ref.name when that is a full name (a bare
//     tag names nothing); an image index entry is resolved to
//     cfg.Platform's manifest. Manifests keep their digests.
//
// Every blob is checked against its digest. A name already in the store
// is repointed at the loaded image.
func (s *Store) Load(ctx context.Context, file string) ([]string, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	defer f.Close()
	br := bufio.NewReader(f)
	var r io.Reader = br
	if magic, _ := br.Peek(2); bytes.Equal(magic, []byte{0x1f, 0x8b}) {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", file, err)
		}
		defer zr.Close()
		r = zr
	}

	cl, err := s.lock(ctx, lockContent, unix.LOCK_SH)
	if err != nil {
		return nil, err
	}
	defer func() { cl.unlock() }()
	work, err := os.MkdirTemp(s.path(dirTmp), "load-")
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	defer os.RemoveAll(work)

	a := &archive{s: s, work: work, files: map[string]archFile{}, links: map[string]string{}, meta: map[string][]byte{}}
	if err := a.read(ctx, r); err != nil {
		return nil, fmt.Errorf("load %s: %w", file, err)
	}
	var loaded []loadedImage
	switch {
	case a.meta["manifest.json"] != nil:
		loaded, err = a.docker()
	case a.meta["index.json"] != nil:
		loaded, err = a.oci()
	default:
		err = errors.New("neither a docker-archive (manifest.json) nor an OCI archive (index.json)")
	}
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", file, err)
	}

	var names []string
	err = s.updateIndex(ctx, func(idx *v1.IndexManifest) error {
		for _, li := range loaded {
			if len(li.names) == 0 {
				addUnnamed(idx, li.desc)
				names = append(names, li.desc.Digest.String())
			}
			for _, n := range li.names {
				setName(idx, n, li.desc)
				names = append(names, n)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	log := klog.FromContext(ctx).WithName("image")
	log.Info("images loaded", "file", file, "names", names)
	// Names may have moved off other images, and the archive's files that
	// are no image's are in tmp/: collect, unless someone is writing.
	os.RemoveAll(work)
	cl.unlock()
	cl = nil
	if err := s.tryCollectGarbage(ctx); err != nil {
		log.Error(err, "garbage collection after a load")
	}
	return names, nil
}

type loadedImage struct {
	desc  v1.Descriptor
	names []string
}

// archive is an archive read into the store's tmp/: every regular file
// hashed into a file of its own (blobs move into the store from there),
// the JSON files that describe the archive kept in memory.
type archive struct {
	s     *Store
	work  string
	files map[string]archFile
	// links are hard and symbolic links, resolved to archive paths.
	links map[string]string
	meta  map[string][]byte
}

type archFile struct {
	path   string
	digest v1.Hash
	size   int64
	magic  []byte
}

// metaFiles are the archive's own descriptions, not blobs.
var metaFiles = map[string]bool{"manifest.json": true, "index.json": true, "oci-layout": true, "repositories": true}

func (a *archive) read(ctx context.Context, r io.Reader) error {
	tr := tar.NewReader(r)
	for n := 0; ; n++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read tar: %w", err)
		}
		name := clean(hdr.Name)
		switch hdr.Typeflag {
		case tar.TypeReg:
			if metaFiles[name] {
				data, err := io.ReadAll(io.LimitReader(tr, maxMetadata+1))
				if err != nil {
					return fmt.Errorf("%s: %w", name, err)
				}
				if len(data) > maxMetadata {
					return fmt.Errorf("%s: larger than %d bytes", name, maxMetadata)
				}
				a.meta[name] = data
				continue
			}
			af, err := a.save(fmt.Sprintf("%s/%d", a.work, n), tr)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			a.files[name] = af
		case tar.TypeSymlink:
			if strings.HasPrefix(hdr.Linkname, "/") {
				a.links[name] = clean(hdr.Linkname)
			} else {
				a.links[name] = clean(path.Join(path.Dir(name), hdr.Linkname))
			}
		case tar.TypeLink:
			a.links[name] = clean(hdr.Linkname)
		}
	}
}

func (a *archive) save(p string, r io.Reader) (archFile, error) {
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return archFile{}, err
	}
	h := sha256.New()
	head := &headWriter{n: 4}
	n, err := io.Copy(io.MultiWriter(f, h, head), r)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return archFile{}, err
	}
	return archFile{path: p, digest: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}, size: n, magic: head.b}, nil
}

// headWriter keeps the first n bytes written.
type headWriter struct {
	n int
	b []byte
}

func (w *headWriter) Write(p []byte) (int, error) {
	if room := w.n - len(w.b); room > 0 {
		w.b = append(w.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

// file finds an archive path, following links.
func (a *archive) file(name string) (archFile, error) {
	name = clean(name)
	for range 16 {
		if af, ok := a.files[name]; ok {
			return af, nil
		}
		target, ok := a.links[name]
		if !ok {
			return archFile{}, fmt.Errorf("%s: not in the archive", name)
		}
		name = target
	}
	return archFile{}, fmt.Errorf("%s: too many links", name)
}

func (a *archive) readFile(name string) ([]byte, archFile, error) {
	af, err := a.file(name)
	if err != nil {
		return nil, af, err
	}
	if af.size > maxMetadata {
		return nil, af, fmt.Errorf("%s: larger than %d bytes", name, maxMetadata)
	}
	data, err := a.contents(af)
	return data, af, err
}

// contents reads an archive file, from the store once it was committed.
func (a *archive) contents(af archFile) ([]byte, error) {
	data, err := os.ReadFile(af.path)
	if errors.Is(err, fs.ErrNotExist) {
		return a.s.readBlob(af.digest)
	}
	return data, err
}

// commit moves an archive file into the store's blobs (if the store does
// not have it already).
func (a *archive) commit(af archFile) error {
	if a.s.hasBlob(af.digest) {
		return nil
	}
	if err := os.Chmod(af.path, 0o444); err != nil {
		return err
	}
	if err := os.Rename(af.path, a.s.blobPath(af.digest)); err != nil && !a.s.hasBlob(af.digest) {
		return err
	}
	return nil
}

// docker stores the images of a docker-archive.
func (a *archive) docker() ([]loadedImage, error) {
	var entries []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	if err := json.Unmarshal(a.meta["manifest.json"], &entries); err != nil {
		return nil, fmt.Errorf("manifest.json: %w", err)
	}
	var out []loadedImage
	for _, e := range entries {
		raw, cfgFile, err := a.readFile(e.Config)
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		cf, err := v1.ParseConfigFile(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("config %s: %w", e.Config, err)
		}
		if len(cf.RootFS.DiffIDs) != len(e.Layers) {
			return nil, fmt.Errorf("config %s: %d diff_ids for %d layers", e.Config, len(cf.RootFS.DiffIDs), len(e.Layers))
		}
		m := v1.Manifest{
			SchemaVersion: 2,
			MediaType:     types.OCIManifestSchema1,
			Config:        v1.Descriptor{MediaType: types.OCIConfigJSON, Digest: cfgFile.digest, Size: cfgFile.size},
			Layers:        []v1.Descriptor{},
		}
		commits := []archFile{cfgFile}
		for i, lp := range e.Layers {
			lf, err := a.file(lp)
			if err != nil {
				return nil, fmt.Errorf("layer: %w", err)
			}
			mt := layerMediaType(lf.magic)
			if mt == types.OCIUncompressedLayer && lf.digest != cf.RootFS.DiffIDs[i] {
				return nil, fmt.Errorf("layer %s hashes to %s, not its diff_id %s", lp, lf.digest, cf.RootFS.DiffIDs[i])
			}
			m.Layers = append(m.Layers, v1.Descriptor{MediaType: mt, Digest: lf.digest, Size: lf.size})
			commits = append(commits, lf)
		}
		var names []string
		for _, tag := range e.RepoTags {
			_, norm, err := parseRef(tag)
			if err != nil {
				return nil, err
			}
			names = append(names, norm)
		}
		for _, af := range commits {
			if err := a.commit(af); err != nil {
				return nil, err
			}
		}
		dig, size, err := a.s.putJSONBlob(m)
		if err != nil {
			return nil, err
		}
		out = append(out, loadedImage{desc: v1.Descriptor{MediaType: m.MediaType, Digest: dig, Size: size}, names: names})
	}
	return out, nil
}

// layerMediaType tells a layer's compression by its first bytes.
func layerMediaType(magic []byte) types.MediaType {
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		return types.OCILayer
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return types.OCILayerZStd
	}
	return types.OCIUncompressedLayer
}

// oci stores the images of an OCI archive.
func (a *archive) oci() ([]loadedImage, error) {
	idx, err := v1.ParseIndexManifest(bytes.NewReader(a.meta["index.json"]))
	if err != nil {
		return nil, fmt.Errorf("index.json: %w", err)
	}
	var out []loadedImage
	for _, d := range idx.Manifests {
		names := ociNames(d.Annotations)
		if d.MediaType.IsIndex() {
			d, err = a.platformManifest(d)
			if err != nil {
				return nil, err
			}
		}
		if !d.MediaType.IsImage() {
			continue // artifacts, signatures: not images
		}
		raw, mf, err := a.blob(d.Digest)
		if err != nil {
			return nil, err
		}
		m, err := v1.ParseManifest(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("manifest %s: %w", d.Digest, err)
		}
		for _, bd := range append([]v1.Descriptor{m.Config}, m.Layers...) {
			if a.s.hasBlob(bd.Digest) {
				continue
			}
			af, err := a.blobFile(bd.Digest)
			if err != nil {
				return nil, fmt.Errorf("image %s: %w", d.Digest, err)
			}
			if err := a.commit(af); err != nil {
				return nil, err
			}
		}
		if err := a.commit(mf); err != nil {
			return nil, err
		}
		out = append(out, loadedImage{desc: v1.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: mf.size}, names: names})
	}
	if len(out) == 0 {
		return nil, errors.New("index.json lists no image")
	}
	return out, nil
}

// ociNames are the full names an OCI index entry gives its image.
func ociNames(ann map[string]string) []string {
	for _, key := range []string{AnnotationContainerdName, AnnotationRefName} {
		n := ann[key]
		if n == "" || !strings.ContainsAny(n, "/:@") {
			continue // a bare tag ("latest") names no repository
		}
		if _, norm, err := parseRef(n); err == nil {
			return []string{norm}
		}
	}
	return nil
}

// platformManifest picks cfg.Platform's manifest from an image index.
func (a *archive) platformManifest(d v1.Descriptor) (v1.Descriptor, error) {
	raw, _, err := a.blob(d.Digest)
	if err != nil {
		return v1.Descriptor{}, err
	}
	idx, err := v1.ParseIndexManifest(bytes.NewReader(raw))
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("index %s: %w", d.Digest, err)
	}
	want := a.s.cfg.Platform
	for _, m := range idx.Manifests {
		if m.Platform != nil && m.Platform.OS == want.OS && m.Platform.Architecture == want.Architecture && m.MediaType.IsImage() {
			return m, nil
		}
	}
	return v1.Descriptor{}, fmt.Errorf("index %s: no image for %s", d.Digest, want.String())
}

// blobFile finds an OCI layout blob in the archive and checks its digest.
func (a *archive) blobFile(h v1.Hash) (archFile, error) {
	af, err := a.file("blobs/" + h.Algorithm + "/" + h.Hex)
	if err != nil {
		return archFile{}, err
	}
	if af.digest != h {
		return archFile{}, fmt.Errorf("blob %s hashes to %s", h, af.digest)
	}
	return af, nil
}

func (a *archive) blob(h v1.Hash) ([]byte, archFile, error) {
	af, err := a.blobFile(h)
	if err != nil {
		return nil, af, err
	}
	if af.size > maxMetadata {
		return nil, af, fmt.Errorf("blob %s: larger than %d bytes", h, maxMetadata)
	}
	data, err := a.contents(af)
	return data, af, err
}

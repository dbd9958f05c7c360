package image

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"
)

// OCI whiteouts (in layer tars) and their overlayfs forms (on disk).
const (
	whiteoutPrefix = ".wh."
	whiteoutOpaque = ".wh..wh..opq"
	// xattrOpaque on a directory hides the lower layers' entries of it.
	xattrOpaque = "trusted.overlay.opaque"
	// xattrOverlay is overlayfs's namespace; a layer may not set its own.
	xattrOverlay = "trusted.overlay."
)

// Unpack makes sure every layer of the image ref names is unpacked and
// returns their directories, bottom layer first (reverse them for an
// overlayfs lowerdir= option, which lists the top first). Each layer is
// unpacked once per machine, into a directory named by its diffID, in
// overlayfs's format: an OCI whiteout file ".wh.NAME" becomes a 0/0
// character device NAME, and ".wh..wh..opq" becomes the xattr
// trusted.overlay.opaque=y on its directory. The directories must never
// be written to.
func (s *Store) Unpack(ctx context.Context, ref string) ([]string, error) {
	cl, err := s.lock(ctx, lockContent, unix.LOCK_SH)
	if err != nil {
		return nil, err
	}
	defer cl.unlock()
	idx, err := s.readIndex()
	if err != nil {
		return nil, err
	}
	desc, _, err := s.find(idx, ref)
	if err != nil {
		return nil, err
	}
	m, err := s.manifest(desc.Digest)
	if err != nil {
		return nil, err
	}
	cf, err := s.configFile(m.Config.Digest)
	if err != nil {
		return nil, err
	}
	if len(cf.RootFS.DiffIDs) != len(m.Layers) {
		return nil, fmt.Errorf("image %s: %d layers but %d diff_ids", ref, len(m.Layers), len(cf.RootFS.DiffIDs))
	}
	dirs := make([]string, len(m.Layers))
	for i, l := range m.Layers {
		dir, err := s.unpackLayer(ctx, l, cf.RootFS.DiffIDs[i])
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", ref, err)
		}
		dirs[i] = dir
	}
	return dirs, nil
}

func layerLockName(diffIDHex string) string { return "layer-" + diffIDHex + ".lock" }

// unpackLayer unpacks one layer unless it is already, and returns its
// directory. It unpacks into tmp/ and renames the result into place, so a
// layer directory is always complete.
func (s *Store) unpackLayer(ctx context.Context, l v1.Descriptor, diffID v1.Hash) (string, error) {
	dir := s.LayerDir(diffID)
	if _, err := os.Stat(dir); err == nil {
		return dir, nil
	}
	ll, err := s.lock(ctx, layerLockName(diffID.Hex), unix.LOCK_EX)
	if err != nil {
		return "", err
	}
	defer ll.unlock()
	if _, err := os.Stat(dir); err == nil {
		return dir, nil // another process unpacked it while we waited
	}
	start := time.Now()
	tmp, err := os.MkdirTemp(s.path(dirTmp), "layer-")
	if err != nil {
		return "", fmt.Errorf("layer %s: %w", diffID, err)
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", fmt.Errorf("layer %s: %w", diffID, err)
	}
	layer, err := partial.CompressedToLayer(blobLayer{s: s, desc: l})
	if err != nil {
		return "", fmt.Errorf("layer %s: %w", l.Digest, err)
	}
	rc, err := layer.Uncompressed()
	if err != nil {
		return "", fmt.Errorf("layer %s: %w", l.Digest, err)
	}
	defer rc.Close()
	h := sha256.New()
	if err := extract(ctx, io.TeeReader(rc, h), tmp); err != nil {
		return "", fmt.Errorf("layer %s: %w", l.Digest, err)
	}
	// The tar's end may be followed by padding that is part of the diffID.
	if _, err := io.Copy(h, rc); err != nil {
		return "", fmt.Errorf("layer %s: %w", l.Digest, err)
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != diffID.String() {
		return "", fmt.Errorf("layer %s: uncompressed content hashes to %s, not its diffID %s", l.Digest, got, diffID)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return "", fmt.Errorf("layer %s: %w", diffID, err)
	}
	klog.FromContext(ctx).WithName("image").V(2).Info("layer unpacked", "diffID", diffID.String(), "dir", dir, "took", time.Since(start))
	return dir, nil
}

// blobLayer is a stored layer blob, for go-containerregistry's
// decompression (gzip, zstd, or none).
type blobLayer struct {
	s    *Store
	desc v1.Descriptor
}

func (b blobLayer) Digest() (v1.Hash, error)            { return b.desc.Digest, nil }
func (b blobLayer) Compressed() (io.ReadCloser, error)  { return os.Open(b.s.blobPath(b.desc.Digest)) }
func (b blobLayer) Size() (int64, error)                { return b.desc.Size, nil }
func (b blobLayer) MediaType() (types.MediaType, error) { return b.desc.MediaType, nil }

// extract unpacks a layer tar into the empty directory dir, converting
// OCI whiteouts to overlayfs's. Entry names are confined to dir: ".." and
// absolute names are cleaned into it, and no entry is written through a
// symbolic link (a layer unpacks into a directory of its own, so a link in
// a path is the layer's own doing, and refused). Ownership, modes,
// extended attributes (but overlayfs's own) and times are kept.
func extract(ctx context.Context, r io.Reader, dir string) error {
	x := extractor{root: dir, dirs: map[string]bool{}}
	tr := tar.NewReader(r)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read tar: %w", err)
		}
		if err := x.entry(hdr, tr); err != nil {
			return fmt.Errorf("%s: %w", hdr.Name, err)
		}
	}
	// Directory times last: creating their entries changed them.
	for i := len(x.dirTimes) - 1; i >= 0; i-- {
		d := x.dirTimes[i]
		setTimes(filepath.Join(x.root, d.rel), d.atime, d.mtime)
	}
	return nil
}

type extractor struct {
	root string
	// dirs are the relative paths known to be real directories (not
	// links) in root.
	dirs     map[string]bool
	dirTimes []dirTime
}

type dirTime struct {
	rel          string
	atime, mtime time.Time
}

// clean confines a tar name to a path relative to the root ("" is the root).
func clean(name string) string {
	return strings.TrimPrefix(path.Clean("/"+name), "/")
}

// mkdirs makes sure the directory rel exists as a real directory, making
// missing ones with mode 0755.
func (x *extractor) mkdirs(rel string) error {
	if rel == "." || rel == "" || x.dirs[rel] {
		return nil
	}
	if err := x.mkdirs(path.Dir(rel)); err != nil {
		return err
	}
	p := filepath.Join(x.root, rel)
	fi, err := os.Lstat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.Mkdir(p, 0o755); err != nil {
			return err
		}
	case err != nil:
		return err
	case fi.Mode()&fs.ModeSymlink != 0:
		return fmt.Errorf("path goes through the symbolic link %s", rel)
	case !fi.IsDir():
		return fmt.Errorf("path goes through %s, which is not a directory", rel)
	}
	x.dirs[rel] = true
	return nil
}

// forget drops rel and everything under it from the known directories,
// when an entry replaces it.
func (x *extractor) forget(rel string) {
	for d := range x.dirs {
		if d == rel || strings.HasPrefix(d, rel+"/") {
			delete(x.dirs, d)
		}
	}
}

func (x *extractor) entry(hdr *tar.Header, r io.Reader) error {
	rel := clean(hdr.Name)
	if rel == "" {
		return nil // the layer's root: the directory itself
	}
	parent, base := path.Split(rel)
	parent = strings.TrimSuffix(parent, "/")
	if parent == "" {
		parent = "."
	}
	if err := x.mkdirs(parent); err != nil {
		return err
	}
	parentPath := filepath.Join(x.root, parent)

	if base == whiteoutOpaque {
		return unix.Lsetxattr(parentPath, xattrOpaque, []byte("y"), 0)
	}
	if name, ok := strings.CutPrefix(base, whiteoutPrefix); ok {
		target := filepath.Join(parentPath, name)
		if err := os.RemoveAll(target); err != nil {
			return err
		}
		x.forget(path.Join(parent, name))
		if err := unix.Mknod(target, unix.S_IFCHR, 0); err != nil {
			return fmt.Errorf("whiteout: %w", err)
		}
		return unix.Lchown(target, hdr.Uid, hdr.Gid)
	}

	target := filepath.Join(x.root, rel)
	// A later entry for the same path replaces the earlier one; a
	// directory over a directory only updates it.
	if fi, err := os.Lstat(target); err == nil {
		if !(fi.IsDir() && hdr.Typeflag == tar.TypeDir) {
			if err := os.RemoveAll(target); err != nil {
				return err
			}
			x.forget(rel)
		}
	}

	mode := uint32(hdr.Mode) & 0o7777
	switch hdr.Typeflag {
	case tar.TypeDir:
		if err := os.Mkdir(target, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		x.dirs[rel] = true
		x.dirTimes = append(x.dirTimes, dirTime{rel, hdr.AccessTime, hdr.ModTime})
	case tar.TypeReg:
		f, err := os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY|unix.O_NOFOLLOW, 0o600)
		if err != nil {
			return err
		}
		_, err = io.Copy(f, r)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	case tar.TypeSymlink:
		if err := os.Symlink(hdr.Linkname, target); err != nil {
			return err
		}
	case tar.TypeLink:
		// The target must be reached without links: a link in its path
		// could lead out of the layer (to a file of the host).
		src := clean(hdr.Linkname)
		if src == "" || x.realDir(path.Dir(src)) != nil {
			return fmt.Errorf("hard link to %q: not a file of this layer", hdr.Linkname)
		}
		if err := os.Link(filepath.Join(x.root, src), target); err != nil {
			return fmt.Errorf("hard link: %w", err)
		}
		return nil // the link shares its target's metadata
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		kind := map[byte]uint32{tar.TypeChar: unix.S_IFCHR, tar.TypeBlock: unix.S_IFBLK, tar.TypeFifo: unix.S_IFIFO}[hdr.Typeflag]
		dev := unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
		if err := unix.Mknod(target, kind|mode, int(dev)); err != nil {
			return err
		}
	default:
		// Global PAX headers are consumed by the reader; anything else
		// (GNU volume labels, multi-volume parts) has no file to make.
		return nil
	}

	if err := unix.Lchown(target, hdr.Uid, hdr.Gid); err != nil {
		return fmt.Errorf("chown: %w", err)
	}
	for key, value := range hdr.PAXRecords {
		xattr, ok := strings.CutPrefix(key, "SCHILY.xattr.")
		if !ok || strings.HasPrefix(xattr, xattrOverlay) {
			continue
		}
		if err := unix.Lsetxattr(target, xattr, []byte(value), 0); err != nil &&
			!errors.Is(err, unix.ENOTSUP) && !errors.Is(err, unix.EPERM) {
			return fmt.Errorf("xattr %s: %w", xattr, err)
		}
	}
	if hdr.Typeflag != tar.TypeSymlink {
		// After chown, which clears setuid and setgid bits.
		if err := unix.Fchmodat(unix.AT_FDCWD, target, mode, 0); err != nil {
			return fmt.Errorf("chmod: %w", err)
		}
	}
	if hdr.Typeflag != tar.TypeDir {
		setTimes(target, hdr.AccessTime, hdr.ModTime)
	}
	return nil
}

// realDir checks that rel is an existing directory of the layer reached
// through real directories only, making nothing.
func (x *extractor) realDir(rel string) error {
	if rel == "." || x.dirs[rel] {
		return nil
	}
	p := x.root
	for _, part := range strings.Split(rel, "/") {
		p = filepath.Join(p, part)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		if !fi.IsDir() {
			return fmt.Errorf("%s is not a directory", p)
		}
	}
	return nil
}

// setTimes sets a path's times without following a symbolic link; a
// failure only loses times, so it is ignored.
func setTimes(p string, atime, mtime time.Time) {
	if atime.IsZero() {
		atime = mtime
	}
	ts := []unix.Timespec{unix.NsecToTimespec(atime.UnixNano()), unix.NsecToTimespec(mtime.UnixNano())}
	unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
}

package image

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// What image garbage collection needs from a store shared by several
// nodes (the agents of a lab): which images any of them uses, when each
// image was last used by anyone, and how full the store's file system is.
//
//	used/<manifest hex>   empty file; its mtime is the image's last use (MarkUsed)
//	inuse/<owner>.json    the images one user of the store has containers of (SetInUse)

const (
	dirUsed  = "used"
	dirInUse = "inuse"
)

// MarkUsed records that ref (a name, ID or digest, as Get takes) was
// used now: a container is about to run it.
func (s *Store) MarkUsed(ref string) error {
	img, err := s.Get(ref)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(s.path(dirUsed), 0o755); err != nil {
		return fmt.Errorf("image store: %w", err)
	}
	p := s.path(dirUsed, strings.TrimPrefix(img.Digest, "sha256:"))
	now := time.Now()
	if err := os.Chtimes(p, now, now); errors.Is(err, fs.ErrNotExist) {
		err = os.WriteFile(p, nil, 0o644)
	} else if err != nil {
		return fmt.Errorf("image store: %w", err)
	}
	return nil
}

// LastUsed returns when each image was last marked used, by manifest
// digest; images never marked are absent.
func (s *Store) LastUsed() (map[string]time.Time, error) {
	entries, err := os.ReadDir(s.path(dirUsed))
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]time.Time{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("image store: %w", err)
	}
	out := map[string]time.Time{}
	for _, e := range entries {
		if fi, err := e.Info(); err == nil {
			out["sha256:"+e.Name()] = fi.ModTime()
		}
	}
	return out, nil
}

// SetInUse records the images owner (one node's agent: a file name) has
// containers of, replacing what it recorded before.
func (s *Store) SetInUse(owner string, refs []string) error {
	if owner == "" || strings.ContainsAny(owner, "/\x00") || owner[0] == '.' {
		return fmt.Errorf("image store: invalid in-use owner %q", owner)
	}
	if err := os.MkdirAll(s.path(dirInUse), 0o755); err != nil {
		return fmt.Errorf("image store: %w", err)
	}
	data, err := json.Marshal(refs)
	if err != nil {
		return err
	}
	return writeFileAtomic(s.path(dirInUse, owner+".json"), data)
}

// InUse returns the manifest digests of the images any owner recorded
// as in use. Refs that name no image any more are skipped.
func (s *Store) InUse() (map[string]bool, error) {
	files, err := filepath.Glob(s.path(dirInUse, "*.json"))
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("image store: %w", err)
		}
		var refs []string
		if err := json.Unmarshal(data, &refs); err != nil {
			return nil, fmt.Errorf("image store: %s: %w", f, err)
		}
		for _, r := range refs {
			if img, err := s.Get(r); err == nil {
				out[img.Digest] = true
			}
		}
	}
	return out, nil
}

// FSUsage is the capacity and the available bytes of the file system the
// store is on.
func (s *Store) FSUsage() (capacity, available int64, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(s.root, &st); err != nil {
		return 0, 0, fmt.Errorf("image store: statfs %s: %w", s.root, err)
	}
	return int64(st.Blocks) * st.Bsize, int64(st.Bavail) * st.Bsize, nil
}

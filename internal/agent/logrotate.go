package agent

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"k8s.io/klog/v2"

	"kite/internal/runtime"
)

// Container log rotation, as kubelet's container log manager does it:
// every LogMonitorPeriod, the log of each running container that has
// reached ContainerLogMaxSize is renamed to "<log>.<YYYYMMDD-hhmmss>"
// and the runtime reopens a new file at the log's path (so `kubectl logs`
// reads the current file, and `--previous` the previous instance's, as
// before). Rotated files but the newest are gzipped ("….gz", written as
// "….gz.tmp" first); the oldest go so that a container has at most
// ContainerLogMaxFiles files, the current one included.

// Defaults of kubelet's containerLogMaxSize and containerLogMaxFiles.
const (
	DefaultContainerLogMaxSize  = 10 << 20
	DefaultContainerLogMaxFiles = 5
	defaultLogMonitorPeriod     = 10 * time.Second
)

// Suffixes of rotated files.
const (
	rotatedTimeFormat = "20060102-150405"
	compressedSuffix  = ".gz"
	tmpSuffix         = ".tmp"
)

// rotateLogs runs rotateLog over every running container of the node.
func (m *podManager) rotateLogs(ctx context.Context) {
	cs, err := m.rt.ListContainers(ctx)
	if err != nil {
		klog.FromContext(ctx).Error(err, "list containers for log rotation")
		return
	}
	for _, c := range cs {
		if c.State != runtime.StateRunning || c.LogPath == "" {
			continue
		}
		rotated, err := rotateLog(c.LogPath, m.cfg.ContainerLogMaxSize, m.cfg.ContainerLogMaxFiles, m.now(),
			func() error { return m.rt.ReopenContainerLog(ctx, c.ID) })
		if err != nil {
			klog.FromContext(ctx).Error(err, "rotate container log", "container", c.ID)
		} else if rotated {
			klog.FromContext(ctx).V(2).Info("container log rotated", "container", c.ID)
		}
	}
}

// rotateLog rotates the log at path once it has maxSize bytes; reopen
// makes the container write to a new file at path. A failed reopen puts
// the file back. It reports whether it rotated.
func rotateLog(path string, maxSize int64, maxFiles int, now time.Time, reopen func() error) (bool, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil || fi.Size() < maxSize {
		return false, err
	}
	dst := path + "." + now.Format(rotatedTimeFormat)
	if _, err := os.Stat(dst); err == nil {
		return false, nil // rotated this second already: next round
	}
	rotated, err := rotatedLogs(path)
	if err != nil {
		return false, err
	}
	// Make room for the file about to be rotated: the current file and
	// at most maxFiles-1 rotated ones.
	for len(rotated) > max(maxFiles-2, 0) {
		if err := os.Remove(rotated[0]); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return false, err
		}
		rotated = rotated[1:]
	}
	// The one about to be rotated becomes the newest: compress the others.
	for _, r := range rotated {
		if !strings.HasSuffix(r, compressedSuffix) {
			if err := compressLog(r); err != nil {
				return false, err
			}
		}
	}
	if err := os.Rename(path, dst); err != nil {
		return false, err
	}
	if err := reopen(); err != nil {
		if rerr := os.Rename(dst, path); rerr != nil {
			return false, fmt.Errorf("%w (and putting %s back: %v)", err, path, rerr)
		}
		return false, err
	}
	return true, nil
}

// rotatedLogs lists a log's rotated files, oldest first, and removes the
// leftovers of an interrupted compression.
func rotatedLogs(path string) ([]string, error) {
	matches, err := filepath.Glob(path + ".*")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, f := range matches {
		if strings.HasSuffix(f, tmpSuffix) {
			os.Remove(f)
			continue
		}
		out = append(out, f)
	}
	// The timestamps sort as text; a .gz sorts after its own base name.
	sort.Strings(out)
	return out, nil
}

// compressLog gzips a rotated file into "<file>.gz" (through a .tmp
// file, so a crash never leaves half a .gz) and removes it.
func compressLog(path string) error {
	in, err := os.Open(path)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := path + compressedSuffix + tmpSuffix
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	zw := gzip.NewWriter(out)
	_, err = io.Copy(zw, in)
	if cerr := zw.Close(); err == nil {
		err = cerr
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path+compressedSuffix)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("compress %s: %w", path, err)
	}
	return os.Remove(path)
}

// removeLogs removes an instance's log and its rotated files.
func removeLogs(path string) {
	if path == "" {
		return
	}
	os.Remove(path)
	rotated, _ := filepath.Glob(path + ".*")
	for _, r := range rotated {
		os.Remove(r)
	}
}

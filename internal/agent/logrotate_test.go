package agent

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// rotateLog over a real directory: nothing below the size; at the size
// the file is renamed with the timestamp and reopened; older rotated
// files are gzipped and the oldest removed to keep maxFiles in all; a
// failed reopen puts the file back.
func TestRotateLog(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "0.log")
	reopen := func() error { return os.WriteFile(path, nil, 0o640) }
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	names := func() []string {
		entries, _ := os.ReadDir(dir)
		var out []string
		for _, e := range entries {
			out = append(out, e.Name())
		}
		return out
	}
	at := func(sec int) time.Time { return time.Date(2026, 11, 26, 1, 0, sec, 0, time.UTC) }

	write("small")
	if ok, err := rotateLog(path, 10, 3, at(0), reopen); ok || err != nil {
		t.Fatalf("rotated a small file: %v %v", ok, err)
	}
	for i, content := range []string{"first-0123456789", "second-0123456789", "third-0123456789"} {
		write(content)
		if ok, err := rotateLog(path, 10, 3, at(i+1), reopen); !ok || err != nil {
			t.Fatalf("rotation %d: %v %v", i, ok, err)
		}
	}
	want := []string{"0.log", "0.log.20261126-010002.gz", "0.log.20261126-010003"}
	if got := names(); !slices.Equal(got, want) {
		t.Fatalf("files %q, want %q", got, want)
	}
	f, _ := os.Open(filepath.Join(dir, want[1]))
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	if data, _ := io.ReadAll(zr); string(data) != "second-0123456789" {
		t.Errorf("compressed content %q", data)
	}
	f.Close()
	if data, _ := os.ReadFile(filepath.Join(dir, want[2])); string(data) != "third-0123456789" {
		t.Errorf("newest rotated content %q", data)
	}

	write("fourth-0123456789")
	os.WriteFile(filepath.Join(dir, "0.log.20261126-010003.gz.tmp"), []byte("half"), 0o640)
	if ok, err := rotateLog(path, 10, 3, at(9), func() error { return errors.New("no shim") }); ok || err == nil {
		t.Fatalf("rotation with a failing reopen: %v %v", ok, err)
	}
	if data, _ := os.ReadFile(path); string(data) != "fourth-0123456789" {
		t.Errorf("log not put back: %q", data)
	}
	if slices.Contains(names(), "0.log.20261126-010003.gz.tmp") {
		t.Error("leftover .tmp kept")
	}
}

// The agent rotates the logs of running containers through the runtime's
// ReopenContainerLog, and removes rotated files with the instance.
func TestAgentRotatesLogs(t *testing.T) {
	h := newHarness(t)
	h.m.cfg.ContainerLogMaxSize, h.m.cfg.ContainerLogMaxFiles = 1024, 2
	pod := h.create(newPod("noisy"))
	h.sync(pod)
	id := containerID(pod.UID, "app", 0)
	cfg, _ := h.rt.ContainerConfig(id)
	os.MkdirAll(filepath.Dir(cfg.LogPath), 0o755)
	os.WriteFile(cfg.LogPath, bytes.Repeat([]byte("2026-11-26T01:00:00.000000000Z stdout F x\n"), 100), 0o640)
	h.rt.ResetCalls()
	h.m.rotateLogs(t.Context())
	if got := callsWith(h.rt.Calls(), "Reopen"); !slices.Equal(got, []string{"ReopenContainerLog " + id}) {
		t.Errorf("calls %q", got)
	}
	rotated, _ := filepath.Glob(cfg.LogPath + ".*")
	if fi, err := os.Stat(cfg.LogPath); len(rotated) != 1 || err != nil || fi.Size() != 0 {
		t.Fatalf("after rotation: rotated %q, current %v %v", rotated, fi, err)
	}

	// Two restarts later the first instance is removed, rotated files too.
	for n := range 2 {
		h.rt.Exit(containerID(pod.UID, "app", n), 1, false)
		h.advance(time.Hour)
		h.sync(pod)
	}
	if left, _ := filepath.Glob(cfg.LogPath + "*"); len(left) != 0 || !strings.HasSuffix(cfg.LogPath, "/0.log") {
		t.Errorf("logs of the removed instance left: %q", left)
	}
	if st := h.get(pod).Status; st.ContainerStatuses[0].RestartCount != 2 || st.Phase != corev1.PodRunning {
		t.Errorf("status %+v", st.ContainerStatuses)
	}
}

package agent

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A CRI log as the shim writes it: stdout and stderr interleaved, a line
// split into P pieces, and a torn last line.
const testLog = `2026-11-25T10:00:00.000000000Z stdout F one
2026-11-25T10:00:01.000000000Z stderr F two
2026-11-25T10:00:02.000000000Z stdout P thr
2026-11-25T10:00:02.500000000Z stdout F ee
2026-11-25T10:00:03.000000000Z stdout F four
2026-11-25T10:00:04.000000000Z stdout F five
2026-11-25T10:00:05.0000`

func TestWriteLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	if err := os.WriteFile(path, []byte(testLog), 0o644); err != nil {
		t.Fatal(err)
	}
	at := func(s string) time.Time { tm, _ := time.Parse(time.RFC3339, s); return tm }
	for _, tc := range []struct {
		name string
		opts logOptions
		want string
	}{
		{"all", logOptions{tail: -1}, "one\ntwo\nthree\nfour\nfive\n"},
		{"tail 2", logOptions{tail: 2}, "four\nfive\n"},
		{"tail 3 keeps a split line whole", logOptions{tail: 3}, "three\nfour\nfive\n"},
		{"tail 0", logOptions{tail: 0}, ""},
		{"tail beyond the start", logOptions{tail: 100}, "one\ntwo\nthree\nfour\nfive\n"},
		{"since", logOptions{tail: -1, since: at("2026-11-25T10:00:03Z")}, "four\nfive\n"},
		{"limit bytes", logOptions{tail: -1, limitBytes: 6}, "one\ntw"},
		{"timestamps", logOptions{tail: 1, timestamps: true}, "2026-11-25T10:00:04.000000000Z five\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := writeLog(context.Background(), path, tc.opts, &out, nil, func() bool { return false }); err != nil {
				t.Fatal(err)
			}
			if out.String() != tc.want {
				t.Errorf("got %q, want %q", out.String(), tc.want)
			}
		})
	}
	t.Run("stderr apart", func(t *testing.T) {
		var out, errw bytes.Buffer
		if err := writeLog(context.Background(), path, logOptions{tail: -1}, &out, &errw, func() bool { return false }); err != nil {
			t.Fatal(err)
		}
		if out.String() != "one\nthree\nfour\nfive\n" || errw.String() != "two\n" {
			t.Errorf("stdout %q stderr %q", out.String(), errw.String())
		}
	})
	t.Run("missing file", func(t *testing.T) {
		var out bytes.Buffer
		if err := writeLog(context.Background(), path+".gone", logOptions{tail: -1}, &out, nil, func() bool { return false }); err != nil || out.Len() != 0 {
			t.Errorf("missing log: %v %q, want empty", err, out.String())
		}
	})
}

// TestWriteLogFollow: follow shows lines appended after the start and ends
// once the container stopped and the file is drained.
func TestWriteLogFollow(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	ctx, out, running, done := followLog(t, path, "2026-11-25T10:00:00.000000000Z stdout F first\n")
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	waitUntil(t, ctx, func() bool { return out.String() == "first\n" })
	// A line written in two pieces is shown once it is whole.
	f.WriteString("2026-11-25T10:00:01.000000000Z stdout F sec")
	f.WriteString("ond\n")
	waitUntil(t, ctx, func() bool { return out.String() == "first\nsecond\n" })
	f.WriteString("2026-11-25T10:00:02.000000000Z stdout F last\n")
	running.Store(false)
	waitFollowEnd(t, ctx, done)
	if got := out.String(); got != "first\nsecond\nlast\n" {
		t.Errorf("followed %q", got)
	}
}

// followLog writes content to the log at path and follows it, as for a
// running container, in a goroutine: it returns the deadline's context,
// the output, the container's running flag and the follow's result.
func followLog(t *testing.T, path, content string) (context.Context, *lockedBuffer, *atomic.Bool, <-chan error) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	running := &atomic.Bool{}
	running.Store(true)
	out := &lockedBuffer{}
	done := make(chan error, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	go func() { done <- writeLog(ctx, path, logOptions{tail: -1, follow: true}, out, nil, running.Load) }()
	return ctx, out, running, done
}

// waitFollowEnd waits for a follow to end without error before ctx does.
func waitFollowEnd(t *testing.T, ctx context.Context, done <-chan error) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-ctx.Done():
		t.Fatal("follow did not end after the container stopped")
	}
}

func waitUntil(t *testing.T, ctx context.Context, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatal("condition not met before the deadline")
		case <-time.After(10 * time.Millisecond):
		}
	}
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Following a log goes on across a rotation: the rest of the old file,
// then the new file at the same path.
func TestWriteLogFollowRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	ctx, out, running, done := followLog(t, path, "2026-11-25T10:00:00.000000000Z stdout F first\n")
	waitUntil(t, ctx, func() bool { return out.String() == "first\n" })

	if err := os.Rename(path, path+".20261125-100001"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("2026-11-25T10:00:02.000000000Z stdout F in the new file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The shim's last entry in the old file, just after the new one appeared.
	old, _ := os.OpenFile(path+".20261125-100001", os.O_APPEND|os.O_WRONLY, 0)
	old.WriteString("2026-11-25T10:00:01.000000000Z stdout F last in the old file\n")
	old.Close()
	waitUntil(t, ctx, func() bool { return out.String() == "first\nlast in the old file\nin the new file\n" })
	running.Store(false)
	waitFollowEnd(t, ctx, done)
}

package agent

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"kite/internal/runtime"
)

// logOptions are the options of `kubectl logs` (PodLogOptions) that the
// agent applies to one container's CRI log file.
type logOptions struct {
	follow     bool
	timestamps bool
	// tail is the number of lines to show from the end; negative: all.
	tail int64
	// since drops entries older than it (zero: keep all).
	since time.Time
	// limitBytes stops the output after this many bytes (0: no limit).
	limitBytes int64
}

// followPoll is how often a followed log is read again after reaching its
// end. The shim appends to the file; there is no notification to wait on
// without inotify, and a tenth of a second is below what a person notices.
const followPoll = 100 * time.Millisecond

// logTimeFormat is kubelet's for `kubectl logs --timestamps`: RFC 3339
// with nanoseconds, fixed width.
const logTimeFormat = "2006-01-02T15:04:05.000000000Z07:00"

// errLimit ends a copy that reached limitBytes.
var errLimit = errors.New("log byte limit reached")

// writeLog copies the CRI log at path to w as kubectl logs shows it: the
// content of each entry, a newline after each complete line, optionally
// prefixed by the entry's RFC 3339 time. Entries of stderr go to errw
// instead when it is not nil (attach keeps the streams apart). With follow
// it keeps reading as the file grows until running reports false and the
// file is drained, or ctx ends. A missing file is an empty log.
func writeLog(ctx context.Context, path string, opts logOptions, w, errw io.Writer, running func() bool) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) && !opts.follow {
		return nil
	}
	if err != nil {
		return fmt.Errorf("log %s: %w", path, err)
	}
	defer func() { f.Close() }()
	if opts.tail >= 0 {
		off, err := tailOffset(f, opts.tail)
		if err != nil {
			return fmt.Errorf("log %s: %w", path, err)
		}
		if _, err := f.Seek(off, io.SeekStart); err != nil {
			return fmt.Errorf("log %s: %w", path, err)
		}
	}
	lw := &logWriter{w: w, errw: errw, opts: opts}
	if fl, ok := w.(interface{ Flush() }); ok {
		lw.flush = fl.Flush
	}
	r := bufio.NewReaderSize(f, 64*1024)
	var pending []byte // the start of an entry whose newline is not written yet
	// rotatedAt is when following saw the log rotated (a new file at
	// path): the old file is drained for one more poll — the shim may
	// still be writing its last entry there — then the new one is read.
	var rotatedAt time.Time
	for {
		line, err := r.ReadSlice('\n')
		if err == nil || errors.Is(err, bufio.ErrBufferFull) {
			pending = append(pending, line...)
			if err != nil {
				continue
			}
			werr := lw.entry(pending)
			pending = pending[:0]
			if werr != nil {
				if errors.Is(werr, errLimit) {
					return nil
				}
				return werr
			}
			continue
		}
		if !errors.Is(err, io.EOF) {
			return fmt.Errorf("log %s: %w", path, err)
		}
		pending = append(pending, line...)
		lw.flushNow()
		if !opts.follow {
			return nil
		}
		// At the end: stop once the container is gone and nothing more
		// arrived, else wait for more.
		wasRunning := running()
		more, err := grew(f, r)
		if err != nil {
			return err
		}
		if !more && replaced(f, path) {
			switch {
			case rotatedAt.IsZero():
				rotatedAt = time.Now()
			case time.Since(rotatedAt) >= followPoll:
				nf, err := os.Open(path)
				if err != nil {
					return fmt.Errorf("log %s: %w", path, err)
				}
				f.Close()
				// Entries never straddle files: nothing pending completes.
				f, rotatedAt, pending = nf, time.Time{}, pending[:0]
				r.Reset(f)
				continue
			}
		}
		if !wasRunning && rotatedAt.IsZero() {
			if !more {
				return nil
			}
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(followPoll):
		}
	}
}

// replaced reports whether path is now another file than f (the log was
// rotated).
func replaced(f *os.File, path string) bool {
	a, err := f.Stat()
	if err != nil {
		return false
	}
	b, err := os.Stat(path)
	return err == nil && !os.SameFile(a, b)
}

// grew reports whether the file holds more than has been read so far.
func grew(f *os.File, r *bufio.Reader) (bool, error) {
	pos, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		return false, err
	}
	st, err := f.Stat()
	if err != nil {
		return false, err
	}
	return st.Size() > pos-int64(r.Buffered()), nil
}

// tailOffset is where the last n lines of the log start. A line is a run of
// P entries of one stream ended by an F entry (or by the end of the file).
func tailOffset(f *os.File, n int64) (int64, error) {
	if n == 0 {
		return f.Seek(0, io.SeekEnd)
	}
	// Offsets of the last n line starts, in a ring.
	starts := make([]int64, n)
	var count, off int64
	open := map[string]bool{} // stream → a line has started but not ended
	r := bufio.NewReaderSize(f, 64*1024)
	for {
		line, err := r.ReadSlice('\n')
		for errors.Is(err, bufio.ErrBufferFull) {
			var more []byte
			more, err = r.ReadSlice('\n')
			line = append(append([]byte{}, line...), more...)
		}
		if len(line) > 0 {
			if e, perr := runtime.ParseLogLine(line); perr == nil {
				if !open[e.Stream] {
					starts[count%n] = off
					count++
				}
				open[e.Stream] = e.Partial
			}
			off += int64(len(line))
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return 0, err
		}
	}
	if count <= n {
		return 0, nil
	}
	return starts[count%n], nil
}

// logWriter formats entries for the client.
type logWriter struct {
	w, errw io.Writer
	opts    logOptions
	written int64
	flush   func()
	dirty   bool
}

func (lw *logWriter) entry(line []byte) error {
	e, err := runtime.ParseLogLine(line)
	if err != nil {
		return nil // a torn or foreign line: skip it, as kubelet does
	}
	if !lw.opts.since.IsZero() && e.Time.Before(lw.opts.since) {
		return nil
	}
	out := make([]byte, 0, len(e.Content)+40)
	if lw.opts.timestamps {
		out = e.Time.UTC().AppendFormat(out, logTimeFormat)
		out = append(out, ' ')
	}
	out = append(out, e.Content...)
	if !e.Partial {
		out = append(out, '\n')
	}
	w := lw.w
	if lw.errw != nil && e.Stream == runtime.StreamStderr {
		w = lw.errw
	}
	if lim := lw.opts.limitBytes; lim > 0 && lw.written+int64(len(out)) > lim {
		out = out[:lim-lw.written]
		if _, err := w.Write(out); err != nil {
			return err
		}
		lw.flushNow()
		return errLimit
	}
	n, err := w.Write(out)
	lw.written += int64(n)
	lw.dirty = true
	return err
}

func (lw *logWriter) flushNow() {
	if lw.dirty && lw.flush != nil {
		lw.flush()
	}
	lw.dirty = false
}

package runtime

import (
	"bytes"
	"fmt"
	"io"
	"sync"
	"time"
)

// The CRI log format, one entry per line:
//
//	2026-11-25T20:00:00.000000000Z stdout F message
//
// F marks the end of a line of output, P a piece of a line that continues
// in the next entry of the same stream (the reader joins them). kubelet
// and `kubectl logs` readers parse the timestamp as RFC 3339 with
// nanoseconds; kite writes it fixed-width in UTC so that entries sort as
// text.
const (
	criTimeFormat = "2006-01-02T15:04:05.000000000Z07:00"
	tagFull       = 'F'
	tagPartial    = 'P'
	// Stream names used in the log.
	StreamStdout = "stdout"
	StreamStderr = "stderr"
)

// LogEntry is one parsed line of a CRI log file.
type LogEntry struct {
	Time   time.Time
	Stream string
	// Partial is true for a P entry: Content continues in the stream's
	// next entry.
	Partial bool
	// Content is the output without the line's newline.
	Content []byte
}

// ParseLogLine parses one line of a CRI log file (with or without its
// trailing newline).
func ParseLogLine(line []byte) (LogEntry, error) {
	line = bytes.TrimSuffix(line, []byte{'\n'})
	fields := bytes.SplitN(line, []byte{' '}, 4)
	if len(fields) < 3 {
		return LogEntry{}, fmt.Errorf("CRI log line %q: %w: want 'time stream tag content'", line, ErrInvalid)
	}
	t, err := time.Parse(time.RFC3339Nano, string(fields[0]))
	if err != nil {
		return LogEntry{}, fmt.Errorf("CRI log line %q: time: %w", line, err)
	}
	e := LogEntry{Time: t, Stream: string(fields[1])}
	switch string(fields[2]) {
	case string(tagFull):
	case string(tagPartial):
		e.Partial = true
	default:
		return LogEntry{}, fmt.Errorf("CRI log line %q: %w tag %q", line, ErrInvalid, fields[2])
	}
	if len(fields) == 4 {
		e.Content = fields[3]
	}
	return e, nil
}

// criLogger writes the entries of several streams to one file. Each read
// from a stream becomes the entries for its complete lines (F) plus, for
// an unfinished last line, a P entry, written with one write(2) so that
// the streams' entries never interleave mid-line.
type criLogger struct {
	mu  sync.Mutex
	w   io.Writer
	now func() time.Time
}

// bufSize bounds an entry's content: a longer line becomes several P
// entries and a final F.
const bufSize = 16 * 1024

// copyStream formats everything read from r as entries of stream until EOF.
func (l *criLogger) copyStream(stream string, r io.Reader) error {
	buf := make([]byte, bufSize)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if werr := l.write(stream, buf[:n]); werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// write formats one chunk of a stream's output.
func (l *criLogger) write(stream string, p []byte) error {
	ts := l.now().UTC().Format(criTimeFormat)
	var out bytes.Buffer
	for len(p) > 0 {
		tag := byte(tagPartial)
		line := p
		if i := bytes.IndexByte(p, '\n'); i >= 0 {
			tag, line, p = tagFull, p[:i], p[i+1:]
		} else {
			p = nil
		}
		out.WriteString(ts)
		out.WriteByte(' ')
		out.WriteString(stream)
		out.WriteByte(' ')
		out.WriteByte(tag)
		out.WriteByte(' ')
		out.Write(line)
		out.WriteByte('\n')
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	_, err := l.w.Write(out.Bytes())
	return err
}

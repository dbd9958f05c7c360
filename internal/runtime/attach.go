package runtime

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Attach
//
// Every container's shim serves a unix socket, attach.sock in the
// container's directory. An attacher connects and exchanges frames, each
// a kind byte, a big-endian uint32 length and the payload:
//
//	attacher → shim   frameStdinOpen   this attacher forwards stdin
//	                  frameStdin       bytes for the process's stdin
//	                  frameStdinClose  the attacher's stdin ended
//	                  frameResize      width, height (uint16 each)
//	shim → attacher   frameStdout      output (a TTY's output is stdout)
//	                  frameStderr      output
//
// The shim sends each attacher the output read after it connected and
// closes the connection once the container exited and its output was
// sent, so the end of the connection is the end of the attach.
const (
	frameStdinOpen  byte = 'S'
	frameStdin      byte = 'i'
	frameStdinClose byte = 'c'
	frameResize     byte = 'r'
	frameStdout     byte = 'o'
	frameStderr     byte = 'e'
)

// maxFrame bounds a frame's payload (output chunks are at most bufSize).
const maxFrame = 1 << 20

// attachBacklog is how many output chunks the shim queues for one
// attacher; a slower attacher misses output rather than stalling the
// container.
const attachBacklog = 256

// eot is ^D: with a TTY, the end of stdin is typed, since a terminal
// cannot be half closed.
const eot = 0x04

func writeFrame(w io.Writer, kind byte, p []byte) error {
	buf := make([]byte, 5+len(p))
	buf[0] = kind
	binary.BigEndian.PutUint32(buf[1:5], uint32(len(p)))
	copy(buf[5:], p)
	_, err := w.Write(buf)
	return err
}

func readFrame(r io.Reader) (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n > maxFrame {
		return 0, nil, fmt.Errorf("attach frame of %d bytes: %w", n, ErrInvalid)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		return 0, nil, err
	}
	return hdr[0], p, nil
}

// withDirPath calls fn with a short path for name in dir: through
// /proc/self/fd and a descriptor of dir, since socket addresses are
// limited to 108 bytes and dir may be deeper.
func withDirPath(dir, name string, fn func(path string) error) error {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", dir, err)
	}
	defer unix.Close(fd)
	return fn(fmt.Sprintf("/proc/self/fd/%d/%s", fd, name))
}

// Attach connects to the container's shim (see the frame protocol above).
//
// As with Exec, a goroutine blocked reading cfg.Stdin when Attach returns
// is abandoned.
func (r *Runtime) Attach(ctx context.Context, id string, cfg AttachConfig) error {
	if err := checkID("container", id); err != nil {
		return err
	}
	dir := r.containerDir(id)
	if !exists(filepath.Join(dir, fileRecord)) {
		return fmt.Errorf("attach to %s: %w", id, ErrNotFound)
	}
	var conn net.Conn
	err := withDirPath(dir, fileAttach, func(path string) error {
		var d net.Dialer
		var err error
		conn, err = d.DialContext(ctx, "unix", path)
		return err
	})
	if err != nil {
		if st, serr := r.ContainerStatus(ctx, id); serr == nil && st.State != StateRunning {
			return fmt.Errorf("attach to %s: %w: container is %s", id, ErrWrongState, st.State)
		}
		return fmt.Errorf("attach to %s: %w", id, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	var wmu sync.Mutex
	send := func(kind byte, p []byte) error {
		wmu.Lock()
		defer wmu.Unlock()
		return writeFrame(conn, kind, p)
	}
	done := make(chan struct{})
	defer close(done)
	if cfg.Stdin != nil {
		if err := send(frameStdinOpen, nil); err != nil {
			return fmt.Errorf("attach to %s: %w", id, err)
		}
		go func() {
			buf := make([]byte, 32*1024)
			for {
				n, err := cfg.Stdin.Read(buf)
				if n > 0 && send(frameStdin, buf[:n]) != nil {
					return
				}
				if err != nil {
					send(frameStdinClose, nil)
					return
				}
			}
		}()
	}
	if cfg.Resize != nil {
		go func() {
			for {
				select {
				case sz, ok := <-cfg.Resize:
					if !ok {
						return
					}
					var p [4]byte
					binary.BigEndian.PutUint16(p[0:], sz.Width)
					binary.BigEndian.PutUint16(p[2:], sz.Height)
					if send(frameResize, p[:]) != nil {
						return
					}
				case <-done:
					return
				}
			}
		}()
	}
	for {
		kind, p, err := readFrame(conn)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("attach to %s: %w", id, err)
		}
		w := cfg.Stdout
		if kind == frameStderr {
			w = cfg.Stderr
		}
		if w == nil {
			continue
		}
		if _, err := w.Write(p); err != nil {
			return fmt.Errorf("attach to %s: %w", id, err)
		}
	}
}

// attachHub is the shim's side: it accepts attachers, hands their input
// to the process and copies the process's output to each of them.
type attachHub struct {
	ln *net.UnixListener
	// stdin is the process's stdin (a pipe, or the terminal with a TTY);
	// nil when the container has none.
	stdin     io.WriteCloser
	tty       *os.File // the terminal, for window sizes
	stdinOnce bool

	inMu        sync.Mutex // orders writes to stdin
	stdinClosed bool

	mu      sync.Mutex
	conns   map[*attacher]struct{}
	closed  bool
	writers sync.WaitGroup
}

type attacher struct {
	conn net.Conn
	out  chan outFrame // closed by the hub when the attacher goes
}

type outFrame struct {
	kind byte
	p    []byte
}

// serve accepts attachers until the listener is closed.
func (h *attachHub) serve() {
	for {
		conn, err := h.ln.Accept()
		if err != nil {
			return
		}
		a := &attacher{conn: conn, out: make(chan outFrame, attachBacklog)}
		h.mu.Lock()
		if h.closed {
			h.mu.Unlock()
			conn.Close()
			return
		}
		h.conns[a] = struct{}{}
		h.writers.Add(1)
		h.mu.Unlock()
		go h.write(a)
		go h.read(a)
	}
}

// write sends an attacher its output until the hub drops it, then closes
// the connection.
func (h *attachHub) write(a *attacher) {
	defer h.writers.Done()
	failed := false
	for f := range a.out {
		if !failed && writeFrame(a.conn, f.kind, f.p) != nil {
			failed = true
		}
	}
	a.conn.Close()
}

// read handles an attacher's frames until it disconnects.
func (h *attachHub) read(a *attacher) {
	sendsStdin := false
	defer func() {
		if sendsStdin && h.stdinOnce {
			h.closeStdin()
		}
		h.drop(a)
	}()
	for {
		kind, p, err := readFrame(a.conn)
		if err != nil {
			return
		}
		switch kind {
		case frameStdinOpen:
			sendsStdin = true
		case frameStdin:
			h.writeStdin(p)
		case frameStdinClose:
			if h.stdinOnce {
				h.closeStdin()
			}
		case frameResize:
			if h.tty != nil && len(p) == 4 {
				setWinsize(h.tty, Size{Width: binary.BigEndian.Uint16(p[0:]), Height: binary.BigEndian.Uint16(p[2:])})
			}
		}
	}
}

func (h *attachHub) writeStdin(p []byte) {
	h.inMu.Lock()
	defer h.inMu.Unlock()
	if h.stdin == nil || h.stdinClosed {
		return
	}
	if _, err := h.stdin.Write(p); err != nil {
		fmt.Fprintf(os.Stderr, "stdin: %v\n", err)
	}
}

// closeStdin ends the process's stdin: closes the pipe, or types ^D on a
// terminal (closing it would hang the process up).
func (h *attachHub) closeStdin() {
	h.inMu.Lock()
	defer h.inMu.Unlock()
	if h.stdin == nil || h.stdinClosed {
		return
	}
	h.stdinClosed = true
	if h.tty != nil {
		h.tty.Write([]byte{eot})
		return
	}
	h.stdin.Close()
}

// drop forgets an attacher; its writer finishes and closes it.
func (h *attachHub) drop(a *attacher) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.conns[a]; ok {
		delete(h.conns, a)
		close(a.out)
	}
}

// broadcast queues a chunk of output for every attacher.
func (h *attachHub) broadcast(kind byte, p []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.conns) == 0 {
		return
	}
	p = append([]byte(nil), p...)
	for a := range h.conns {
		select {
		case a.out <- outFrame{kind, p}:
		default:
			fmt.Fprintln(os.Stderr, "attacher too slow: output dropped")
		}
	}
}

// close stops accepting, ends every attacher once its queued output is
// sent (waiting up to timeout), and closes stdin.
func (h *attachHub) close(timeout time.Duration) {
	h.ln.Close()
	h.mu.Lock()
	h.closed = true
	for a := range h.conns {
		delete(h.conns, a)
		close(a.out)
	}
	h.mu.Unlock()
	sent := make(chan struct{})
	go func() { h.writers.Wait(); close(sent) }()
	select {
	case <-sent:
	case <-time.After(timeout):
		fmt.Fprintln(os.Stderr, "attachers still receiving output; closing")
	}
	h.inMu.Lock()
	if h.stdin != nil && !h.stdinClosed && h.tty == nil {
		h.stdin.Close()
	}
	h.stdinClosed = true
	h.inMu.Unlock()
}

// copyOutput copies a stream of the process's output to the log and to
// the attachers until EOF (or EIO: a terminal whose processes all exited).
func copyOutput(logger *criLogger, hub *attachHub, stream string, r io.Reader) error {
	kind := frameStdout
	if stream == StreamStderr {
		kind = frameStderr
	}
	buf := make([]byte, bufSize)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if werr := logger.write(stream, buf[:n]); werr != nil {
				return werr
			}
			hub.broadcast(kind, buf[:n])
		}
		if err == io.EOF || errors.Is(err, unix.EIO) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

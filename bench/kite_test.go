package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

const (
	// readyPoll is how often start-up polls /readyz: the resolution of the
	// start-up figures.
	readyPoll = 2 * time.Millisecond
	// startTimeout bounds one start; beyond it the server is broken, not slow.
	startTimeout = 60 * time.Second
	stopTimeout  = 20 * time.Second
	// startMarker begins each start's part of the server's log file.
	startMarker = "==== kite server start"
)

// kiteBinary is the binary under test: $KITE_BIN, or ../bin/kite as
// `make build` leaves it, copied into the benchmark's temp dir. The copy
// matters: a rebuild during the run may rewrite bin/kite in place, and a
// running server whose binary changes under it crashes.
func kiteBinary(b *testing.B) string {
	b.Helper()
	abs := kiteSource()
	if st, err := os.Stat(abs); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		b.Fatalf("no kite binary at %s (run `make build`, or set KITE_BIN to one): %v", abs, err)
	}
	cp := filepath.Join(b.TempDir(), "kite")
	if err := copyFile(cp, abs); err != nil {
		b.Fatalf("copy the kite binary: %v", err)
	}
	return cp
}

// kiteSource is the absolute path of $KITE_BIN, or of ../bin/kite.
func kiteSource() string {
	p := os.Getenv("KITE_BIN")
	if p == "" {
		p = filepath.Join("..", "bin", "kite")
	}
	if abs, err := filepath.Abs(p); err == nil {
		return abs
	}
	return p
}

func copyFile(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// server is one `kite server` process at a fixed state dir and address;
// it can be stopped and started again (a warm restart).
type server struct {
	bin, dir, addr string
	logPath        string
	cmd            *exec.Cmd
	exited         chan struct{}
	waitErr        error
	started        time.Time
	// pkiDone is when the admin kubeconfig (written after the PKI, before
	// etcd starts) was first readable in the last start.
	pkiDone time.Duration
}

// newServer prepares a server with state in dir (fresh or not) at a free
// loopback port. Cleanup kills it if a benchmark ends without stopping it.
func newServer(b *testing.B, bin, dir string) *server {
	b.Helper()
	s := &server{bin: bin, dir: dir, addr: freeAddr(b), logPath: filepath.Join(b.TempDir(), "kite.log")}
	b.Cleanup(func() {
		if s.running() {
			_ = s.cmd.Process.Kill()
			<-s.exited
		}
	})
	return s
}

func freeAddr(b *testing.B) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func (s *server) kubeconfig() string { return filepath.Join(s.dir, "admin.kubeconfig") }

func (s *server) pid() int { return s.cmd.Process.Pid }

func (s *server) running() bool {
	if s.cmd == nil {
		return false
	}
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// start execs `kite server` and returns the time from exec to /readyz
// answering 200.
func (s *server) start(b *testing.B) time.Duration {
	b.Helper()
	if s.running() {
		b.Fatal("start: server already running")
	}
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		b.Fatal(err)
	}
	defer logf.Close()
	fmt.Fprintf(logf, "%s %s\n", startMarker, time.Now().Format(time.RFC3339Nano))
	s.cmd = exec.Command(s.bin, "server", "--state-dir", s.dir, "--listen", s.addr)
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	// The server must not outlive the benchmark, even if it is killed.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	s.exited = make(chan struct{})
	t0 := time.Now()
	s.started, s.pkiDone = t0, 0
	if err := s.cmd.Start(); err != nil {
		b.Fatalf("start %s: %v", s.bin, err)
	}
	go func() { s.waitErr = s.cmd.Wait(); close(s.exited) }()
	d, err := s.waitReady(t0)
	if err != nil {
		b.Fatalf("kite server (state %s): %v\n%s", s.dir, err, s.logTail())
	}
	return d
}

// waitReady polls /readyz until it answers 200. The CA to trust comes from
// the admin kubeconfig the server writes before it listens.
func (s *server) waitReady(t0 time.Time) (time.Duration, error) {
	var client *http.Client
	defer func() {
		if client != nil {
			client.CloseIdleConnections()
		}
	}()
	lastErr := errors.New("no attempt")
	deadline := t0.Add(startTimeout)
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			return 0, fmt.Errorf("exited before ready: %v", s.waitErr)
		default:
		}
		if client == nil {
			if client, lastErr = readyzClient(s.kubeconfig()); client != nil {
				s.pkiDone = time.Since(t0)
			}
		}
		if client != nil {
			var code int
			code, lastErr = getStatus(client, "https://"+s.addr+"/readyz")
			if lastErr == nil && code == http.StatusOK {
				return time.Since(t0), nil
			}
			if lastErr == nil {
				lastErr = fmt.Errorf("/readyz answered %d", code)
			}
		}
		time.Sleep(readyPoll)
	}
	return 0, fmt.Errorf("not ready after %v: %w", startTimeout, lastErr)
}

// readyzClient trusts the server's CA; until the kubeconfig is completely
// written it fails and the caller tries again.
func readyzClient(kubeconfig string) (*http.Client, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, err
	}
	tlsCfg, err := rest.TLSConfigFor(cfg)
	if err != nil {
		return nil, err
	}
	return &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsCfg}}, nil
}

func getStatus(c *http.Client, url string) (int, error) {
	resp, err := c.Get(url)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// stop sends SIGTERM and waits for a clean exit, returning how long it
// took. An unclean exit is a functional failure.
func (s *server) stop(b *testing.B) time.Duration {
	b.Helper()
	if !s.running() {
		b.Fatalf("stop: kite server (state %s) is not running: %v\n%s", s.dir, s.waitErr, s.logTail())
	}
	t0 := time.Now()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		b.Fatalf("signal kite server pid %d: %v", s.pid(), err)
	}
	select {
	case <-s.exited:
	case <-time.After(stopTimeout):
		_ = s.cmd.Process.Kill()
		<-s.exited
		b.Fatalf("kite server pid %d did not stop within %v of SIGTERM\n%s", s.pid(), stopTimeout, s.logTail())
	}
	d := time.Since(t0)
	if s.waitErr != nil {
		// A functional failure, but the figures around it are still worth
		// printing: fail the benchmark and go on.
		b.Errorf("kite server pid %d exited uncleanly on SIGTERM %v after start: %v\n%s",
			s.pid(), t0.Sub(s.started).Round(time.Millisecond), s.waitErr, s.logTail())
	}
	return d
}

// logTail is the output of the server's last start, for failure
// messages: its beginning (where a panic says what happened) and its end.
func (s *server) logTail() string {
	data, err := os.ReadFile(s.logPath)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	text := string(data)
	if i := strings.LastIndex(text, startMarker); i >= 0 {
		text = text[i:]
	}
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	const head, tail = 20, 10
	if len(lines) > head+tail {
		lines = append(append(lines[:head:head], fmt.Sprintf("[... %d lines ...]", len(lines)-head-tail)), lines[len(lines)-tail:]...)
	}
	return "--- kite server output (" + s.logPath + ") ---\n" + strings.Join(lines, "\n")
}

// mem is a process's memory from /proc/<pid>/status, in bytes.
type mem struct {
	RSS, Anon, File, HWM uint64
}

func readMem(pid int) (mem, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return mem{}, err
	}
	defer f.Close()
	var m mem
	fields := map[string]*uint64{"VmRSS:": &m.RSS, "RssAnon:": &m.Anon, "RssFile:": &m.File, "VmHWM:": &m.HWM}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.Fields(sc.Text())
		if len(parts) == 3 && parts[2] == "kB" {
			if p := fields[parts[0]]; p != nil {
				fmt.Sscanf(parts[1], "%d", p)
				*p *= 1024
			}
		}
	}
	if m.RSS == 0 {
		return m, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
	}
	return m, sc.Err()
}

// settledMem samples the idle server's memory until RSS stays within 1 MiB
// for two seconds, or maxWait passes. settled says which happened.
func settledMem(ctx context.Context, pid int, maxWait time.Duration) (m mem, settled bool, err error) {
	const every, window = 250 * time.Millisecond, 2 * time.Second
	var hist []uint64
	deadline := time.Now().Add(maxWait)
	for {
		if m, err = readMem(pid); err != nil {
			return m, false, err
		}
		hist = append(hist, m.RSS)
		if n := int(window / every); len(hist) > n {
			hist = hist[len(hist)-n-1:]
			lo, hi := hist[0], hist[0]
			for _, v := range hist {
				lo, hi = min(lo, v), max(hi, v)
			}
			if hi-lo < 1<<20 {
				return m, true, nil
			}
		}
		if time.Now().After(deadline) {
			return m, false, nil
		}
		select {
		case <-ctx.Done():
			return m, false, ctx.Err()
		case <-time.After(every):
		}
	}
}

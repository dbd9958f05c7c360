package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	// serverReadyTimeout bounds start to /readyz; the issue asks for ≤ 1 s,
	// the benchmark measures it, this only catches a hang.
	serverReadyTimeout = 20 * time.Second
	// serverStopTimeout bounds SIGTERM to exit.
	serverStopTimeout = 20 * time.Second
	// pollInterval is how often a readiness condition is re-checked.
	pollInterval = 50 * time.Millisecond
)

// binPath is $KITE_BIN or ../../bin/kite made absolute once, at start: a
// relative path must not depend on the working directory later.
var binPath, binPathErr = func() (string, error) {
	bin := os.Getenv("KITE_BIN")
	if bin == "" {
		bin = filepath.Join("..", "..", "bin", "kite")
	}
	return filepath.Abs(bin)
}()

// kiteBin returns the kite binary under test: $KITE_BIN, or ../../bin/kite
// relative to this package (where `make build` puts it).
func kiteBin(t *testing.T) string {
	t.Helper()
	if binPathErr != nil {
		t.Fatalf("KITE_BIN: %v", binPathErr)
	}
	if fi, err := os.Stat(binPath); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		t.Fatalf("kite binary %s is missing or not executable: run `make build` in the repository root first (or set KITE_BIN)", binPath)
	}
	return binPath
}

// server is a `kite server` process this test started.
type server struct {
	bin      string
	stateDir string
	addr     string // host:port, the same across restarts
	logPath  string
	flags    []string // extra `kite server` flags, kept across restarts

	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has been waited for
	runErr error         // cmd.Wait's result, valid after exited
}

// startServer starts kite server with a fresh state dir on a free loopback
// port, and any extra flags, and waits for /readyz. It is stopped when the
// test ends.
func startServer(t *testing.T, flags ...string) *server {
	t.Helper()
	s := &server{
		bin:      kiteBin(t),
		stateDir: t.TempDir(),
		addr:     freeAddr(t),
		logPath:  filepath.Join(t.TempDir(), "server.log"),
		flags:    flags,
	}
	t.Cleanup(func() { s.stopIfRunning(t) })
	s.start(t)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last lines of %s:\n%s", s.logPath, tail(s.logPath, 40))
		}
	})
	return s
}

// freeAddr returns a loopback address with a port nothing listens on.
// The namespace is private to this test binary, so only its own tests
// could race for the port.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// start runs the server process (again, after stop) on the same state dir
// and address, and waits until /readyz answers 200. startServer's cleanup
// stops it, whichever (sub)test restarted it.
func (s *server) start(t *testing.T) {
	t.Helper()
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	fmt.Fprintf(logf, "==== kite server start %s\n", time.Now().Format(time.RFC3339Nano))
	args := append([]string{"server", "--state-dir", s.stateDir, "--listen", s.addr}, s.flags...)
	cmd := exec.Command(s.bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// If the test binary dies, the server goes with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s server: %v", s.bin, err)
	}
	s.cmd, s.exited, s.runErr = cmd, make(chan struct{}), nil
	exited := s.exited
	go func() {
		s.runErr = cmd.Wait()
		close(exited)
	}()

	started := time.Now()
	deadline := time.NewTimer(serverReadyTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	var lastErr error
	for {
		if lastErr = s.ready(); lastErr == nil {
			t.Logf("kite server (pid %d) at %s ready after %v", cmd.Process.Pid, s.addr, time.Since(started).Round(time.Millisecond))
			return
		}
		select {
		case <-exited:
			t.Fatalf("kite server exited before it was ready (%v); log:\n%s", s.runErr, tail(s.logPath, 40))
		case <-deadline.C:
			t.Fatalf("kite server not ready after %v: %v; log:\n%s", serverReadyTimeout, lastErr, tail(s.logPath, 40))
		case <-tick.C:
		}
	}
}

// ready asks /readyz anonymously, trusting only the server's CA.
func (s *server) ready() error {
	c, err := s.client(false)
	if err != nil {
		return err
	}
	resp, err := c.Get("https://" + s.addr + "/readyz")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/readyz: %s", resp.Status)
	}
	return nil
}

// running reports whether the process is still alive.
func (s *server) running() bool {
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM and waits for a clean exit.
func (s *server) stop(t *testing.T) {
	t.Helper()
	if !s.running() {
		t.Fatalf("kite server had already exited: %v; log:\n%s", s.runErr, tail(s.logPath, 40))
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM kite server (pid %d): %v", s.cmd.Process.Pid, err)
	}
	select {
	case <-s.exited:
	case <-time.After(serverStopTimeout):
		s.cmd.Process.Kill()
		<-s.exited
		t.Fatalf("kite server (pid %d) did not exit within %v of SIGTERM; killed", s.cmd.Process.Pid, serverStopTimeout)
	}
	if s.runErr != nil {
		t.Errorf("kite server exited with %v after SIGTERM, want a clean exit; log:\n%s", s.runErr, tail(s.logPath, 20))
	}
}

func (s *server) stopIfRunning(t *testing.T) {
	if s.cmd != nil && s.running() {
		s.stop(t)
	}
}

// kubeconfig is the admin kubeconfig the server writes.
func (s *server) kubeconfig() string { return filepath.Join(s.stateDir, "admin.kubeconfig") }

// client returns an HTTPS client trusting the server's CA; with admin it
// presents the admin client certificate, without it is anonymous.
func (s *server) client(admin bool) (*http.Client, error) {
	pki := filepath.Join(s.stateDir, "pki")
	caPEM, err := os.ReadFile(filepath.Join(pki, "ca.crt"))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("pki/ca.crt holds no certificate")
	}
	cfg := &tls.Config{RootCAs: pool}
	if admin {
		cert, err := tls.LoadX509KeyPair(filepath.Join(pki, "admin.crt"), filepath.Join(pki, "admin.key"))
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return &http.Client{
		Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true},
		Timeout:   30 * time.Second,
	}, nil
}

// tail returns the last n lines of a file, for failure messages.
func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}

// waitFor polls cond until it is true or the deadline passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: not within %v: %v", what, timeout, err)
		case <-tick.C:
		}
	}
}

package kuard

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"kite/internal/testutil"
)

// serveLoopback serves s on 127.0.0.1 (inside the test's own network
// namespace) until the returned stop is called; stop returns Serve's error.
func serveLoopback(t *testing.T, s *Server) (base string, stop func() error) {
	t.Helper()
	if !testutil.InNetns() {
		t.Skip("serves only inside the private network namespace of testutil.MainInNetns")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	var stopped bool
	var serveErr error
	stop = func() error {
		if !stopped {
			stopped = true
			cancel()
			serveErr = <-done
		}
		return serveErr
	}
	t.Cleanup(func() { stop() })
	return "http://" + ln.Addr().String(), stop
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestServeLoopback(t *testing.T) {
	s := newTestServer(t, func(c *Config) { c.Interfaces = nil })
	base, stop := serveLoopback(t, s)

	code, body := get(t, base+"/env/api")
	if code != 200 || !strings.HasPrefix(body, `{"commandLine":["/kuard"],"env":{"HOME":"/","HOSTNAME":"kuard-1",`) {
		t.Errorf("/env/api: %d %s", code, body)
	}

	// The page shows the client's address as the server saw it, and the
	// real interfaces of this namespace (only lo).
	code, body = get(t, base+"/?format=json")
	var info RequestInfo
	if err := json.Unmarshal([]byte(body), &info); code != 200 || err != nil {
		t.Fatalf("/: %d %v", code, err)
	}
	if info.RemoteIP != "127.0.0.1" || info.LocalAddr != strings.TrimPrefix(base, "http://") {
		t.Errorf("remote %q local %q", info.RemoteAddr, info.LocalAddr)
	}
	if len(info.Interfaces) != 1 || info.Interfaces[0].Name != "lo" {
		t.Errorf("interfaces %+v, want lo alone", info.Interfaces)
	}

	resp, err := http.Post(base+"/ready/fail", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if code, _ := get(t, base+"/ready"); code != http.StatusServiceUnavailable {
		t.Errorf("/ready after fail: %d", code)
	}
	if err := stop(); err != nil {
		t.Errorf("Serve: %v", err)
	}
	if _, err := http.Get(base + "/ready"); err == nil {
		t.Error("still serving after stop")
	}
}

// TestBusyboxWget checks the commands README.md gives for a shell in a
// pod: plain wget reads, wget --post-data= switches.
func TestBusyboxWget(t *testing.T) {
	bb, err := exec.LookPath("busybox")
	if err != nil {
		t.Skip("busybox is not installed (apt-get install busybox-static)")
	}
	s := newTestServer(t, nil)
	base, _ := serveLoopback(t, s)
	wget := func(args ...string) (string, error) {
		out, err := exec.Command(bb, append([]string{"wget", "-q", "-O", "-"}, args...)...).CombinedOutput()
		return string(out), err
	}
	if out, err := wget("--post-data=", base+"/ready/fail"); err != nil || out != "ready: fail\n" {
		t.Fatalf("wget --post-data= /ready/fail: %q %v", out, err)
	}
	if out, err := wget(base + "/ready"); err == nil {
		t.Errorf("wget /ready succeeded while failing: %q", out)
	}
	if out, err := wget("--post-data=", base+"/ready/ok"); err != nil || out != "ready: ok\n" {
		t.Fatalf("wget --post-data= /ready/ok: %q %v", out, err)
	}
	if out, err := wget(base + "/ready"); err != nil || out != "ok\n" {
		t.Errorf("wget /ready: %q %v", out, err)
	}
	if out, err := wget(base + "/env/api"); err != nil || !strings.HasPrefix(out, `{"commandLine":["/kuard"]`) {
		t.Errorf("wget /env/api: %q %v", out, err)
	}
}

// TestGracefulShutdown: when the context ends (SIGTERM in `kite kuard`),
// a request in flight still gets its whole answer, and new connections
// are refused.
func TestGracefulShutdown(t *testing.T) {
	s := newTestServer(t, nil)
	entered, release := make(chan struct{}), make(chan struct{})
	s.mux.HandleFunc("GET /slow", func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		io.WriteString(w, "finished")
	})
	base, stop := serveLoopback(t, s)

	type result struct {
		code int
		body string
		err  error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := http.Get(base + "/slow")
		if err != nil {
			got <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		got <- result{resp.StatusCode, string(b), err}
	}()
	<-entered
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()

	// New connections are refused once the listener is closed (one that
	// raced into the accept queue as it closed is reset).
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", strings.TrimPrefix(base, "http://"), time.Second)
		if errors.Is(err, syscall.ECONNREFUSED) {
			break
		}
		if err != nil && !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("dial after shutdown: %v, want connection refused", err)
		}
		if conn != nil {
			conn.Close()
		}
		if time.Now().After(deadline) {
			t.Fatal("still accepting connections 10s after shutdown began")
		}
		time.Sleep(5 * time.Millisecond)
	}
	select {
	case err := <-stopped:
		t.Fatalf("Serve returned (%v) with a request in flight", err)
	default:
	}
	close(release)
	r := <-got
	if r.err != nil || r.code != 200 || r.body != "finished" {
		t.Errorf("in-flight request: %d %q %v", r.code, r.body, r.err)
	}
	if err := <-stopped; err != nil {
		t.Errorf("Serve: %v", err)
	}
}

// TestShutdownTimeout: a request that outlives the timeout is cut off and
// Serve says so.
func TestShutdownTimeout(t *testing.T) {
	s := newTestServer(t, func(c *Config) { c.ShutdownTimeout = 50 * time.Millisecond })
	entered := make(chan struct{})
	s.mux.HandleFunc("GET /hang", func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-r.Context().Done()
	})
	base, stop := serveLoopback(t, s)
	go http.Get(base + "/hang")
	<-entered
	if err := stop(); err == nil || !strings.Contains(err.Error(), "still running") {
		t.Errorf("Serve: %v, want a shutdown timeout error", err)
	}
}

func TestRunListenError(t *testing.T) {
	s := newTestServer(t, func(c *Config) { c.Listen = "127.0.0.1:-1" })
	if err := s.Run(context.Background()); err == nil {
		t.Error("Run with a bad address returned nil")
	}
}

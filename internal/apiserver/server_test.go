package apiserver

import (
	"context"
	"net"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"kite/internal/testutil"
)

// Test conventions: every test here runs inside a private network namespace
// (TestMain), serves on 127.0.0.1 with a random port, and keeps its state
// (PKI, embedded etcd) in a t.TempDir().
func TestMain(m *testing.M) { testutil.MainInNetns(m) }

// testServer is a running server and admin clients for it.
type testServer struct {
	srv    *Server
	cfg    *rest.Config
	client kubernetes.Interface
	dir    string
	addr   string
	stop   func()
}

func startServer(t *testing.T) *testServer {
	t.Helper()
	return startServerAt(t, t.TempDir(), "127.0.0.1:0")
}

// startServerAt starts a server with state in dir, listening on addr.
func startServerAt(t *testing.T, dir, addr string) *testServer {
	t.Helper()
	return startServerWith(t, dir, addr, nil)
}

// startServerWith starts a server on an external etcd when endpoints are
// given.
func startServerWith(t *testing.T, dir, addr string, etcd []string) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s, err := New(ctx, Config{StateDir: dir, Listen: ln.Addr().String(), CompactInterval: time.Hour, EtcdEndpoints: etcd})
	if err != nil {
		cancel()
		ln.Close()
		t.Fatal(err)
	}
	s.bookmarkInterval = time.Second
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("server did not stop within 30s")
		}
	}
	t.Cleanup(stop)
	cfg := clientConfig(t, dir)
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{srv: s, cfg: cfg, client: client, dir: dir, addr: ln.Addr().String(), stop: stop}
	waitFor(t, 30*time.Second, "server ready", func() bool {
		_, err := client.Discovery().ServerVersion()
		return err == nil
	})
	return ts
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// clientConfig is the admin client configuration of the server with state
// in dir.
func clientConfig(t *testing.T, dir string) *rest.Config {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", filepath.Join(dir, "admin.kubeconfig"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.QPS, cfg.Burst = 1000, 1000
	return cfg
}

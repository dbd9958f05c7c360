// Package apitest runs a real kite API server in-process for tests of the
// components that talk to it (controllers, scheduler, agents): embedded
// etcd in a temp dir, TLS on 127.0.0.1. Use it from a package whose
// TestMain is testutil.MainInNetns, so the listener lives in a private
// network namespace.
package apitest

import (
	"context"
	"net"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"kite/internal/apiserver"
	"kite/internal/testutil"
)

// Server is a running API server and an admin client for it.
type Server struct {
	Config   *rest.Config
	Client   kubernetes.Interface
	StateDir string
	Addr     string
	stop     func()
}

// Options adjust Start.
type Options struct {
	ServiceCIDR, ClusterCIDR string
	EtcdEndpoints            []string
	// DefaultTolerationSeconds: see apiserver.Config.
	DefaultTolerationSeconds int64
}

// Start starts a server that stops when the test ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	if !testutil.InNetns() {
		t.Fatal("apitest needs a private network namespace: call testutil.MainInNetns from TestMain")
	}
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s, err := apiserver.New(ctx, apiserver.Config{StateDir: dir, Listen: ln.Addr().String(),
		ServiceCIDR: opts.ServiceCIDR, ClusterCIDR: opts.ClusterCIDR, EtcdEndpoints: opts.EtcdEndpoints,
		DefaultTolerationSeconds: opts.DefaultTolerationSeconds})
	if err != nil {
		cancel()
		ln.Close()
		t.Fatal(err)
	}
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
			t.Error("API server did not stop within 30s")
		}
	}
	t.Cleanup(stop)
	cfg, err := clientcmd.BuildConfigFromFlags("", filepath.Join(dir, "admin.kubeconfig"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.QPS, cfg.Burst = 1000, 1000
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := client.Discovery().ServerVersion(); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("API server not ready within 30s: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return &Server{Config: cfg, Client: client, StateDir: dir, Addr: ln.Addr().String(), stop: stop}
}

// Stop stops the server before the test ends.
func (s *Server) Stop() { s.stop() }

// WaitFor polls cond every 20 ms until it holds, failing the test after d.
func WaitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

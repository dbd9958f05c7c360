// Package kuard is kite's kuard-compatible demo app, run as `kite kuard`
// or as /kuard in the built-in demo image (argv[0] "kuard").
//
// It answers the requests the seed walkthrough makes of
// gcr.io/kuar-demo/kuard-amd64 (S6: /env/api; S13: health checks that can be
// made to fail) and shows what a pod sees of the network: its hostname, its
// interfaces, the address its client connected from (no NAT between pods)
// and what its DNS resolver answers. Upstream kuard is the model for the
// behaviour only; nothing of its code or assets is used.
//
// Endpoints (README.md has the full contract):
//
//	GET  /                      request page (HTML; JSON with ?format=json)
//	GET  /env/api               {"commandLine":[...],"env":{...}}
//	GET  /healthy, /ready       200 "ok", or 503 "fail" once switched
//	POST /healthy/fail|ok       switch liveness
//	POST /ready/fail|ok         switch readiness
//	GET  /dns/api?name=&type=   a lookup through the pod's resolver
//
// The switches only answer POST: a GET must never change state (browsers
// prefetch, probes retry). From busybox inside a pod:
//
//	wget -q -O - --post-data= http://127.0.0.1:8080/ready/fail
package kuard

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"k8s.io/klog/v2"
)

// Defaults.
const (
	DefaultListen          = ":8080"
	DefaultShutdownTimeout = 10 * time.Second
	DefaultResolvConf      = "/etc/resolv.conf"
	// dnsTimeout bounds one /dns/api lookup.
	dnsTimeout = 5 * time.Second
)

// Config configures the demo app. The zero value serves on :8080 and
// reports the process's own command line, environment and hostname.
type Config struct {
	// Listen is the TCP address Run listens on; default ":8080".
	Listen string
	// Args is reported as commandLine by /env/api; nil means os.Args
	// (argv[0] as invoked, e.g. "/kuard").
	Args []string
	// Environ is reported as env by /env/api ("K=V" entries, later
	// entries win); nil means os.Environ() at New.
	Environ []string
	// Hostname is shown by the request page; empty means os.Hostname().
	Hostname string
	// Resolver answers /dns/api; nil means Go's own resolver reading
	// /etc/resolv.conf (search list and ndots included), the way a pod's
	// programs resolve names.
	Resolver *net.Resolver
	// ResolvConf is shown with each /dns/api answer; default
	// /etc/resolv.conf. A file that cannot be read is left out.
	ResolvConf string
	// Interfaces lists the addresses the request page shows; nil means the
	// host's (net.Interfaces).
	Interfaces func() ([]Interface, error)
	// ShutdownTimeout bounds how long Run waits for requests in flight
	// once its context ends; default 10s. Requests still running then are
	// cut off and Run returns an error.
	ShutdownTimeout time.Duration
}

// Default fills the zero fields with their defaults.
func (c *Config) Default() {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.Args == nil {
		c.Args = os.Args
	}
	if c.Environ == nil {
		c.Environ = os.Environ()
	}
	if c.Hostname == "" {
		c.Hostname, _ = os.Hostname()
	}
	if c.Resolver == nil {
		c.Resolver = &net.Resolver{PreferGo: true}
	}
	if c.ResolvConf == "" {
		c.ResolvConf = DefaultResolvConf
	}
	if c.Interfaces == nil {
		c.Interfaces = HostInterfaces
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
}

// Validate reports a config New cannot run with.
func (c *Config) Validate() error {
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("kuard: listen address %q: %w", c.Listen, err)
	}
	if c.ShutdownTimeout < 0 {
		return fmt.Errorf("kuard: negative shutdown timeout %v", c.ShutdownTimeout)
	}
	return nil
}

// Server is the demo app. Its probe switches start healthy and ready.
type Server struct {
	cfg Config
	mux *http.ServeMux
	// failing* are the switches: true means the probe answers 503.
	failingHealthy atomic.Bool
	failingReady   atomic.Bool
}

// New returns the app for cfg (defaults filled in).
func New(cfg Config) (*Server, error) {
	cfg.Default()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, mux: http.NewServeMux()}
	s.routes()
	return s, nil
}

// Handler is the app's HTTP handler, for tests and for embedding.
func (s *Server) Handler() http.Handler { return s.mux }

// Run listens on cfg.Listen and serves until ctx ends; see Serve.
func (s *Server) Run(ctx context.Context) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("kuard: %w", err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves on ln until ctx ends (SIGTERM, in `kite kuard`), then
// stops accepting connections and waits up to cfg.ShutdownTimeout for the
// requests in flight to finish. It returns nil after a clean shutdown.
// Serve closes ln.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	log := klog.FromContext(ctx).WithName("kuard")
	srv := &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info("serving", "address", ln.Addr().String())

	select {
	case err := <-served:
		return fmt.Errorf("kuard: serve %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	log.Info("shutting down: finishing requests in flight", "timeout", s.cfg.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	if err != nil {
		srv.Close()
		return fmt.Errorf("kuard: shutdown: requests still running after %v: %w", s.cfg.ShutdownTimeout, err)
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("kuard: serve %s: %w", ln.Addr(), err)
	}
	return nil
}

func (s *Server) routes() {
	s.mux.HandleFunc("GET /{$}", s.handleRequestPage)
	s.mux.HandleFunc("GET /env/api", s.handleEnv)
	s.mux.HandleFunc("GET /healthy", probe(&s.failingHealthy))
	s.mux.HandleFunc("GET /ready", probe(&s.failingReady))
	for _, p := range []struct {
		name string
		sw   *atomic.Bool
	}{{"healthy", &s.failingHealthy}, {"ready", &s.failingReady}} {
		for _, state := range []string{"ok", "fail"} {
			path := "/" + p.name + "/" + state
			s.mux.HandleFunc("POST "+path, s.handleSwitch(p.name, p.sw, state == "fail"))
			s.mux.HandleFunc(path, postOnly(path))
		}
	}
	s.mux.HandleFunc("GET /dns/api", s.handleDNS)
}

// Env is the body of /env/api, in the field order upstream kuard uses
// (S6).
type Env struct {
	CommandLine []string          `json:"commandLine"`
	Env         map[string]string `json:"env"`
}

// EnvOf builds the /env/api body from a command line and "K=V" entries.
// Entries without "=" are skipped; a later entry for a key wins.
func EnvOf(args, environ []string) Env {
	e := Env{CommandLine: args, Env: make(map[string]string, len(environ))}
	if e.CommandLine == nil {
		e.CommandLine = []string{}
	}
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			continue
		}
		e.Env[k] = v
	}
	return e
}

// handleEnv answers compact JSON, byte for byte the shape S6 shows
// ({"commandLine":["/kuard"],"env":{"HOME":"/",...}}, keys sorted).
func (s *Server) handleEnv(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, EnvOf(s.cfg.Args, s.cfg.Environ), false)
}

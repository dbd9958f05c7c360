// Package apiserver is kite's Kubernetes API server: the REST API of the
// served k8s.io/api types over etcd, with discovery, OpenAPI, Tables, watch,
// patch and graceful deletion as upstream serves them, written without
// upstream's apiserver framework. One generic handler serves every resource;
// each resource brings its strategy (see registry.go, and one file per kind).
package apiserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/klog/v2"

	"kite/internal/apiserver/openapi"
	"kite/internal/pki"
	"kite/internal/storage"
)

// Config configures a server.
type Config struct {
	// StateDir holds the CA, certificates, tokens, the service account
	// token signing key, the admin kubeconfig and the embedded etcd's
	// data.
	StateDir string
	// Listen is the HTTPS address, host:port.
	Listen string
	// AdvertiseAddress is the IP clients and other nodes reach this server
	// at (discovery, certificates, the kubernetes Service's endpoints).
	AdvertiseAddress string
	// EtcdEndpoints selects an external etcd; empty runs an embedded one.
	EtcdEndpoints []string
	// EtcdListenClient, with embedded etcd, also serves etcd's client API
	// there (e.g. http://10.0.0.1:2379) so other kite servers can share it.
	EtcdListenClient string
	ServiceCIDR      string
	ClusterCIDR      string
	// CompactInterval is how often old etcd revisions are discarded.
	CompactInterval time.Duration
	// DefaultTolerationSeconds is how long a pod stays on a not-ready or
	// unreachable node when it does not say (upstream's
	// --default-{not-ready,unreachable}-toleration-seconds).
	DefaultTolerationSeconds int64
}

// Defaults fills unset fields.
func (c *Config) Defaults() {
	if c.Listen == "" {
		c.Listen = "0.0.0.0:6443"
	}
	if c.ServiceCIDR == "" {
		c.ServiceCIDR = "10.96.0.0/16"
	}
	if c.ClusterCIDR == "" {
		c.ClusterCIDR = "10.244.0.0/16"
	}
	if c.CompactInterval == 0 {
		c.CompactInterval = 5 * time.Minute
	}
	if c.DefaultTolerationSeconds == 0 {
		c.DefaultTolerationSeconds = 300
	}
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.StateDir == "" {
		return errors.New("--state-dir is required")
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("--listen %q: want host:port: %w", c.Listen, err)
	}
	if c.AdvertiseAddress != "" && net.ParseIP(c.AdvertiseAddress) == nil {
		return fmt.Errorf("--advertise-address %q is not an IP address", c.AdvertiseAddress)
	}
	for flag, cidr := range map[string]string{"--service-cidr": c.ServiceCIDR, "--cluster-cidr": c.ClusterCIDR} {
		if _, _, err := net.ParseCIDR(cidr); err != nil {
			return fmt.Errorf("%s %q: %w", flag, cidr, err)
		}
	}
	return nil
}

// Server is a running API server.
type Server struct {
	cfg     Config
	log     logr.Logger
	scheme  *runtime.Scheme
	codecs  serializer.CodecFactory
	reg     *registry
	store   *storage.Store
	etcd    *storage.Embedded
	openapi http.Handler
	tls     *tls.Config
	tokens  map[string]*user
	// signer signs and checks service account tokens.
	signer *tokenSigner
	// agentTransport reaches node agents (logs, exec, port-forward).
	agentTransport *http.Transport
	ranges         *serviceRanges
	fieldManagers  fieldManagers
	// bookmarkInterval is the longest a watch with bookmarks goes
	// without one.
	bookmarkInterval time.Duration
	// AdminKubeconfig is the path of the admin kubeconfig written at start.
	AdminKubeconfig string
}

// New prepares a server: PKI, storage (starting embedded etcd), the
// registry. Run serves it.
func New(ctx context.Context, cfg Config) (*Server, error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: klog.FromContext(ctx).WithName("apiserver"), scheme: newScheme(), bookmarkInterval: time.Minute}
	s.codecs = newCodecs(s.scheme)
	s.fieldManagers.s = s
	// Parsing the OpenAPI schemas for managedFields takes a moment; do it
	// while etcd starts.
	go func() { _, _ = s.fieldManagers.typeConverter() }()
	s.reg = newRegistry(servedResources(cfg))
	var err error
	if s.ranges, err = newServiceRanges(cfg.ServiceCIDR); err != nil {
		return nil, err
	}
	if err := s.setupPKI(); err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	if err := openapi.Install(mux, s.openapiResources()); err != nil {
		return nil, fmt.Errorf("openapi: %w", err)
	}
	s.openapi = mux

	if len(cfg.EtcdEndpoints) > 0 {
		c, err := storage.Dial(cfg.EtcdEndpoints)
		if err != nil {
			return nil, err
		}
		s.store = storage.New(c, eventsCodec{storage.NewCodec(s.scheme)})
	} else {
		var e *storage.Embedded
		e, err = storage.StartEmbedded(ctx, storage.EmbeddedConfig{Dir: filepath.Join(cfg.StateDir, "etcd"), ClientURL: cfg.EtcdListenClient})
		if err != nil {
			return nil, err
		}
		s.etcd = e
		s.store = storage.New(e.Client(), eventsCodec{storage.NewCodec(s.scheme)})
	}
	if err := s.bootstrap(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// pkiDir is where the server keeps its CA, certificates and keys.
func (c *Config) pkiDir() string { return filepath.Join(c.StateDir, "pki") }

// CAFile is the cluster CA certificate's path (PEM): what the root CA
// publisher hands to pods.
func (c *Config) CAFile() string { return filepath.Join(c.pkiDir(), pki.CACertFile) }

func (s *Server) setupPKI() error {
	dir := s.cfg.pkiDir()
	ca, err := pki.EnsureCA(dir)
	if err != nil {
		return err
	}
	host, port, _ := net.SplitHostPort(s.cfg.Listen)
	hosts := []string{firstServiceIP(s.cfg.ServiceCIDR)}
	if host != "" && host != "0.0.0.0" && host != "::" {
		hosts = append(hosts, host)
	}
	if s.cfg.AdvertiseAddress != "" {
		hosts = append(hosts, s.cfg.AdvertiseAddress)
	}
	if h, err := os.Hostname(); err == nil {
		hosts = append(hosts, h)
	}
	certFile, keyFile, err := ca.EnsureServingCert(dir, "apiserver", hosts)
	if err != nil {
		return err
	}
	if s.tls, err = ca.ServerTLSConfig(certFile, keyFile); err != nil {
		return err
	}
	adminCert, adminKey, err := ca.EnsureClientCert(dir, "admin", "kubernetes-admin", []string{"system:masters"})
	if err != nil {
		return err
	}
	certPEM, err := os.ReadFile(adminCert)
	if err != nil {
		return err
	}
	keyPEM, err := os.ReadFile(adminKey)
	if err != nil {
		return err
	}
	serverHost := s.cfg.AdvertiseAddress
	if serverHost == "" {
		serverHost = host
		if serverHost == "" || serverHost == "0.0.0.0" || serverHost == "::" {
			serverHost = "127.0.0.1"
		}
	}
	s.AdminKubeconfig = filepath.Join(s.cfg.StateDir, "admin.kubeconfig")
	if err := pki.WriteKubeconfig(s.AdminKubeconfig, pki.KubeconfigOptions{
		Server: "https://" + net.JoinHostPort(serverHost, port), CAData: ca.CertPEM,
		ClientCertData: certPEM, ClientKeyData: keyPEM,
	}); err != nil {
		return err
	}
	agentCert, agentKey, err := ca.EnsureClientCert(dir, "apiserver-kubelet-client", agentClientName, nil)
	if err != nil {
		return err
	}
	if s.agentTransport, err = newAgentTransport(agentCert, agentKey); err != nil {
		return err
	}
	saKey, err := pki.EnsureSigningKey(dir)
	if err != nil {
		return err
	}
	if s.signer, err = newTokenSigner(saKey); err != nil {
		return err
	}
	token, err := pki.EnsureToken(dir, "bootstrap")
	if err != nil {
		return err
	}
	s.tokens = map[string]*user{token: {name: "system:bootstrap:" + token[:6], groups: []string{"system:bootstrappers", "system:authenticated"}}}
	return nil
}

func (s *Server) advertiseHostPort() string {
	_, port, _ := net.SplitHostPort(s.cfg.Listen)
	return net.JoinHostPort(s.cfg.AdvertiseAddress, port)
}

// firstServiceIP is the kubernetes Service's address: the first address of
// the service CIDR.
func firstServiceIP(cidr string) string {
	_, n, err := net.ParseCIDR(cidr)
	if err != nil {
		return ""
	}
	ip := make(net.IP, len(n.IP))
	copy(ip, n.IP)
	ip[len(ip)-1]++
	return ip.String()
}

// bootstrap creates what every cluster has from the start.
func (s *Server) bootstrap(ctx context.Context) error {
	nsRes := s.reg.lookup(coreV1, "namespaces")
	for _, name := range []string{metav1.NamespaceDefault, metav1.NamespaceSystem, metav1.NamespacePublic, corev1.NamespaceNodeLease} {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
		if _, err := s.createObject(ctx, nsRes, ns, writeOpts{manager: "kite-apiserver"}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create namespace %s: %w", name, err)
		}
	}
	// The kubernetes Service: the API server at the first service IP.
	svcRes := s.reg.lookup(coreV1, "services")
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: metav1.NamespaceDefault,
			Labels: map[string]string{"component": "apiserver", "provider": "kubernetes"}},
		Spec: corev1.ServiceSpec{
			ClusterIP: firstServiceIP(s.cfg.ServiceCIDR),
			Ports: []corev1.ServicePort{{Name: "https", Port: 443, Protocol: corev1.ProtocolTCP,
				TargetPort: intstr.FromInt32(int32(s.port()))}},
		},
	}
	if err := s.store.Get(ctx, svcRes.key(svc.Namespace, svc.Name), &corev1.Service{}); err == nil {
		return nil
	}
	if _, err := s.createObject(ctx, svcRes, svc, writeOpts{manager: "kite-apiserver"}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create the kubernetes Service: %w", err)
	}
	return nil
}

func (s *Server) port() int {
	_, p, _ := net.SplitHostPort(s.cfg.Listen)
	n, _ := strconv.Atoi(p)
	return n
}

// repairLoop periodically frees leaked Service IP and port reservations.
func (s *Server) repairLoop(ctx context.Context) {
	t := time.NewTicker(3 * time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := s.repairAllocations(ctx, time.Minute); err != nil && ctx.Err() == nil {
			s.log.Error(err, "repair service allocations")
		}
	}
}

func (s *Server) openapiResources() []openapi.Resource {
	var out []openapi.Resource
	for _, r := range s.reg.ordered {
		out = append(out, openapi.Resource{
			GroupVersionKind: r.gvk(), Resource: r.gvr.Resource, Namespaced: r.namespaced,
			Subresources: r.subresourceNames(), Verbs: r.verbs(),
		})
	}
	return out
}

// Run serves until ctx ends, then shuts down and stops etcd.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.cfg.Listen, err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves on ln (TLS is added here) until ctx ends.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	defer s.Close()
	srv := &http.Server{
		Handler:           s,
		TLSConfig:         s.tls,
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          nil,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	go s.compactLoop(ctx)
	go s.repairLoop(ctx)
	masters := make(chan struct{})
	go func() {
		defer close(masters)
		s.mastersLoop(ctx)
	}()
	// Withdraw from the kubernetes Service before etcd stops.
	defer func() { <-masters }()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(tls.NewListener(ln, s.tls)) }()
	s.log.Info("serving", "address", ln.Addr().String())
	var etcdErr <-chan error
	if s.etcd != nil {
		etcdErr = s.etcd.Err()
	}
	select {
	case <-ctx.Done():
	case err := <-errc:
		return err
	case err := <-etcdErr:
		return fmt.Errorf("embedded etcd failed: %w", err)
	}
	// Requests end with ctx (BaseContext), so a short graceful phase is
	// enough; HTTP/2 connections would otherwise linger a second after
	// their GOAWAY.
	shutdown, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		_ = srv.Close()
	}
	return nil
}

// Close stops the embedded etcd, if any.
func (s *Server) Close() {
	if s.etcd != nil {
		s.etcd.Close()
		s.etcd = nil
	}
}

// compactLoop discards etcd history older than one interval, as upstream's
// API server does, so watches from far back get 410 Gone and relist.
func (s *Server) compactLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.CompactInterval)
	defer t.Stop()
	var last int64
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if last > 0 {
			if err := s.store.Compact(ctx, last); err != nil && ctx.Err() == nil {
				s.log.Error(err, "compact", "revision", last)
			}
		}
		rev, err := s.store.Revision(ctx)
		if err == nil {
			last = rev
		}
	}
}

func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if _, err := s.store.Revision(ctx); err != nil {
		http.Error(w, "[-]etcd failed: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if r.URL.Query().Has("verbose") {
		fmt.Fprint(w, "[+]ping ok\n[+]etcd ok\n"+r.URL.Path[1:]+" check passed\n")
		return
	}
	fmt.Fprint(w, "ok")
}

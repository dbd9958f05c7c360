package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"

	"kite/internal/pki"
)

// APIServerClientName is the common name of the client certificate the API
// server presents to agents (kubeadm's apiserver-kubelet-client). The
// agent's server answers no one else.
const APIServerClientName = "kube-apiserver-kubelet-client"

// DefaultPort is the agent's streaming and log server port: kubelet's.
const DefaultPort = 10250

// server is the agent's HTTPS server: logs, exec, attach, port-forward and
// the pod list, at kubelet's paths, for the API server to proxy to.
//
// Clients must present a certificate of the cluster's CA with the common
// name APIServerClientName: without one the answer is 401, with another
// 403. The serving certificate is the agent's own (signed by a CA kept in
// its state dir); the API server does not verify it, as upstream's does not
// verify kubelets unless given --kubelet-certificate-authority.
type server struct {
	m       *podManager
	tls     *tls.Config
	metrics *prometheus.Registry
}

// newServer prepares the server's TLS: the agent's own serving pair in
// StateDir/pki, and the cluster CA (from the agent's kubeconfig) for
// clients.
func newServer(cfg Config, rc *rest.Config, m *podManager, metrics *prometheus.Registry) (*server, error) {
	clientCAs, err := clusterCAPool(rc)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(cfg.StateDir, "pki")
	ca, err := pki.EnsureCA(dir)
	if err != nil {
		return nil, fmt.Errorf("agent serving CA: %w", err)
	}
	certFile, keyFile, err := ca.EnsureServingCert(dir, "agent", []string{cfg.NodeIP, cfg.NodeName})
	if err != nil {
		return nil, fmt.Errorf("agent serving certificate: %w", err)
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("agent serving certificate %s: %w", certFile, err)
	}
	return &server{m: m, metrics: metrics, tls: &tls.Config{
		Certificates: []tls.Certificate{pair},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    clientCAs,
		// Upgrades (SPDY, WebSocket) need HTTP/1.1.
		NextProtos: []string{"http/1.1"},
		MinVersion: tls.VersionTLS12,
	}}, nil
}

// clusterCAPool is the CA the agent trusts the API server by, which also
// signs the API server's client certificate.
func clusterCAPool(rc *rest.Config) (*x509.CertPool, error) {
	data := rc.TLSClientConfig.CAData
	if len(data) == 0 && rc.TLSClientConfig.CAFile != "" {
		var err error
		if data, err = os.ReadFile(rc.TLSClientConfig.CAFile); err != nil {
			return nil, fmt.Errorf("cluster CA: %w", err)
		}
	}
	pool := x509.NewCertPool()
	if len(data) == 0 || !pool.AppendCertsFromPEM(data) {
		return nil, errors.New("cluster CA: the agent's kubeconfig (or --certificate-authority) names no CA certificate; the agent's server could not tell the API server's client certificate from any other")
	}
	return pool, nil
}

// run serves on addr until ctx ends.
func (s *server) run(ctx context.Context, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("agent server: %w", err)
	}
	srv := &http.Server{
		Handler:           s.handler(),
		TLSConfig:         s.tls,
		ReadHeaderTimeout: 30 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ErrorLog:          nil,
	}
	klog.FromContext(ctx).Info("serving logs, exec, attach and port-forward", "address", ln.Addr().String())
	done := make(chan error, 1)
	go func() { done <- srv.ServeTLS(ln, "", "") }()
	select {
	case err := <-done:
		return fmt.Errorf("agent server: %w", err)
	case <-ctx.Done():
		// Streams are long-lived: close them rather than wait.
		srv.Close()
		<-done
		return nil
	}
}

func (s *server) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })
	mux.HandleFunc("GET /pods", s.servePods)
	// The node's metrics (the Service proxy's sync durations, programming
	// latency, rule counts), as kubelet serves its own at /metrics.
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /containerLogs/{namespace}/{pod}/{container}", s.serveLogs)
	for _, m := range []string{"GET", "POST"} {
		mux.HandleFunc(m+" /exec/{namespace}/{pod}/{container}", s.serveExec)
		mux.HandleFunc(m+" /attach/{namespace}/{pod}/{container}", s.serveAttach)
		mux.HandleFunc(m+" /portForward/{namespace}/{pod}", s.servePortForward)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := authorize(r); err != nil {
			writeStatus(w, err)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// authorize admits the API server's client certificate only.
func authorize(r *http.Request) *apierrors.StatusError {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
		return apierrors.NewUnauthorized("Unauthorized")
	}
	if cn := r.TLS.VerifiedChains[0][0].Subject.CommonName; cn != APIServerClientName {
		return apierrors.NewForbidden(corev1.Resource("nodes"), "proxy",
			fmt.Errorf("user %q may not use the node's kite agent: only the API server (%s) may", cn, APIServerClientName))
	}
	return nil
}

// writeStatus answers with a Kubernetes Status, which the API server
// passes through to kubectl.
func writeStatus(w http.ResponseWriter, err *apierrors.StatusError) {
	st := err.Status()
	st.Kind, st.APIVersion = "Status", "v1"
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(int(st.Code))
	json.NewEncoder(w).Encode(&st)
}

// servePods lists the pods bound to this node, as kubelet's /pods does.
func (s *server) servePods(w http.ResponseWriter, r *http.Request) {
	list := &corev1.PodList{TypeMeta: metav1.TypeMeta{Kind: "PodList", APIVersion: "v1"}}
	for _, obj := range s.m.podIndexer.List() {
		list.Items = append(list.Items, *obj.(*corev1.Pod))
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(list)
}

// queryBool reads a boolean query parameter as apimachinery does.
func queryBool(r *http.Request, name string) bool {
	b, _ := strconv.ParseBool(r.URL.Query().Get(name))
	return b
}

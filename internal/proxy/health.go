package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/klog/v2"
)

// Health-check servers: for each externalTrafficPolicy Local Service with a
// healthCheckNodePort, an HTTP server on that port answers how many local
// endpoints the Service has here: 200 when some, 503 when none, so that a
// load balancer sends clients only to nodes that can serve them locally.

// healthAnswer is the JSON body, in kube-proxy's shape.
type healthAnswer struct {
	Service struct {
		Namespace string `json:"namespace"`
		Name      string `json:"name"`
	} `json:"service"`
	LocalEndpoints      int  `json:"localEndpoints"`
	ServiceProxyHealthy bool `json:"serviceProxyHealthy"`
}

type healthServer struct {
	ns, name string
	local    atomic.Int64
	srv      *http.Server
	done     chan struct{}
}

func (h *healthServer) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	var a healthAnswer
	a.Service.Namespace, a.Service.Name = h.ns, h.name
	a.LocalEndpoints = int(h.local.Load())
	a.ServiceProxyHealthy = true
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if a.LocalEndpoints == 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
	} else {
		w.WriteHeader(http.StatusOK)
	}
	json.NewEncoder(w).Encode(a)
}

// healthServers keeps one server per healthCheckNodePort.
type healthServers struct {
	addr    netip.Addr
	mu      sync.Mutex
	servers map[uint16]*healthServer
}

func newHealthServers(addr netip.Addr) *healthServers {
	return &healthServers{addr: addr, servers: map[uint16]*healthServer{}}
}

// Sync starts and stops servers to match m and updates their counts. A
// port that cannot be bound is logged and retried at the next sync.
func (h *healthServers) Sync(ctx context.Context, m *Model) {
	log := klog.FromContext(ctx)
	want := map[uint16]*ServicePort{}
	local := map[uint16]int{}
	for i := range m.Ports {
		sp := &m.Ports[i]
		if sp.HealthCheckNodePort != 0 {
			want[sp.HealthCheckNodePort] = sp
			// Several ports of one Service share the health check: a pod
			// counts once (by address), as upstream counts endpoints.
			local[sp.HealthCheckNodePort] = max(local[sp.HealthCheckNodePort], len(sp.LocalEndpoints))
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for port, s := range h.servers {
		if sp, ok := want[port]; !ok || sp.Key.Namespace != s.ns || sp.Key.Name != s.name {
			s.srv.Close()
			<-s.done
			delete(h.servers, port)
		}
	}
	for port, sp := range want {
		s := h.servers[port]
		if s == nil {
			s = &healthServer{ns: sp.Key.Namespace, name: sp.Key.Name, done: make(chan struct{})}
			host := ""
			if h.addr.IsValid() {
				host = h.addr.String()
			}
			ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(int(port))))
			if err != nil {
				log.Error(err, "health check server", "service", sp.Key.Namespace+"/"+sp.Key.Name, "port", port)
				continue
			}
			s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 5 * time.Second}
			go func() {
				defer close(s.done)
				if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
					log.Error(err, "health check server", "port", port)
				}
			}()
			h.servers[port] = s
		}
		s.local.Store(int64(local[port]))
	}
}

// Close stops every server.
func (h *healthServers) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for port, s := range h.servers {
		s.srv.Close()
		<-s.done
		delete(h.servers, port)
	}
}

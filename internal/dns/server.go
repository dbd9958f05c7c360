package dns

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"
)

const (
	componentName = "dns"
	// maxUDPSize caps the EDNS0 buffer a client may ask for: above it we
	// truncate and let it come back over TCP rather than send fragments.
	maxUDPSize = 4096
	// shutdownGrace bounds the wait for in-flight answers at shutdown.
	shutdownGrace = 2 * time.Second
	// loopProbeSuffix carries the loop probe: .invalid never resolves
	// anywhere (RFC 6761), so a real upstream answers NXDOMAIN at once,
	// and only a path leading back to a kite dns brings it to us.
	loopProbeSuffix = ".kite-dns-loop.invalid."
)

// Server is kite's cluster DNS: the zone from the Store, fed by
// informers, and every other name forwarded.
type Server struct {
	cfg    Config
	client kubernetes.Interface // nil: no informers, the store is filled by the caller
	store  *Store
	zone   *zone
	m      *metrics
	// answers is the UDP fast path's cache (fastpath.go).
	answers packedAnswers

	fwd      *forwarder
	loopID   string // this server's loop-probe nonce
	started  chan struct{}
	ready    atomic.Bool
	mu       sync.Mutex
	dnsAddr  string // the bound DNS address (Listen with port 0 resolved)
	httpAddr map[string]string
	baseCtx  context.Context
}

// New makes a Server. client may be nil for tests and benchmarks that
// fill Store() themselves; the server is then ready as soon as it listens.
func New(cfg Config, client kubernetes.Interface) (*Server, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("dns config: %w", err)
	}
	nonce := make([]byte, 8)
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("loop probe nonce: %w", err)
	}
	return &Server{
		cfg:      cfg,
		client:   client,
		store:    NewStore(),
		zone:     newZone(cfg.Zone, uint32(cfg.TTL/time.Second)),
		m:        newMetrics(),
		loopID:   hex.EncodeToString(nonce),
		started:  make(chan struct{}),
		httpAddr: map[string]string{},
	}, nil
}

// Store is the record store the server answers from.
func (s *Server) Store() *Store { return s.store }

// Started is closed once the DNS and HTTP listeners are bound.
func (s *Server) Started() <-chan struct{} { return s.started }

// Addr is the bound DNS address, UDP and TCP (valid after Started).
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dnsAddr
}

// HTTPAddr is the bound address of an HTTP listener given in the config
// (MetricsListen, HealthListen or ReadyListen), valid after Started.
func (s *Server) HTTPAddr(listen string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.httpAddr[listen]
}

// Ready reports whether the informers have synced.
func (s *Server) Ready() bool { return s.ready.Load() }

// Run binds the listeners, starts the informers and serves until ctx is
// done. It returns an error when a listener cannot be bound or fails.
func (s *Server) Run(ctx context.Context) error {
	log := klog.FromContext(ctx).WithName(componentName)
	ctx = klog.NewContext(ctx, log)
	// Forwarding outlives ctx by the lameduck period: answers go on
	// until the sockets close (each forward has its own timeout).
	s.baseCtx = context.WithoutCancel(ctx)

	ups, from, err := hostSource.upstreams(s.cfg)
	if err != nil {
		log.Error(err, "no upstream resolvers; names outside the zone will get SERVFAIL")
	} else {
		log.Info("upstream resolvers", "upstreams", ups, "from", from)
	}
	s.fwd = newForwarder(ups, s.cfg, s.m)

	udp, tcp, err := listenDNS(s.cfg.Listen)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.dnsAddr = udp.LocalAddr().String()
	s.mu.Unlock()
	servers := []*dns.Server{
		{PacketConn: udp, Handler: s, UDPSize: maxUDPSize, DecorateReader: s.decorateReader},
		{Listener: tcp, Handler: s},
	}
	httpServers, err := s.listenHTTP()
	if err != nil {
		udp.Close()
		tcp.Close()
		return err
	}
	close(s.started)
	log.Info("serving", "zone", s.zone.origin, "dns", s.Addr(), "http", s.httpAddr)

	errc := make(chan error, len(servers)+len(httpServers))
	for _, srv := range servers {
		go func() { errc <- srv.ActivateAndServe() }()
	}
	for _, h := range httpServers {
		go func() { errc <- h.srv.Serve(h.l) }()
	}
	if s.client != nil {
		if err := s.startInformers(ctx); err != nil {
			ctx, cancel := context.WithCancel(ctx)
			cancel()
			s.shutdown(ctx, servers, httpServers)
			return err
		}
	} else {
		s.ready.Store(true)
	}
	go s.probeLoops(ctx)

	select {
	case <-ctx.Done():
		if s.cfg.Lameduck > 0 {
			s.ready.Store(false)
			log.Info("stopping: lameduck, still answering", "for", s.cfg.Lameduck)
			select {
			case <-time.After(s.cfg.Lameduck):
			case err := <-errc:
				s.shutdown(ctx, servers, httpServers)
				return fmt.Errorf("dns server: %w", err)
			}
		}
		s.shutdown(ctx, servers, httpServers)
		return nil
	case err := <-errc:
		s.shutdown(ctx, servers, httpServers)
		return fmt.Errorf("dns server: %w", err)
	}
}

func (s *Server) shutdown(ctx context.Context, servers []*dns.Server, hs []httpServer) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	s.ready.Store(false)
	for _, srv := range servers {
		_ = srv.ShutdownContext(ctx)
	}
	for _, h := range hs {
		_ = h.srv.Shutdown(ctx)
	}
}

// listenDNS binds UDP and TCP on one address; with port 0 the TCP socket
// takes the port the kernel gave UDP.
func listenDNS(addr string) (net.PacketConn, net.Listener, error) {
	for range 10 {
		udp, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("listen udp %s: %w", addr, err)
		}
		tcp, err := net.Listen("tcp", udp.LocalAddr().String())
		if err == nil {
			return udp, tcp, nil
		}
		udp.Close()
		if _, port, _ := net.SplitHostPort(addr); port != "0" {
			return nil, nil, fmt.Errorf("listen tcp %s: %w", addr, err)
		}
		// the kernel's UDP port was taken for TCP: try another
	}
	return nil, nil, fmt.Errorf("listen %s: no port free for both UDP and TCP", addr)
}

type httpServer struct {
	srv *http.Server
	l   net.Listener
}

// listenHTTP binds the metrics, health and ready listeners; those given
// the same address share one server.
func (s *Server) listenHTTP() ([]httpServer, error) {
	muxes := map[string]*http.ServeMux{}
	var order []string
	add := func(addr, path string, h http.Handler) {
		if addr == "" {
			return
		}
		if muxes[addr] == nil {
			muxes[addr] = http.NewServeMux()
			order = append(order, addr)
		}
		muxes[addr].Handle(path, h)
	}
	add(s.cfg.MetricsListen, MetricsPath, s.m.handler())
	add(s.cfg.HealthListen, HealthPath, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		// Liveness: answering HTTP means the process serves; the DNS
		// listeners were bound before this one and stop Run when they fail.
		fmt.Fprintln(w, "OK")
	}))
	add(s.cfg.ReadyListen, ReadyPath, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if !s.ready.Load() {
			http.Error(w, "informers not synced", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "OK")
	}))
	var out []httpServer
	for _, addr := range order {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			for _, h := range out {
				h.l.Close()
			}
			return nil, fmt.Errorf("listen http %s: %w", addr, err)
		}
		s.mu.Lock()
		s.httpAddr[addr] = l.Addr().String()
		s.mu.Unlock()
		out = append(out, httpServer{srv: &http.Server{Handler: muxes[addr], ReadHeaderTimeout: 5 * time.Second}, l: l})
	}
	return out, nil
}

// ServeDNS answers one request: from the zone, or through the forwarder.
func (s *Server) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	start := time.Now()
	gen := s.store.Generation() // before the lookup: a change during it makes the answer stale at once
	m, source, cacheable := s.answer(r)
	// Truncate to what the client can take: 512 bytes over UDP without
	// EDNS0, its advertised buffer (capped) with it; TC tells it to retry
	// over TCP.
	size := dns.MaxMsgSize
	if _, udp := w.RemoteAddr().(*net.UDPAddr); udp {
		size = dns.MinMsgSize
		if opt := r.IsEdns0(); opt != nil {
			size = min(max(int(opt.UDPSize()), dns.MinMsgSize), maxUDPSize)
		}
	}
	m.Truncate(size)
	wire, err := m.Pack()
	if err != nil {
		// Unpackable records cannot come from the zone; say so rather
		// than leave the client waiting.
		wire, _ = new(dns.Msg).SetRcode(r, dns.RcodeServerFailure).Pack()
		cacheable = false
	}
	qtype := uint16(0)
	if len(r.Question) > 0 {
		qtype = r.Question[0].Qtype
	}
	requests := s.m.requests.WithLabelValues(typeLabel(qtype), rcodeLabel(m.Rcode), source)
	if cacheable {
		// Before the answer leaves: the client's next query may come
		// at once.
		s.remember(r, m, wire, gen, requests)
	}
	_, _ = w.Write(wire)
	requests.Inc()
	s.m.duration.WithLabelValues(source).Observe(time.Since(start).Seconds())
}

// answer builds the reply to r, and says whether it depends on nothing
// but the Store (so the fast path may keep it).
func (s *Server) answer(r *dns.Msg) (*dns.Msg, string, bool) {
	m := new(dns.Msg)
	m.SetReply(r)
	m.RecursionAvailable = true
	opt := r.IsEdns0()
	if opt != nil {
		// Our OPT: our buffer size, DO echoed (we do not sign, but a
		// validating client needs to know it was understood).
		m.SetEdns0(maxUDPSize, opt.Do())
		if opt.Version() != 0 {
			m.Rcode = dns.RcodeBadVers // sets the extended rcode in our OPT
			return m, sourceZone, false
		}
	}
	if r.Opcode != dns.OpcodeQuery {
		m.Rcode = dns.RcodeNotImplemented
		return m, sourceZone, false
	}
	if len(r.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		return m, sourceZone, false
	}
	q := r.Question[0]
	if s.isOurLoopProbe(q.Name) {
		m.Rcode = dns.RcodeNameError
		return m, sourceZone, false
	}
	res := s.zone.lookup(s.store, q)
	if res.Forward {
		s.forward(m, q, opt != nil && opt.Do())
		return m, sourceForward, false
	}
	m.Authoritative = true
	m.Rcode = res.Rcode
	m.Answer, m.Ns = res.Answer, res.Ns
	m.Extra = append(res.Extra, m.Extra...) // OPT stays last
	if res.Chase != "" {
		// An ExternalName: the CNAME, and what the upstreams say its
		// target is. If they cannot say, the CNAME alone still lets the
		// client ask for the target itself.
		up, err := s.forwardCtx(q.Name, dns.Question{Name: res.Chase, Qtype: q.Qtype, Qclass: q.Qclass}, opt != nil && opt.Do())
		if err == nil {
			m.Answer = append(m.Answer, up.Answer...)
			if up.Rcode == dns.RcodeNameError {
				m.Rcode = dns.RcodeNameError
			}
		}
	}
	return m, sourceZone, res.Chase == ""
}

// forward fills m with the upstreams' answer to q, or SERVFAIL.
func (s *Server) forward(m *dns.Msg, q dns.Question, do bool) {
	up, err := s.forwardCtx(q.Name, q, do)
	if err != nil {
		m.Rcode = dns.RcodeServerFailure
		return
	}
	m.Rcode = up.Rcode
	m.Authoritative = false
	m.RecursionAvailable = up.RecursionAvailable
	m.AuthenticatedData = up.AuthenticatedData && do
	m.Answer, m.Ns = up.Answer, up.Ns
	var extra []dns.RR
	for _, rr := range up.Extra {
		if rr.Header().Rrtype != dns.TypeOPT { // the upstream's OPT is not ours to pass on
			extra = append(extra, rr)
		}
	}
	m.Extra = append(extra, m.Extra...)
}

func (s *Server) forwardCtx(asked string, q dns.Question, do bool) (*dns.Msg, error) {
	ctx := s.baseCtx
	if ctx == nil {
		ctx = context.Background()
	}
	resp, err := s.fwd.resolve(ctx, q, do)
	if err != nil {
		klog.FromContext(ctx).V(2).Info("forward failed", "name", asked, "type", dns.Type(q.Qtype), "err", err)
	}
	return resp, err
}

// isOurLoopProbe reports a loop probe of ours coming back, and marks the
// upstream it was sent to as looping.
func (s *Server) isOurLoopProbe(name string) bool {
	rest, ok := strings.CutSuffix(strings.ToLower(name), loopProbeSuffix)
	if !ok {
		return false
	}
	id, idx, ok := strings.Cut(rest, "-")
	if !ok || id != s.loopID {
		return false // another server's probe: forward it like any name
	}
	i, err := strconv.Atoi(idx)
	if err != nil || s.fwd == nil || i < 0 || i >= len(s.fwd.looping) {
		return true
	}
	if !s.fwd.looping[i].Swap(true) {
		s.m.loops.Inc()
		klog.FromContext(s.baseCtx).Error(errors.New("forwarding loop"), "upstream leads back to this server; not forwarding to it", "upstream", s.fwd.upstreams[i])
	}
	return true
}

// probeLoops sends each upstream a question only a path back to us can
// bring to us (our nonce under .invalid). The static rule catches our own
// address; this catches loops through a Service address or another
// replica that forwards to us, which no address comparison can see.
func (s *Server) probeLoops(ctx context.Context) {
	for i, up := range s.fwd.upstreams {
		req := new(dns.Msg)
		req.SetQuestion(s.loopID+"-"+strconv.Itoa(i)+loopProbeSuffix, dns.TypeHINFO)
		actx, cancel := context.WithTimeout(ctx, s.cfg.UpstreamTimeout)
		_, _ = s.fwd.ask(actx, req, up)
		cancel()
	}
}

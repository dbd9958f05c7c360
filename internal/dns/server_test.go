package dns

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/klog/v2/ktesting"
)

// testConfig listens on loopback at free ports, with no upstreams unless
// the test gives some.
func testConfig(t *testing.T) Config {
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.MetricsListen, cfg.HealthListen, cfg.ReadyListen = "127.0.0.1:0", "", ""
	cfg.Lameduck = 0
	cfg.ResolvConf = writeFile(t, "resolv.conf", "")
	cfg.StubResolvConf = writeFile(t, "stub-resolv.conf", "")
	return cfg
}

// startServer runs a Server until the test ends and waits until it is
// ready (informers synced when there is a client).
func startServer(t *testing.T, cfg Config, client kubernetes.Interface) *Server {
	t.Helper()
	s, err := New(cfg, client)
	if err != nil {
		t.Fatal(err)
	}
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	select {
	case <-s.Started():
	case err := <-done:
		t.Fatalf("Run: %v", err)
	}
	waitFor(t, "server ready", 10*time.Second, s.Ready)
	return s
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(5 * time.Millisecond) // polling interval, not a wait for a guess
	}
}

func query(t *testing.T, net, addr, name string, qtype uint16, edns uint16) *dns.Msg {
	t.Helper()
	r, err := exchange(net, addr, name, qtype, edns)
	if err != nil {
		t.Fatalf("%s %s over %s: %v", dns.Type(qtype), name, net, err)
	}
	return r
}

func exchange(network, addr, name string, qtype uint16, edns uint16) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	if edns > 0 {
		m.SetEdns0(edns, false)
	}
	c := &dns.Client{Net: network, Timeout: 3 * time.Second}
	r, _, err := c.Exchange(m, addr)
	return r, err
}

func TestServerUDPAndTCP(t *testing.T) {
	client := fake.NewClientset(
		clusterIPService("default", "kuard", []string{"10.96.0.20"}, port("http", corev1.ProtocolTCP, 80)),
	)
	s := startServer(t, testConfig(t), client)
	for _, network := range []string{"udp", "tcp"} {
		r := query(t, network, s.Addr(), "kuard.default.svc.cluster.local.", dns.TypeA, 0)
		if got := zoneFile(r.Answer); len(got) != 1 || got[0] != "kuard.default.svc.cluster.local. 5 IN A 10.96.0.20" {
			t.Errorf("%s: answer %q", network, got)
		}
		if !r.Authoritative || r.Rcode != dns.RcodeSuccess {
			t.Errorf("%s: aa=%v rcode=%s, want authoritative NOERROR", network, r.Authoritative, dns.RcodeToString[r.Rcode])
		}
		r = query(t, network, s.Addr(), "nosuch.default.svc.cluster.local.", dns.TypeA, 0)
		if r.Rcode != dns.RcodeNameError || len(r.Ns) != 1 {
			t.Errorf("%s: NXDOMAIN expected with a SOA, got %s %q", network, dns.RcodeToString[r.Rcode], zoneFile(r.Ns))
		}
	}
}

// A change to a Service is answered within a second.
func TestServerFollowsUpdates(t *testing.T) {
	client := fake.NewClientset(externalNameService("default", "kuard", "www.example.com"))
	s := startServer(t, testConfig(t), client)
	const name = "kuard.default.svc.cluster.local."
	if r := query(t, "udp", s.Addr(), name, dns.TypeA, 0); len(r.Answer) == 0 || r.Answer[0].Header().Rrtype != dns.TypeCNAME {
		t.Fatalf("ExternalName: answer %q, want a CNAME", zoneFile(r.Answer))
	}
	svc := clusterIPService("default", "kuard", []string{"10.96.0.20"}, port("http", corev1.ProtocolTCP, 80))
	if _, err := client.CoreV1().Services("default").Update(context.Background(), svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the ClusterIP answered", time.Second, func() bool {
		r := query(t, "udp", s.Addr(), name, dns.TypeA, 0)
		return len(r.Answer) == 1 && zoneFile(r.Answer)[0] == name+" 5 IN A 10.96.0.20"
	})

	// a headless Service's endpoint turning unready leaves its answer
	if _, err := client.CoreV1().Services("default").Create(context.Background(), headlessService("default", "web"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	sl := slice("default", "web", "web-1", ep{"10.244.1.5", "", true}, ep{"10.244.1.6", "", true})
	slices := client.DiscoveryV1().EndpointSlices("default")
	if _, err := slices.Create(context.Background(), sl, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "two endpoints answered", time.Second, func() bool {
		return len(query(t, "udp", s.Addr(), "web.default.svc.cluster.local.", dns.TypeA, 0).Answer) == 2
	})
	if _, err := slices.Update(context.Background(), slice("default", "web", "web-1", ep{"10.244.1.5", "", true}, ep{"10.244.1.6", "", false}), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the unready endpoint gone", time.Second, func() bool {
		return len(query(t, "udp", s.Addr(), "web.default.svc.cluster.local.", dns.TypeA, 0).Answer) == 1
	})
	if err := client.CoreV1().Services("default").Delete(context.Background(), "kuard", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the deleted Service NXDOMAIN", time.Second, func() bool {
		return query(t, "udp", s.Addr(), name, dns.TypeA, 0).Rcode == dns.RcodeNameError
	})
}

// bigHeadless is a headless Service whose answer does not fit 512 bytes.
func bigHeadless(n int) []runtime.Object {
	var eps []ep
	for i := range n {
		eps = append(eps, ep{fmt.Sprintf("10.244.%d.%d", i/250, i%250+1), "", true})
	}
	return []runtime.Object{headlessService("default", "big"), slice("default", "big", "big-1", eps...)}
}

func TestServerTruncationAndEDNS0(t *testing.T) {
	s := startServer(t, testConfig(t), fake.NewClientset(bigHeadless(100)...))
	const name = "big.default.svc.cluster.local."

	// UDP without EDNS0: 512 bytes at most, TC set
	r := query(t, "udp", s.Addr(), name, dns.TypeA, 0)
	if !r.Truncated || len(r.Answer) >= 100 {
		t.Errorf("UDP, no EDNS0: tc=%v with %d answers, want truncated", r.Truncated, len(r.Answer))
	}
	if r.IsEdns0() != nil {
		t.Error("OPT in the reply to a query without one")
	}
	if n := wireLen(r); n > dns.MinMsgSize {
		t.Errorf("UDP reply is %d bytes, over 512", n)
	}
	// the retry over TCP has them all
	r = query(t, "tcp", s.Addr(), name, dns.TypeA, 0)
	if r.Truncated || len(r.Answer) != 100 {
		t.Errorf("TCP: tc=%v with %d answers, want 100", r.Truncated, len(r.Answer))
	}
	// EDNS0 with a 4096-byte buffer: all of them over UDP, and our OPT back
	r = query(t, "udp", s.Addr(), name, dns.TypeA, 4096)
	if r.Truncated || len(r.Answer) != 100 {
		t.Errorf("UDP, EDNS0 4096: tc=%v with %d answers, want 100", r.Truncated, len(r.Answer))
	}
	if opt := r.IsEdns0(); opt == nil || opt.UDPSize() < 1232 {
		t.Errorf("reply OPT = %v, want one advertising our buffer", opt)
	}
	// EDNS0 with 1232 bytes: truncated to fit it
	r = query(t, "udp", s.Addr(), name, dns.TypeA, 1232)
	if n := wireLen(r); !r.Truncated || n > 1232 {
		t.Errorf("UDP, EDNS0 1232: tc=%v, %d bytes", r.Truncated, n)
	}
	// the miekg client's own retry: truncated over UDP, asked again over TCP
	c := &dns.Client{Net: "udp", Timeout: 3 * time.Second}
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	r, _, err := c.Exchange(m, s.Addr())
	if err != nil || !r.Truncated {
		t.Fatalf("want a truncated UDP answer: %v", err)
	}
	c.Net = "tcp"
	if r, _, err = c.Exchange(m, s.Addr()); err != nil || len(r.Answer) != 100 {
		t.Fatalf("TCP retry: %v, %d answers", err, len(r.Answer))
	}

	// an EDNS version we do not speak
	m = new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	m.SetEdns0(1232, false)
	m.IsEdns0().SetVersion(1)
	r, _, err = (&dns.Client{Net: "udp", Timeout: 3 * time.Second}).Exchange(m, s.Addr())
	if err != nil || r.Rcode != dns.RcodeBadVers {
		t.Errorf("EDNS version 1: %v, rcode %s, want BADVERS", err, dns.RcodeToString[r.Rcode])
	}
}

// wireLen is a message's size on the wire, compressed as a server sends
// it.
func wireLen(m *dns.Msg) int {
	m.Compress = true
	return m.Len()
}

// fakeUpstream is a resolver on addr that answers every A question with
// 192.0.2.1 (TTL 60) and counts the questions.
type fakeUpstream struct {
	asked atomic.Int32
	addr  string
}

func startUpstream(t *testing.T, addr string, answer func(q dns.Question) *dns.Msg) *fakeUpstream {
	t.Helper()
	u := &fakeUpstream{}
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		u.asked.Add(1)
		m := answer(r.Question[0])
		m.SetReply(r)
		_ = w.WriteMsg(m)
	})
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatalf("fake upstream: %v", err)
	}
	u.addr = pc.LocalAddr().String()
	srv := &dns.Server{PacketConn: pc, Handler: h}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go func() { _ = srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = srv.Shutdown() })
	return u
}

func answerA(ttl uint32) func(dns.Question) *dns.Msg {
	return func(q dns.Question) *dns.Msg {
		m := new(dns.Msg)
		if q.Qtype == dns.TypeA && !strings.HasSuffix(q.Name, loopProbeSuffix) {
			rr, _ := dns.NewRR(fmt.Sprintf("%s %d IN A 192.0.2.1", q.Name, ttl))
			m.Answer = []dns.RR{rr}
		} else {
			m.Rcode = dns.RcodeNameError
		}
		return m
	}
}

func TestServerForwards(t *testing.T) {
	up := startUpstream(t, "127.0.0.2:0", answerA(60))
	cfg := testConfig(t)
	cfg.Upstreams = []string{up.addr}
	s := startServer(t, cfg, fake.NewClientset(externalNameService("default", "ext", "www.example.com")))

	for i := range 3 {
		r := query(t, "udp", s.Addr(), "example.com.", dns.TypeA, 0)
		if got := zoneFile(r.Answer); len(got) != 1 || !strings.HasSuffix(got[0], "IN A 192.0.2.1") || r.Authoritative {
			t.Fatalf("query %d: answer %q aa=%v, want the upstream's", i, got, r.Authoritative)
		}
	}
	// one question upstream (plus the loop probe); the rest from the cache
	waitFor(t, "loop probe answered", 2*time.Second, func() bool { return up.asked.Load() >= 1 })
	if n := up.asked.Load(); n != 2 {
		t.Errorf("upstream asked %d times, want 2 (loop probe and one question): the cache did not answer", n)
	}

	// an ExternalName: the CNAME and its target's address from upstream
	r := query(t, "udp", s.Addr(), "ext.default.svc.cluster.local.", dns.TypeA, 0)
	if got := zoneFile(r.Answer); len(got) != 2 || !strings.Contains(got[0], "CNAME www.example.com.") || !strings.HasSuffix(got[1], "IN A 192.0.2.1") {
		t.Errorf("ExternalName: answer %q, want CNAME then A", got)
	}

	// a reverse name the cluster does not own goes upstream too
	before := up.asked.Load()
	query(t, "udp", s.Addr(), "1.2.0.192.in-addr.arpa.", dns.TypePTR, 0)
	if up.asked.Load() != before+1 {
		t.Error("reverse name outside the cluster was not forwarded")
	}

	metrics := httpGet(t, "http://"+s.HTTPAddr(cfg.MetricsListen)+MetricsPath)
	for _, want := range []string{
		`kite_dns_requests_total{rcode="NOERROR",source="forward",type="A"}`,
		`kite_dns_cache_hits_total 2`,
		`kite_dns_request_duration_seconds_bucket`,
		`kite_dns_forward_errors_total 0`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// With no upstream answering, the client hears SERVFAIL within 2 s.
func TestServerNoUpstreamServfail(t *testing.T) {
	// a socket that reads and never replies, counting the questions
	silent, err := net.ListenPacket("udp", "127.0.0.3:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { silent.Close() })
	var asked atomic.Int32
	go func() {
		buf := make([]byte, 4096)
		for {
			n, _, err := silent.ReadFrom(buf)
			if err != nil {
				return
			}
			var q dns.Msg
			if q.Unpack(buf[:n]) == nil && len(q.Question) == 1 && q.Question[0].Name == "example.com." {
				asked.Add(1)
			}
		}
	}()
	cfg := testConfig(t)
	cfg.Upstreams = []string{silent.LocalAddr().String(), "127.0.0.4:53"} // silent, and nobody (ICMP port unreachable)
	s := startServer(t, cfg, nil)

	m := new(dns.Msg)
	m.SetQuestion("example.com.", dns.TypeA)
	c := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
	r, _, err := c.Exchange(m, s.Addr())
	if err != nil {
		t.Fatalf("no answer within 2 s: %v", err)
	}
	if r.Rcode != dns.RcodeServerFailure {
		t.Errorf("rcode %s, want SERVFAIL", dns.RcodeToString[r.Rcode])
	}
	// The client's retry is answered from the failure just seen, without
	// asking the silent upstream again.
	before := asked.Load()
	if r, _, err := c.Exchange(m, s.Addr()); err != nil || r.Rcode != dns.RcodeServerFailure {
		t.Errorf("retry: %v %v, want SERVFAIL", err, r)
	}
	if after := asked.Load(); after != before || before == 0 {
		t.Errorf("the silent upstream was asked %d times for the first question and %d more for the retry, want ≥ 1 and 0", before, after-before)
	}
	// no upstream at all: SERVFAIL too, and cluster names still answered
	cfg = testConfig(t)
	s = startServer(t, cfg, nil)
	apply(t, s.Store(), clusterIPService("default", "kuard", []string{"10.96.0.20"}))
	if r := query(t, "udp", s.Addr(), "example.com.", dns.TypeA, 0); r.Rcode != dns.RcodeServerFailure {
		t.Errorf("no upstream: rcode %s, want SERVFAIL", dns.RcodeToString[r.Rcode])
	}
	if r := query(t, "udp", s.Addr(), "kuard.default.svc.cluster.local.", dns.TypeA, 0); len(r.Answer) != 1 {
		t.Errorf("no upstream: cluster name answer %q", zoneFile(r.Answer))
	}
}

// resolv.conf naming only the local stub: the stub's upstream list is
// used instead.
func TestServerStubResolvConf(t *testing.T) {
	up := startUpstream(t, "127.0.0.5:53", answerA(60))
	cfg := testConfig(t)
	cfg.ResolvConf = writeFile(t, "resolv.conf", "nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch .\n")
	cfg.StubResolvConf = writeFile(t, "stub-resolv.conf", "nameserver "+strings.TrimSuffix(up.addr, ":53")+"\n")
	s := startServer(t, cfg, nil)
	r := query(t, "udp", s.Addr(), "example.com.", dns.TypeA, 0)
	if got := zoneFile(r.Answer); len(got) != 1 {
		t.Errorf("answer %q, want the stub's upstream's", got)
	}
}

// An upstream that leads back to us (here: a resolver forwarding to us,
// as a Service address would) is found by the loop probe and dropped.
func TestServerLoopProbe(t *testing.T) {
	cfg := testConfig(t)
	var target atomic.Value // our address, once known
	relay := startUpstream(t, "127.0.0.6:0", func(q dns.Question) *dns.Msg {
		m := new(dns.Msg)
		m.SetQuestion(q.Name, q.Qtype)
		r, _, err := (&dns.Client{Timeout: time.Second}).Exchange(m, target.Load().(string))
		if err != nil {
			r = new(dns.Msg)
			r.Rcode = dns.RcodeServerFailure
		}
		return r
	})
	// the relay must know where to send before the probe goes out
	l, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Listen = l.LocalAddr().String()
	l.Close()
	target.Store(cfg.Listen)
	cfg.Upstreams = []string{relay.addr}
	s := startServer(t, cfg, nil)

	waitFor(t, "loop detected", 3*time.Second, func() bool { return s.fwd.looping[0].Load() })
	r := query(t, "udp", s.Addr(), "example.com.", dns.TypeA, 0)
	if r.Rcode != dns.RcodeServerFailure {
		t.Errorf("rcode %s, want SERVFAIL with the only upstream looping", dns.RcodeToString[r.Rcode])
	}
	if asked := relay.asked.Load(); asked != 1 {
		t.Errorf("relay asked %d times after the loop was found, want only the probe", asked)
	}
}

func TestServerHealthReady(t *testing.T) {
	cfg := testConfig(t)
	cfg.HealthListen, cfg.ReadyListen = "127.0.0.1:0", "127.0.0.1:0"
	s := startServer(t, cfg, fake.NewClientset())
	if got := httpGet(t, "http://"+s.HTTPAddr(cfg.HealthListen)+HealthPath); got != "OK\n" {
		t.Errorf("/health = %q", got)
	}
	if got := httpGet(t, "http://"+s.HTTPAddr(cfg.ReadyListen)+ReadyPath); got != "OK\n" {
		t.Errorf("/ready = %q", got)
	}
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
	}
	return string(b)
}

// Stopping: /ready fails at once, DNS goes on answering for the lameduck
// period, then Run returns.
func TestServerLameduck(t *testing.T) {
	cfg := testConfig(t)
	cfg.ReadyListen = "127.0.0.1:0"
	cfg.Lameduck = 3 * time.Second
	s, err := New(cfg, fake.NewClientset(clusterIPService("default", "kuard", []string{"10.96.0.20"})))
	if err != nil {
		t.Fatal(err)
	}
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	<-s.Started()
	waitFor(t, "ready", 10*time.Second, s.Ready)
	readyURL := "http://" + s.HTTPAddr(cfg.ReadyListen) + ReadyPath
	cancel()
	waitFor(t, "/ready failing", time.Second, func() bool {
		resp, err := http.Get(readyURL)
		if err != nil {
			t.Fatalf("/ready during lameduck: %v", err)
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusServiceUnavailable
	})
	if r := query(t, "udp", s.Addr(), "kuard.default.svc.cluster.local.", dns.TypeA, 0); len(r.Answer) != 1 {
		t.Errorf("during lameduck: answer %q", zoneFile(r.Answer))
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(cfg.Lameduck + 5*time.Second):
		t.Fatal("Run did not return after the lameduck period")
	}
}

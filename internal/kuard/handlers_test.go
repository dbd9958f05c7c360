package kuard

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"
)

// newTestServer is a Server whose every input is fixed by the test.
func newTestServer(t *testing.T, mod func(*Config)) *Server {
	t.Helper()
	cfg := Config{
		Args:     []string{"/kuard"},
		Environ:  []string{"HOSTNAME=kuard-1", "HOME=/", "KUBERNETES_PORT=tcp://10.96.0.1:443"},
		Hostname: "kuard-1",
		Interfaces: func() ([]Interface, error) {
			return []Interface{{Name: "lo", Addrs: []string{"127.0.0.1/8"}}, {Name: "eth0", Addrs: []string{"10.244.1.5/24"}}}, nil
		},
		ResolvConf: filepath.Join(t.TempDir(), "absent"),
	}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// do runs one request against the handler.
func do(t *testing.T, s *Server, method, target string, hdr ...string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, r)
	return w
}

func TestEnvAPIShape(t *testing.T) {
	s := newTestServer(t, func(c *Config) {
		c.Environ = []string{"PATH=/usr/bin:/bin", "HOSTNAME=kuard-5f7b9c-x2x7k", "HOME=/",
			"KUBERNETES_SERVICE_HOST=10.96.0.1", "KUBERNETES_PORT=tcp://10.96.0.1:443", "NOEQUALS", "A=b=c", "HOME=/override"}
	})
	w := do(t, s, "GET", "/env/api")
	if w.Code != http.StatusOK {
		t.Fatalf("status %d", w.Code)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	// S6's shape exactly: compact, commandLine first, env keys sorted.
	want := `{"commandLine":["/kuard"],"env":{"A":"b=c","HOME":"/override","HOSTNAME":"kuard-5f7b9c-x2x7k",` +
		`"KUBERNETES_PORT":"tcp://10.96.0.1:443","KUBERNETES_SERVICE_HOST":"10.96.0.1","PATH":"/usr/bin:/bin"}}` + "\n"
	if got := w.Body.String(); got != want {
		t.Errorf("body\n got %s\nwant %s", got, want)
	}
}

func TestEnvAPIDefaultsToProcess(t *testing.T) {
	t.Setenv("KUARD_TEST_VAR", "x y")
	s, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	var env Env
	if err := json.Unmarshal(do(t, s, "GET", "/env/api").Body.Bytes(), &env); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(os.Args, env.CommandLine); diff != "" {
		t.Errorf("commandLine (-os.Args +got):\n%s", diff)
	}
	if env.Env["KUARD_TEST_VAR"] != "x y" {
		t.Errorf("env lacks KUARD_TEST_VAR: %v", env.Env)
	}
}

func TestProbeSwitches(t *testing.T) {
	s := newTestServer(t, nil)
	steps := []struct {
		method, path string
		code         int
		body         string
	}{
		{"GET", "/healthy", 200, "ok\n"},
		{"GET", "/ready", 200, "ok\n"},
		{"HEAD", "/ready", 200, ""},
		{"POST", "/ready/fail", 200, "ready: fail\n"},
		{"GET", "/ready", 503, "fail\n"},
		{"GET", "/healthy", 200, "ok\n"}, // the switches are independent
		{"POST", "/ready/fail", 200, "ready: fail\n"},
		{"POST", "/healthy/fail", 200, "healthy: fail\n"},
		{"GET", "/healthy", 503, "fail\n"},
		{"POST", "/ready/ok", 200, "ready: ok\n"},
		{"GET", "/ready", 200, "ok\n"},
		{"POST", "/healthy/ok", 200, "healthy: ok\n"},
		{"GET", "/healthy", 200, "ok\n"},
	}
	for i, st := range steps {
		w := do(t, s, st.method, st.path)
		if st.method == "HEAD" {
			w.Body.Reset() // a real server sends no body; the recorder keeps it
		}
		if w.Code != st.code || w.Body.String() != st.body {
			t.Errorf("step %d: %s %s = %d %q, want %d %q", i, st.method, st.path, w.Code, w.Body.String(), st.code, st.body)
		}
	}
}

func TestSwitchNeedsPOST(t *testing.T) {
	s := newTestServer(t, nil)
	for _, method := range []string{"GET", "PUT", "DELETE"} {
		w := do(t, s, method, "/ready/fail")
		if w.Code != http.StatusMethodNotAllowed {
			t.Errorf("%s /ready/fail: %d, want 405", method, w.Code)
		}
		if !strings.Contains(w.Body.String(), "--post-data=") {
			t.Errorf("%s /ready/fail: body %q does not say how to POST with wget", method, w.Body.String())
		}
	}
	if w := do(t, s, "GET", "/ready"); w.Code != http.StatusOK {
		t.Errorf("a GET switched readiness: /ready = %d", w.Code)
	}
}

func TestUnknownPaths(t *testing.T) {
	s := newTestServer(t, nil)
	for _, p := range []string{"/nope", "/env", "/env/api/x", "/ready/maybe"} {
		if w := do(t, s, "GET", p); w.Code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", p, w.Code)
		}
	}
	if w := do(t, s, "POST", "/env/api"); w.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /env/api: %d, want 405", w.Code)
	}
}

func TestRequestPageJSON(t *testing.T) {
	s := newTestServer(t, nil)
	for _, tc := range []struct {
		name string
		hdr  []string
		url  string
	}{
		{"query", []string{"X-Test", "1"}, "/?format=json"},
		{"accept", []string{"X-Test", "1", "Accept", "application/json"}, "/"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := do(t, s, "GET", tc.url, tc.hdr...)
			if w.Code != 200 || w.Header().Get("Content-Type") != "application/json" {
				t.Fatalf("%d %q", w.Code, w.Header().Get("Content-Type"))
			}
			var got RequestInfo
			if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			// httptest.NewRequest's client is 192.0.2.1:1234.
			if got.Hostname != "kuard-1" || got.RemoteAddr != "192.0.2.1:1234" || got.RemoteIP != "192.0.2.1" ||
				got.Method != "GET" || got.URL != tc.url || got.Headers["X-Test"][0] != "1" {
				t.Errorf("got %+v", got)
			}
			want := []Interface{{Name: "lo", Addrs: []string{"127.0.0.1/8"}}, {Name: "eth0", Addrs: []string{"10.244.1.5/24"}}}
			if diff := cmp.Diff(want, got.Interfaces); diff != "" {
				t.Errorf("interfaces (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRequestPageHTML(t *testing.T) {
	s := newTestServer(t, func(c *Config) {
		c.Interfaces = func() ([]Interface, error) { return nil, errors.New("no netlink") }
	})
	do(t, s, "POST", "/ready/fail")
	w := do(t, s, "GET", "/", "X-Evil", "<script>alert(1)</script>", "Accept", "text/html,application/json")
	if w.Code != 200 || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("%d %q", w.Code, w.Header().Get("Content-Type"))
	}
	body := w.Body.String()
	for _, want := range []string{"<h1>kuard-1</h1>", "192.0.2.1:1234", "X-Evil", "&lt;script&gt;", "no netlink",
		`action="/ready/fail"`, `/ready: <b class="fail">fail</b>`, "not the upstream kuard image"} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(body, "<script>") {
		t.Error("page carries a header value unescaped")
	}
}

// fakeDNS is a resolver whose "network" is an in-memory pipe to a table
// of answers: nothing leaves the process.
func fakeDNS(t *testing.T, records map[string][]dns.RR) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, address string) (net.Conn, error) {
		client, server := net.Pipe()
		go serveFakeDNS(server, records)
		return client, nil
	}}
}

// serveFakeDNS answers DNS-over-TCP framed queries (a net.Pipe is a stream,
// so Go's resolver frames its messages with a length) from records, keyed
// "name. TYPE"; NXDOMAIN for anything else.
func serveFakeDNS(conn net.Conn, records map[string][]dns.RR) {
	defer conn.Close()
	for {
		var n uint16
		if err := binary.Read(conn, binary.BigEndian, &n); err != nil {
			return
		}
		buf := make([]byte, n)
		if _, err := io.ReadFull(conn, buf); err != nil {
			return
		}
		var q dns.Msg
		if err := q.Unpack(buf); err != nil || len(q.Question) != 1 {
			return
		}
		var reply dns.Msg
		reply.SetReply(&q)
		key := strings.ToLower(q.Question[0].Name) + " " + dns.TypeToString[q.Question[0].Qtype]
		if rrs, ok := records[key]; ok {
			reply.Answer = rrs
		} else {
			reply.Rcode = dns.RcodeNameError
		}
		out, err := reply.Pack()
		if err != nil {
			return
		}
		if err := binary.Write(conn, binary.BigEndian, uint16(len(out))); err != nil {
			return
		}
		if _, err := conn.Write(out); err != nil {
			return
		}
	}
}

func rr(t *testing.T, s string) dns.RR {
	t.Helper()
	r, err := dns.NewRR(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestDNSAPI(t *testing.T) {
	records := map[string][]dns.RR{
		"kuard.default.svc.cluster.local. A":              {rr(t, "kuard.default.svc.cluster.local. 5 IN A 10.96.0.20")},
		"kuard.default.svc.cluster.local. AAAA":           {rr(t, "kuard.default.svc.cluster.local. 5 IN AAAA fd00::20")},
		"_http._tcp.kuard.default.svc.cluster.local. SRV": {rr(t, "_http._tcp.kuard.default.svc.cluster.local. 5 IN SRV 0 100 80 kuard.default.svc.cluster.local.")},
		"example.com. MX":                                 {rr(t, "example.com. 5 IN MX 10 mail.example.com.")},
		"example.com. TXT":                                {rr(t, `example.com. 5 IN TXT "hello"`)},
		"20.0.96.10.in-addr.arpa. PTR":                    {rr(t, "20.0.96.10.in-addr.arpa. 5 IN PTR kuard.default.svc.cluster.local.")},
	}
	resolvConf := filepath.Join(t.TempDir(), "resolv.conf")
	os.WriteFile(resolvConf, []byte("nameserver 10.96.0.10\nsearch default.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n"), 0o644)
	s := newTestServer(t, func(c *Config) {
		c.Resolver = fakeDNS(t, records)
		c.ResolvConf = resolvConf
	})
	for _, tc := range []struct {
		query    string
		answers  []string
		notFound bool
	}{
		{"name=kuard.default.svc.cluster.local.", []string{"10.96.0.20"}, false},
		{"name=kuard.default.svc.cluster.local.&type=a", []string{"10.96.0.20"}, false},
		{"name=kuard.default.svc.cluster.local.&type=AAAA", []string{"fd00::20"}, false},
		{"name=_http._tcp.kuard.default.svc.cluster.local.&type=SRV", []string{"0 100 80 kuard.default.svc.cluster.local."}, false},
		{"name=example.com.&type=MX", []string{"10 mail.example.com."}, false},
		{"name=example.com.&type=TXT", []string{"hello"}, false},
		{"name=10.96.0.20&type=PTR", []string{"kuard.default.svc.cluster.local."}, false},
		{"name=nothere.example.&type=A", []string{}, true},
	} {
		t.Run(tc.query, func(t *testing.T) {
			w := do(t, s, "GET", "/dns/api?"+tc.query)
			if w.Code != 200 {
				t.Fatalf("status %d: %s", w.Code, w.Body)
			}
			var got DNSAnswer
			if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.answers, got.Answers); diff != "" {
				t.Errorf("answers (-want +got):\n%s\n%s", diff, w.Body)
			}
			if got.NotFound != tc.notFound || (got.Error != "") != tc.notFound {
				t.Errorf("notFound=%v error=%q, want notFound=%v", got.NotFound, got.Error, tc.notFound)
			}
			if !strings.Contains(got.ResolvConf, "ndots:5") {
				t.Errorf("resolvConf %q", got.ResolvConf)
			}
		})
	}
}

func TestDNSAPIBadRequest(t *testing.T) {
	s := newTestServer(t, nil)
	for _, q := range []string{"", "?type=A", "?name=x&type=AXFR"} {
		if w := do(t, s, "GET", "/dns/api"+q); w.Code != http.StatusBadRequest {
			t.Errorf("/dns/api%s: %d, want 400", q, w.Code)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	for _, cfg := range []Config{{Listen: "8080"}, {ShutdownTimeout: -1}} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
}

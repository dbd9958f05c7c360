package dns

import (
	"bytes"
	"context"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func packed(t *testing.T, m *dns.Msg) []byte {
	t.Helper()
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func question(name string, qtype uint16, edit func(m *dns.Msg)) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	if edit != nil {
		edit(m)
	}
	return m
}

// The key read from the wire is the one the normal path stores under,
// and only plain queries have one.
func TestFastKey(t *testing.T) {
	withOPT := func(do bool, opts ...dns.EDNS0) func(*dns.Msg) {
		return func(m *dns.Msg) {
			m.SetEdns0(1232, do)
			m.IsEdns0().Option = opts
		}
	}
	for _, tc := range []struct {
		name string
		msg  *dns.Msg
		want byte // the key's last byte; 0: no key
	}{
		{"plain", question("kuard.default.svc.cluster.local.", dns.TypeA, nil), 'n'},
		{"upper case", question("KuArD.Default.SVC.cluster.local.", dns.TypeA, nil), 'n'},
		{"EDNS0", question("kuard.default.svc.cluster.local.", dns.TypeAAAA, withOPT(false)), 'e'},
		{"EDNS0 DO", question("kuard.default.svc.cluster.local.", dns.TypeSRV, withOPT(true)), 'd'},
		{"EDNS0 cookie", question("kuard.default.svc.cluster.local.", dns.TypeA, withOPT(false, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"})), 'e'},
		{"EDNS0 version 1", question("kuard.default.svc.cluster.local.", dns.TypeA, func(m *dns.Msg) { m.SetEdns0(1232, false); m.IsEdns0().SetVersion(1) }), 0},
		{"a response", question("kuard.default.svc.cluster.local.", dns.TypeA, func(m *dns.Msg) { m.Response = true }), 0},
		{"an update", question("kuard.default.svc.cluster.local.", dns.TypeA, func(m *dns.Msg) { m.Opcode = dns.OpcodeUpdate }), 0},
		{"truncated", question("kuard.default.svc.cluster.local.", dns.TypeA, func(m *dns.Msg) { m.Truncated = true }), 0},
		{"two questions", question("a.default.svc.cluster.local.", dns.TypeA, func(m *dns.Msg) {
			m.Question = append(m.Question, dns.Question{Name: "b.default.svc.cluster.local.", Qtype: dns.TypeA, Qclass: dns.ClassINET})
		}), 0},
		{"an answer in the query", question("kuard.default.svc.cluster.local.", dns.TypeA, func(m *dns.Msg) {
			rr, _ := dns.NewRR("kuard.default.svc.cluster.local. 5 IN A 10.0.0.1")
			m.Answer = []dns.RR{rr}
		}), 0},
		{"not an OPT in additional", question("kuard.default.svc.cluster.local.", dns.TypeA, func(m *dns.Msg) {
			rr, _ := dns.NewRR("x. 5 IN A 10.0.0.1")
			m.Extra = []dns.RR{rr}
		}), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wire := packed(t, tc.msg)
			key, end, ok := fastKey(wire, nil)
			stored, storedOK := keyOf(tc.msg)
			if tc.want == 0 {
				if ok || storedOK {
					t.Fatalf("got a key (wire %v, parsed %v), want none", ok, storedOK)
				}
				return
			}
			if !ok || !storedOK {
				t.Fatalf("no key (wire %v, parsed %v)", ok, storedOK)
			}
			if string(key) != stored {
				t.Errorf("wire key %q, parsed key %q", key, stored)
			}
			if key[len(key)-1] != tc.want {
				t.Errorf("key ends %q, want %q", key[len(key)-1], tc.want)
			}
			if !strings.EqualFold(string(wire[headerLen:end]), string(wire[headerLen:end])) || wire[end-1] != 0 {
				t.Errorf("name end %d does not end the name", end)
			}
		})
	}
	// Names differing only in case share a key.
	a, _, _ := fastKey(packed(t, question("KUARD.default.svc.cluster.local.", dns.TypeA, nil)), nil)
	b, _, _ := fastKey(packed(t, question("kuard.default.svc.cluster.local.", dns.TypeA, nil)), nil)
	if !bytes.Equal(a, b) {
		t.Errorf("case changes the key: %q vs %q", a, b)
	}
	// Broken packets have none, and do not panic.
	wire := packed(t, question("kuard.default.svc.cluster.local.", dns.TypeA, nil))
	for n := range len(wire) {
		if _, _, ok := fastKey(wire[:n], nil); ok {
			t.Errorf("a key from the first %d of %d bytes", n, len(wire))
		}
	}
	pointer := append(append([]byte(nil), wire[:headerLen]...), 0xc0, 0x0c, 0, 1, 0, 1)
	if _, _, ok := fastKey(pointer, nil); ok {
		t.Error("a key for a compressed question name")
	}
	if _, _, ok := fastKey(append(wire, 0), nil); ok {
		t.Error("a key with trailing bytes")
	}
}

// jumbleCase spells a name in random case, as resolvers doing RFC 5452
// "0x20" randomisation do.
func jumbleCase(name string, r *rand.Rand) string {
	b := []byte(name)
	for i, c := range b {
		if 'a' <= c && c <= 'z' && r.IntN(2) == 0 {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

// A query answered from the fast path gets what the normal path would
// have sent: same answer, its own ID, RD and CD bits and spelling.
func TestFastPathAnswersAsTheNormalPath(t *testing.T) {
	client := fake.NewClientset(
		clusterIPService("default", "kuard", []string{"10.96.0.20"}, port("http", corev1.ProtocolTCP, 80)),
		headlessService("default", "web", port("http", corev1.ProtocolTCP, 8080)),
		slice("default", "web", "web-1", ep{"10.244.1.5", "web-0", true}, ep{"10.244.1.6", "", true}),
	)
	s := startServer(t, testConfig(t), client)
	rng := rand.New(rand.NewPCG(1, 2))
	c := &dns.Client{Net: "udp", Timeout: 3 * time.Second}
	for _, q := range []struct {
		name  string
		qtype uint16
		edns  bool
		do    bool
	}{
		{"kuard.default.svc.cluster.local.", dns.TypeA, false, false},
		{"kuard.default.svc.cluster.local.", dns.TypeA, true, false},
		{"kuard.default.svc.cluster.local.", dns.TypeA, true, true},
		{"kuard.default.svc.cluster.local.", dns.TypeAAAA, false, false},
		{"_http._tcp.kuard.default.svc.cluster.local.", dns.TypeSRV, false, false},
		{"web.default.svc.cluster.local.", dns.TypeA, false, false},
		{"web-0.web.default.svc.cluster.local.", dns.TypeA, true, false},
		{"nosuch.default.svc.cluster.local.", dns.TypeA, false, false},
		{"20.0.96.10.in-addr.arpa.", dns.TypePTR, false, false},
		{"10-244-1-5.default.pod.cluster.local.", dns.TypeA, false, false},
		{"cluster.local.", dns.TypeSOA, false, false},
	} {
		ask := func(rd, cd bool) (*dns.Msg, *dns.Msg) {
			m := question(jumbleCase(q.name, rng), q.qtype, func(m *dns.Msg) {
				m.RecursionDesired, m.CheckingDisabled = rd, cd
				if q.edns {
					m.SetEdns0(1232, q.do)
				}
			})
			r, _, err := c.Exchange(m, s.Addr())
			if err != nil {
				t.Fatalf("%s %s: %v", q.name, dns.TypeToString[q.qtype], err)
			}
			return m, r
		}
		before := fastAnswers(t, s)
		_, first := ask(true, false) // the normal path, which fills the cache
		for _, bits := range [][2]bool{{true, false}, {false, true}, {false, false}} {
			m, r := ask(bits[0], bits[1])
			if r.Id != m.Id || r.RecursionDesired != m.RecursionDesired || r.CheckingDisabled != m.CheckingDisabled {
				t.Errorf("%s: id %d rd %v cd %v for a query with id %d rd %v cd %v", q.name, r.Id, r.RecursionDesired, r.CheckingDisabled, m.Id, m.RecursionDesired, m.CheckingDisabled)
			}
			if r.Question[0].Name != m.Question[0].Name {
				t.Errorf("%s: question spelled %q in the answer, %q in the query", q.name, r.Question[0].Name, m.Question[0].Name)
			}
			// Apart from those, the same message (names compare without case, RFC 4343).
			want := first.Copy()
			want.Id, want.RecursionDesired, want.CheckingDisabled = r.Id, r.RecursionDesired, r.CheckingDisabled
			if got, want := strings.ToLower(r.String()), strings.ToLower(want.String()); got != want {
				t.Errorf("%s %s from the fast path:\n%s\nthe normal path:\n%s", q.name, dns.TypeToString[q.qtype], got, want)
			}
		}
		if got := fastAnswers(t, s) - before; got != 3 {
			t.Errorf("%s %s: %v of 3 repeats answered by the fast path", q.name, dns.TypeToString[q.qtype], got)
		}
	}
}

func fastAnswers(t *testing.T, s *Server) float64 {
	t.Helper()
	mfs, err := s.m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "kite_dns_fast_answers_total" {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatal("no kite_dns_fast_answers_total")
	return 0
}

// What the fast path must leave to the normal path: answers that change
// without the Store changing (forwarded names, ExternalName chases) and
// answers that do not fit 512 bytes.
func TestFastPathLeavesAlone(t *testing.T) {
	up := startUpstream(t, "127.0.0.1:0", answerA(30))
	cfg := testConfig(t)
	cfg.Upstreams = []string{up.addr}
	client := fake.NewClientset(append(bigHeadless(40),
		externalNameService("default", "ext", "www.example.com"))...)
	s := startServer(t, cfg, client)
	before := fastAnswers(t, s)
	for range 3 {
		query(t, "udp", s.Addr(), "www.example.com.", dns.TypeA, 0)
		query(t, "udp", s.Addr(), "ext.default.svc.cluster.local.", dns.TypeA, 0)
		if r := query(t, "udp", s.Addr(), "big.default.svc.cluster.local.", dns.TypeA, 0); !r.Truncated {
			t.Errorf("big headless answer over UDP without EDNS0 not truncated (%d answers)", len(r.Answer))
		}
	}
	if got := fastAnswers(t, s) - before; got != 0 {
		t.Errorf("%v answers from the fast path, want none", got)
	}
}

// A Store change is seen by the very next query, not a cache lifetime later.
func TestFastPathFollowsTheStore(t *testing.T) {
	client := fake.NewClientset(clusterIPService("default", "kuard", []string{"10.96.0.20"}, port("http", corev1.ProtocolTCP, 80)))
	s := startServer(t, testConfig(t), client)
	const name = "kuard.default.svc.cluster.local."
	for range 3 {
		if got := zoneFile(query(t, "udp", s.Addr(), name, dns.TypeA, 0).Answer); len(got) != 1 || !strings.HasSuffix(got[0], "10.96.0.20") {
			t.Fatalf("answer %q", got)
		}
	}
	if fastAnswers(t, s) == 0 {
		t.Fatal("no query answered by the fast path")
	}
	// The Store directly (as the informers do), then ask at once.
	s.Store().SetService(Service{Namespace: "default", Name: "kuard", Kind: kindClusterIP, ClusterIPs: []netip.Addr{netip.MustParseAddr("10.96.0.21")}})
	if got := zoneFile(query(t, "udp", s.Addr(), name, dns.TypeA, 0).Answer); len(got) != 1 || !strings.HasSuffix(got[0], "10.96.0.21") {
		t.Errorf("after the change: answer %q, want 10.96.0.21", got)
	}
	if err := client.CoreV1().Services("default").Delete(context.Background(), "kuard", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the deleted Service NXDOMAIN", 2*time.Second, func() bool {
		return query(t, "udp", s.Addr(), name, dns.TypeA, 0).Rcode == dns.RcodeNameError
	})
}

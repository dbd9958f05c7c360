package dns

import (
	"slices"
	"testing"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
)

// The cluster the table below asks about.
func testCluster(t testing.TB) *Store {
	return storeOf(t,
		clusterIPService("default", "kubernetes", []string{"10.96.0.1"}, port("https", corev1.ProtocolTCP, 443)),
		clusterIPService("default", "kuard", []string{"10.96.0.20"}, port("http", corev1.ProtocolTCP, 80), port("", corev1.ProtocolTCP, 8080)),
		clusterIPService("kube-system", "kube-dns", []string{"10.96.0.10"}, port("dns", corev1.ProtocolUDP, 53), port("dns-tcp", corev1.ProtocolTCP, 53)),
		clusterIPService("default", "dual", []string{"10.96.0.30", "fd00:10:96::30"}),
		headlessService("default", "web", port("http", corev1.ProtocolTCP, 8080)),
		slice("default", "web", "web-abc",
			ep{"10.244.1.5", "web-0", true}, ep{"10.244.1.6", "web-1", true},
			ep{"10.244.2.7", "", true}, ep{"10.244.2.8", "web-3", false}),
		slice("default", "web", "web-def", ep{"10.244.3.9", "", true}, ep{"10.244.1.5", "web-0", true}),
		headlessService("default", "unready"),
		slice("default", "unready", "unready-1", ep{"10.244.1.20", "", false}),
		func() *corev1.Service {
			s := headlessService("default", "pnr")
			s.Spec.PublishNotReadyAddresses = true
			return s
		}(),
		slice("default", "pnr", "pnr-1", ep{"10.244.1.30", "", false}),
		externalNameService("default", "ext", "www.example.com"),
		externalNameService("default", "alias", "kuard.default.svc.cluster.local"),
		externalNameService("default", "dangling", "nothing.default.svc.cluster.local"),
		// endpoints whose Service is not there (yet): no records
		slice("default", "early", "early-1", ep{"10.244.1.40", "", true}),
	)
}

const soa = "cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 1 7200 1800 86400 5"

func TestLookup(t *testing.T) {
	z := newZone("cluster.local", 5)
	s := testCluster(t)
	for _, tc := range []struct {
		name    string
		qtype   uint16
		rcode   int
		answer  []string
		soa     bool     // SOA in the authority section (NXDOMAIN, NODATA)
		extra   []string // additional section (SRV targets)
		forward bool
		chase   string
	}{
		// ClusterIP Services (spec 2.3.1)
		{name: "kuard.default.svc.cluster.local.", qtype: dns.TypeA,
			answer: []string{"kuard.default.svc.cluster.local. 5 IN A 10.96.0.20"}},
		{name: "KUARD.Default.SVC.cluster.local.", qtype: dns.TypeA, // case-insensitive, owner as asked
			answer: []string{"KUARD.Default.SVC.cluster.local. 5 IN A 10.96.0.20"}},
		{name: "kuard.default.svc.cluster.local.", qtype: dns.TypeANY,
			answer: []string{"kuard.default.svc.cluster.local. 5 IN A 10.96.0.20"}},
		{name: "kubernetes.default.svc.cluster.local.", qtype: dns.TypeA,
			answer: []string{"kubernetes.default.svc.cluster.local. 5 IN A 10.96.0.1"}},
		{name: "dual.default.svc.cluster.local.", qtype: dns.TypeAAAA,
			answer: []string{"dual.default.svc.cluster.local. 5 IN AAAA fd00:10:96::30"}},
		{name: "dual.default.svc.cluster.local.", qtype: dns.TypeA,
			answer: []string{"dual.default.svc.cluster.local. 5 IN A 10.96.0.30"}},
		// NODATA: the name exists, with other types
		{name: "kuard.default.svc.cluster.local.", qtype: dns.TypeAAAA, soa: true},
		{name: "kuard.default.svc.cluster.local.", qtype: dns.TypeTXT, soa: true},
		{name: "default.svc.cluster.local.", qtype: dns.TypeA, soa: true},
		{name: "svc.cluster.local.", qtype: dns.TypeA, soa: true},
		{name: "cluster.local.", qtype: dns.TypeA, soa: true},
		// NXDOMAIN
		{name: "nosuch.default.svc.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError, soa: true},
		{name: "kuard.nosuchns.svc.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError, soa: true},
		{name: "nosuchns.svc.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError, soa: true},
		{name: "early.default.svc.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError, soa: true},
		{name: "foo.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError, soa: true},
		{name: "x.kuard.default.svc.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError, soa: true},
		// search-path expansions of names that do not exist (ndots:5)
		{name: "example.com.default.svc.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError, soa: true},
		{name: "example.com.svc.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError, soa: true},
		{name: "example.com.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError, soa: true},
		{name: "kuard.default.svc.cluster.local.default.svc.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError, soa: true},
		{name: "kuard.default.default.svc.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError, soa: true},
		// and the search path's last step leaves the zone
		{name: "example.com.", qtype: dns.TypeA, forward: true},
		// SOA and schema version (spec 2.2)
		{name: "cluster.local.", qtype: dns.TypeSOA, answer: []string{soa}},
		{name: "dns-version.cluster.local.", qtype: dns.TypeTXT,
			answer: []string{`dns-version.cluster.local. 5 IN TXT "1.1.0"`}},
		{name: "dns-version.cluster.local.", qtype: dns.TypeA, soa: true},
		// SRV for named ports (spec 2.3.2): the target is the Service
		{name: "_http._tcp.kuard.default.svc.cluster.local.", qtype: dns.TypeSRV,
			answer: []string{"_http._tcp.kuard.default.svc.cluster.local. 5 IN SRV 0 100 80 kuard.default.svc.cluster.local."},
			extra:  []string{"kuard.default.svc.cluster.local. 5 IN A 10.96.0.20"}},
		{name: "_dns._udp.kube-dns.kube-system.svc.cluster.local.", qtype: dns.TypeSRV,
			answer: []string{"_dns._udp.kube-dns.kube-system.svc.cluster.local. 5 IN SRV 0 100 53 kube-dns.kube-system.svc.cluster.local."},
			extra:  []string{"kube-dns.kube-system.svc.cluster.local. 5 IN A 10.96.0.10"}},
		{name: "_http._tcp.kuard.default.svc.cluster.local.", qtype: dns.TypeA, soa: true},
		{name: "_tcp.kuard.default.svc.cluster.local.", qtype: dns.TypeSRV, soa: true},
		{name: "_http._udp.kuard.default.svc.cluster.local.", qtype: dns.TypeSRV, rcode: dns.RcodeNameError, soa: true},
		{name: "_udp.kuard.default.svc.cluster.local.", qtype: dns.TypeSRV, rcode: dns.RcodeNameError, soa: true},
		// headless (spec 2.4): one A per ready endpoint, each address once
		{name: "web.default.svc.cluster.local.", qtype: dns.TypeA, answer: []string{
			"web.default.svc.cluster.local. 5 IN A 10.244.1.5",
			"web.default.svc.cluster.local. 5 IN A 10.244.1.6",
			"web.default.svc.cluster.local. 5 IN A 10.244.2.7",
			"web.default.svc.cluster.local. 5 IN A 10.244.3.9",
		}},
		{name: "web-0.web.default.svc.cluster.local.", qtype: dns.TypeA,
			answer: []string{"web-0.web.default.svc.cluster.local. 5 IN A 10.244.1.5"}},
		{name: "10-244-2-7.web.default.svc.cluster.local.", qtype: dns.TypeA,
			answer: []string{"10-244-2-7.web.default.svc.cluster.local. 5 IN A 10.244.2.7"}},
		{name: "web-3.web.default.svc.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError, soa: true}, // not ready
		{name: "_http._tcp.web.default.svc.cluster.local.", qtype: dns.TypeSRV, answer: []string{
			"_http._tcp.web.default.svc.cluster.local. 5 IN SRV 0 100 8080 10-244-2-7.web.default.svc.cluster.local.",
			"_http._tcp.web.default.svc.cluster.local. 5 IN SRV 0 100 8080 10-244-3-9.web.default.svc.cluster.local.",
			"_http._tcp.web.default.svc.cluster.local. 5 IN SRV 0 100 8080 web-0.web.default.svc.cluster.local.",
			"_http._tcp.web.default.svc.cluster.local. 5 IN SRV 0 100 8080 web-1.web.default.svc.cluster.local.",
		}, extra: []string{
			"10-244-2-7.web.default.svc.cluster.local. 5 IN A 10.244.2.7",
			"10-244-3-9.web.default.svc.cluster.local. 5 IN A 10.244.3.9",
			"web-0.web.default.svc.cluster.local. 5 IN A 10.244.1.5",
			"web-1.web.default.svc.cluster.local. 5 IN A 10.244.1.6",
		}},
		// headless with no ready endpoint: NXDOMAIN (spec 2.4.1)
		{name: "unready.default.svc.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError, soa: true},
		// ... unless the Service publishes not-ready addresses
		{name: "pnr.default.svc.cluster.local.", qtype: dns.TypeA,
			answer: []string{"pnr.default.svc.cluster.local. 5 IN A 10.244.1.30"}},
		// ExternalName (spec 2.5): a CNAME, its target resolved upstream
		{name: "ext.default.svc.cluster.local.", qtype: dns.TypeA,
			answer: []string{"ext.default.svc.cluster.local. 5 IN CNAME www.example.com."}, chase: "www.example.com."},
		{name: "ext.default.svc.cluster.local.", qtype: dns.TypeCNAME,
			answer: []string{"ext.default.svc.cluster.local. 5 IN CNAME www.example.com."}},
		{name: "_http._tcp.ext.default.svc.cluster.local.", qtype: dns.TypeSRV, rcode: dns.RcodeNameError, soa: true},
		// ... or inside the zone, followed here
		{name: "alias.default.svc.cluster.local.", qtype: dns.TypeA, answer: []string{
			"alias.default.svc.cluster.local. 5 IN CNAME kuard.default.svc.cluster.local.",
			"kuard.default.svc.cluster.local. 5 IN A 10.96.0.20",
		}},
		{name: "dangling.default.svc.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError, soa: true,
			answer: []string{"dangling.default.svc.cluster.local. 5 IN CNAME nothing.default.svc.cluster.local."}},
		// PTR (spec 2.3.3, 2.4.3)
		{name: "20.0.96.10.in-addr.arpa.", qtype: dns.TypePTR,
			answer: []string{"20.0.96.10.in-addr.arpa. 5 IN PTR kuard.default.svc.cluster.local."}},
		{name: "5.1.244.10.in-addr.arpa.", qtype: dns.TypePTR,
			answer: []string{"5.1.244.10.in-addr.arpa. 5 IN PTR web-0.web.default.svc.cluster.local."}},
		{name: "7.2.244.10.in-addr.arpa.", qtype: dns.TypePTR,
			answer: []string{"7.2.244.10.in-addr.arpa. 5 IN PTR 10-244-2-7.web.default.svc.cluster.local."}},
		{name: "0.3.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.6.9.0.0.0.1.0.0.0.0.d.f.ip6.arpa.", qtype: dns.TypePTR,
			answer: []string{"0.3.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.6.9.0.0.0.1.0.0.0.0.d.f.ip6.arpa. 5 IN PTR dual.default.svc.cluster.local."}},
		{name: "20.0.96.10.in-addr.arpa.", qtype: dns.TypeA,
			soa: true}, // NODATA, under the reverse zone's SOA
		{name: "8.2.244.10.in-addr.arpa.", qtype: dns.TypePTR, forward: true}, // not ready: not ours
		{name: "1.1.168.192.in-addr.arpa.", qtype: dns.TypePTR, forward: true},
		{name: "168.192.in-addr.arpa.", qtype: dns.TypePTR, forward: true},
		// pod records ("pods insecure")
		{name: "10-244-1-5.default.pod.cluster.local.", qtype: dns.TypeA,
			answer: []string{"10-244-1-5.default.pod.cluster.local. 5 IN A 10.244.1.5"}},
		{name: "10-244-1-5.any-ns.pod.cluster.local.", qtype: dns.TypeA,
			answer: []string{"10-244-1-5.any-ns.pod.cluster.local. 5 IN A 10.244.1.5"}},
		{name: "fd00--5.default.pod.cluster.local.", qtype: dns.TypeAAAA,
			answer: []string{"fd00--5.default.pod.cluster.local. 5 IN AAAA fd00::5"}},
		{name: "10-244-1-5.default.pod.cluster.local.", qtype: dns.TypeAAAA, soa: true},
		{name: "default.pod.cluster.local.", qtype: dns.TypeA, soa: true},
		{name: "10-244-1.default.pod.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError, soa: true},
		{name: "10-244-1-300.default.pod.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError, soa: true},
		{name: "x.10-244-1-5.default.pod.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError, soa: true},
	} {
		t.Run(dns.Type(tc.qtype).String()+" "+tc.name, func(t *testing.T) {
			res := z.lookup(s, dns.Question{Name: tc.name, Qtype: tc.qtype, Qclass: dns.ClassINET})
			if res.Forward != tc.forward {
				t.Fatalf("forward = %v, want %v", res.Forward, tc.forward)
			}
			if res.Rcode != tc.rcode {
				t.Errorf("rcode = %s, want %s", dns.RcodeToString[res.Rcode], dns.RcodeToString[tc.rcode])
			}
			if got, want := zoneFile(res.Answer), zoneFile(nil); !slices.Equal(got, append(want, sorted(tc.answer)...)) {
				t.Errorf("answer:\n got %q\nwant %q", got, sorted(tc.answer))
			}
			if got := zoneFile(res.Extra); !slices.Equal(got, sorted(tc.extra)) {
				t.Errorf("extra:\n got %q\nwant %q", got, sorted(tc.extra))
			}
			if gotSOA := len(res.Ns) == 1 && res.Ns[0].Header().Rrtype == dns.TypeSOA; gotSOA != tc.soa || (!tc.soa && len(res.Ns) > 0) {
				t.Errorf("authority = %q, want SOA: %v", zoneFile(res.Ns), tc.soa)
			}
			if res.Chase != tc.chase {
				t.Errorf("chase = %q, want %q", res.Chase, tc.chase)
			}
		})
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	if s == nil {
		s = []string{}
	}
	return s
}

func TestLookupSOAOnNegativeAnswers(t *testing.T) {
	z := newZone("cluster.local", 5)
	res := z.lookup(NewStore(), dns.Question{Name: "nosuch.default.svc.cluster.local.", Qtype: dns.TypeA, Qclass: dns.ClassINET})
	if got := zoneFile(res.Ns); !slices.Equal(got, []string{soa}) {
		t.Errorf("authority = %q, want %q", got, soa)
	}
}

// The answer follows the objects: ExternalName turned ClusterIP, a
// headless Service's endpoint turning unready, Services deleted.
func TestLookupFollowsChanges(t *testing.T) {
	z := newZone("cluster.local", 5)
	s := testCluster(t)
	ask := func(name string, qtype uint16) []string {
		t.Helper()
		return zoneFile(z.lookup(s, dns.Question{Name: name, Qtype: qtype, Qclass: dns.ClassINET}).Answer)
	}
	want := func(got []string, want ...string) {
		t.Helper()
		if !slices.Equal(got, sorted(want)) {
			t.Errorf("answer:\n got %q\nwant %q", got, sorted(want))
		}
	}

	want(ask("ext.default.svc.cluster.local.", dns.TypeA), "ext.default.svc.cluster.local. 5 IN CNAME www.example.com.")
	apply(t, s, clusterIPService("default", "ext", []string{"10.96.0.40"}, port("http", corev1.ProtocolTCP, 80)))
	want(ask("ext.default.svc.cluster.local.", dns.TypeA), "ext.default.svc.cluster.local. 5 IN A 10.96.0.40")
	want(ask("40.0.96.10.in-addr.arpa.", dns.TypePTR), "40.0.96.10.in-addr.arpa. 5 IN PTR ext.default.svc.cluster.local.")
	apply(t, s, externalNameService("default", "ext", "other.example.org."))
	want(ask("ext.default.svc.cluster.local.", dns.TypeA), "ext.default.svc.cluster.local. 5 IN CNAME other.example.org.")
	if res := z.lookup(s, dns.Question{Name: "40.0.96.10.in-addr.arpa.", Qtype: dns.TypePTR, Qclass: dns.ClassINET}); !res.Forward {
		t.Errorf("PTR of a former cluster IP is still answered: %q", zoneFile(res.Answer))
	}

	apply(t, s, slice("default", "web", "web-abc", ep{"10.244.1.6", "web-1", false}))
	want(ask("web.default.svc.cluster.local.", dns.TypeA), "web.default.svc.cluster.local. 5 IN A 10.244.1.5", "web.default.svc.cluster.local. 5 IN A 10.244.3.9")
	s.DeleteEndpoints("default", "web", "web-def")
	if res := z.lookup(s, dns.Question{Name: "web.default.svc.cluster.local.", Qtype: dns.TypeA, Qclass: dns.ClassINET}); res.Rcode != dns.RcodeNameError {
		t.Errorf("headless without ready endpoints: rcode %s, want NXDOMAIN", dns.RcodeToString[res.Rcode])
	}

	s.DeleteService("default", "kuard")
	if res := z.lookup(s, dns.Question{Name: "kuard.default.svc.cluster.local.", Qtype: dns.TypeA, Qclass: dns.ClassINET}); res.Rcode != dns.RcodeNameError {
		t.Errorf("deleted Service: rcode %s, want NXDOMAIN", dns.RcodeToString[res.Rcode])
	}
	// the early endpoints get their Service
	apply(t, s, headlessService("default", "early"))
	want(ask("early.default.svc.cluster.local.", dns.TypeA), "early.default.svc.cluster.local. 5 IN A 10.244.1.40")
}

func TestStoreForgetsEverything(t *testing.T) {
	s := testCluster(t)
	type key struct{ ns, name string }
	entries := map[key][]string{}
	for ns, m := range s.services {
		for name, e := range m {
			entries[key{ns, name}] = sortedKeys(e.slices)
		}
	}
	for k, slices := range entries {
		s.DeleteService(k.ns, k.name)
		for _, sl := range slices {
			s.DeleteEndpoints(k.ns, k.name, sl)
		}
	}
	if len(s.services) != 0 || len(s.ptr) != 0 {
		t.Errorf("after deleting everything: %d namespaces, %d reverse names left", len(s.services), len(s.ptr))
	}
}

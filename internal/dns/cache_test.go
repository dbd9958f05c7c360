package dns

import (
	"testing"
	"time"

	"github.com/miekg/dns"
)

func msgOf(t *testing.T, rcode int, answer, ns []string) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.Rcode = rcode
	for _, s := range answer {
		rr, err := dns.NewRR(s)
		if err != nil {
			t.Fatal(err)
		}
		m.Answer = append(m.Answer, rr)
	}
	for _, s := range ns {
		rr, err := dns.NewRR(s)
		if err != nil {
			t.Fatal(err)
		}
		m.Ns = append(m.Ns, rr)
	}
	return m
}

func TestCacheTTL(t *testing.T) {
	const upSOA = "example.com. 900 IN SOA ns.example.com. h.example.com. 1 2 3 4 60"
	for _, tc := range []struct {
		name string
		msg  *dns.Msg
		want time.Duration // 0: not cached
	}{
		{"least answer TTL", msgOf(t, dns.RcodeSuccess, []string{"a. 20 IN CNAME b.", "b. 10 IN A 192.0.2.1"}, nil), 10 * time.Second},
		{"capped", msgOf(t, dns.RcodeSuccess, []string{"a. 3600 IN A 192.0.2.1"}, nil), 30 * time.Second},
		{"TTL 0 is not kept", msgOf(t, dns.RcodeSuccess, []string{"a. 0 IN A 192.0.2.1"}, nil), 0},
		{"NXDOMAIN: the SOA minimum, capped", msgOf(t, dns.RcodeNameError, nil, []string{upSOA}), 5 * time.Second},
		{"NODATA: likewise", msgOf(t, dns.RcodeSuccess, nil, []string{"example.com. 2 IN SOA ns.example.com. h.example.com. 1 2 3 4 60"}), 2 * time.Second},
		{"negative without SOA", msgOf(t, dns.RcodeNameError, nil, nil), 0},
		{"SERVFAIL", msgOf(t, dns.RcodeServerFailure, nil, nil), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := cacheTTL(tc.msg, 30*time.Second, 5*time.Second)
			if !ok {
				got = 0
			}
			if got != tc.want {
				t.Errorf("cache for %s, want %s", got, tc.want)
			}
		})
	}
}

func TestCacheCountsDownAndExpires(t *testing.T) {
	c := newCache(2, 30*time.Second, 5*time.Second)
	now := time.Unix(1000, 0)
	key := cacheKey(dns.Question{Name: "Example.com.", Qtype: dns.TypeA, Qclass: dns.ClassINET})
	c.put(key, msgOf(t, dns.RcodeSuccess, []string{"example.com. 10 IN A 192.0.2.1"}, nil), now)
	m := c.get(cacheKey(dns.Question{Name: "example.COM.", Qtype: dns.TypeA, Qclass: dns.ClassINET}), now.Add(4*time.Second))
	if m == nil || m.Answer[0].Header().Ttl != 6 {
		t.Fatalf("after 4 s: %v, want the answer with TTL 6", m)
	}
	m.Answer[0].Header().Ttl = 99 // a copy: the cached one is untouched
	if m := c.get(key, now.Add(5*time.Second)); m.Answer[0].Header().Ttl != 5 {
		t.Errorf("after 5 s: TTL %d, want 5", m.Answer[0].Header().Ttl)
	}
	if m := c.get(key, now.Add(10*time.Second)); m != nil {
		t.Errorf("after its TTL: still cached")
	}
	// bounded: a full cache makes room
	for i, n := range []string{"a.", "b.", "c.", "d."} {
		c.put(n, msgOf(t, dns.RcodeSuccess, []string{n + " 10 IN A 192.0.2.1"}, nil), now.Add(time.Duration(i)))
	}
	if len(c.entries) > 2 {
		t.Errorf("%d entries in a cache of 2", len(c.entries))
	}
}

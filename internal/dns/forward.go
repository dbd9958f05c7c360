package dns

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

const (
	// upstreamUDPSize is the EDNS0 buffer we offer upstreams: the DNS flag
	// day 2020 value, which avoids IP fragmentation; larger answers come
	// back truncated and are asked again over TCP.
	upstreamUDPSize = 1232
	// minAttempt is the least time one upstream gets before the next is
	// tried, so that a slow but working first upstream still answers.
	minAttempt = 500 * time.Millisecond
)

// errNoUpstream: the name must be forwarded and there is no upstream to
// ask (none configured, or all refused by the loop rule).
var errNoUpstream = errors.New("no upstream resolver")

// errRecentlyFailed: no upstream answered this question moments ago.
var errRecentlyFailed = errors.New("no upstream answered this question in the last seconds")

// forwarder asks the upstreams, behind a cache.
type forwarder struct {
	upstreams []string
	looping   []atomic.Bool // per upstream: the loop probe came back to us
	timeout   time.Duration
	cache     *answerCache // nil: no cache
	udp, tcp  *dns.Client
	next      atomic.Uint32 // rotates the first upstream asked
	m         *metrics

	// failed remembers questions no upstream answered, for failTTL, so
	// that a client's retries (and its search-path walk ending at the same
	// name) get SERVFAIL at once instead of waiting out the timeout again:
	// offline, a lookup fails within the 2 s resolvers wait, not 2 × 1.5 s.
	// RFC 2308 §7.1 allows caching server failures.
	failMu sync.Mutex
	failed map[string]time.Time
}

// failTTL is how long a question no upstream answered fails at once.
const failTTL = 5 * time.Second

// maxFailed bounds the failure memory; past it, it is cleared.
const maxFailed = 4096

func (f *forwarder) recentlyFailed(key string, now time.Time) bool {
	f.failMu.Lock()
	defer f.failMu.Unlock()
	until, ok := f.failed[key]
	if ok && now.After(until) {
		delete(f.failed, key)
		return false
	}
	return ok
}

func (f *forwarder) noteFailed(key string, now time.Time) {
	f.failMu.Lock()
	defer f.failMu.Unlock()
	if f.failed == nil || len(f.failed) >= maxFailed {
		f.failed = map[string]time.Time{}
	}
	f.failed[key] = now.Add(failTTL)
}

func newForwarder(upstreams []string, cfg Config, m *metrics) *forwarder {
	f := &forwarder{
		upstreams: upstreams,
		looping:   make([]atomic.Bool, len(upstreams)),
		timeout:   cfg.UpstreamTimeout,
		udp:       &dns.Client{Net: "udp", UDPSize: upstreamUDPSize},
		tcp:       &dns.Client{Net: "tcp"},
		m:         m,
	}
	if cfg.CacheSize > 0 {
		f.cache = newCache(cfg.CacheSize, cfg.CacheMaxTTL, cfg.CacheNegTTL)
	}
	return f
}

// resolve answers q from the cache or the upstreams. The reply's ID and
// question are the forwarder's own; the caller rewrites them.
func (f *forwarder) resolve(ctx context.Context, q dns.Question, do bool) (*dns.Msg, error) {
	key := cacheKey(q)
	if f.cache != nil {
		if m := f.cache.get(key, time.Now()); m != nil {
			f.m.cacheHits.Inc()
			return m, nil
		}
		f.m.cacheMisses.Inc()
	}
	if f.recentlyFailed(key, time.Now()) {
		f.m.forwardErrors.Inc()
		return nil, errRecentlyFailed
	}
	req := new(dns.Msg)
	req.SetQuestion(q.Name, q.Qtype)
	req.Question[0].Qclass = q.Qclass
	req.RecursionDesired = true
	req.SetEdns0(upstreamUDPSize, do)

	resp, err := f.exchange(ctx, req)
	if err != nil {
		f.m.forwardErrors.Inc()
		if !errors.Is(err, errNoUpstream) && ctx.Err() == nil {
			f.noteFailed(key, time.Now())
		}
		return nil, err
	}
	if f.cache != nil {
		f.cache.put(key, resp, time.Now())
	}
	return resp, nil
}

// exchange tries the upstreams in turn, starting at a rotating one, all
// within the forwarder's timeout.
func (f *forwarder) exchange(ctx context.Context, req *dns.Msg) (*dns.Msg, error) {
	n := len(f.upstreams)
	if n == 0 {
		return nil, errNoUpstream
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	start := int(f.next.Add(1))
	var errs []error
	tried := 0
	for i := range n {
		idx := (start + i) % n
		if f.looping[idx].Load() {
			continue
		}
		up := f.upstreams[idx]
		left := n - i
		deadline, _ := ctx.Deadline()
		per := max(time.Until(deadline)/time.Duration(left), minAttempt)
		actx, acancel := context.WithTimeout(ctx, per)
		resp, err := f.ask(actx, req, up)
		acancel()
		tried++
		if err == nil {
			return resp, nil
		}
		errs = append(errs, fmt.Errorf("upstream %s: %w", up, err))
		if ctx.Err() != nil {
			break
		}
	}
	if tried == 0 {
		return nil, fmt.Errorf("%w: every upstream loops back to us", errNoUpstream)
	}
	return nil, errors.Join(errs...)
}

// ask sends one question to one upstream, over UDP, and again over TCP
// when the UDP answer was truncated.
func (f *forwarder) ask(ctx context.Context, req *dns.Msg, up string) (*dns.Msg, error) {
	req.Id = dns.Id()
	resp, _, err := f.udp.ExchangeContext(ctx, req, up)
	if err == nil && resp.Truncated {
		req.Id = dns.Id()
		resp, _, err = f.tcp.ExchangeContext(ctx, req, up)
	}
	if err != nil {
		return nil, err
	}
	if resp.Rcode == dns.RcodeRefused || resp.Rcode == dns.RcodeFormatError {
		return nil, fmt.Errorf("answered %s", dns.RcodeToString[resp.Rcode])
	}
	return resp, nil
}

// answerCache keeps forwarded answers for as long as their TTLs say, at most
// maxTTL (negTTL for NXDOMAIN and NODATA). It is bounded in entries;
// when full, a few arbitrary entries make room.
type answerCache struct {
	mu             sync.Mutex
	entries        map[string]cacheEntry
	size           int
	maxTTL, negTTL time.Duration
}

type cacheEntry struct {
	msg     *dns.Msg
	stored  time.Time
	expires time.Time
}

// cacheEvict is how many entries a full cache drops at once, so that
// eviction's cost is spread over inserts.
const cacheEvict = 8

func newCache(size int, maxTTL, negTTL time.Duration) *answerCache {
	return &answerCache{entries: map[string]cacheEntry{}, size: size, maxTTL: maxTTL, negTTL: negTTL}
}

func cacheKey(q dns.Question) string {
	return strings.ToLower(q.Name) + "/" + dns.Type(q.Qtype).String() + "/" + dns.Class(q.Qclass).String()
}

// get returns a copy of a cached answer with its TTLs counted down.
func (c *answerCache) get(key string, now time.Time) *dns.Msg {
	c.mu.Lock()
	e, ok := c.entries[key]
	if ok && !now.Before(e.expires) {
		delete(c.entries, key)
		ok = false
	}
	c.mu.Unlock()
	if !ok {
		return nil
	}
	m := e.msg.Copy()
	age := uint32(now.Sub(e.stored) / time.Second)
	for _, sec := range [][]dns.RR{m.Answer, m.Ns, m.Extra} {
		for _, rr := range sec {
			if h := rr.Header(); h.Rrtype != dns.TypeOPT {
				h.Ttl -= min(age, h.Ttl)
			}
		}
	}
	return m
}

// put keeps an answer for its TTL: the least TTL of its answer records,
// or for a negative answer the SOA's (RFC 2308), capped. SERVFAIL and
// truncated answers, and negative answers without a SOA, are not kept.
func (c *answerCache) put(key string, m *dns.Msg, now time.Time) {
	ttl, ok := cacheTTL(m, c.maxTTL, c.negTTL)
	if !ok {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.size {
		// Map order is random enough for an unbiased victim; a sweep for
		// the expired ones would make every insert O(size).
		dropped := 0
		for k := range c.entries {
			delete(c.entries, k)
			if dropped++; dropped == cacheEvict {
				break
			}
		}
	}
	c.entries[key] = cacheEntry{msg: m.Copy(), stored: now, expires: now.Add(ttl)}
}

func cacheTTL(m *dns.Msg, maxTTL, negTTL time.Duration) (time.Duration, bool) {
	if m.Truncated || (m.Rcode != dns.RcodeSuccess && m.Rcode != dns.RcodeNameError) {
		return 0, false
	}
	if m.Rcode == dns.RcodeSuccess && len(m.Answer) > 0 {
		least := uint32(1<<31 - 1)
		for _, rr := range m.Answer {
			least = min(least, rr.Header().Ttl)
		}
		if least == 0 {
			return 0, false
		}
		return min(time.Duration(least)*time.Second, maxTTL), true
	}
	for _, rr := range m.Ns {
		if soa, ok := rr.(*dns.SOA); ok {
			t := min(soa.Hdr.Ttl, soa.Minttl)
			if t == 0 {
				return 0, false
			}
			return min(time.Duration(t)*time.Second, negTTL), true
		}
	}
	return 0, false
}

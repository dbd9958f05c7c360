package dns

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Defaults, as CoreDNS's deployment uses them, so that probes and Service
// ports written for CoreDNS fit kite dns unchanged.
const (
	DefaultZone           = "cluster.local"
	DefaultListen         = ":53"
	DefaultMetricsListen  = ":9153"
	DefaultHealthListen   = ":8080"
	DefaultReadyListen    = ":8181"
	DefaultResolvConf     = "/etc/resolv.conf"
	DefaultStubResolvConf = "/run/systemd/resolve/resolv.conf"
	DefaultTTL            = 5 * time.Second
	// DefaultUpstreamTimeout bounds one forwarded question over all
	// upstreams, so a client hears SERVFAIL within 2 s when none answers
	// (resolvers' own default timeout is 5 s: ours must be shorter).
	DefaultUpstreamTimeout = 1500 * time.Millisecond
	DefaultCacheSize       = 10000
	DefaultCacheMaxTTL     = 30 * time.Second
	DefaultCacheNegTTL     = 5 * time.Second
	// DefaultLameduck is how long a stopping server keeps answering with
	// /ready failing, so that the endpoint leaves kube-dns's EndpointSlice
	// (and every node's proxy rules) before the sockets close: clients then
	// lose no query to a pod that is going away. CoreDNS uses 5 s too.
	DefaultLameduck = 5 * time.Second

	// SchemaVersion is the DNS schema answered at dns-version.<zone>.
	SchemaVersion = "1.1.0"

	// Paths of the health endpoints, as CoreDNS's health and ready plugins.
	HealthPath  = "/health"
	ReadyPath   = "/ready"
	MetricsPath = "/metrics"
)

// Config configures a Server. Start from DefaultConfig; New fills the
// fields left empty that have a default, except the three HTTP listeners,
// which are off when empty (tests and benchmarks need no HTTP).
type Config struct {
	// Zone is the cluster domain answered authoritatively.
	Zone string
	// Listen is the DNS address, served over UDP and TCP.
	Listen string
	// MetricsListen serves Prometheus metrics at /metrics; "" turns it off.
	MetricsListen string
	// HealthListen serves /health (liveness: the DNS listeners are up);
	// "" turns it off.
	HealthListen string
	// ReadyListen serves /ready (readiness: informers have synced, so
	// answers reflect the cluster); "" turns it off. It may equal
	// HealthListen.
	ReadyListen string
	// ResolvConf names the resolv.conf whose nameservers get the names
	// outside Zone.
	ResolvConf string
	// StubResolvConf is read instead of ResolvConf when that lists only
	// loopback resolvers (systemd-resolved's 127.0.0.53 stub, dnsmasq on
	// 127.0.0.1): inside a pod, loopback is the pod itself, and forwarding
	// there would loop or fail.
	StubResolvConf string
	// Upstreams, when set, replaces the resolv.conf files (host:port or
	// an address with port 53). The loop rule still applies.
	Upstreams []string
	// TTL of every record of the zone, and the SOA minimum (negative TTL).
	TTL time.Duration
	// UpstreamTimeout bounds a forwarded question across all upstreams.
	UpstreamTimeout time.Duration
	// CacheSize is the number of forwarded answers kept; 0 takes the
	// default, negative turns the cache off.
	CacheSize int
	// CacheMaxTTL caps how long a forwarded answer is kept (its own TTLs
	// are respected below that cap); CacheNegTTL caps negative answers.
	CacheMaxTTL time.Duration
	CacheNegTTL time.Duration
	// Lameduck: after ctx is done, keep serving this long with /ready
	// failing, then stop. 0 stops at once (tests).
	Lameduck time.Duration
}

// DefaultConfig is the configuration of a kite dns pod.
func DefaultConfig() Config {
	return Config{
		Zone:            DefaultZone,
		Listen:          DefaultListen,
		MetricsListen:   DefaultMetricsListen,
		HealthListen:    DefaultHealthListen,
		ReadyListen:     DefaultReadyListen,
		ResolvConf:      DefaultResolvConf,
		StubResolvConf:  DefaultStubResolvConf,
		TTL:             DefaultTTL,
		UpstreamTimeout: DefaultUpstreamTimeout,
		CacheSize:       DefaultCacheSize,
		CacheMaxTTL:     DefaultCacheMaxTTL,
		CacheNegTTL:     DefaultCacheNegTTL,
		Lameduck:        DefaultLameduck,
	}
}

// withDefaults fills the empty fields that have a default.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Zone == "" {
		c.Zone = d.Zone
	}
	if c.Listen == "" {
		c.Listen = d.Listen
	}
	if c.ResolvConf == "" {
		c.ResolvConf = d.ResolvConf
	}
	if c.StubResolvConf == "" {
		c.StubResolvConf = d.StubResolvConf
	}
	if c.TTL == 0 {
		c.TTL = d.TTL
	}
	if c.UpstreamTimeout == 0 {
		c.UpstreamTimeout = d.UpstreamTimeout
	}
	if c.CacheSize == 0 {
		c.CacheSize = d.CacheSize
	}
	if c.CacheMaxTTL == 0 {
		c.CacheMaxTTL = d.CacheMaxTTL
	}
	if c.CacheNegTTL == 0 {
		c.CacheNegTTL = d.CacheNegTTL
	}
	c.Zone = strings.ToLower(strings.TrimSuffix(c.Zone, "."))
	return c
}

// Validate checks a configuration after defaults.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if _, ok := dns.IsDomainName(c.Zone); !ok || strings.Contains(c.Zone, "..") {
		errs = append(errs, fmt.Errorf("zone %q is not a domain name", c.Zone))
	}
	for _, l := range []struct{ name, addr string }{
		{"listen", c.Listen}, {"metrics listen", c.MetricsListen},
		{"health listen", c.HealthListen}, {"ready listen", c.ReadyListen},
	} {
		if l.addr == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(l.addr); err != nil {
			errs = append(errs, fmt.Errorf("%s address %q: %w", l.name, l.addr, err))
		}
	}
	for _, u := range c.Upstreams {
		if _, err := upstreamAddr(u); err != nil {
			errs = append(errs, err)
		}
	}
	if c.TTL < time.Second || c.TTL > 24*time.Hour {
		errs = append(errs, fmt.Errorf("ttl %s: must be between 1s and 24h", c.TTL))
	}
	if c.UpstreamTimeout < 0 || c.CacheMaxTTL < 0 || c.CacheNegTTL < 0 || c.Lameduck < 0 {
		errs = append(errs, errors.New("upstream timeout, cache TTLs and lameduck must not be negative"))
	}
	return errors.Join(errs...)
}

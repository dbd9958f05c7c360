package dns

import (
	"net/http"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metric names; label values are bounded (common query types, rcodes,
// two sources), so a hostile client cannot grow the series.
const (
	metricNamespace = "kite"
	metricSubsystem = "dns"

	sourceZone    = "zone"    // answered from the cluster zone
	sourceForward = "forward" // forwarded (or from the forward cache)
)

// metrics is one Server's collectors, in a registry of its own (no
// package-level state: two Servers in one test binary do not collide).
type metrics struct {
	reg           *prometheus.Registry
	requests      *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	cacheHits     prometheus.Counter
	cacheMisses   prometheus.Counter
	forwardErrors prometheus.Counter
	loops         prometheus.Counter
	fastAnswers   prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricNamespace, Subsystem: metricSubsystem, Name: "requests_total",
			Help: "DNS requests answered, by query type, response code and source (zone or forward).",
		}, []string{"type", "rcode", "source"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: metricNamespace, Subsystem: metricSubsystem, Name: "request_duration_seconds",
			Help:    "Time from a request's arrival to its answer being written, by source.",
			Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2},
		}, []string{"source"}),
		cacheHits: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: metricNamespace, Subsystem: metricSubsystem, Name: "cache_hits_total",
			Help: "Forwarded questions answered from the cache.",
		}),
		cacheMisses: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: metricNamespace, Subsystem: metricSubsystem, Name: "cache_misses_total",
			Help: "Forwarded questions not in the cache.",
		}),
		forwardErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: metricNamespace, Subsystem: metricSubsystem, Name: "forward_errors_total",
			Help: "Forwarded questions no upstream answered (the client got SERVFAIL).",
		}),
		loops: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: metricNamespace, Subsystem: metricSubsystem, Name: "upstream_loops_total",
			Help: "Upstreams dropped because our loop probe came back to us through them.",
		}),
		fastAnswers: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: metricNamespace, Subsystem: metricSubsystem, Name: "fast_answers_total",
			Help: "UDP queries answered from a packed zone answer without being unpacked (also counted in requests_total).",
		}),
	}
	m.reg.MustRegister(m.requests, m.duration, m.cacheHits, m.cacheMisses, m.forwardErrors, m.loops, m.fastAnswers,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// typeLabel keeps the type label's values to a known few.
func typeLabel(t uint16) string {
	switch t {
	case dns.TypeA, dns.TypeAAAA, dns.TypeSRV, dns.TypePTR, dns.TypeCNAME, dns.TypeTXT,
		dns.TypeSOA, dns.TypeNS, dns.TypeMX, dns.TypeANY, dns.TypeHTTPS:
		return dns.TypeToString[t]
	}
	return "other"
}

func rcodeLabel(rc int) string {
	if s, ok := dns.RcodeToString[rc]; ok {
		return s
	}
	return "other"
}

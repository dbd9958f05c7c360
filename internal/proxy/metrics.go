package proxy

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the proxy's Prometheus series; registered only when
// Config.Metrics is set, always updated (unregistered collectors are
// cheap).
type metrics struct {
	syncDuration       *prometheus.HistogramVec
	programmingLatency prometheus.Histogram
	syncFailures       prometheus.Counter
	objects            *prometheus.GaugeVec
	lastSync           prometheus.Gauge
	staleFlows         prometheus.Counter
}

const metricsNamespace = "kite_proxy"

func newMetrics(reg prometheus.Registerer, mode string) (*metrics, error) {
	constLabels := prometheus.Labels{"mode": mode}
	m := &metrics{
		syncDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: metricsNamespace, Name: "sync_duration_seconds",
			Help:        "Time to compute and apply one sync of the service rules.",
			ConstLabels: constLabels,
			Buckets:     prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"full"}),
		programmingLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: metricsNamespace, Name: "network_programming_duration_seconds",
			Help:        "Time from an EndpointSlice change (its last-change-trigger-time annotation) to the rules being in the kernel.",
			ConstLabels: constLabels,
			Buckets:     prometheus.ExponentialBuckets(0.001, 2, 16),
		}),
		syncFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "sync_failures_total",
			Help: "Syncs that failed (and were retried).", ConstLabels: constLabels,
		}),
		objects: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: metricsNamespace, Name: "rules",
			Help: "Objects of the last applied state, by kind (chains, rules, elements, service_ports).", ConstLabels: constLabels,
		}, []string{"kind"}),
		lastSync: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: metricsNamespace, Name: "last_sync_timestamp_seconds",
			Help: "When the rules were last applied successfully.", ConstLabels: constLabels,
		}),
		staleFlows: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "stale_udp_flows_deleted_total",
			Help: "UDP conntrack entries deleted because their endpoint went away.", ConstLabels: constLabels,
		}),
	}
	if reg == nil {
		return m, nil
	}
	var errs []error
	for _, c := range []prometheus.Collector{m.syncDuration, m.programmingLatency, m.syncFailures, m.objects, m.lastSync, m.staleFlows} {
		errs = append(errs, reg.Register(c))
	}
	return m, errors.Join(errs...)
}

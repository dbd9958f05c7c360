package bench

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkPortForward measures `kubectl port-forward pod/<pod> :PORT`
// (the compiled-in kubectl: client → kubectl → API server → the node's
// agent → the pod) against requests straight to the pod's IP (issue 5).
// Both clients run in the pod's node's network namespace (the lab's host
// cannot route to pod IPs), kubectl there too, so the only difference is
// the forward. Loads are interleaved over rounds.
func BenchmarkPortForward(b *testing.B) {
	l := newBenchLab(b, "bench-pf", 2)
	node := l.node(1)
	// A kuard pod for small requests, and busybox httpd (which closes every
	// connection) serving 64 MiB of zeros for throughput; both on node.
	l.apply(fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: kuard
spec:
  nodeName: %[1]s
  containers:
  - name: kuard
    image: %[2]s
    readinessProbe:
      httpGet: {path: /ready, port: 8080}
      periodSeconds: 1
`, node, benchImage) + bulkPod(node, pfBulkMiB))
	l.kubectl("", "wait", "--for=condition=Ready", "pod/kuard", "pod/bulk", "--timeout=60s")
	kuardIP := l.kubectl("", "get", "pod", "kuard", "-o", "jsonpath={.status.podIP}")
	bulkIP := l.kubectl("", "get", "pod", "bulk", "-o", "jsonpath={.status.podIP}")
	fwd := "http://127.0.0.1:" + l.portForward(node, "pod/kuard", "8080")
	fwdBulk := "http://127.0.0.1:" + l.portForward(node, "pod/bulk", "8080")
	direct, directBulk := "http://"+kuardIP+":8080", "http://"+bulkIP+":8080"

	kinds := []loadKind{
		{"1 client, keep-alive", false, 1, 4000},
		{"1 client, new connection each", true, 1, 1000},
		{"8 clients, keep-alive", false, 8, 8000},
	}
	plan := httpPlan{Rounds: 50, Max: 60 * time.Second, Loads: pairedLoads(kinds, "forward", fwd+"/healthy", "direct", direct+"/healthy")}
	res := runPlanIn(b, l.netns(node), plan)
	size := int64(pfBulkMiB) << 20
	bulk := runPlanIn(b, l.netns(node), httpPlan{Rounds: pfBulkRuns, Max: 60 * time.Second, Loads: []httpLoad{
		{Label: "forward: download", URL: fwdBulk + "/bulk", ReadyURL: fwdBulk + "/small", Clients: 1, Requests: pfBulkRuns, Size: size, Timeout: 30 * time.Second},
		{Label: "direct: download", URL: directBulk + "/bulk", ReadyURL: directBulk + "/small", Clients: 1, Requests: pfBulkRuns, Size: size, Timeout: 30 * time.Second},
	}})

	pairs, labels := resultPairs(kinds, res)
	t := compareTable(fmt.Sprintf("kubectl port-forward vs straight to the pod IP, GET kuard /healthy from node %s (%d rounds interleaved)", node, plan.Rounds),
		"forward", "direct", pairs, labels)
	f, d := bulk[0], bulk[1]
	t.add(fmt.Sprintf("download %d MiB (%d + %d; MiB/s)", pfBulkMiB, len(f.Lat), len(d.Lat)),
		fmtMS(f.Lat.p50()), fmtMS(f.Lat.max()), fmt.Sprintf("%.0f", f.mibps()),
		fmtMS(d.Lat.p50()), fmtMS(d.Lat.max()), fmt.Sprintf("%.0f", d.mibps()),
		ratio(f.mibps(), d.mibps()), "-", ratio(ms(f.Lat.p50()), ms(d.Lat.p50())))
	t.note("forward: client → 127.0.0.1 (kubectl port-forward in the node's namespace) → API server on %s → agent on %s → pod.", l.node(0), node)
	t.note("direct: the same Go client to the pod IP from the same node namespace.")
	t.note("download row: busybox httpd, a new connection per download; p99 column: the slowest of %d; rate: MiB/s, ratio of the totals.", pfBulkRuns)
	t.print()
	checkResults(b, res)
	checkResults(b, bulk)
	b.ReportMetric(rateRatio(pairs[0][0], pairs[0][1]), "fwd/direct-keepalive-rate")
	b.ReportMetric(rateRatio(pairs[1][0], pairs[1][1]), "fwd/direct-newconn-rate")
	b.ReportMetric(f.mibps(), "fwd-MiB/s")
}

const (
	pfBulkMiB  = 64
	pfBulkRuns = 3
)

package bench

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkClusterIP measures requests through a ClusterIP (the node's
// proxy, nftables: DNAT to the one endpoint) against requests straight to
// that endpoint's pod IP (issue 7), from inside a node — both the pod's own
// node and the other one — interleaved over rounds. The Service has a single
// endpoint, so both sides reach the same pod and only the proxy differs.
func BenchmarkClusterIP(b *testing.B) {
	l := newBenchLab(b, "bench-cip", 2)
	podNode := l.node(1)
	l.apply(fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: kuard
  labels: {app: kuard-one}
spec:
  nodeName: %[1]s
  containers:
  - name: kuard
    image: %[2]s
    readinessProbe:
      httpGet: {path: /ready, port: 8080}
      periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata:
  name: kuard
spec:
  selector: {app: kuard-one}
  ports:
  - {port: 80, targetPort: 8080}
---
apiVersion: v1
kind: Service
metadata:
  name: bulk
spec:
  selector: {app: bulk}
  ports:
  - {port: 80, targetPort: 8080}
`, podNode, benchImage) + bulkPod(podNode, cipBulkMiB))
	l.kubectl("", "wait", "--for=condition=Ready", "pod/kuard", "pod/bulk", "--timeout=60s")
	podIP := l.kubectl("", "get", "pod", "kuard", "-o", "jsonpath={.status.podIP}")
	clusterIP := l.kubectl("", "get", "svc", "kuard", "-o", "jsonpath={.spec.clusterIP}")
	svcURL, podURL := "http://"+clusterIP+"/healthy", "http://"+podIP+":8080/healthy"

	kinds := []struct {
		label    string
		newConn  bool
		clients  int
		requests int
	}{
		{"1 client, keep-alive", false, 1, 20000},
		{"1 client, new connection each", true, 1, 6000},
		{"8 clients, keep-alive", false, 8, 30000},
	}
	var metrics []float64
	var tables []*table
	for _, from := range []struct{ node, where string }{{l.node(0), "the other node"}, {podNode, "the pod's node"}} {
		plan := httpPlan{Rounds: 100, Max: 60 * time.Second}
		for _, k := range kinds {
			for _, side := range []struct{ name, url string }{{"ClusterIP", svcURL}, {"pod IP", podURL}} {
				plan.Loads = append(plan.Loads, httpLoad{Label: side.name + ": " + k.label + " from " + from.node, URL: side.url,
					NewConn: k.newConn, Clients: k.clients, Requests: k.requests, Timeout: 10 * time.Second})
			}
		}
		res := runPlanIn(b, l.netns(from.node), plan)
		checkResults(b, res)
		var pairs [][2]httpResult
		var labels []string
		for i, k := range kinds {
			pairs = append(pairs, [2]httpResult{res[2*i], res[2*i+1]})
			labels = append(labels, k.label)
			metrics = append(metrics, rateRatio(res[2*i], res[2*i+1]))
		}
		t := compareTable(fmt.Sprintf("ClusterIP vs straight to the pod IP, GET kuard /healthy from %s, %s (%d rounds interleaved)", from.node, from.where, plan.Rounds),
			"ClusterIP", "pod IP", pairs, labels)
		tables = append(tables, t)
	}
	// Throughput: 64 MiB downloads from the other node, alternating.
	bulkPodIP := l.kubectl("", "get", "pod", "bulk", "-o", "jsonpath={.status.podIP}")
	bulkSvcIP := l.kubectl("", "get", "svc", "bulk", "-o", "jsonpath={.spec.clusterIP}")
	size := int64(cipBulkMiB) << 20
	bulk := runPlanIn(b, l.netns(l.node(0)), httpPlan{Rounds: cipBulkRuns, Max: 60 * time.Second, Loads: []httpLoad{
		{Label: "ClusterIP: download", URL: "http://" + bulkSvcIP + "/bulk", ReadyURL: "http://" + bulkSvcIP + "/small", Clients: 1, Requests: cipBulkRuns, Size: size, Timeout: 30 * time.Second},
		{Label: "pod IP: download", URL: "http://" + bulkPodIP + ":8080/bulk", ReadyURL: "http://" + bulkPodIP + ":8080/small", Clients: 1, Requests: cipBulkRuns, Size: size, Timeout: 30 * time.Second},
	}})
	checkResults(b, bulk)
	c, d := bulk[0], bulk[1]
	tables[0].add(fmt.Sprintf("download %d MiB (%d + %d; MiB/s)", cipBulkMiB, len(c.Lat), len(d.Lat)),
		fmtMS(c.Lat.p50()), fmtMS(c.Lat.max()), fmt.Sprintf("%.0f", c.mibps()),
		fmtMS(d.Lat.p50()), fmtMS(d.Lat.max()), fmt.Sprintf("%.0f", d.mibps()),
		ratio(c.mibps(), d.mibps()), "-", ratio(ms(c.Lat.p50()), ms(d.Lat.p50())))
	tables[0].note("download row: busybox httpd behind Service bulk (%s → %s:8080), a new connection per download; p99 column: the slowest of %d; rate: MiB/s, ratio of the totals.", bulkSvcIP, bulkPodIP, cipBulkRuns)
	tables[len(tables)-1].note("ClusterIP %s:80 → DNAT (nftables, kite agent's proxy) → the Service's one endpoint %s:8080 on %s; pod IP: that endpoint straight.", clusterIP, podIP, podNode)
	tables[len(tables)-1].note("issue 7 asks ClusterIP/pod IP ≥ 0.95 (rate and throughput). The Go client runs in the node's namespace (this test binary under nsenter).")
	for _, t := range tables {
		t.print()
	}
	b.ReportMetric(metrics[0], "cip/pod-keepalive-rate-other-node")
	b.ReportMetric(metrics[1], "cip/pod-newconn-rate-other-node")
	b.ReportMetric(metrics[3], "cip/pod-keepalive-rate-same-node")
	b.ReportMetric(metrics[4], "cip/pod-newconn-rate-same-node")
	b.ReportMetric(c.mibps()/d.mibps(), "cip/pod-throughput")
}

const (
	cipBulkMiB  = 64
	cipBulkRuns = 30
)

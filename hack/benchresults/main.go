// Command benchresults turns the output of `go test -bench` over kite's
// benchmarks (on stdin) into bench/RESULTS.md: the date, one table of every
// goal the issues set against the figure this run measured, then every table
// and figure the benchmarks printed — each with the machine it ran on —
// without the components' log lines.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// logLine matches klog output (I1125 23:58:53.830098 …) and Go test noise.
var logLine = regexp.MustCompile(`^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+ |^=== RUN|^--- (PASS|SKIP)`)

// resultLine is a benchmark's result: its name with the -GOMAXPROCS
// suffix, the iteration count, then value-unit pairs.
var resultLine = regexp.MustCompile(`^(Benchmark\S+?)(-\d+)?\s+\d+\s+(.*)$`)

func main() {
	elapsed := flag.Duration("elapsed", 0, "how long the whole benchmark run took (0: not reported)")
	flag.Parse()

	var body strings.Builder
	figures := map[string]map[string]float64{} // benchmark → unit → value
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if logLine.MatchString(line) {
			continue
		}
		body.WriteString(line + "\n")
		if m := resultLine.FindStringSubmatch(line); m != nil {
			figures[m[1]] = parseFigures(m[3])
		}
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintln(os.Stderr, "benchresults:", err)
		os.Exit(1)
	}
	fmt.Printf(`# kite benchmark results

Written by `+"`make bench`"+` on %s. Every benchmark prints the machine it ran
on, absolute figures, and ratios measured side by side in the same run;
where a benchmark repeats a measurement it prints the median with min–max.
Traffic stays inside network namespaces the benchmarks make.

## The issues' goals, and this run's figures

%s
## Everything the benchmarks printed

`+"```"+`
%s`+"```"+`
`, time.Now().UTC().Format("2006-01-02 15:04 UTC"), goalTable(figures, *elapsed), body.String())
}

// parseFigures reads "value unit" pairs separated by whitespace.
func parseFigures(s string) map[string]float64 {
	f := strings.Fields(s)
	out := map[string]float64{}
	for i := 0; i+1 < len(f); i += 2 {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			continue
		}
		out[f[i+1]] = v
	}
	return out
}

// goal is one figure an issue asks for. A goal with no bound is a figure
// to report (a comparison point), not a pass/fail line.
type goal struct {
	issue  int
	what   string
	bench  string // benchmark name without the -GOMAXPROCS suffix
	unit   string // the unit the benchmark reports it in
	atMost bool   // the goal is an upper bound (else a lower bound)
	bound  float64
	shown  string // display unit
	goal   string // the goal as the issue states it
	ref    string // what the field measures, for comparison
}

// mb is a decimal megabyte in MiB: the issues state memory goals in MB.
const mb = 1e6 / (1 << 20)

var goals = []goal{
	{issue: 2, what: "kite server start → /readyz, fresh state dir (median)", bench: "BenchmarkStartup/cold", unit: "median-ms", atMost: true, bound: 1000, shown: "ms", goal: "≤ 1 s"},
	{issue: 2, what: "kite server start → /readyz over 4,000 objects", bench: "BenchmarkAPI/restart-with-data", unit: "ready-ms", atMost: true, bound: 1000, shown: "ms", goal: "≤ 1 s"},
	{issue: 2, what: "kite server idle RSS", bench: "BenchmarkAPI/rss/after-start", unit: "rss-MiB", atMost: true, bound: 100 * mb, shown: "MiB", goal: "≤ 100 MB"},
	{issue: 3, what: "pod Ready change → EndpointSlice updated, p99", bench: "BenchmarkReadyToSlice", unit: "p99-ms", atMost: true, bound: 50, shown: "ms", goal: "≤ 50 ms"},
	{issue: 3, what: "EndpointSlice reconcile of 1,000 Services × 10 pods", bench: "BenchmarkReconcile1000Services", unit: "reconcile-s", shown: "s", goal: "report"},
	{issue: 4, what: "pod create → Ready, kuard, 50 pods on one node, p99", bench: "BenchmarkPodCreateToReady", unit: "p99-ms", atMost: true, bound: 1000, shown: "ms", goal: "≤ 1 s"},
	{issue: 4, what: "kite agent idle RSS (median of the 3-node lab's agents)", bench: "BenchmarkLab", unit: "agent-rss-MiB", shown: "MiB", goal: "report"},
	{issue: 5, what: "port-forward / direct request rate, keep-alive", bench: "BenchmarkPortForward", unit: "fwd/direct-keepalive-rate", shown: "×", goal: "report"},
	{issue: 6, what: "kite up --nodes 3 → every node Ready (median)", bench: "BenchmarkLab", unit: "nodes-ready-median-ms", atMost: true, bound: 2000, shown: "ms", goal: "≤ 2 s (aim 1 s)", ref: "kind, minikube: need Docker or a VM (not on this machine)"},
	{issue: 6, what: "kite down --purge (median)", bench: "BenchmarkLab", unit: "down-median-ms", atMost: true, bound: 1000, shown: "ms", goal: "≤ 1 s"},
	{issue: 6, what: "idle 3-node lab, RSS of every kite process summed", bench: "BenchmarkLab", unit: "lab-rss-MiB", atMost: true, bound: 250 * mb, shown: "MiB", goal: "≤ 250 MB", ref: "k3s server + 1 agent: 1,428 MB (docs.k3s.io)"},
	{issue: 6, what: "idle 3-node lab, PSS summed (shared binary counted once)", bench: "BenchmarkLab", unit: "lab-pss-MiB", atMost: true, bound: 250 * mb, shown: "MiB", goal: "≤ 250 MB"},
	{issue: 7, what: "proxy full sync, 10,000 Services × 10 endpoints", bench: "BenchmarkProxy", unit: "sync-10k-ms", atMost: true, bound: 1000, shown: "ms", goal: "≤ 1 s"},
	{issue: 7, what: "proxy, one endpoint change at 10,000 Services", bench: "BenchmarkProxy", unit: "change-10k-ms", atMost: true, bound: 10, shown: "ms", goal: "≤ 10 ms"},
	{issue: 7, what: "first packet, nftables, 30,000 / 10 Services (p50)", bench: "BenchmarkProxyFirstPacket", unit: "first-packet-30k/10", atMost: true, bound: 1.1, shown: "×", goal: "≤ 1.1", ref: "kube-proxy iptables grows O(n) (kubernetes.io blog, 2025-02-28)"},
	{issue: 7, what: "first packet, iptables-nft (same layout), 10,000 / 10 Services (p50)", bench: "BenchmarkProxyFirstPacket", unit: "ipt-first-packet-10k/10", shown: "×", goal: "report"},
	{issue: 7, what: "first packet, iptables-legacy (same layout), 30,000 / 10 Services (p50)", bench: "BenchmarkProxyFirstPacket", unit: "ipt-legacy-first-packet-30k/10", shown: "×", goal: "report", ref: "kube-proxy iptables at 30,000 Services: p50 0.27 ms (issue 7)"},
	{issue: 7, what: "first packet at 30,000 Services, p50: nftables (kite)", bench: "BenchmarkProxyFirstPacket", unit: "first-packet-30k-µs", shown: "µs", goal: "report"},
	{issue: 7, what: "first packet at 30,000 Services, p50: iptables-legacy, same layout", bench: "BenchmarkProxyFirstPacket", unit: "ipt-legacy-first-packet-30k-µs", shown: "µs", goal: "report"},
	{issue: 7, what: "network programming latency under churn of 1,000 Services, p99", bench: "BenchmarkProxyChurn", unit: "p99-ms", atMost: true, bound: 100, shown: "ms", goal: "≤ 100 ms", ref: "kube-proxy scale job: p99 6.8 s"},
	{issue: 7, what: "ClusterIP / pod IP request rate, keep-alive, other node", bench: "BenchmarkClusterIP", unit: "cip/pod-keepalive-rate-other-node", bound: 0.95, shown: "×", goal: "≥ 0.95"},
	{issue: 7, what: "ClusterIP / pod IP request rate, new connections, other node", bench: "BenchmarkClusterIP", unit: "cip/pod-newconn-rate-other-node", bound: 0.95, shown: "×", goal: "≥ 0.95"},
	{issue: 7, what: "ClusterIP / pod IP throughput, 64 MiB downloads, other node", bench: "BenchmarkClusterIP", unit: "cip/pod-throughput", bound: 0.95, shown: "×", goal: "≥ 0.95"},
	{issue: 8, what: "one kite dns instance in the lab, cluster names, QPS (load generator on the same 2 cores)", bench: "BenchmarkDNSLab", unit: "one-pod-qps", bound: 50000, shown: "QPS", goal: "≥ 50,000", ref: "CoreDNS, 1 instance, n1-standard-2, client elsewhere: 33,669 (coredns/deployment Scaling_CoreDNS.md)"},
	{issue: 8, what: "one kite dns instance, cluster names, p99", bench: "BenchmarkDNSLab", unit: "one-pod-p99-µs", atMost: true, bound: 2000, shown: "µs", goal: "≤ 2 ms"},
	{issue: 8, what: "kube-dns Service (2 pods through the proxy), cluster names, QPS", bench: "BenchmarkDNSLab", unit: "cluster-qps", shown: "QPS", goal: "report"},
	{issue: 8, what: "search-path walk through kube-dns, a new socket per query, queries/s", bench: "BenchmarkDNSLab", unit: "walk-qps", shown: "QPS", goal: "report"},
	{issue: 9, what: "LoadBalancer IP / NodePort request rate, keep-alive", bench: "BenchmarkLoadBalancer", unit: "lb/nodeport-keepalive-rate", bound: 0.9, shown: "×", goal: "≥ 0.9"},
	{issue: 9, what: "LoadBalancer IP / NodePort request rate, new connections", bench: "BenchmarkLoadBalancer", unit: "lb/nodeport-newconn-rate", bound: 0.9, shown: "×", goal: "≥ 0.9"},
	{issue: 9, what: "Service create → first answer through its LB IP (median)", bench: "BenchmarkLoadBalancer", unit: "create-to-first-ms", shown: "ms", goal: "report"},
}

func goalTable(figures map[string]map[string]float64, elapsed time.Duration) string {
	var b strings.Builder
	b.WriteString("| issue | what | goal | this run | |\n| --- | --- | --- | --- | --- |\n")
	for _, g := range goals {
		measured, verdict := "not measured in this run", "—"
		if v, ok := figures[g.bench][g.unit]; ok {
			measured = format(v, g.shown)
			switch {
			case g.bound == 0:
				verdict = ""
			case g.atMost && v <= g.bound, !g.atMost && v >= g.bound:
				verdict = "met"
			default:
				verdict = "**missed**"
			}
		}
		what := g.what
		if g.ref != "" {
			what += " — for comparison: " + g.ref
		}
		fmt.Fprintf(&b, "| %d | %s | %s | %s | %s |\n", g.issue, what, g.goal, measured, verdict)
	}
	if elapsed > 0 {
		verdict := "met"
		if elapsed > 15*time.Minute {
			verdict = "**missed**"
		}
		fmt.Fprintf(&b, "| 10 | the whole `make bench` run | < 15 min | %s | %s |\n", elapsed.Round(time.Second), verdict)
	}
	b.WriteString("\nGoals in MB are compared in MiB (100 MB = 95.4 MiB). A figure from one run on a shared 2-core machine; the tables below give each one's spread.\n")
	return b.String()
}

func format(v float64, unit string) string {
	switch unit {
	case "×":
		return fmt.Sprintf("%.2f×", v)
	case "QPS":
		return fmt.Sprintf("%.0f QPS", v)
	case "s":
		return fmt.Sprintf("%.2f s", v)
	}
	if v >= 100 {
		return fmt.Sprintf("%.0f %s", v, unit)
	}
	return fmt.Sprintf("%.3g %s", v, unit)
}

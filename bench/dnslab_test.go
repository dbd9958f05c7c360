package bench

import (
	"cmp"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// BenchmarkDNSLab measures cluster DNS as pods use it (issue 8): a load
// generator inside a node's network namespace asks kube-dns (10.96.0.10,
// through the node's proxy to the two kite-dns pods) for a cluster name
// and for a name that walks the search path (three NXDOMAINs of the
// cluster's domains before the absolute name), with a fixed number of
// concurrent clients for a fixed time. It prints QPS and p50/p99.
//
// The cluster name is asked two ways: each client keeping one UDP socket
// (as dnsperf does, the tool behind CoreDNS's published QPS — this is the
// server's rate, the goal's figure), and with a new socket for every query
// (as a libc resolver in a pod does: every query is then a new conntrack
// entry through the proxy's DNAT, so it measures the node's path too).
func BenchmarkDNSLab(b *testing.B) {
	l := newBenchLab(b, "bench-dns", 2)
	l.kubectl("", "create", "service", "clusterip", "kuard", "--tcp=80:8080")
	// One instance, as the goal is stated: the first kite-dns
	// pod straight at its pod IP (kube-dns spreads over both).
	one := waitValue(b, "running kite-dns pod with an IP", func() string {
		return l.kubectl("", "-n", "kube-system", "get", "pods", "-l", "k8s-app=kube-dns",
			"--field-selector=status.phase=Running", "-o", "jsonpath={.items[0].status.podIP}")
	})
	plan := dnsPlan{Server: "10.96.0.10:53", Clients: 8, For: 3 * time.Second, Loads: []dnsLoad{
		{Label: "cluster name, one kite-dns pod", Names: []string{"kuard.default.svc.cluster.local."}, KeepSocket: true, Server: one + ":53"},
		{Label: "cluster name", Names: []string{"kuard.default.svc.cluster.local."}, KeepSocket: true},
		{Label: "cluster name, new socket each", Names: []string{"kuard.default.svc.cluster.local."}},
		{Label: "search-path walk, new socket each", Names: []string{"nothere.default.svc.cluster.local.", "nothere.svc.cluster.local.",
			"nothere.cluster.local.", "kuard.default.svc.cluster.local."}},
	}}
	res := runDNSPlanIn(b, l.netns(l.node(1)), plan)
	fmt.Printf("\ncluster DNS from inside a node (%d clients over UDP to kube-dns 10.96.0.10 — 2 kite-dns pods — or to one pod, %s per load)\n", plan.Clients, plan.For)
	fmt.Printf("  %-34s %12s %10s %10s %8s\n", "load", "queries/s", "p50", "p99", "failed")
	for _, r := range res {
		fmt.Printf("  %-34s %12.0f %10s %10s %8d\n", r.Label, r.QPS, r.P50.Round(time.Microsecond), r.P99.Round(time.Microsecond), r.Failed)
		if r.Failed > 0 {
			b.Errorf("%s: %d queries failed", r.Label, r.Failed)
		}
	}
	fmt.Println("  one socket per client, as dnsperf (CoreDNS's published 33,669 QPS on a 2-vCPU node had its client on another machine;")
	fmt.Println("  here the clients share the 2 cores); new socket each, as a pod's libc resolver: a conntrack entry and DNAT per query.")
	fmt.Println("  a search-path walk counts each of its four queries; its latency is the whole walk's")
	b.ReportMetric(res[0].QPS, "one-pod-qps")
	b.ReportMetric(float64(res[0].P99.Microseconds()), "one-pod-p99-µs")
	b.ReportMetric(res[1].QPS, "cluster-qps")
	b.ReportMetric(float64(res[1].P99.Microseconds()), "cluster-p99-µs")
	b.ReportMetric(res[3].QPS, "walk-qps")
	b.ReportMetric(float64(res[3].P99.Microseconds()), "walk-p99-µs")
}

type dnsPlan struct {
	Server  string
	Clients int
	For     time.Duration
	Loads   []dnsLoad
}

// dnsLoad is one kind of lookup: its names asked in order (a walk ends at
// the first answer, as a resolver's does), each client over one socket
// (KeepSocket) or a new socket per query.
type dnsLoad struct {
	Label      string
	Names      []string
	KeepSocket bool
	Server     string // "": the plan's
}

type dnsResult struct {
	Label    string
	QPS      float64
	P50, P99 time.Duration
	Failed   int
}

// envDNSPlan carries a dnsPlan to this test binary re-executed inside a
// node's network namespace (see envHTTPPlan).
const envDNSPlan = "KITE_BENCH_DNS_PLAN"

func init() { servePlan(envDNSPlan, runDNSPlan) }

func runDNSPlanIn(b *testing.B, netnsPin string, plan dnsPlan) []dnsResult {
	b.Helper()
	timeout := time.Duration(len(plan.Loads))*plan.For + labReadyTimeout + 10*time.Second
	return runPlanInNetns[dnsPlan, []dnsResult](b, netnsPin, envDNSPlan, plan, timeout)
}

// runDNSPlan waits (up to labReadyTimeout) for the first answer, then runs
// each load for plan.For with plan.Clients goroutines.
func runDNSPlan(plan dnsPlan) ([]dnsResult, error) {
	c := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
	ask := func(server, name string) (*dns.Msg, error) {
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeA)
		r, _, err := c.Exchange(m, server)
		return r, err
	}
	ready := time.Now().Add(labReadyTimeout)
	for {
		r, err := ask(plan.Server, plan.Loads[0].Names[0])
		if err == nil && len(r.Answer) > 0 {
			break
		}
		if time.Now().After(ready) {
			return nil, fmt.Errorf("no answer from %s: %v", plan.Server, err)
		}
		time.Sleep(100 * time.Millisecond) // bounded by ready; the pods may still be starting
	}
	var out []dnsResult
	for _, ld := range plan.Loads {
		server := cmp.Or(ld.Server, plan.Server)
		var mu sync.Mutex
		var lat []time.Duration
		queries, failed := 0, 0
		end := time.Now().Add(plan.For)
		var wg sync.WaitGroup
		for range plan.Clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var mine []time.Duration
				q, f := 0, 0
				exchange := func(name string) (*dns.Msg, error) { return ask(server, name) }
				if ld.KeepSocket {
					conn, err := c.Dial(server)
					if err != nil {
						mu.Lock()
						failed++
						mu.Unlock()
						return
					}
					defer conn.Close()
					exchange = func(name string) (*dns.Msg, error) {
						m := new(dns.Msg)
						m.SetQuestion(name, dns.TypeA)
						r, _, err := c.ExchangeWithConn(m, conn)
						return r, err
					}
				}
				for time.Now().Before(end) {
					start := time.Now()
					for i, name := range ld.Names {
						q++
						r, err := exchange(name)
						if err != nil || r == nil {
							f++
							break
						}
						last := i == len(ld.Names)-1
						if last && len(r.Answer) == 0 || !last && r.Rcode != dns.RcodeNameError {
							f++
							break
						}
					}
					mine = append(mine, time.Since(start))
				}
				mu.Lock()
				lat = append(lat, mine...)
				queries += q
				failed += f
				mu.Unlock()
			}()
		}
		wg.Wait()
		slices.Sort(lat)
		r := dnsResult{Label: ld.Label, QPS: float64(queries) / plan.For.Seconds(), Failed: failed}
		if len(lat) > 0 {
			r.P50, r.P99 = lat[len(lat)/2], lat[len(lat)*99/100]
		}
		out = append(out, r)
	}
	return out, nil
}

package bench

// Shared by the lab network benchmarks (BenchmarkPortForward,
// BenchmarkLoadBalancer, BenchmarkClusterIP): a `kite up` cluster in the
// benchmark's private namespace, kubectl against it, and HTTP loads run
// either in this process (the lab's host) or inside a node's network
// namespace by this test binary re-executed under nsenter.
//
// Conventions: each benchmark makes its own 2-node cluster, named so that
// its node names (and so the container cgroups /kite/<node>, which are not
// namespaced) differ from the e2e tests' "kite" clusters that may run at
// the same time on the machine. The underlay is kite up's default, the
// first free 172.30.N.0/24 of the private namespace; LoadBalancer addresses
// come from its .200-.249.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"kite/internal/testutil"
)

const (
	// labKubectlTimeout bounds one kubectl command.
	labKubectlTimeout = 60 * time.Second
	// labReadyTimeout bounds a pod, rollout or first answer.
	labReadyTimeout = 60 * time.Second
	// benchImage is kite's built-in kuard-compatible image (no registry).
	benchImage = "gcr.io/kuar-demo/kuard-amd64:1"
)

var labNetnsOnce sync.Once

// benchLab is a running `kite up` cluster.
type benchLab struct {
	b                            *testing.B
	bin, name, state, home, kcfg string
}

// newBenchLab is the start of every lab benchmark: a single iteration
// (once), the machine printed, and a lab of nodes nodes named name from
// the binary under test.
func newBenchLab(b *testing.B, name string, nodes int) *benchLab {
	b.Helper()
	once(b)
	bin := kiteBinary(b)
	printMachine(b, bin)
	return startBenchLab(b, bin, name, nodes)
}

// startBenchLab runs `kite up --name name --nodes nodes` and registers
// `kite down --purge` as cleanup. The nodes' /run/netns pins land on a
// tmpfs private to this test binary's mount namespace.
func startBenchLab(b *testing.B, bin, name string, nodes int) *benchLab {
	b.Helper()
	if !testutil.InNetns() {
		b.Skip("needs the private namespace of testutil.MainInNetns")
	}
	labNetnsOnce.Do(func() {
		if err := os.MkdirAll("/run/netns", 0o755); err != nil {
			b.Fatal(err)
		}
		if err := unix.Mount("tmpfs", "/run/netns", "tmpfs", 0, "mode=0755"); err != nil {
			b.Fatalf("mount /run/netns: %v", err)
		}
	})
	home := b.TempDir()
	l := &benchLab{b: b, bin: bin, name: name, state: filepath.Join(b.TempDir(), "lab"), home: home,
		kcfg: filepath.Join(home, ".kube", "config")}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if out, err := l.kite(ctx, "down", "--name", name, "--state-dir", l.state, "--purge"); err != nil {
			b.Errorf("kite down (%s): %v\n%s", name, err, out)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	t0 := time.Now()
	if out, err := l.kite(ctx, "up", "--name", name, "--state-dir", l.state, "--nodes", itoa(nodes), "--wait", "60s"); err != nil {
		b.Fatalf("kite up: %v\n%s", err, out)
	}
	fmt.Printf("  (%s: kite up --nodes %d in %s)\n", name, nodes, time.Since(t0).Round(time.Millisecond))
	return l
}

func (l *benchLab) kite(ctx context.Context, args ...string) (string, error) {
	c := exec.CommandContext(ctx, l.bin, args...)
	c.Env = append(os.Environ(), "HOME="+l.home, "KUBECONFIG=")
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, &out
	err := c.Run()
	return out.String(), err
}

// node is the name of the cluster's i-th node (kind's names, as kite up).
func (l *benchLab) node(i int) string {
	switch i {
	case 0:
		return l.name + "-control-plane"
	case 1:
		return l.name + "-worker"
	}
	return fmt.Sprintf("%s-worker%d", l.name, i)
}

// netns is the pin of a node's (or the LB's) network namespace.
func (l *benchLab) netns(node string) string { return filepath.Join("/run/netns", node) }

func (l *benchLab) kubectlCmd(ctx context.Context, args ...string) *exec.Cmd {
	c := exec.CommandContext(ctx, l.bin, append([]string{"kubectl", "--namespace=default"}, args...)...)
	c.Env = append(os.Environ(), "HOME="+l.home, "KUBECONFIG="+l.kcfg)
	return c
}

// kubectl runs the compiled-in kubectl (stdin may be empty) and fails the
// benchmark if it does not succeed.
func (l *benchLab) kubectl(stdin string, args ...string) string {
	l.b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), labKubectlTimeout)
	defer cancel()
	c := l.kubectlCmd(ctx, args...)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	if stdin != "" {
		c.Stdin = strings.NewReader(stdin)
	}
	if err := c.Run(); err != nil {
		l.b.Fatalf("kubectl %s: %v\n%s%s", strings.Join(args, " "), err, out.String(), errb.String())
	}
	return strings.TrimSpace(out.String())
}

func (l *benchLab) apply(yaml string) { l.b.Helper(); l.kubectl(yaml, "apply", "-f", "-") }

// nodeIP is a node's InternalIP on the underlay.
func (l *benchLab) nodeIP(node string) string {
	return l.kubectl("", "get", "node", node, "-o", `jsonpath={.status.addresses[?(@.type=="InternalIP")].address}`)
}

// portForward runs `kubectl port-forward target :port` inside node's
// network namespace (so a client there reaches its 127.0.0.1 listener) and
// returns the local port; the forward ends with the benchmark.
func (l *benchLab) portForward(node, target, port string) string {
	l.b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	kc := l.kubectlCmd(ctx, "port-forward", target, ":"+port)
	c := exec.CommandContext(ctx, "nsenter", append([]string{"--net=" + l.netns(node), "--"}, kc.Args...)...)
	c.Env = kc.Env
	c.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := c.StdoutPipe()
	if err != nil {
		l.b.Fatal(err)
	}
	var stderr syncBuf
	c.Stderr = &stderr
	if err := c.Start(); err != nil {
		l.b.Fatal(err)
	}
	lines, exited := make(chan string, 16), make(chan struct{})
	go func() {
		defer close(exited)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
		c.Wait()
	}()
	l.b.Cleanup(func() {
		cancel()
		<-exited
	})
	re := regexp.MustCompile(`^Forwarding from 127\.0\.0\.1:(\d+) -> ` + port + `$`)
	deadline := time.After(labKubectlTimeout)
	for {
		select {
		case line := <-lines:
			if m := re.FindStringSubmatch(line); m != nil {
				return m[1]
			}
		case <-exited:
			l.b.Fatalf("kubectl port-forward %s ended: %s", target, stderr.String())
		case <-deadline:
			l.b.Fatalf("kubectl port-forward %s: no 'Forwarding from' line\n%s", target, stderr.String())
		}
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// ---- HTTP loads ----

// httpPlan is a set of loads run side by side: each round runs every
// load's share of requests in turn (every other round in reverse order),
// so a noisy neighbour on the shared machine hits them alike.
type httpPlan struct {
	Rounds int
	Loads  []httpLoad
	// Max bounds the whole plan; loads stop early (Truncated) beyond it.
	Max time.Duration
}

type httpLoad struct {
	Label string
	URL   string
	// NewConn: a new TCP connection per request; else keep-alive, one
	// connection per client.
	NewConn bool
	Clients int
	// Requests over all rounds.
	Requests int
	// Size, when set, is the body size every answer must have.
	Size int64
	// ReadyURL, when set, is what the untimed wait for a first answer
	// asks instead of URL (for large bodies).
	ReadyURL string
	// Timeout per request.
	Timeout time.Duration
}

type httpResult struct {
	Label     string
	Lat       samples
	Wall      time.Duration // timed part, summed over rounds
	Bytes     int64
	Errors    int
	FirstErr  string
	Truncated bool
	// Per round: answered requests and wall time.
	RoundN    []int
	RoundWall []time.Duration
}

// rate is requests per second of wall time.
func (r httpResult) rate() float64 {
	if r.Wall <= 0 {
		return 0
	}
	return float64(len(r.Lat)) / r.Wall.Seconds()
}

// mibps is body MiB per second of wall time.
func (r httpResult) mibps() float64 {
	if r.Wall <= 0 {
		return 0
	}
	return float64(r.Bytes) / (1 << 20) / r.Wall.Seconds()
}

// envHTTPPlan carries a JSON httpPlan to this test binary re-executed in a
// node's network namespace: it runs the plan, prints the []httpResult as
// JSON and exits, before any test machinery starts.
const envHTTPPlan = "KITE_BENCH_HTTP_PLAN"

func init() { servePlan(envHTTPPlan, runHTTPPlan) }

// servePlan: when env carries a JSON plan, this process is the test binary
// re-executed inside a node's network namespace — it runs the plan, prints
// the result as JSON and exits, before any test machinery starts.
func servePlan[P, R any](env string, run func(P) (R, error)) {
	p := os.Getenv(env)
	if p == "" {
		return
	}
	var plan P
	if err := json.Unmarshal([]byte(p), &plan); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", env, err)
		os.Exit(2)
	}
	res, err := run(plan)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	json.NewEncoder(os.Stdout).Encode(res)
	os.Exit(0)
}

// runPlanInNetns runs plan in the network namespace pinned at netnsPin:
// this test binary under nsenter, with the plan in env (see servePlan).
func runPlanInNetns[P, R any](b *testing.B, netnsPin, env string, plan P, timeout time.Duration) R {
	b.Helper()
	self, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	data, _ := json.Marshal(plan)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c := exec.CommandContext(ctx, "nsenter", "--net="+netnsPin, "--", self)
	c.Env = append(os.Environ(), env+"="+string(data))
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	if err := c.Run(); err != nil {
		b.Fatalf("client in %s: %v\n%s", netnsPin, err, errb.String())
	}
	var res R
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		b.Fatalf("client in %s: %v\n%s", netnsPin, err, out.String())
	}
	return res
}

// runPlanIn runs plan in the network namespace pinned at netnsPin, by this
// test binary under nsenter; "" runs it in this process.
func runPlanIn(b *testing.B, netnsPin string, plan httpPlan) []httpResult {
	b.Helper()
	if netnsPin == "" {
		res, err := runHTTPPlan(plan)
		if err != nil {
			b.Fatal(err)
		}
		return res
	}
	return runPlanInNetns[httpPlan, []httpResult](b, netnsPin, envHTTPPlan, plan, plan.Max+labReadyTimeout+10*time.Second)
}

// runHTTPPlan first waits (untimed, up to labReadyTimeout) for one
// successful request per load — rules and listeners may still be coming
// up — then runs the rounds.
func runHTTPPlan(plan httpPlan) ([]httpResult, error) {
	clients := make([]*http.Client, len(plan.Loads))
	res := make([]httpResult, len(plan.Loads))
	for i, ld := range plan.Loads {
		tr := &http.Transport{DisableCompression: true, DisableKeepAlives: ld.NewConn,
			MaxIdleConnsPerHost: ld.Clients, MaxConnsPerHost: ld.Clients}
		clients[i] = &http.Client{Transport: tr, Timeout: ld.Timeout}
		res[i].Label = ld.Label
		deadline := time.Now().Add(labReadyTimeout)
		probe := ld
		if ld.ReadyURL != "" {
			probe = httpLoad{URL: ld.ReadyURL}
		}
		for {
			_, err := fetch(clients[i], probe)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("%s: %s never answered: %w", ld.Label, ld.URL, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	end := time.Now().Add(plan.Max)
	for r := 0; r < plan.Rounds; r++ {
		// Every other round backwards (A B, then B A): neither side of a
		// pair always goes first.
		for j := range plan.Loads {
			i := j
			if r%2 == 1 {
				i = len(plan.Loads) - 1 - j
			}
			ld := plan.Loads[i]
			n := ld.Requests / plan.Rounds
			if r < ld.Requests%plan.Rounds {
				n++
			}
			runRound(clients[i], ld, n, end, &res[i])
		}
	}
	for _, c := range clients {
		c.CloseIdleConnections()
	}
	return res, nil
}

// runRound sends n requests of ld over ld.Clients goroutines and adds them
// to res.
func runRound(c *http.Client, ld httpLoad, n int, end time.Time, res *httpResult) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	next := make(chan struct{}, n)
	for range n {
		next <- struct{}{}
	}
	close(next)
	before := len(res.Lat)
	t0 := time.Now()
	for range ld.Clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range next {
				if time.Now().After(end) {
					mu.Lock()
					res.Truncated = true
					mu.Unlock()
					return
				}
				s := time.Now()
				nb, err := fetch(c, ld)
				d := time.Since(s)
				mu.Lock()
				if err != nil {
					res.Errors++
					if res.FirstErr == "" {
						res.FirstErr = err.Error()
					}
				} else {
					res.Lat = append(res.Lat, d)
					res.Bytes += nb
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	wall := time.Since(t0)
	res.Wall += wall
	res.RoundN = append(res.RoundN, len(res.Lat)-before)
	res.RoundWall = append(res.RoundWall, wall)
}

// roundRatios are a's rate over b's, round by round (a and b ran one after
// the other in each round), sorted.
func roundRatios(a, b httpResult) []float64 {
	var rs []float64
	for i := range min(len(a.RoundN), len(b.RoundN)) {
		ra := float64(a.RoundN[i]) / a.RoundWall[i].Seconds()
		rb := float64(b.RoundN[i]) / b.RoundWall[i].Seconds()
		if rb > 0 {
			rs = append(rs, ra/rb)
		}
	}
	slices.Sort(rs)
	return rs
}

// rateRatio is the median of the per-round rate ratios: a neighbour's
// burst of load on the shared machine spoils a round, not the figure.
func rateRatio(a, b httpResult) float64 {
	rs := roundRatios(a, b)
	if len(rs) == 0 {
		return 0
	}
	return rs[len(rs)/2]
}

// fetch GETs ld.URL and reads the whole body.
func fetch(c *http.Client, ld httpLoad) (int64, error) {
	resp, err := c.Get(ld.URL)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return n, err
	}
	if resp.StatusCode != http.StatusOK {
		return n, fmt.Errorf("GET %s: %s", ld.URL, resp.Status)
	}
	if ld.Size > 0 && n != ld.Size {
		return n, fmt.Errorf("GET %s: %d bytes, want %d", ld.URL, n, ld.Size)
	}
	return n, nil
}

// checkResults fails the benchmark (after its figures are printed) for
// failed or truncated loads: a failed request is a functional error.
func checkResults(b *testing.B, res []httpResult) {
	b.Helper()
	for _, r := range res {
		if r.Errors > 0 {
			b.Errorf("%s: %d requests failed, the first: %s", r.Label, r.Errors, r.FirstErr)
		}
		if r.Truncated {
			b.Errorf("%s: stopped at the time bound after %d requests", r.Label, len(r.Lat))
		}
	}
}

// loadKind is one way of sending requests that a comparison measures on
// both of its sides.
type loadKind struct {
	label    string
	newConn  bool
	clients  int
	requests int
}

// pairedLoads is, for every kind, a load against aURL then one against
// bURL, labelled "aName: kind" and "bName: kind".
func pairedLoads(kinds []loadKind, aName, aURL, bName, bURL string) []httpLoad {
	var loads []httpLoad
	for _, k := range kinds {
		for _, side := range []struct{ name, url string }{{aName, aURL}, {bName, bURL}} {
			loads = append(loads, httpLoad{Label: side.name + ": " + k.label, URL: side.url,
				NewConn: k.newConn, Clients: k.clients, Requests: k.requests, Timeout: 10 * time.Second})
		}
	}
	return loads
}

// resultPairs splits the results of pairedLoads' loads into {a, b} pairs,
// with the kinds' labels, as compareTable takes them.
func resultPairs(kinds []loadKind, res []httpResult) (pairs [][2]httpResult, labels []string) {
	for i, k := range kinds {
		pairs = append(pairs, [2]httpResult{res[2*i], res[2*i+1]})
		labels = append(labels, k.label)
	}
	return pairs, labels
}

// compareTable prints loads side by side, a (e.g. through kite) against b
// (the baseline), row by row: pairs[i] = {a, b} results.
func compareTable(title, aName, bName string, pairs [][2]httpResult, rowLabels []string) *table {
	t := &table{title: title, head: []string{"", aName + " p50", "p99", "req/s", bName + " p50", "p99", "req/s",
		"rate " + aName + "/" + bName, "rounds p25–p75", "p50 " + aName + "/" + bName}}
	for i, p := range pairs {
		a, z := p[0], p[1]
		rs := roundRatios(a, z)
		spread := "-"
		if len(rs) > 0 {
			spread = fmt.Sprintf("%.2f–%.2f", rs[len(rs)/4], rs[len(rs)*3/4])
		}
		t.add(fmt.Sprintf("%s (%d + %d)", rowLabels[i], len(a.Lat), len(z.Lat)),
			fmtMS(a.Lat.p50()), fmtMS(a.Lat.p99()), fmt.Sprintf("%.0f", a.rate()),
			fmtMS(z.Lat.p50()), fmtMS(z.Lat.p99()), fmt.Sprintf("%.0f", z.rate()),
			fmt.Sprintf("%.2f×", rateRatio(a, z)), spread, ratio(ms(a.Lat.p50()), ms(z.Lat.p50())))
	}
	t.note("req/s: answered requests / wall time over all rounds. rate %s/%s: the median of the rounds' ratios (each short round runs", aName, bName)
	t.note("both loads, one after the other, order alternating), so a neighbour's burst on the shared machine spoils rounds, not the figure.")
	return t
}

// bulkPod is the manifest of pod "bulk" (label app=bulk) on node: busybox
// httpd, which closes every connection, serving /bulk (mib MiB of zeros)
// and /small on 8080 — for throughput. It starts with "---".
func bulkPod(node string, mib int) string {
	return fmt.Sprintf(`---
apiVersion: v1
kind: Pod
metadata:
  name: bulk
  labels: {app: bulk}
spec:
  nodeName: %s
  containers:
  - name: httpd
    image: busybox
    command: ["sh", "-c", "mkdir -p /tmp/www && dd if=/dev/zero of=/tmp/www/bulk bs=1M count=%d 2>/dev/null && echo ok > /tmp/www/small && exec httpd -f -p 8080 -h /tmp/www"]
    readinessProbe:
      tcpSocket: {port: 8080}
      periodSeconds: 1
`, node, mib)
}

// waitValue polls get until it returns something, for up to
// labReadyTimeout.
func waitValue(b *testing.B, what string, get func() string) string {
	b.Helper()
	deadline := time.Now().Add(labReadyTimeout)
	for {
		if v := get(); v != "" {
			return v
		}
		if time.Now().After(deadline) {
			b.Fatalf("no %s after %s", what, labReadyTimeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

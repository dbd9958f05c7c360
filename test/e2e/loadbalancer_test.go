package e2e

// Issue 9's end-to-end tier beyond TestServices: a LoadBalancer pool that
// runs out (`kite up --lb-pool`), bad pools, and L2 mode (`kite up
// --lb-mode l2`: no kite lb, an elected node answers ARP for each
// address and fails over to another).

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// lbService is a LoadBalancer Service for kuard's pods on port.
func lbService(name string, port int) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Service
metadata:
  name: %s
spec:
  type: LoadBalancer
  selector:
    app: kuard
  ports:
  - port: %d
    targetPort: 8080
`, name, port)
}

// waitExternalIP waits up to 30 s for svc's EXTERNAL-IP and returns it.
func waitExternalIP(t *testing.T, k *kubectl, svc string) string {
	t.Helper()
	var ip string
	waitFor(t, 30*time.Second, "an EXTERNAL-IP for "+svc, func() error {
		if ip = k.run(t, "get", "svc", svc, "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}"); ip == "" {
			return fmt.Errorf("pending")
		}
		return nil
	})
	return ip
}

// curlExit runs curl against url from the test's namespace (the user's
// shell) and returns its exit code: 0 answered, 7 refused, 28 timed out.
func curlExit(url string) int {
	err := exec.Command("curl", "-s", "-f", "-o", "/dev/null", "-m", "2", url).Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// TestLoadBalancerPoolExhausted: with a pool of two addresses, two
// Services get them, a third stays <pending> with a Warning event saying
// the pool is exhausted; deleting a Service hands its address to the
// waiting one within seconds, and the deleted Service's port on it is
// closed.
func TestLoadBalancerPoolExhausted(t *testing.T) {
	const a1, a2 = "172.30.7.240", "172.30.7.241"
	l := startLab(t, 1, "--underlay", "172.30.7.0/24", "--lb-pool", a1+"-"+a2)
	k := l.kubectl(t, kubectlVersions(t)[0], "default")
	k.run(t, "create", "deployment", "kuard", "--image="+kuardImage1, "--replicas=2")
	wantMatch(t, k.run(t, "rollout", "status", "deployment/kuard", "--timeout="+rolloutTimeout), `successfully rolled out`)

	apply(t, k, lbService("first", 80))
	apply(t, k, lbService("second", 80))
	ingress := func(svc string) string {
		return k.run(t, "get", "svc", svc, "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}")
	}
	var first, second string
	waitFor(t, 30*time.Second, "addresses for both Services", func() error {
		if first, second = ingress("first"), ingress("second"); first == "" || second == "" {
			return fmt.Errorf("first %q, second %q", first, second)
		}
		return nil
	})
	if !(first == a1 && second == a2 || first == a2 && second == a1) {
		t.Errorf("first got %s, second %s; want the pool's two addresses %s and %s", first, second, a1, a2)
	}
	waitFor(t, 30*time.Second, "the first Service answering on its address", func() error {
		if rc := curlExit("http://" + first + "/healthy"); rc != 0 {
			return fmt.Errorf("curl exit %d", rc)
		}
		return nil
	})

	// The third waits: the pool is exhausted, and it says so.
	apply(t, k, lbService("third", 8081))
	waitFor(t, 30*time.Second, "a Warning event on the pending Service", func() error {
		out := k.run(t, "describe", "svc", "third")
		if !strings.Contains(out, "pool exhausted") {
			return fmt.Errorf("describe svc third:\n%s", out)
		}
		wantMatch(t, out, `(?m)^\s+Warning\s+AllocationFailed\s+.*lbipam-controller\s+.*no free IPv4 address in pool `+a1+`-`+a2+`: pool exhausted`)
		return nil
	})
	wantMatch(t, k.run(t, "get", "svc", "third"), `(?m)^third\s+LoadBalancer\s+\S+\s+<pending>\s+8081:\d+/TCP`)
	if ip := ingress("third"); ip != "" {
		t.Fatalf("the third Service got %s from a pool of two", ip)
	}

	// Deleting the first frees its address for the third.
	k.run(t, "delete", "svc", "first")
	deleted := time.Now()
	var third string
	waitFor(t, 30*time.Second, "the pending Service getting the freed address", func() error {
		if third = ingress("third"); third == "" {
			return fmt.Errorf("still pending")
		}
		return nil
	})
	took := time.Since(deleted)
	t.Logf("the pending Service got %s %s after the first was deleted (kubectl polling included)", third, took.Round(10*time.Millisecond))
	if third != first {
		t.Errorf("the third Service got %s, want the freed %s", third, first)
	}
	if took > 5*time.Second {
		t.Errorf("the freed address reached the pending Service after %s, want a few seconds", took.Round(10*time.Millisecond))
	}
	waitFor(t, 30*time.Second, "the third Service answering on the freed address", func() error {
		if rc := curlExit("http://" + third + ":8081/healthy"); rc != 0 {
			return fmt.Errorf("curl exit %d", rc)
		}
		return nil
	})
	// The deleted Service's port on that address is closed.
	waitFor(t, 30*time.Second, "the deleted Service's port refused", func() error {
		if rc := curlExit("http://" + first + "/healthy"); rc != 7 {
			return fmt.Errorf("curl exit %d, want 7 (connection refused)", rc)
		}
		return nil
	})
	if rc := curlExit("http://" + second + "/healthy"); rc != 0 {
		t.Errorf("the second Service stopped answering: curl exit %d", rc)
	}
}

// TestLoadBalancerBadPool: a pool that does not parse, lies off the
// underlay or holds a lab address gets one sentence and a non-zero exit
// from `kite up`, and nothing is made.
func TestLoadBalancerBadPool(t *testing.T) {
	bin := kiteBin(t)
	for _, tc := range []struct{ pool, want string }{
		{"172.30.8.300", `--lb-pool "172.30.8.300": pool entry "172.30.8.300": ParseAddr`},
		{"10.1.2.0/30", "--lb-pool 10.1.2.0/30: 10.1.2.0/30 is not on the underlay 172.30.8.0/24"},
		{"172.30.8.2-172.30.8.9", "--lb-pool 172.30.8.2-172.30.8.9 holds 172.30.8.2, node bad-control-plane's address"},
		{"172.30.8.250", "--lb-pool 172.30.8.250 holds 172.30.8.250, kite lb's address"},
	} {
		state := filepath.Join(t.TempDir(), "bad")
		home := t.TempDir()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		c := exec.CommandContext(ctx, bin, "up", "--name", "bad", "--state-dir", state, "--underlay", "172.30.8.0/24", "--lb-pool", tc.pool)
		c.Env = append(os.Environ(), "HOME="+home, "KUBECONFIG=")
		out, err := c.CombinedOutput()
		cancel()
		msg := strings.TrimSpace(string(out))
		if err == nil || !strings.HasPrefix(msg, "error: ") || !strings.Contains(msg, tc.want) || strings.Count(msg, "\n") > 0 {
			t.Errorf("kite up --lb-pool %s: %v, output %q; want a non-zero exit and one line containing %q", tc.pool, err, msg, tc.want)
		}
		t.Logf("--lb-pool %s: %s", tc.pool, msg)
		if _, err := os.Stat(state); !os.IsNotExist(err) {
			t.Errorf("--lb-pool %s: state dir made: %v", tc.pool, err)
		}
		if out, _ := exec.Command("ip", "-o", "link", "show").Output(); strings.Contains(string(out), "kite-bad") {
			t.Errorf("--lb-pool %s: a link was made:\n%s", tc.pool, out)
		}
		if ents, _ := os.ReadDir("/run/netns"); len(ents) > 0 {
			for _, e := range ents {
				if strings.HasPrefix(e.Name(), "bad-") {
					t.Errorf("--lb-pool %s: network namespace %s made", tc.pool, e.Name())
				}
			}
		}
	}
}

// l2FailoverBound is what TestLoadBalancerL2 allows from a node's death to
// requests flowing through another: the speakers' heartbeat lasts 2 s
// (kite agent --lb-lease-duration), re-election runs every 0.5 s, and the
// machine is shared and slow — internal/lb/l2/README.md states ≤ 2.5 s.
const l2FailoverBound = 3500 * time.Millisecond

// TestLoadBalancerL2: `kite up --lb-mode l2` runs no kite lb; for the
// Service's address one node answers ARP (the neighbour entry in the
// user's shell holds its MAC) and its proxy serves the requests. Its
// agent stopped, another node takes the address over with gratuitous ARPs
// (the neighbour entry moves; requests go on, and still with the old
// node's link then cut); its link cut, requests fail only until another
// node has taken over.
func TestLoadBalancerL2(t *testing.T) {
	l := startLab(t, 2, "--underlay", "172.30.6.0/24", "--lb-mode", "l2")
	if _, err := os.Stat("/run/netns/kite-lb"); err == nil {
		t.Errorf("L2 mode made kite lb's namespace")
	}
	k := l.kubectl(t, kubectlVersions(t)[0], "default")
	k.run(t, "create", "deployment", "kuard", "--image="+kuardImage1, "--replicas=4")
	wantMatch(t, k.run(t, "rollout", "status", "deployment/kuard", "--timeout="+rolloutTimeout), `successfully rolled out`)
	k.run(t, "expose", "deployment", "kuard", "--type=LoadBalancer", "--port=80", "--target-port=8080")
	ip := waitExternalIP(t, k, "kuard")
	if ip != "172.30.6.200" {
		t.Errorf("EXTERNAL-IP %s, want the pool's first address 172.30.6.200", ip)
	}
	url := "http://" + ip + "/healthy"
	waitFor(t, 30*time.Second, "the address answering", func() error {
		if rc := curlExit(url); rc != 0 {
			return fmt.Errorf("curl exit %d", rc)
		}
		return nil
	})
	failed := 0
	for range 100 {
		if curlExit(url) != 0 {
			failed++
		}
	}
	if failed > 0 {
		t.Errorf("%d of 100 requests to %s failed", failed, url)
	}

	macs := map[string]string{} // MAC → node
	for _, n := range []string{"kite-control-plane", "kite-worker"} {
		macs[strings.TrimSpace(l.nodeShell(t, n, "cat /sys/class/net/eth0/address"))] = n
	}
	owner := func() string {
		out, _ := exec.Command("ip", "neigh", "show", "to", ip).Output()
		f := strings.Fields(string(out))
		for i := range f {
			if f[i] == "lladdr" && i+1 < len(f) {
				return macs[f[i+1]]
			}
		}
		return ""
	}
	elected := owner()
	if elected == "" {
		t.Fatalf("the neighbour entry of %s holds no node's MAC (%v)", ip, macs)
	}
	t.Logf("%s is answered by %s", ip, elected)
	other := "kite-control-plane"
	if elected == other {
		other = "kite-worker"
	}

	// From here the Service keeps its traffic on the node it enters
	// (externalTrafficPolicy Local), so that a node serves while the
	// other is cut off: with Cluster, the cut node's pods, still ready
	// in the API, would get a share of the requests and lose them. Both
	// nodes have kuard pods, so both stay candidates.
	k.run(t, "patch", "svc", "kuard", "-p", `{"spec":{"externalTrafficPolicy":"Local"}}`)
	wantMatch(t, k.run(t, "get", "pods", "-l", "app=kuard", "-o", "wide"), `(?m)\skite-control-plane\s`, `(?m)\skite-worker\s`)
	waitFor(t, 30*time.Second, "the Local Service answered by "+elected, func() error {
		if o := owner(); o != elected {
			return fmt.Errorf("owner %q", o)
		}
		return curlFails(url)
	})

	// The elected node's agent stopped (SIGSTOP: the supervisor would
	// restart a killed one at once): its heartbeat stops, the other node
	// takes the address.
	pid := agentPID(t, l, elected)
	if err := unix.Kill(pid, unix.SIGSTOP); err != nil {
		t.Fatalf("stop agent %d: %v", pid, err)
	}
	stopped := time.Now()
	t.Cleanup(func() { unix.Kill(pid, unix.SIGCONT) })
	fails, last, moved := requestsUntil(url, stopped, 8*time.Second, func() bool { return owner() == other })
	t.Logf("agent of %s stopped: %s took %s over after %s; %d failed requests meanwhile", elected, other, ip, moved.Round(10*time.Millisecond), fails)
	if moved < 0 || moved > l2FailoverBound {
		t.Fatalf("the neighbour entry of %s moved to %s after %v, want within %s", ip, other, moved, l2FailoverBound)
	}
	if fails > 0 {
		t.Errorf("%d requests failed (the last %s after the stop), want none: the stopped node's kernel rules still serve", fails, last)
	}
	// Through the other node alone: the stopped node's link cut.
	veth := nodeVeth(t, l, elected)
	linkSet(t, veth, "down")
	for i := range 20 {
		if rc := curlExit(url); rc != 0 {
			t.Fatalf("request %d through %s with %s cut off: curl exit %d", i, other, elected, rc)
		}
	}
	linkSet(t, veth, "up")
	unix.Kill(pid, unix.SIGCONT)

	// The stopped node comes back and, ranked first for the address,
	// takes it back; then its link is cut: requests fail only until the
	// other node has taken over.
	waitFor(t, 30*time.Second, elected+" answering again", func() error {
		if o := owner(); o != elected {
			return fmt.Errorf("owner %q", o)
		}
		return curlFails(url)
	})
	linkSet(t, veth, "down")
	cut := time.Now()
	t.Cleanup(func() { exec.Command("ip", "link", "set", veth, "up").Run() })
	fails, last, moved = requestsUntil(url, cut, 8*time.Second, func() bool { return owner() == other })
	t.Logf("link of %s cut: %d failed requests, the last %s after the cut; %s took over after %s", elected, fails, last.Round(10*time.Millisecond), other, moved.Round(10*time.Millisecond))
	if moved < 0 || moved > l2FailoverBound {
		t.Errorf("after the cut the neighbour entry moved to %s after %v, want within %s", other, moved, l2FailoverBound)
	}
	if last > l2FailoverBound {
		t.Errorf("a request failed %s after the cut, want none after %s", last.Round(10*time.Millisecond), l2FailoverBound)
	}
	for range 20 {
		if err := curlFails(url); err != nil {
			t.Fatalf("after the take-over: %v", err)
		}
	}
}

// requestsUntil sends a request to url (0.5 s timeout) every 10 ms for
// up to limit after start, and goes on for 1 s after done() first holds
// (polled every 20 ms beside the requests). It returns the failures, when
// the last happened, and when done held first (-1 if never).
func requestsUntil(url string, start time.Time, limit time.Duration, done func() bool) (fails int, last, at time.Duration) {
	held := make(chan time.Duration, 1)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		poll := time.NewTicker(20 * time.Millisecond)
		defer poll.Stop()
		for time.Since(start) < limit {
			if done() {
				held <- time.Since(start)
				return
			}
			select {
			case <-stop:
				return
			case <-poll.C:
			}
		}
	}()
	at = -1
	c := &http.Client{Timeout: 500 * time.Millisecond, Transport: &http.Transport{DisableKeepAlives: true}}
	pace := time.NewTicker(10 * time.Millisecond)
	defer pace.Stop()
	for i := 0; i < 2000 && time.Since(start) < limit; i++ {
		<-pace.C
		if at < 0 {
			select {
			case at = <-held:
			default:
			}
		}
		if at >= 0 && time.Since(start) > at+time.Second {
			break
		}
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				err = fmt.Errorf("%s", resp.Status)
			}
		}
		if err != nil {
			fails++
			last = time.Since(start)
		}
	}
	return fails, last, at
}

func curlFails(url string) error {
	if rc := curlExit(url); rc != 0 {
		return fmt.Errorf("curl %s: exit %d", url, rc)
	}
	return nil
}

func linkSet(t *testing.T, link, state string) {
	t.Helper()
	if out, err := exec.Command("ip", "link", "set", link, state).CombinedOutput(); err != nil {
		t.Fatalf("ip link set %s %s: %v %s", link, state, err, out)
	}
}

package e2e

// Issue 9's end-to-end tier beyond TestServices: a LoadBalancer pool that
// runs out (`kite up --lb-pool`), bad pools, and L2 mode (`kite up
// --lb-mode l2`: no kite lb, an elected node answers ARP for each
// address and fails over to another).

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
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

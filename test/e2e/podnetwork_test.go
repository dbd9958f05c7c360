package e2e

// Issue 6's pod network, seen from inside pods now that exec works: a pod
// reaches a pod on another node and the server sees the client pod's own
// address (S6, no NAT between pods); every node reaches every pod (S7).
// Both pod networks: host-gw and VXLAN; the user's shell joins the pod
// network with --route-pods (S8).

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestPodNetwork(t *testing.T) {
	for _, mode := range []string{"host-gw", "vxlan"} {
		t.Run(mode, func(t *testing.T) { testPodNetwork(t, mode) })
	}
}

func testPodNetwork(t *testing.T, mode string) {
	l := startLab(t, 3, "--pod-network", mode, "--route-pods")
	k := l.kubectl(t, kubectlVersions(t)[0], "default")
	k.run(t, "create", "deployment", "kuard", "--image="+kuardImage1, "--replicas=6")
	wantMatch(t, k.run(t, "rollout", "status", "deployment/kuard", "--timeout="+rolloutTimeout), `successfully rolled out`)
	type pod struct{ name, ip, node string }
	var pods []pod
	for _, line := range strings.Split(strings.TrimSpace(k.run(t, "get", "pods", "-l", "app=kuard", "-o",
		`jsonpath={range .items[*]}{.metadata.name} {.status.podIP} {.spec.nodeName}{"\n"}{end}`)), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			t.Fatalf("pod line %q", line)
		}
		pods = append(pods, pod{f[0], f[1], f[2]})
	}
	nodes := map[string]bool{}
	for _, p := range pods {
		nodes[p.node] = true
	}
	if len(nodes) < 2 {
		t.Fatalf("pods on %d node(s), want them spread: %v", len(nodes), pods)
	}
	remoteIP := regexp.MustCompile(`"remoteIP": *"([^"]+)"`)
	t.Run("pod to a pod on another node keeps the client's address", func(t *testing.T) {
		checked := 0
		for _, a := range pods {
			for _, b := range pods {
				if a.node == b.node {
					continue
				}
				out := k.run(t, "exec", a.name, "--", "wget", "-q", "-O", "-", fmt.Sprintf("http://%s:8080/?format=json", b.ip))
				m := remoteIP.FindStringSubmatch(out)
				if m == nil || m[1] != a.ip {
					t.Errorf("%s (%s on %s) → %s (on %s): server saw %v, want %s", a.name, a.ip, a.node, b.ip, b.node, m, a.ip)
				}
				checked++
				break
			}
		}
		if checked == 0 {
			t.Error("no pair of pods on different nodes")
		}
	})
	t.Run("the user's shell reaches every pod (--route-pods)", func(t *testing.T) {
		for _, p := range pods {
			waitFor(t, 30*time.Second, "pod "+p.ip+" from the host", func() error {
				return exec.Command("curl", "-s", "-f", "-m", "3", "-o", "/dev/null", "http://"+p.ip+":8080/healthy").Run()
			})
		}
	})
	t.Run("kite status", func(t *testing.T) {
		out, err := l.kite(context.Background(), "status", "--state-dir", l.state)
		if err != nil {
			t.Fatalf("kite status: %v\n%s", err, out)
		}
		for _, re := range []string{`(?m)^kite-control-plane\s+172\.30\.\d+\.2\s+10\.244\.\d+\.0/24\s+True\s+server pid \d+\s+agent pid \d+`,
			`(?m)^kite-worker2\s+172\.30\.\d+\.4\s+10\.244\.\d+\.0/24\s+True\s+agent pid \d+`,
			`(?m)^kite-lb\s+172\.30\.\d+\.250\s+-\s+-\s+lb pid \d+`, `supervisor running \(pid \d+\)`, `pods +10\.244\.0\.0/16 \(` + mode + `\)`} {
			if !regexp.MustCompile(re).MatchString(out) {
				t.Errorf("kite status: no match for %s in:\n%s", re, out)
			}
		}
	})
	t.Run("every node reaches every pod", func(t *testing.T) {
		for _, node := range []string{"kite-control-plane", "kite-worker", "kite-worker2"} {
			var script strings.Builder
			for _, p := range pods {
				fmt.Fprintf(&script, "curl -s -m 3 -o /dev/null -w '%%{http_code} %s\\n' http://%s:8080/healthy; ", p.ip, p.ip)
			}
			out := l.nodeShell(t, node, script.String())
			if n := strings.Count(out, "200 "); n != len(pods) {
				t.Errorf("from %s: %d of %d pods answered:\n%s", node, n, len(pods), out)
			}
		}
	})
}

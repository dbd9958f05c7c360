package e2e

// Issue 7's end-to-end tier, first slice: Services through each node's
// proxy in a lab cluster, for both backends (S14–S18).

import (
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// serviceRequests is the number of requests whose spread over the
// endpoints is checked (S17: each of ten pods gets 5–15 %).
const serviceRequests = 1000

func TestServices(t *testing.T) {
	for _, mode := range []string{"nftables", "iptables"} {
		t.Run(mode, func(t *testing.T) { testServices(t, mode) })
	}
}

func testServices(t *testing.T, mode string) {
	l := startLab(t, 2, "--proxy-mode", mode)
	k := l.kubectl(t, kubectlVersions(t)[0], "default")
	k.run(t, "create", "deployment", "kuard", "--image="+kuardImage1, "--replicas=10")
	k.run(t, "expose", "deployment", "kuard", "--type=NodePort", "--port=80", "--target-port=8080")
	k.run(t, "run", "alone", "--image="+kuardImage1, "--labels=app=alone")
	k.run(t, "expose", "pod", "alone", "--port=80", "--target-port=8080")
	k.run(t, "create", "service", "clusterip", "empty", "--tcp=80:8080")
	wantMatch(t, k.run(t, "rollout", "status", "deployment/kuard", "--timeout="+rolloutTimeout), `successfully rolled out`)
	k.run(t, "wait", "--for=condition=Ready", "pod/alone", "--timeout=60s")
	clusterIP := k.run(t, "get", "svc", "kuard", "-o", "jsonpath={.spec.clusterIP}")
	nodePort := k.run(t, "get", "svc", "kuard", "-o", "jsonpath={.spec.ports[0].nodePort}")
	pods := strings.Fields(k.run(t, "get", "pods", "-l", "app=kuard", "-o", "jsonpath={.items[*].metadata.name}"))
	if len(pods) != 10 {
		t.Fatalf("kuard pods %v, want 10", pods)
	}
	// Every endpoint must be in the rules before counting.
	waitFor(t, 30*time.Second, "all ten endpoints answering", func() error {
		seen := spread(l.nodeShell(t, "kite-worker", requestLoop(clusterIP, "curl -s -m 2", 100)))
		if len(seen) < 10 {
			return fmt.Errorf("%d pods answered", len(seen))
		}
		return nil
	})

	checkSpread := func(t *testing.T, out string) {
		seen := spread(out)
		total := 0
		for _, n := range seen {
			total += n
		}
		if total != serviceRequests {
			t.Errorf("%d of %d requests answered", total, serviceRequests)
		}
		for _, p := range pods {
			if n := seen[p]; n < serviceRequests*5/100 || n > serviceRequests*15/100 {
				t.Errorf("pod %s got %d of %d requests, want 5–15 %%; all: %v", p, n, serviceRequests, seen)
			}
		}
	}
	t.Run("ClusterIP from a node spreads over all pods", func(t *testing.T) {
		checkSpread(t, l.nodeShell(t, "kite-worker", requestLoop(clusterIP, "curl -s -m 2", serviceRequests)))
	})
	t.Run("ClusterIP from a pod spreads over all pods", func(t *testing.T) {
		checkSpread(t, k.run(t, "exec", pods[0], "--", "sh", "-c", requestLoop(clusterIP, "wget -q -O -", serviceRequests)))
	})
	t.Run("NodePort on every node, from the host and on localhost", func(t *testing.T) {
		ips := strings.Fields(k.run(t, "get", "nodes", "-o", `jsonpath={.items[*].status.addresses[?(@.type=="InternalIP")].address}`))
		for _, ip := range ips {
			out, err := exec.Command("curl", "-s", "-m", "5", "http://"+ip+":"+nodePort+"/env/api").Output()
			if err != nil || !strings.Contains(string(out), `"HOSTNAME":"kuard-`) {
				t.Errorf("curl %s:%s from the host: %v %.200s", ip, nodePort, err, out)
			}
		}
		for _, node := range []string{"kite-control-plane", "kite-worker"} {
			if out := l.nodeShell(t, node, "curl -s -m 5 http://localhost:"+nodePort+"/env/api"); !strings.Contains(out, `"HOSTNAME":"kuard-`) {
				t.Errorf("curl localhost:%s on %s: %.200s", nodePort, node, out)
			}
		}
	})
	t.Run("a pod reaches itself through its Service (hairpin)", func(t *testing.T) {
		ip := k.run(t, "get", "svc", "alone", "-o", "jsonpath={.spec.clusterIP}")
		wantMatch(t, k.run(t, "exec", "alone", "--", "wget", "-q", "-O", "-", "http://"+ip+"/env/api"), `"HOSTNAME":"alone"`)
	})
	t.Run("a Service without endpoints refuses at once", func(t *testing.T) {
		ip := k.run(t, "get", "svc", "empty", "-o", "jsonpath={.spec.clusterIP}")
		out := l.nodeShell(t, "kite-worker", "curl -s -m 5 http://"+ip+"/; echo rc=$?")
		// 7: connection refused; a black hole would time out (28).
		if !strings.Contains(out, "rc=7") {
			t.Errorf("curl to a Service without endpoints: %q, want connection refused (rc=7)", out)
		}
	})
	t.Run("sessionAffinity ClientIP pins a client to one pod", func(t *testing.T) { stepAffinity(t, l, k) })
	t.Run("externalTrafficPolicy Local keeps the client's address", func(t *testing.T) { stepTrafficPolicy(t, l, k) })
	t.Run("a pod turned unready stops getting requests", func(t *testing.T) { stepReadiness(t, l, k) })
	t.Run("no request fails while the agent restarts", func(t *testing.T) { stepAgentRestart(t, l, clusterIP) })
	t.Run("LoadBalancer through kite lb", func(t *testing.T) { stepLoadBalancer(t, l, k) })
	t.Run("the proxy's metrics on the agent's /metrics", func(t *testing.T) {
		out := k.run(t, "get", "--raw", "/api/v1/nodes/kite-worker/proxy/metrics")
		wantMatch(t, out, `(?m)^kite_proxy_sync_duration_seconds_count(\{[^}]*\})? [1-9]`, `(?m)^kite_proxy_network_programming_duration_seconds_count`, `(?m)^kite_proxy_rules`)
	})
	if mode == "iptables" {
		t.Run("iptables-save has the seed's layout", func(t *testing.T) {
			out := l.nodeShell(t, "kite-worker", "iptables-save -t nat")
			for _, re := range []string{`(?m)^:KUBE-SERVICES `, `(?m)^:KUBE-NODEPORTS `, `(?m)^:KUBE-POSTROUTING `, `(?m)^:KUBE-MARK-MASQ `,
				`-A KUBE-SERVICES -d ` + regexp.QuoteMeta(clusterIP) + `/32 .*"default/kuard cluster IP".* -j KUBE-SVC-`,
				`-A KUBE-SVC-\S+ .*-m statistic --mode random --probability 0\.1000000000\d* -j KUBE-SEP-`,
				`-A KUBE-SVC-\S+ .*-m statistic --mode random --probability 0\.1111111\d* -j KUBE-SEP-`,
				`-A KUBE-SEP-\S+ .*-j DNAT --to-destination 10\.244\.`} {
				if !regexp.MustCompile(re).MatchString(out) {
					t.Errorf("iptables-save -t nat: no match for %s", re)
				}
			}
			if t.Failed() {
				t.Logf("iptables-save -t nat:\n%s", out)
			}
		})
	}
}

// apply creates objects from YAML on stdin.
func apply(t *testing.T, k *kubectl, yaml string) {
	t.Helper()
	if r := k.try(t, nil, yaml, "apply", "-f", "-"); r.err != nil {
		t.Fatalf("apply: %v\n%s\n%s", r.err, r.stderr, yaml)
	}
}

// stepAffinity: with sessionAffinity ClientIP, every request of one client
// reaches the same pod.
func stepAffinity(t *testing.T, l *lab, k *kubectl) {
	apply(t, k, `apiVersion: v1
kind: Service
metadata:
  name: sticky
spec:
  selector:
    app: kuard
  sessionAffinity: ClientIP
  ports:
  - port: 80
    targetPort: 8080
`)
	ip := k.run(t, "get", "svc", "sticky", "-o", "jsonpath={.spec.clusterIP}")
	var seen map[string]int
	waitFor(t, 30*time.Second, "the sticky Service answering", func() error {
		seen = spread(l.nodeShell(t, "kite-worker", requestLoop(ip, "curl -s -m 2", 50)))
		if n := total(seen); n != 50 {
			return fmt.Errorf("%d of 50 answered", n)
		}
		return nil
	})
	if len(seen) != 1 {
		t.Errorf("50 requests with ClientIP affinity reached %d pods (%v), want one", len(seen), seen)
	}
}

func total(seen map[string]int) int {
	n := 0
	for _, c := range seen {
		n += c
	}
	return n
}

// stepTrafficPolicy: through a NodePort with externalTrafficPolicy Local
// the pod sees the host's own address; with Cluster, the node's (the
// connection is masqueraded, as upstream).
func stepTrafficPolicy(t *testing.T, l *lab, k *kubectl) {
	for name, policy := range map[string]string{"etp-local": "Local", "etp-cluster": "Cluster"} {
		apply(t, k, fmt.Sprintf(`apiVersion: v1
kind: Service
metadata:
  name: %s
spec:
  type: NodePort
  externalTrafficPolicy: %s
  selector:
    app: kuard
  ports:
  - port: 80
    targetPort: 8080
`, name, policy))
	}
	nodeIP := k.run(t, "get", "node", "kite-worker", "-o", `jsonpath={.status.addresses[?(@.type=="InternalIP")].address}`)
	hostIP := nodeIP[:strings.LastIndex(nodeIP, ".")] + ".1" // the underlay's gateway: this shell
	remote := func(svc string) (string, error) {
		port := k.run(t, "get", "svc", svc, "-o", "jsonpath={.spec.ports[0].nodePort}")
		out, err := exec.Command("curl", "-s", "-m", "5", "-f", "http://"+nodeIP+":"+port+"/?format=json").Output()
		if err != nil {
			return "", err
		}
		m := regexp.MustCompile(`"remoteIP": *"([^"]+)"`).FindStringSubmatch(string(out))
		if m == nil {
			return "", fmt.Errorf("no remoteIP in %.200s", out)
		}
		return m[1], nil
	}
	var got string
	waitFor(t, 30*time.Second, "the Local NodePort answering", func() (err error) { got, err = remote("etp-local"); return err })
	if got != hostIP {
		t.Errorf("externalTrafficPolicy Local: the pod saw %s, want the client's %s", got, hostIP)
	}
	waitFor(t, 30*time.Second, "the Cluster NodePort answering", func() (err error) { got, err = remote("etp-cluster"); return err })
	if got == hostIP {
		t.Errorf("externalTrafficPolicy Cluster: the pod saw the client's %s, want a node's address (masqueraded)", got)
	}
}

// probedKuard is a Deployment of kuard pods labelled app: name whose
// readiness probe (GET /ready every second, one failure) takes a pod out
// of its Services at once, ending with a document separator for the
// Service that follows.
func probedKuard(name string, replicas int) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: %[1]s
spec:
  replicas: %[2]d
  selector:
    matchLabels:
      app: %[1]s
  template:
    metadata:
      labels:
        app: %[1]s
    spec:
      containers:
      - name: kuard
        image: %[3]s
        readinessProbe:
          httpGet:
            path: /ready
            port: 8080
          periodSeconds: 1
          failureThreshold: 1
---
`, name, replicas, kuardImage1)
}

// stepReadiness: a pod whose readiness probe starts failing leaves the
// Service's endpoints, and requests stop reaching it.
func stepReadiness(t *testing.T, l *lab, k *kubectl) {
	apply(t, k, probedKuard("probed", 3)+`apiVersion: v1
kind: Service
metadata:
  name: probed
spec:
  selector:
    app: probed
  ports:
  - port: 80
    targetPort: 8080
`)
	wantMatch(t, k.run(t, "rollout", "status", "deployment/probed", "--timeout="+rolloutTimeout), `successfully rolled out`)
	ip := k.run(t, "get", "svc", "probed", "-o", "jsonpath={.spec.clusterIP}")
	pods := strings.Fields(k.run(t, "get", "pods", "-l", "app=probed", "-o", "jsonpath={.items[*].metadata.name}"))
	waitFor(t, 30*time.Second, "all three pods answering", func() error {
		if n := len(spread(l.nodeShell(t, "kite-worker", requestLoop(ip, "curl -s -m 2", 60)))); n != 3 {
			return fmt.Errorf("%d pods answered", n)
		}
		return nil
	})
	victim := pods[0]
	k.run(t, "exec", victim, "--", "wget", "-q", "-O", "-", "--post-data=", "http://127.0.0.1:8080/ready/fail")
	start := time.Now()
	waitFor(t, 30*time.Second, victim+" out of rotation", func() error {
		seen := spread(l.nodeShell(t, "kite-worker", requestLoop(ip, "curl -s -m 2", 30)))
		if seen[victim] > 0 || total(seen) != 30 {
			return fmt.Errorf("%v", seen)
		}
		return nil
	})
	t.Logf("%s out of rotation after at most %s (probe period 1 s)", victim, time.Since(start).Round(10*time.Millisecond))
}

// stepAgentRestart: the agent (and its proxy) on a node is killed and
// restarted by the lab's supervisor while a client on that node sends
// requests to a ClusterIP: the rules stay in the kernel, and not one
// request fails.
func stepAgentRestart(t *testing.T, l *lab, clusterIP string) {
	done := make(chan string, 1)
	go func() {
		done <- l.nodeShell(t, "kite-worker", fmt.Sprintf(
			`i=0; while [ $i -lt 400 ]; do curl -s -m 2 -o /dev/null -w '%%{http_code}\n' http://%s/healthy; i=$((i+1)); done`, clusterIP))
	}()
	pid := agentPID(t, l, "kite-worker")
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill agent %d: %v", pid, err)
	}
	out := <-done
	codes := map[string]int{}
	for _, c := range strings.Fields(out) {
		codes[c]++
	}
	if codes["200"] != 400 {
		t.Errorf("400 requests while the agent restarted: %v, want all 200", codes)
	}
	// The supervisor brought it back.
	waitFor(t, 30*time.Second, "a new agent", func() error {
		now, err := readAgentPID(l, "kite-worker")
		if err != nil {
			return err
		}
		if now == pid {
			return fmt.Errorf("agent %d still recorded", now)
		}
		return nil
	})
}

// stepLoadBalancer: `kubectl expose --type=LoadBalancer` gets an
// EXTERNAL-IP from the lab's pool, which the user's shell reaches through
// kite lb (S19); an annotated Service shares the address on another port;
// a deleted Service's port is refused.
func stepLoadBalancer(t *testing.T, l *lab, k *kubectl) {
	start := time.Now()
	k.run(t, "expose", "deployment", "kuard", "--name=kuard-lb", "--type=LoadBalancer", "--port=80", "--target-port=8080")
	ip := waitExternalIP(t, k, "kuard-lb")
	t.Logf("EXTERNAL-IP %s after %s", ip, time.Since(start).Round(time.Millisecond))
	if !strings.HasSuffix(ip, ".200") {
		t.Errorf("EXTERNAL-IP %s, want the pool's first address (.200)", ip)
	}
	wantMatch(t, k.run(t, "get", "svc", "kuard-lb", "-o", "yaml"), `(?m)^  - nodePort: \d+$`, `(?m)^  clusterIP: 10\.96\.`,
		`(?m)^  loadBalancer:\n    ingress:\n    - ip: `+regexp.QuoteMeta(ip)+`\n      ipMode: VIP$`)
	get := func(url string) (string, error) {
		out, err := exec.Command("curl", "-s", "-m", "5", "-f", url).Output()
		return string(out), err
	}
	waitFor(t, 30*time.Second, "the LoadBalancer answering", func() error { _, err := get("http://" + ip + "/healthy"); return err })
	seen := map[string]int{}
	failed := 0
	for i := 0; i < 300; i++ {
		out, err := get("http://" + ip + "/env/api")
		if err != nil {
			failed++
			continue
		}
		for p, n := range spread(out) {
			seen[p] += n
		}
	}
	if failed > 0 || len(seen) < 8 {
		t.Errorf("300 requests to %s: %d failed, %d pods answered (%v); want none failed and most of the ten pods", ip, failed, len(seen), seen)
	}
	// Sharing: same annotation value, another port.
	for name, port := range map[string]string{"share-a": "8081", "share-b": "8082"} {
		yaml := fmt.Sprintf(`apiVersion: v1
kind: Service
metadata:
  name: %s
  annotations:
    lb.kite.dev/allow-shared-ip: demo
spec:
  type: LoadBalancer
  selector:
    app: kuard
  ports:
  - port: %s
    targetPort: 8080
`, name, port)
		if r := k.try(t, nil, yaml, "apply", "-f", "-"); r.err != nil {
			t.Fatalf("apply %s: %v\n%s", name, r.err, r.stderr)
		}
	}
	var a, b string
	waitFor(t, 30*time.Second, "both shared Services with an address", func() error {
		a = k.run(t, "get", "svc", "share-a", "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}")
		b = k.run(t, "get", "svc", "share-b", "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}")
		if a == "" || b == "" {
			return fmt.Errorf("share-a %q share-b %q", a, b)
		}
		return nil
	})
	if a != b {
		t.Errorf("annotated Services got %s and %s, want one shared address", a, b)
	}
	waitFor(t, 30*time.Second, "both ports of the shared address answering", func() error {
		for _, port := range []string{"8081", "8082"} {
			if _, err := get("http://" + a + ":" + port + "/healthy"); err != nil {
				return fmt.Errorf("port %s: %w", port, err)
			}
		}
		return nil
	})
	// Deleting one closes its port only.
	k.run(t, "delete", "service", "share-a")
	waitFor(t, 30*time.Second, "port 8081 refused after its Service is deleted", func() error {
		err := exec.Command("curl", "-s", "-m", "5", "http://"+a+":8081/healthy").Run()
		var exit *exec.ExitError
		if errors.As(err, &exit) && exit.ExitCode() == 7 {
			return nil
		}
		return fmt.Errorf("curl: %v, want connection refused", err)
	})
	if _, err := get("http://" + a + ":8082/healthy"); err != nil {
		t.Errorf("the other Service on the shared address: %v", err)
	}
	stepLoadBalancerNodeDown(t, l, k)
}

// stepLoadBalancerNodeDown: with externalTrafficPolicy Local (each node
// serves only its own pods, so a dead node's pods are not reached through
// the others), cutting a node's link makes kite lb drop it: from 2 s after
// the cut no request fails.
func stepLoadBalancerNodeDown(t *testing.T, l *lab, k *kubectl) {
	apply(t, k, `apiVersion: v1
kind: Service
metadata:
  name: kuard-local
spec:
  type: LoadBalancer
  externalTrafficPolicy: Local
  selector:
    app: kuard
  ports:
  - port: 80
    targetPort: 8080
`)
	ip := waitExternalIP(t, k, "kuard-local")
	c := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	get := func() error {
		resp, err := c.Get("http://" + ip + "/healthy")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s", resp.Status)
		}
		return nil
	}
	waitFor(t, 30*time.Second, "kuard-local answering on both nodes", func() error {
		for i := 0; i < 20; i++ {
			if err := get(); err != nil {
				return err
			}
		}
		return nil
	})
	veth := nodeVeth(t, l, "kite-worker")
	if out, err := exec.Command("ip", "link", "set", veth, "down").CombinedOutput(); err != nil {
		t.Fatalf("cut kite-worker's link %s: %v %s", veth, err, out)
	}
	cut := time.Now()
	t.Cleanup(func() { exec.Command("ip", "link", "set", veth, "up").Run() })
	var lastFail time.Duration
	failures := 0
	for i := 0; i < 150 && time.Since(cut) < 6*time.Second; i++ {
		if err := get(); err != nil {
			failures++
			lastFail = time.Since(cut)
		}
	}
	exec.Command("ip", "link", "set", veth, "up").Run()
	t.Logf("after cutting kite-worker's link: %d failed requests, the last %s after the cut", failures, lastFail.Round(10*time.Millisecond))
	if lastFail > 2*time.Second {
		t.Errorf("a request failed %s after the node's link was cut, want none after 2 s", lastFail.Round(10*time.Millisecond))
	}
}

// requestLoop is a shell loop of n requests to the Service's /env/api,
// printing each answering pod's name on a line.
func requestLoop(ip, client string, n int) string {
	return fmt.Sprintf(`i=0; while [ $i -lt %d ]; do %s http://%s/env/api | grep -o '"HOSTNAME":"[^"]*"'; i=$((i+1)); done`, n, client, ip)
}

// spread counts the answers per pod.
func spread(out string) map[string]int {
	seen := map[string]int{}
	for _, m := range regexp.MustCompile(`"HOSTNAME":"([^"]+)"`).FindAllStringSubmatch(out, -1) {
		seen[m[1]]++
	}
	return seen
}

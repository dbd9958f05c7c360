package e2e

// The seed walkthrough (../shared/seed/WALKTHROUGH.md, S1–S19) as a user
// takes it on kite: `kite up --nodes 3`, then every step in order with real
// kubectl 1.33 (and 1.27 for the core steps), asserting what the reader
// saw. Where kite rightly differs from the 2019 cluster, the step says so:
// kite's CNI files, nftables by default (S16 also runs in a lab with
// --proxy-mode iptables), the control plane and proxy as processes rather
// than pods (S15), `kubectl create deployment` for `kubectl run
// --replicas` (S1), 25 % surge for the deployment's rolling update (S19).

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestWalkthrough(t *testing.T) {
	var v33, v27 *kubectlVersion
	for _, v := range kubectlVersions(t) {
		switch {
		case v.name == "1.33" && v.missing == "":
			v33 = &v
		case v.name == "1.27" && v.missing == "":
			v27 = &v
		}
	}
	if v33 == nil {
		t.Skip("kubectl 1.33 is not installed")
	}
	l := startLab(t, 3, "--route-pods")
	k33 := l.kubectl(t, *v33, "default")
	var k27 *kubectl
	if v27 != nil {
		k27 = l.kubectl(t, *v27, "default")
	}
	k := k33
	tr := newTranscript()
	k.record, l.record = tr.add, tr.add
	if out := os.Getenv(envTranscript); out != "" {
		t.Cleanup(func() {
			if !t.Failed() {
				tr.write(t, out)
			}
		})
	}
	var pods []string
	podIP := map[string]string{}
	podNode := map[string]string{}
	listPods := func(t *testing.T) {
		pods = nil
		for _, line := range strings.Split(strings.TrimSpace(k.run(t, "get", "pods", "-l", "app=kuard", "-o",
			`jsonpath={range .items[*]}{.metadata.name} {.status.podIP} {.spec.nodeName}{"\n"}{end}`)), "\n") {
			f := strings.Fields(line)
			if len(f) == 3 {
				pods = append(pods, f[0])
				podIP[f[0]], podNode[f[0]] = f[1], f[2]
			}
		}
	}
	var clusterIP, nodePort, externalIP string

	step := func(name string, fn func(t *testing.T)) {
		tr.step(name)
		if !t.Run(name, fn) {
			t.FailNow() // later steps stand on earlier ones
		}
	}

	step("S1 ten replicas", func(t *testing.T) {
		// The 2019 form made a Deployment; today `kubectl run` makes one
		// bare pod, which must work too.
		wantLines(t, k.run(t, "run", "solo", "--image="+kuardImage1), "pod/solo created")
		k.run(t, "wait", "--for=condition=Ready", "pod/solo", "--timeout=60s")
		k.run(t, "delete", "pod", "solo", "--grace-period=1")
		wantLines(t, k.run(t, "create", "deployment", "kuard", "--image="+kuardImage1, "--replicas=10"), "deployment.apps/kuard created")
		wantMatch(t, k.run(t, "rollout", "status", "deployment/kuard", "--timeout="+rolloutTimeout), `successfully rolled out`)
		for _, kc := range []*kubectl{k33, k27} {
			if kc == nil {
				continue
			}
			out := kc.run(t, "get", "pods", "-l", "app=kuard")
			if n := len(regexp.MustCompile(`(?m)^kuard-[0-9a-f]{8,10}-[0-9a-z]{5}\s+1/1\s+Running\s+0\s`).FindAllString(out, -1)); n != 10 {
				t.Errorf("kubectl %s get pods: %d kuard pods 1/1 Running, want 10:\n%s", kc.v.name, n, out)
			}
		}
		listPods(t)
	})
	step("S2 port-forward", func(t *testing.T) {
		waitServing(t, k, pods[0])
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		cmd := k.cmd(ctx, nil, "port-forward", pods[0], "8080:8080")
		stderr := &syncBuffer{}
		cmd.Stderr = stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { cancel(); cmd.Wait() }()
		var body string
		waitFor(t, 30*time.Second, "localhost:8080 forwarded", func() error {
			resp, err := http.Get("http://127.0.0.1:8080/env/api")
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			body = string(b)
			return nil
		})
		wantMatch(t, body, `"HOSTNAME":"`+pods[0]+`"`)
		tr.add("kubectl port-forward "+pods[0]+" 8080:8080 &", "Forwarding from 127.0.0.1:8080 -> 8080\nForwarding from [::1]:8080 -> 8080")
		tr.add("curl http://localhost:8080/env/api", body)
	})
	step("S3 a shell in the pod", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), kubectlTimeout)
		defer cancel()
		out, err := runOnTerminal(ctx, k.cmd(ctx, []string{"TERM=dumb"}, "exec", "-it", pods[0], "--", "ash"), "hostname\nifconfig\nexit 0\n")
		if err != nil {
			t.Fatalf("exec -it ash: %v\n%s", err, out)
		}
		tr.add("kubectl exec -it "+pods[0]+" -- ash", terminalText(out))
		wantMatch(t, out, `(?m)^`+pods[0]+`\r?$`, `(?m)^eth0\s`, `inet addr:`+regexp.QuoteMeta(podIP[pods[0]])+`\s`, `(?m)^lo\s`)
	})
	step("S4 wide listing", func(t *testing.T) {
		for _, kc := range []*kubectl{k33, k27} {
			if kc == nil {
				continue
			}
			tb := parseTable(t, kc.run(t, "get", "pods", "-l", "app=kuard", "-o", "wide"))
			for _, p := range pods {
				tb.wantRow(t, p, map[string]string{"IP": podIP[p], "NODE": podNode[p]})
			}
		}
		cidrs := l.nodeCIDRs(t, k)
		nodeIPs := map[string]bool{}
		for _, ip := range strings.Fields(k.run(t, "get", "nodes", "-o", `jsonpath={.items[*].status.addresses[?(@.type=="InternalIP")].address}`)) {
			nodeIPs[ip] = true
		}
		for _, p := range pods {
			ip := netip.MustParseAddr(podIP[p])
			if !cidrs[podNode[p]].Contains(ip) || nodeIPs[podIP[p]] {
				t.Errorf("pod %s IP %s: want inside its node %s's pod CIDR %s, and not a node IP", p, ip, podNode[p], cidrs[podNode[p]])
			}
		}
	})
	step("S5 node addresses", func(t *testing.T) {
		for _, kc := range []*kubectl{k33, k27} {
			if kc == nil {
				continue
			}
			ips := strings.Fields(kc.run(t, "get", "nodes", "-o", `jsonpath={.items[*].status.addresses[?(@.type=="InternalIP")].address}`))
			if len(ips) != 3 {
				t.Errorf("kubectl %s: InternalIPs %v, want three", kc.v.name, ips)
			}
		}
	})
	step("S6 pod to pod", func(t *testing.T) {
		a, b := pods[0], ""
		for _, p := range pods {
			if podNode[p] != podNode[a] {
				b = p
				break
			}
		}
		if b == "" {
			t.Fatal("no two kuard pods on different nodes")
		}
		env := k.run(t, "exec", a, "--", "wget", "-q", "-O", "-", podIP[b]+":8080/env/api")
		wantMatch(t, env, `"commandLine":\["/kuard"\]`, `"HOSTNAME":"`+b+`"`, `"KUBERNETES_PORT":"tcp://10\.96\.0\.1:443"`,
			`"KUBERNETES_SERVICE_HOST":"10\.96\.0\.1"`, `"KUBERNETES_SERVICE_PORT":"443"`, `"PATH":`)
		req := k.run(t, "exec", a, "--", "wget", "-q", "-O", "-", "http://"+podIP[b]+":8080/?format=json")
		wantMatch(t, req, `"remoteIP": *"`+regexp.QuoteMeta(podIP[a])+`"`)
	})
	step("S7 node to pod", func(t *testing.T) {
		out := l.nodeShell(t, "kite-control-plane", "kubectl get po -o wide && ls /etc/kubernetes/admin.conf ~/.kube/config")
		wantMatch(t, out, `(?m)^NAME\s+READY\s+STATUS`, `/etc/kubernetes/admin\.conf`, `\.kube/config`)
		for _, p := range pods {
			if !strings.Contains(l.nodeShell(t, "kite-control-plane", "curl -s -m 3 "+podIP[p]+":8080/env/api"), `"HOSTNAME":"`+p+`"`) {
				t.Errorf("curl %s:8080/env/api from the control-plane node did not reach %s", podIP[p], p)
			}
		}
	})
	step("S8 outside machines", func(t *testing.T) {
		// kite up --route-pods: this shell, not a node, joins the pod network.
		out, err := exec.Command("curl", "-s", "-m", "3", podIP[pods[1]]+":8080/env/api").Output()
		if err != nil || !strings.Contains(string(out), `"HOSTNAME":"`+pods[1]+`"`) {
			t.Errorf("curl a pod from the host: %v %.200s", err, out)
		}
		tr.add("curl "+podIP[pods[1]]+":8080/env/api", string(out))
	})
	step("S9 the plugin config", func(t *testing.T) {
		out := l.nodeShell(t, "kite-worker", "ls /etc/cni/net.d/ && cat /etc/cni/net.d/*.conflist")
		wantMatch(t, out, `(?m)^10-kite\.conflist$`, `"cniVersion": *"1\.`, `"plugins": *\[`, `"type": *"kite"`, `"ipam"`,
			`"type": *"portmap"`, `"portMappings": *true`, `"snat": *true`)
	})
	step("S10 the plugin binaries", func(t *testing.T) {
		wantMatch(t, l.nodeShell(t, "kite-worker", "ls /opt/cni/bin/"), `(?m)^kite$`, `(?m)^bridge$`, `(?m)^host-local$`, `(?m)^portmap$`, `(?m)^loopback$`)
		// By hand, without the environment: an error on stderr and the
		// spec's JSON error on stdout (code 4; the 2019 plugin said 100).
		out := l.nodeShell(t, "kite-worker", "env -i /opt/cni/bin/kite 2>/dev/null; echo exit=$?")
		wantMatch(t, out, `"code": *4`, `"msg": *"[^"]*(CNI_COMMAND|environment)`, `exit=[1-9]`)
	})
	step("S11 expose", func(t *testing.T) {
		wantLines(t, k.run(t, "expose", "deployment", "kuard", "--type=LoadBalancer", "--target-port=8080", "--port=80"), "service/kuard exposed")
		sel := k.run(t, "get", "svc", "kuard", "-o", `jsonpath={.spec.selector.app} {.spec.ports[0].port} {.spec.ports[0].targetPort} {.spec.ports[0].protocol}`)
		if sel != "kuard 80 8080 TCP" {
			t.Errorf("service kuard: selector/port/targetPort/protocol %q, want kuard 80 8080 TCP", sel)
		}
		clusterIP = k.run(t, "get", "svc", "kuard", "-o", "jsonpath={.spec.clusterIP}")
		nodePort = k.run(t, "get", "svc", "kuard", "-o", "jsonpath={.spec.ports[0].nodePort}")
	})
	step("S12 the service types", func(t *testing.T) {
		out := k.run(t, "expose", "deployment", "kuard", "--name=kuard-np", "--type=NodePort", "--port=80", "--target-port=8080", "--dry-run=client", "-o", "yaml")
		wantMatch(t, out, `(?m)^  type: NodePort$`)
		if r := k.try(t, nil, "", "get", "svc", "kuard-np"); r.err == nil {
			t.Error("--dry-run created the Service")
		}
		apply(t, k, `apiVersion: v1
kind: Service
metadata:
  name: outside
spec:
  type: ExternalName
  externalName: kuard.default.svc.cluster.local
---
apiVersion: v1
kind: Service
metadata:
  name: kuard-headless
spec:
  clusterIP: None
  selector:
    app: kuard
  ports:
  - port: 8080
`)
		dnsAPI := func(name, typ string) string {
			return k.run(t, "exec", pods[0], "--", "wget", "-q", "-O", "-", fmt.Sprintf("http://127.0.0.1:8080/dns/api?name=%s&type=%s", name, typ))
		}
		waitFor(t, 30*time.Second, "ExternalName as a CNAME", func() error {
			if out := dnsAPI("outside", "CNAME"); !strings.Contains(out, `"kuard.default.svc.cluster.local."`) {
				return fmt.Errorf("%s", out)
			}
			return nil
		})
		waitFor(t, 30*time.Second, "the headless Service's pod addresses", func() error {
			out := dnsAPI("kuard-headless", "A")
			for _, p := range pods {
				if !strings.Contains(out, `"`+podIP[p]+`"`) {
					return fmt.Errorf("no %s in %s", podIP[p], out)
				}
			}
			return nil
		})
	})
	step("S13 endpoints", func(t *testing.T) {
		for _, kc := range []*kubectl{k33, k27} {
			if kc == nil {
				continue
			}
			out := kc.run(t, "get", "endpoints", "kuard", "-o", "yaml")
			if n := strings.Count(out, "\n  - ip: ") + strings.Count(out, "\n    - ip: "); n != 10 {
				t.Errorf("kubectl %s get endpoints kuard -o yaml: %d addresses, want 10:\n%s", kc.v.name, n, out)
			}
			wantMatch(t, out, `nodeName: kite-`, `kind: Pod`, `(?m)^\s+uid: `, `(?m)^\s+- port: 8080\n\s+protocol: TCP$`)
		}
		wantMatch(t, k.run(t, "get", "endpointslices", "-l", "kubernetes.io/service-name=kuard"), `(?m)^kuard-\S+\s+IPv4\s+8080\s+`)
	})
	step("S14 ClusterIP", func(t *testing.T) {
		for _, kc := range []*kubectl{k33, k27} {
			if kc == nil {
				continue
			}
			out := kc.run(t, "get", "svc", "kuard", "-o", "yaml")
			wantMatch(t, out, `(?m)^  clusterIP: `+regexp.QuoteMeta(clusterIP)+`$`, `(?m)^  externalTrafficPolicy: Cluster$`,
				`(?m)^  - nodePort: `+nodePort+`$`, `(?m)^    port: 80$`, `(?m)^    protocol: TCP$`, `(?m)^    targetPort: 8080$`,
				`(?m)^  selector:\n    app: kuard$`, `(?m)^  sessionAffinity: None$`, `(?m)^  type: LoadBalancer$`, `(?m)^    ingress:\n    - ip: `)
		}
	})
	step("S15 the system pods", func(t *testing.T) {
		// kite's API server, controllers and proxy are processes of the
		// node (kite status lists them), not pods; DNS runs as two pods.
		// kite up returns once cluster DNS is available (one pod may
		// still be passing its readiness probe): wait for both.
		ready := regexp.MustCompile(`(?m)^kite-dns-\S+\s+1/1\s+Running\s`)
		var out string
		waitFor(t, 60*time.Second, "two kite-dns pods Ready", func() error {
			out = k.run(t, "get", "pod", "--namespace=kube-system")
			if n := len(ready.FindAllString(out, -1)); n != 2 {
				return fmt.Errorf("%d kite-dns pods Running and Ready, want 2:\n%s", n, out)
			}
			return nil
		})
	})
	step("S16 the proxy's rules", func(t *testing.T) {
		// nftables by default: one map lookup per packet for the ClusterIP.
		out := l.nodeShell(t, "kite-worker", "nft list table ip kite-proxy")
		wantMatch(t, out, regexp.QuoteMeta(clusterIP)+` \. tcp \. 80 `, `numgen random mod 10`)
		// The Service's own chain: the random choice among its ten pods.
		m := regexp.MustCompile(regexp.QuoteMeta(clusterIP) + ` \. tcp \. 80 : goto (\S+?),?\n`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no dispatch element for %s:80", clusterIP)
		}
		wantMatch(t, l.nodeShell(t, "kite-worker", "nft list chain ip kite-proxy "+m[1]), `numgen random mod 10`)
	})
	step("S17 ClusterIP in use", func(t *testing.T) {
		seen := spread(l.nodeShell(t, "kite-control-plane", requestLoop(clusterIP, "curl -s -m 2", 40)))
		if len(seen) < 5 || total(seen) != 40 {
			t.Errorf("40 requests to %s from the control-plane node reached %d pods: %v", clusterIP, len(seen), seen)
		}
	})
	step("S18 NodePort", func(t *testing.T) {
		if n, _ := strconv.Atoi(nodePort); n < 30000 || n > 32767 {
			t.Errorf("nodePort %s outside 30000-32767", nodePort)
		}
		for _, node := range []string{"kite-control-plane", "kite-worker", "kite-worker2"} {
			seen := spread(l.nodeShell(t, node, fmt.Sprintf(`i=0; while [ $i -lt 10 ]; do curl -s -m 2 localhost:%s/env/api | grep -o '"HOSTNAME":"[^"]*"'; i=$((i+1)); done`, nodePort)))
			if total(seen) != 10 || len(seen) < 2 {
				t.Errorf("curl localhost:%s on %s: %v", nodePort, node, seen)
			}
		}
	})
	step("S19 LoadBalancer", func(t *testing.T) {
		externalIP = waitExternalIP(t, k, "kuard")
		seen := map[string]int{}
		for i := 0; i < 30; i++ {
			out, err := exec.Command("curl", "-s", "-m", "3", "http://"+externalIP+"/env/api").Output()
			if err != nil {
				t.Errorf("curl %s from the host: %v", externalIP, err)
				break
			}
			for p, n := range spread(string(out)) {
				seen[p] += n
			}
		}
		if len(seen) < 3 {
			t.Errorf("30 requests through the LoadBalancer reached %v", seen)
		}
		wantMatch(t, k.run(t, "expose", "deployment", "kuard", "--name=kuard-lb2", "--type=LoadBalancer", "--port=80", "--target-port=8080", "--dry-run=client", "-o", "yaml"),
			`(?m)^  type: LoadBalancer$`, `(?m)^status:\n  loadBalancer: \{\}$`)
		// Today's defaults: 25 % surge and unavailability (2019's kubectl
		// run made 1 and 1).
		wantMatch(t, k.run(t, "get", "deployment", "kuard", "-o", "yaml"), `(?m)^  replicas: 10$`, `(?m)^  revisionHistoryLimit: 10$`,
			`(?m)^    type: RollingUpdate$`, `reason: MinimumReplicasAvailable`, `reason: NewReplicaSetAvailable`)
	})
}

// TestWalkthroughIPTables: S16 as the seed shows it, with kite up
// --proxy-mode iptables: KUBE-SERVICES marks off-cluster sources and jumps
// to KUBE-SVC-<hash>, whose ten rules pick an endpoint with probabilities
// 1/10, 1/9, …, 1/2 and a last unconditional one, each to a KUBE-SEP-<hash>
// marking hairpin traffic and DNATing to the pod.
func TestWalkthroughIPTables(t *testing.T) {
	l := startLab(t, 1, "--proxy-mode", "iptables")
	k := l.kubectl(t, kubectlVersions(t)[0], "default")
	k.run(t, "create", "deployment", "kuard", "--image="+kuardImage1, "--replicas=10")
	wantMatch(t, k.run(t, "rollout", "status", "deployment/kuard", "--timeout="+rolloutTimeout), `successfully rolled out`)
	k.run(t, "expose", "deployment", "kuard", "--type=LoadBalancer", "--target-port=8080", "--port=80")
	ip := k.run(t, "get", "svc", "kuard", "-o", "jsonpath={.spec.clusterIP}")
	var out string
	waitFor(t, 30*time.Second, "ten KUBE-SEP chains", func() error {
		out = l.nodeShell(t, "kite-control-plane", "iptables-save -t nat")
		if n := len(regexp.MustCompile(`(?m)^-A KUBE-SEP-\S+ .*-j DNAT --to-destination 10\.244\.\d+\.\d+:8080$`).FindAllString(out, -1)); n != 10 {
			return fmt.Errorf("%d DNAT rules", n)
		}
		return nil
	})
	wantMatch(t, out,
		`(?m)^-A KUBE-SERVICES ! -s 10\.244\.0\.0/16 -d `+regexp.QuoteMeta(ip)+`/32 -p tcp .*--dport 80 -j KUBE-MARK-MASQ$`,
		`(?m)^-A KUBE-SERVICES -d `+regexp.QuoteMeta(ip)+`/32 -p tcp .*"default/kuard cluster IP".*--dport 80 -j KUBE-SVC-`,
		`(?m)^-A KUBE-SERVICES .*-m addrtype --dst-type LOCAL -j KUBE-NODEPORTS$`,
		`(?m)^-A KUBE-SEP-\S+ -s 10\.244\.\d+\.\d+/32 .*-j KUBE-MARK-MASQ$`)
	svc := regexp.MustCompile(`-j (KUBE-SVC-\S+)`).FindStringSubmatch(out)[1]
	var probs []string
	for _, m := range regexp.MustCompile(`(?m)^-A `+svc+` .*?(?:--probability (\S+) )?-j KUBE-SEP-\S+$`).FindAllStringSubmatch(out, -1) {
		probs = append(probs, m[1])
	}
	want := []string{"0.1", "0.111", "0.125", "0.142", "0.166", "0.2", "0.25", "0.333", "0.5", ""}
	if len(probs) != len(want) {
		t.Fatalf("%s: %d endpoint rules (%v), want 10:\n%s", svc, len(probs), probs, out)
	}
	for i, w := range want {
		if !strings.HasPrefix(probs[i], w) || (w == "") != (probs[i] == "") {
			t.Errorf("%s rule %d: probability %q, want %s…", svc, i+1, probs[i], w)
		}
	}
}

// terminalText is a terminal session as text: no carriage returns or
// escape sequences (ash asks the terminal for the cursor position).
func terminalText(s string) string {
	s = regexp.MustCompile(`\x1b\[[0-9;?]*[a-zA-Z]`).ReplaceAllString(s, "")
	return strings.TrimLeft(strings.ReplaceAll(s, "\r", ""), "\n")
}

// envTranscript names the file TestWalkthrough writes its transcript to:
// every step's commands and their output, from which `make docs` builds
// docs/walkthrough.md (hack/gendocs).
const envTranscript = "KITE_WALKTHROUGH_TRANSCRIPT"

// transcript is what the walkthrough ran, step by step.
type transcript struct {
	mu    sync.Mutex
	Steps []transcriptStep `json:"steps"`
}

type transcriptStep struct {
	Name     string           `json:"name"`
	Commands []transcriptLine `json:"commands"`
}

type transcriptLine struct {
	Command string `json:"command"`
	Output  string `json:"output"`
}

func newTranscript() *transcript { return &transcript{} }

func (tr *transcript) step(name string) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.Steps = append(tr.Steps, transcriptStep{Name: name})
}

func (tr *transcript) add(cmd, out string) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if len(tr.Steps) == 0 {
		tr.Steps = append(tr.Steps, transcriptStep{Name: "setup"})
	}
	s := &tr.Steps[len(tr.Steps)-1]
	s.Commands = append(s.Commands, transcriptLine{Command: cmd, Output: out})
}

func (tr *transcript) write(t *testing.T, path string) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	data, err := json.MarshalIndent(tr, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		t.Errorf("transcript: %v", err)
	}
}

// nodeCIDRs maps node name → pod CIDR.
func (l *lab) nodeCIDRs(t *testing.T, k *kubectl) map[string]netip.Prefix {
	out := map[string]netip.Prefix{}
	for _, line := range strings.Split(strings.TrimSpace(k.run(t, "get", "nodes", "-o", `jsonpath={range .items[*]}{.metadata.name} {.spec.podCIDR}{"\n"}{end}`)), "\n") {
		if f := strings.Fields(line); len(f) == 2 {
			out[f[0]] = netip.MustParsePrefix(f[1])
		}
	}
	return out
}

package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestControllers is issue 3's "Must show" for the control loops, with
// every available kubectl, each against its own server with two nodes the
// test plays (fakenode_test.go): S1's ten replicas spread over the nodes
// and scheduled, S11–S14's Service and its Endpoints and EndpointSlices,
// S18–S19's allocations and Deployment, a rolling update watched at every
// step, scale, undo, garbage collection and namespace deletion.
//
// Steps run in order and build on each other; a failing step does not stop
// the rest.
func TestControllers(t *testing.T) {
	t.Parallel()
	for _, v := range kubectlVersions(t) {
		t.Run(v.name, func(t *testing.T) {
			if v.missing != "" {
				t.Skip(v.missing)
			}
			t.Parallel()
			sc := &ctrlScenario{cluster: startCluster(t, v, "ctl-"+strings.ReplaceAll(v.name, ".", "-"))}
			for _, step := range controllerSteps {
				t.Run(step.name, func(t *testing.T) { step.run(t, sc) })
			}
		})
	}
}

// ctrlScenario is what the steps share: the cluster, and what earlier steps
// learnt.
type ctrlScenario struct {
	*cluster
	hash1 string // pod-template-hash of the deployment's first template
}

var controllerSteps = []struct {
	name string
	run  func(*testing.T, *ctrlScenario)
}{
	{"nodes ready with pod CIDRs", stepNodesReady},
	{"default service account", stepDefaultServiceAccount},
	{"create deployment", stepDeploymentScheduled},
	{"run bare pod", stepRunPod},
	{"events", stepEvents},
	{"pods running", stepPodsRunning},
	{"expose and endpoints", stepEndpoints},
	{"endpointslices", stepEndpointSlices},
	{"pod not ready", stepPodNotReady},
	{"service allocation", stepServiceAllocation},
	{"deployment yaml", stepDeploymentYAML},
	{"set image", stepSetImage},
	{"scale", stepScaleDown},
	{"rollout undo and history", stepUndo},
	{"delete deployment", stepDeleteDeployment},
	{"delete orphan and foreground", stepDeleteCascade},
	{"unschedulable pod", stepUnschedulable},
	{"delete namespace", stepDeleteNamespace},
}

const (
	kuardImage1 = "gcr.io/kuar-demo/kuard-amd64:1"
	kuardImage2 = "kuard:2"
	// controllerTimeout bounds how long a control loop may take to act.
	controllerTimeout = 20 * time.Second
	// rolloutTimeout bounds `kubectl rollout status`.
	rolloutTimeout = "60s"
)

var (
	clusterCIDR = netip.MustParsePrefix("10.244.0.0/16")
	serviceCIDR = netip.MustParsePrefix("10.96.0.0/16")
)

// safeChars is the alphabet of generated name suffixes and
// pod-template-hash (apimachinery's rand.SafeEncodeString: no vowels, no
// 0, 1, 3).
const safeChars = `[bcdfghjklmnpqrstvwxz2456789]`

// kuardPodName matches `kuard-<hash>-<5 chars>` and captures the hash.
var kuardPodName = regexp.MustCompile(`^kuard-(` + safeChars + `{1,10})-` + safeChars + `{5}$`)

// jsonpath returns `kubectl get what -o jsonpath=expr`.
func (c *cluster) jsonpath(t *testing.T, expr string, what ...string) string {
	t.Helper()
	return c.k.run(t, append(append([]string{"get"}, what...), "-o", "jsonpath="+expr)...)
}

// rows returns the rows of `kubectl get args...`, none when kubectl says
// there are no resources (on stderr).
func (c *cluster) rows(t *testing.T, args ...string) []map[string]string {
	t.Helper()
	out := c.k.run(t, append([]string{"get"}, args...)...)
	if strings.TrimSpace(out) == "" {
		return nil
	}
	return parseTable(t, out).rows
}

// nodeCIDRs returns each node's spec.podCIDR.
func (c *cluster) nodeCIDRs(t *testing.T) map[string]netip.Prefix {
	t.Helper()
	out := map[string]netip.Prefix{}
	for _, line := range strings.Split(strings.TrimSpace(c.jsonpath(t, `{range .items[*]}{.metadata.name} {.spec.podCIDR}{"\n"}{end}`, "nodes")), "\n") {
		name, cidr, _ := strings.Cut(line, " ")
		p, err := netip.ParsePrefix(cidr)
		if err != nil {
			t.Fatalf("node %s podCIDR %q: %v", name, cidr, err)
		}
		out[name] = p
	}
	return out
}

// stepNodesReady: both nodes Ready in `kubectl get nodes`, each with its
// own /24 of the cluster CIDR from node IPAM (spec.podCIDR and podCIDRs).
func stepNodesReady(t *testing.T, sc *ctrlScenario) {
	waitFor(t, controllerTimeout, "both nodes Ready", func() error {
		for _, r := range sc.rows(t, "nodes") {
			if r["STATUS"] != "Ready" {
				return fmt.Errorf("node %s is %s", r["NAME"], r["STATUS"])
			}
		}
		return nil
	})
	tb := parseTable(t, sc.k.run(t, "get", "nodes", "-o", "wide"))
	tb.wantCols(t, "NAME", "STATUS", "ROLES", "AGE", "VERSION", "INTERNAL-IP", "EXTERNAL-IP", "OS-IMAGE", "KERNEL-VERSION", "CONTAINER-RUNTIME")
	tb.wantRow(t, "node-a", map[string]string{"STATUS": "Ready", "ROLES": "<none>", "VERSION": "v1.37.2", "INTERNAL-IP": "192.0.2.11"})
	tb.wantRow(t, "node-b", map[string]string{"STATUS": "Ready", "ROLES": "<none>", "VERSION": "v1.37.2", "INTERNAL-IP": "192.0.2.12"})

	got := sc.jsonpath(t, `{range .items[*]}{.metadata.name} {.spec.podCIDR} {.spec.podCIDRs[*]}{"\n"}{end}`, "nodes")
	seen := map[netip.Prefix]string{}
	for _, line := range strings.Split(strings.TrimSpace(got), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 || f[1] != f[2] {
			t.Errorf("node line %q, want name, podCIDR and podCIDRs holding just podCIDR", line)
			continue
		}
		p, err := netip.ParsePrefix(f[1])
		if err != nil || p.Bits() != 24 || !clusterCIDR.Contains(p.Addr()) || p.Masked() != p {
			t.Errorf("node %s podCIDR %q, want a /24 of %s", f[0], f[1], clusterCIDR)
			continue
		}
		if other, dup := seen[p]; dup {
			t.Errorf("nodes %s and %s share podCIDR %s", other, f[0], p)
		}
		seen[p] = f[0]
	}
	if len(seen) != 2 {
		t.Errorf("podCIDRs %q, want two distinct", got)
	}
}

// stepDefaultServiceAccount: a new namespace gets a `default`
// ServiceAccount from the serviceaccount controller.
func stepDefaultServiceAccount(t *testing.T, sc *ctrlScenario) {
	waitFor(t, controllerTimeout, "serviceaccount default in "+sc.k.ns, func() error {
		if r := sc.k.try(t, nil, "", "get", "serviceaccounts", "-o", "name"); strings.TrimSpace(r.stdout) != "serviceaccount/default" {
			return fmt.Errorf("serviceaccounts: %q %s", r.stdout, r.stderr)
		}
		return nil
	})
}

// stepDeploymentScheduled is S1: one ReplicaSet kuard-<hash>, ten pods
// kuard-<hash>-<5 chars> owned by it, spread 5/5 over the two nodes and
// Pending until the nodes run them.
func stepDeploymentScheduled(t *testing.T, sc *ctrlScenario) {
	wantLines(t, sc.k.run(t, "create", "deployment", "kuard", "--image="+kuardImage1, "--replicas=10"), "deployment.apps/kuard created")
	var rows []map[string]string
	waitFor(t, controllerTimeout, "ten kuard pods bound to nodes", func() error {
		rows = sc.rows(t, "pods", "-o", "wide", "-l", "app=kuard")
		if len(rows) != 10 {
			return fmt.Errorf("%d pods, want 10", len(rows))
		}
		for _, r := range rows {
			if r["NODE"] == "<none>" {
				return fmt.Errorf("pod %s not scheduled", r["NAME"])
			}
		}
		return nil
	})
	perNode := map[string]int{}
	hashes := map[string]bool{}
	for _, r := range rows {
		m := kuardPodName.FindStringSubmatch(r["NAME"])
		if m == nil {
			t.Errorf("pod name %q, want kuard-<hash>-<5 chars>", r["NAME"])
			continue
		}
		hashes[m[1]] = true
		perNode[r["NODE"]]++
		if r["STATUS"] != "Pending" || r["READY"] != "0/1" {
			t.Errorf("pod %s is %s %s before its node runs it, want Pending 0/1", r["NAME"], r["STATUS"], r["READY"])
		}
	}
	if perNode["node-a"] != 5 || perNode["node-b"] != 5 {
		t.Errorf("pods per node %v, want 5 on node-a and 5 on node-b", perNode)
	}
	if len(hashes) != 1 {
		t.Fatalf("pod name hashes %v, want one", hashes)
	}
	for h := range hashes {
		sc.hash1 = h
	}
	rs := "kuard-" + sc.hash1

	got := sc.jsonpath(t, `{range .items[*]}{.metadata.name} {.metadata.labels.pod-template-hash} {.spec.replicas} {.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name} {.metadata.ownerReferences[0].controller} {.metadata.annotations.deployment\.kubernetes\.io/revision}{"\n"}{end}`, "replicasets")
	wantLines(t, got, fmt.Sprintf("%s %s 10 Deployment/kuard true 1", rs, sc.hash1))
	waitFor(t, controllerTimeout, "replicaset status", func() error {
		r := parseTable(t, sc.k.run(t, "get", "rs")).row(t, rs)
		if r["DESIRED"] != "10" || r["CURRENT"] != "10" || r["READY"] != "0" {
			return fmt.Errorf("replicaset row %v, want DESIRED 10, CURRENT 10, READY 0", r)
		}
		return nil
	})
	owners := sc.jsonpath(t, `{range .items[*]}{.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name} {.metadata.labels.pod-template-hash} {.metadata.labels.app}{"\n"}{end}`, "pods", "-l", "app=kuard")
	for _, line := range strings.Split(strings.TrimSpace(owners), "\n") {
		if want := "ReplicaSet/" + rs + " " + sc.hash1 + " kuard"; line != want {
			t.Errorf("pod owner, pod-template-hash and app %q, want %q", line, want)
		}
	}
}

// stepRunPod: kubectl run makes one bare pod (S1's note), and it is
// scheduled too.
func stepRunPod(t *testing.T, sc *ctrlScenario) {
	wantLines(t, sc.k.run(t, "run", "web", "--image="+kuardImage1), "pod/web created")
	waitFor(t, controllerTimeout, "pod web scheduled", func() error {
		got := sc.jsonpath(t, `{.spec.nodeName} {.status.conditions[?(@.type=="PodScheduled")].status}`, "pod", "web")
		if got != "node-a True" && got != "node-b True" {
			return fmt.Errorf("nodeName and PodScheduled %q, want a node and True", got)
		}
		return nil
	})
	if got := sc.jsonpath(t, `{.metadata.labels.run} {.metadata.ownerReferences}`, "pod", "web"); got != "web " {
		t.Errorf("pod web label run and ownerReferences %q, want \"web \" (no owner)", got)
	}
}

// stepEvents: `kubectl get events` shows what the loops did: Scheduled for
// every pod, ScalingReplicaSet for the deployment, SuccessfulCreate for
// the ReplicaSet; `kubectl describe` shows them too.
func stepEvents(t *testing.T, sc *ctrlScenario) {
	ns, rs := sc.k.ns, "kuard-"+sc.hash1
	pods := sc.pods(t, "", false)
	waitFor(t, controllerTimeout, "events", func() error {
		tb := parseTable(t, sc.k.run(t, "get", "events"))
		if strings.Join(tb.cols, "|") != "LAST SEEN|TYPE|REASON|OBJECT|MESSAGE" {
			return fmt.Errorf("columns %q", tb.cols)
		}
		scheduled := map[string]string{}
		var scaled, created []string
		for _, r := range tb.rows {
			if r["TYPE"] != "Normal" {
				continue
			}
			switch r["REASON"] {
			case "Scheduled":
				scheduled[r["OBJECT"]] = r["MESSAGE"]
			case "ScalingReplicaSet":
				if r["OBJECT"] == "deployment/kuard" {
					scaled = append(scaled, r["MESSAGE"])
				}
			case "SuccessfulCreate":
				if r["OBJECT"] == "replicaset/"+rs {
					created = append(created, r["MESSAGE"])
				}
			}
		}
		for _, p := range pods {
			want := fmt.Sprintf("Successfully assigned %s/%s to %s", ns, p.Name, p.Spec.NodeName)
			if got := scheduled["pod/"+p.Name]; got != want {
				return fmt.Errorf("Scheduled event of pod/%s: %q, want %q", p.Name, got, want)
			}
		}
		if want := "Scaled up replica set " + rs + " from 0 to 10"; !slices.Contains(scaled, want) {
			return fmt.Errorf("ScalingReplicaSet events of deployment/kuard %q, want %q", scaled, want)
		}
		// Upstream's event correlator folds the tenth similar event into
		// "(combined from similar events): ...".
		createdRE := regexp.MustCompile(`^(\(combined from similar events\): )?Created pod: ` + regexp.QuoteMeta(rs) + `-` + safeChars + `{5}$`)
		if len(created) == 0 {
			return fmt.Errorf("no SuccessfulCreate event of replicaset/%s", rs)
		}
		for _, m := range created {
			if !createdRE.MatchString(m) {
				return fmt.Errorf("SuccessfulCreate message %q, want %s", m, createdRE)
			}
		}
		return nil
	})
	wantMatch(t, sc.k.run(t, "describe", "deployment", "kuard"),
		`(?m)^Events:\n\s+Type\s+Reason\s+Age\s+From\s+Message\n`,
		`(?m)^\s+Normal\s+ScalingReplicaSet\s+\S+\s+deployment-controller\s+Scaled up replica set `+regexp.QuoteMeta(rs)+` from 0 to 10$`)
	wantMatch(t, sc.k.run(t, "describe", "pod", "web"),
		`(?m)^\s+Normal\s+Scheduled\s+\S+\s+default-scheduler\s+Successfully assigned `+regexp.QuoteMeta(ns)+`/web to node-[ab]$`)
}

// stepPodsRunning: once the nodes run their pods, every pod is Running
// and Ready with an address from its node's podCIDR, and the rollout is
// complete.
func stepPodsRunning(t *testing.T, sc *ctrlScenario) {
	sc.startPods(t)
	cidrs := sc.nodeCIDRs(t)
	var rows []map[string]string
	waitFor(t, controllerTimeout, "eleven pods Running 1/1", func() error {
		rows = sc.rows(t, "pods", "-o", "wide")
		if len(rows) != 11 {
			return fmt.Errorf("%d pods, want 11", len(rows))
		}
		for _, r := range rows {
			if r["STATUS"] != "Running" || r["READY"] != "1/1" {
				return fmt.Errorf("pod %s is %s %s", r["NAME"], r["STATUS"], r["READY"])
			}
		}
		return nil
	})
	ips := map[string]string{}
	for _, r := range rows {
		ip, err := netip.ParseAddr(r["IP"])
		if err != nil || !cidrs[r["NODE"]].Contains(ip) {
			t.Errorf("pod %s on %s has IP %q, want one in the node's podCIDR %s", r["NAME"], r["NODE"], r["IP"], cidrs[r["NODE"]])
		}
		if other, dup := ips[r["IP"]]; dup {
			t.Errorf("pods %s and %s share IP %s", other, r["NAME"], r["IP"])
		}
		ips[r["IP"]] = r["NAME"]
	}
	wantMatch(t, sc.k.run(t, "rollout", "status", "deployment/kuard", "--timeout="+rolloutTimeout),
		`deployment "kuard" successfully rolled out\n$`)
	parseTable(t, sc.k.run(t, "get", "deployment", "kuard")).wantRow(t, "kuard",
		map[string]string{"READY": "10/10", "UP-TO-DATE": "10", "AVAILABLE": "10"})
	parseTable(t, sc.k.run(t, "get", "rs")).wantRow(t, "kuard-"+sc.hash1,
		map[string]string{"DESIRED": "10", "CURRENT": "10", "READY": "10"})
}

// stepUnschedulable: a pod no node fits stays Pending with
// PodScheduled=False (Unschedulable) and a FailedScheduling event saying
// why.
func stepUnschedulable(t *testing.T, sc *ctrlScenario) {
	sc.k.run(t, "run", "nowhere", "--image="+kuardImage1, `--overrides={"apiVersion":"v1","spec":{"nodeSelector":{"disk":"ssd"}}}`)
	// Upstream adds " preemption: 0/2 nodes are available: 2 Preemption
	// is not helpful for scheduling."; kite's scheduler does not preempt.
	const why = "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector."
	waitFor(t, controllerTimeout, "pod nowhere unschedulable", func() error {
		got := sc.jsonpath(t, `{.status.conditions[?(@.type=="PodScheduled")].status}/{.status.conditions[?(@.type=="PodScheduled")].reason}/{.status.conditions[?(@.type=="PodScheduled")].message}`, "pod", "nowhere")
		if !strings.HasPrefix(got, "False/Unschedulable/"+why) {
			return fmt.Errorf("PodScheduled %q, want False/Unschedulable/%s", got, why)
		}
		return nil
	})
	waitFor(t, controllerTimeout, "FailedScheduling event", func() error {
		out := sc.k.run(t, "get", "events", "--field-selector=involvedObject.name=nowhere", "-o", `jsonpath={range .items[*]}{.type}/{.reason}/{.message}{"\n"}{end}`)
		if !strings.Contains(out, "Warning/FailedScheduling/"+why) {
			return fmt.Errorf("events of pod nowhere:\n%s", out)
		}
		return nil
	})
	parseTable(t, sc.k.run(t, "get", "pod", "nowhere", "-o", "wide")).wantRow(t, "nowhere", map[string]string{"STATUS": "Pending", "NODE": "<none>"})
	sc.k.run(t, "delete", "pod", "nowhere")
}

// stepDeleteNamespace: deleting a namespace deletes everything in it
// (here a Deployment with running pods, a Service, a ConfigMap, the
// ServiceAccount, Endpoints and EndpointSlices), then the namespace.
func stepDeleteNamespace(t *testing.T, sc *ctrlScenario) {
	ns := sc.k.ns + "-doomed"
	k := *sc.k
	k.ns = ns
	wantLines(t, k.run(t, "create", "namespace", ns), "namespace/"+ns+" created")
	waitFor(t, controllerTimeout, "serviceaccount default in "+ns, func() error {
		if r := k.try(t, nil, "", "get", "serviceaccounts", "-o", "name"); strings.TrimSpace(r.stdout) != "serviceaccount/default" {
			return fmt.Errorf("serviceaccounts: %q %s", r.stdout, r.stderr)
		}
		return nil
	})
	k.run(t, "create", "configmap", "settings", "--from-literal=a=b")
	k.run(t, "create", "deployment", "doomed", "--image="+kuardImage1, "--replicas=2")
	k.run(t, "expose", "deployment", "doomed", "--port=80", "--target-port=8080")
	waitFor(t, controllerTimeout, "two doomed pods ready in the endpoints", func() error {
		ep, err := sc.client.CoreV1().Endpoints(ns).Get(context.Background(), "doomed", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if ready, _ := endpointCounts(*ep); ready != 2 {
			return fmt.Errorf("%d addresses", ready)
		}
		return nil
	})
	wantMatch(t, k.run(t, "delete", "namespace", ns, "--timeout=30s"), deleted(`namespace "`+ns+`"`))
	wantMatch(t, k.fail(t, "get", "namespace", ns), `\(NotFound\)`)
	what := "deployments,replicasets,pods,services,endpoints,endpointslices,configmaps,serviceaccounts,events"
	if out := k.run(t, "get", what, "-o", "name"); out != "" {
		t.Errorf("left in deleted namespace %s:\n%s", ns, out)
	}
}

package e2e

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// TestKubectl runs the "Must show" kubectl session with every
// available kubectl, each against its own server and in its own namespace.
// Steps run in order and build on each other (the deployment created early
// is labelled, patched, edited, scaled and finally deleted); a failing step
// does not stop the rest.
func TestKubectl(t *testing.T) {
	for _, v := range kubectlVersions(t) {
		t.Run(v.name, func(t *testing.T) {
			if v.missing != "" {
				t.Skip(v.missing)
			}
			t.Parallel()
			s := startServer(t)
			sc := &scenario{
				s:   s,
				k:   newKubectl(t, v, s, "e2e-"+strings.ReplaceAll(v.name, ".", "-")),
				api: newAPI(t, s, true),
			}
			for _, step := range kubectlSteps {
				t.Run(step.name, func(t *testing.T) { step.run(t, sc) })
			}
		})
	}
}

// scenario is what the steps share: one server, one kubectl, one namespace.
type scenario struct {
	s   *server
	k   *kubectl
	api *api
}

var kubectlSteps = []struct {
	name string
	run  func(*testing.T, *scenario)
}{
	{"version", stepVersion},
	{"api-resources", stepAPIResources},
	{"kubernetes service", stepKubernetesService},
	{"create namespace", stepCreateNamespace},
	{"create deployment", stepCreateDeployment},
	{"strict field validation", stepStrictValidation},
	{"apply nodes", stepApplyNodes},
	{"get nodes jsonpath", stepGetNodes},
	{"create pod and replicaset", stepCreatePodAndReplicaSet},
	{"get deploy,rs,po -A", stepGetAllNamespaces},
	{"get pods -o wide", stepGetPodsWide},
	{"expose dry-run=client", stepExposeDryRun},
	{"expose", stepExpose},
	{"get svc -o yaml", stepGetServiceYAML},
	{"get svc and all", stepGetServiceTable},
	{"label", stepLabel},
	{"annotate", stepAnnotate},
	{"patch json", stepPatchJSON},
	{"patch merge", stepPatchMerge},
	{"patch strategic", stepPatchStrategic},
	{"patch no change", stepPatchNoChange},
	{"edit", stepEdit},
	{"apply twice", stepApplyTwice},
	{"scale", stepScale},
	{"get -w", stepWatch},
	{"explain", stepExplain},
	{"create dry-run=server", stepDryRunServer},
	{"delete", stepDelete},
	{"delete pod gracefully", stepDeletePod},
}

// jsonpath returns `kubectl get what -o jsonpath=expr`.
func (sc *scenario) jsonpath(t *testing.T, expr string, what ...string) string {
	t.Helper()
	return sc.k.run(t, append(append([]string{"get"}, what...), "-o", "jsonpath="+expr)...)
}

func stepVersion(t *testing.T, sc *scenario) {
	var info struct {
		GitVersion string `json:"gitVersion"`
		Major      string `json:"major"`
		Minor      string `json:"minor"`
	}
	newAPI(t, sc.s, false).must(t, 200, "GET", "/version", "", "").object(t, &info)
	if !strings.HasPrefix(info.GitVersion, "v1.") || info.Major != "1" || info.Minor == "" {
		t.Errorf("/version = %+v, want a v1.x gitVersion with major and minor", info)
	}

	// Plain output differs by version (1.20 and 1.27 print a Go struct,
	// later ones the bare version) but always names the server's version.
	wantMatch(t, sc.k.run(t, "version"), `(?m)^Server Version: .*`+regexp.QuoteMeta(info.GitVersion))

	var out struct {
		Client struct{ GitVersion string }               `json:"clientVersion"`
		Server struct{ GitVersion, Major, Minor string } `json:"serverVersion"`
	}
	if err := json.Unmarshal([]byte(sc.k.run(t, "version", "-o", "json")), &out); err != nil {
		t.Fatalf("kubectl version -o json: %v", err)
	}
	if out.Server.GitVersion != info.GitVersion || out.Server.Major != info.Major || out.Server.Minor != info.Minor {
		t.Errorf("serverVersion %+v, want %+v", out.Server, info)
	}
	if !strings.HasPrefix(out.Client.GitVersion, sc.k.v.client) {
		t.Errorf("clientVersion.gitVersion %q, want %s*", out.Client.GitVersion, sc.k.v.client)
	}
}

func stepAPIResources(t *testing.T, sc *scenario) {
	tb := parseTable(t, sc.k.run(t, "api-resources"))
	tb.wantCols(t, "NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND")
	want := []struct{ short, name, apiVersion, namespaced, kind string }{
		{"po", "pods", "v1", "true", "Pod"},
		{"svc", "services", "v1", "true", "Service"},
		{"ep", "endpoints", "v1", "true", "Endpoints"},
		{"no", "nodes", "v1", "false", "Node"},
		{"ns", "namespaces", "v1", "false", "Namespace"},
		{"ev", "events", "v1", "true", "Event"},
		{"cm", "configmaps", "v1", "true", "ConfigMap"},
		{"sa", "serviceaccounts", "v1", "true", "ServiceAccount"},
		{"deploy", "deployments", "apps/v1", "true", "Deployment"},
		{"rs", "replicasets", "apps/v1", "true", "ReplicaSet"},
	}
	for _, w := range want {
		found := false
		for _, r := range tb.rows {
			if r["NAME"] == w.name && r["APIVERSION"] == w.apiVersion {
				found = true
				if !slices.Contains(strings.Split(r["SHORTNAMES"], ","), w.short) || r["NAMESPACED"] != w.namespaced || r["KIND"] != w.kind {
					t.Errorf("api-resources row %v, want shortname %s, namespaced %s, kind %s", r, w.short, w.namespaced, w.kind)
				}
			}
		}
		if !found {
			t.Errorf("api-resources has no %s in %s", w.name, w.apiVersion)
		}
	}
}

// stepKubernetesService: default/kubernetes, the API server's Service at
// the first address of the service CIDR.
func stepKubernetesService(t *testing.T, sc *scenario) {
	tb := parseTable(t, sc.k.run(t, "get", "service", "kubernetes", "-n", "default", "-o", "wide"))
	tb.wantRow(t, "kubernetes", map[string]string{
		"TYPE": "ClusterIP", "CLUSTER-IP": "10.96.0.1", "EXTERNAL-IP": "<none>", "PORT(S)": "443/TCP", "SELECTOR": "<none>",
	})
}

func stepCreateNamespace(t *testing.T, sc *scenario) {
	ns := sc.k.ns
	wantLines(t, sc.k.run(t, "create", "namespace", ns), "namespace/"+ns+" created")
	tb := parseTable(t, sc.k.run(t, "get", "namespace", ns))
	tb.wantCols(t, "NAME", "STATUS", "AGE")
	tb.wantRow(t, ns, map[string]string{"STATUS": "Active"})
}

func stepCreateDeployment(t *testing.T, sc *scenario) {
	// Default (strict) validation: kubectl needs the server's OpenAPI.
	wantLines(t, sc.k.run(t, "create", "deployment", "kuard", "--image=gcr.io/kuar-demo/kuard-amd64:1", "--replicas=10"),
		"deployment.apps/kuard created")
	got := sc.jsonpath(t, `{.spec.replicas} {.spec.template.spec.containers[0].name} {.spec.template.spec.containers[0].image} {.spec.selector.matchLabels.app} {.metadata.generation}`, "deployment", "kuard")
	if want := "10 kuard-amd64 gcr.io/kuar-demo/kuard-amd64:1 kuard 1"; got != want {
		t.Errorf("deployment kuard: %q, want %q (replicas, container, image, selector, generation)", got, want)
	}
}

// stepStrictValidation: an unknown field fails a create under kubectl's
// default validation, and the error names the field (1.20 validates on
// the client against OpenAPI v2, later versions ask the server with
// fieldValidation=Strict).
func stepStrictValidation(t *testing.T, sc *scenario) {
	stderr := sc.k.fail(t, "create", "-f", "testdata/unknown-field.yaml")
	wantMatch(t, stderr, `unknown field "bogus"`)
	stderr = sc.k.fail(t, "get", "configmap", "typo")
	wantMatch(t, stderr, `NotFound`)
}

func stepApplyNodes(t *testing.T, sc *scenario) {
	wantLines(t, sc.k.run(t, "apply", "-f", "testdata/nodes.yaml"), "node/node-a created", "node/node-b created")
}

func stepGetNodes(t *testing.T, sc *scenario) {
	got := sc.jsonpath(t, `{.items[*].status.addresses[?(@.type=="InternalIP")].address}`, "nodes")
	if want := "192.0.2.11 192.0.2.12"; got != want {
		t.Errorf("node InternalIPs %q, want %q", got, want)
	}
	tb := parseTable(t, sc.k.run(t, "get", "nodes", "-o", "wide"))
	tb.wantCols(t, "NAME", "STATUS", "ROLES", "AGE", "VERSION", "INTERNAL-IP", "EXTERNAL-IP", "OS-IMAGE", "KERNEL-VERSION", "CONTAINER-RUNTIME")
	tb.wantRow(t, "node-b", map[string]string{
		"STATUS": "Unknown", "ROLES": "<none>", "VERSION": "v1.37.2", "INTERNAL-IP": "192.0.2.12", "EXTERNAL-IP": "<none>",
		"OS-IMAGE": "Debian GNU/Linux 12 (bookworm)", "KERNEL-VERSION": "6.18.0", "CONTAINER-RUNTIME": "runc://1.1.5",
	})
}

func stepCreatePodAndReplicaSet(t *testing.T, sc *scenario) {
	wantLines(t, sc.k.run(t, "create", "-f", "testdata/pod-web.yaml", "-f", "testdata/replicaset.yaml"),
		"pod/web created", "replicaset.apps/kuard-manual created")
}

// stepGetAllNamespaces: the controllers have made the deployment's
// ReplicaSet and pods, and the hand-made ReplicaSet's pods (none is
// scheduled: the nodes never report Ready); the bare pod is Pending.
func stepGetAllNamespaces(t *testing.T, sc *scenario) {
	ns := sc.k.ns
	var tables []table
	waitFor(t, 20*time.Second, "controllers to create the pods", func() error {
		tables = parseTables(sc.k.run(t, "get", "deploy,rs,po", "-A"))
		if len(tables) != 3 {
			return fmt.Errorf("%d tables, want 3 (deployments, replicasets, pods)", len(tables))
		}
		if n := len(tables[2].rows); n < 1+10+2 {
			return fmt.Errorf("%d pods, want web, 10 of kuard and 2 of kuard-manual", n)
		}
		if r := tables[0].row(t, "deployment.apps/kuard"); r["UP-TO-DATE"] != "10" {
			return fmt.Errorf("deployment row %v", r)
		}
		if r := tables[1].row(t, "replicaset.apps/kuard-manual"); r["CURRENT"] != "2" {
			return fmt.Errorf("replicaset row %v", r)
		}
		return nil
	})
	tables[0].wantCols(t, "NAMESPACE", "NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE")
	tables[0].wantRow(t, "deployment.apps/kuard", map[string]string{"NAMESPACE": ns, "READY": "0/10", "UP-TO-DATE": "10", "AVAILABLE": "0"})
	tables[1].wantCols(t, "NAMESPACE", "NAME", "DESIRED", "CURRENT", "READY", "AGE")
	tables[1].wantRow(t, "replicaset.apps/kuard-manual", map[string]string{"NAMESPACE": ns, "DESIRED": "2", "CURRENT": "2", "READY": "0"})
	tables[2].wantCols(t, "NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE")
	tables[2].wantRow(t, "pod/web", map[string]string{"NAMESPACE": ns, "READY": "0/1", "STATUS": "Pending", "RESTARTS": "0"})
}

// stepGetPodsWide reports the pod running with an IP, as a node agent
// would through the status subresource, then reads the wide Table.
func stepGetPodsWide(t *testing.T, sc *scenario) {
	sc.api.must(t, 200, "PATCH", "/api/v1/namespaces/"+sc.k.ns+"/pods/web/status", "application/merge-patch+json",
		`{"status":{"phase":"Running","hostIP":"192.0.2.11","podIP":"10.244.1.5","podIPs":[{"ip":"10.244.1.5"}]}}`)
	tb := parseTable(t, sc.k.run(t, "get", "pods", "-o", "wide"))
	tb.wantCols(t, "NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "NOMINATED NODE", "READINESS GATES")
	tb.wantRow(t, "web", map[string]string{
		"READY": "0/1", "STATUS": "Running", "RESTARTS": "0", "IP": "10.244.1.5", "NODE": "node-a",
		"NOMINATED NODE": "<none>", "READINESS GATES": "<none>",
	})
	// The field selector a node agent uses to find its pods.
	tb = parseTable(t, sc.k.run(t, "get", "pods", "--field-selector=spec.nodeName=node-a"))
	tb.row(t, "web")
	if out := sc.k.run(t, "get", "pods", "--field-selector=spec.nodeName=node-b", "-o", "name"); out != "" {
		t.Errorf("pods on node-b: %q, want none", out)
	}
}

func stepExposeDryRun(t *testing.T, sc *scenario) {
	out := sc.k.run(t, "expose", "deployment", "kuard", "--type=LoadBalancer", "--port=80", "--target-port=8080", "--dry-run=client", "-o", "yaml")
	wantMatch(t, out, `(?m)^  type: LoadBalancer$`, `(?m)^status:\n  loadBalancer: \{\}$`, `(?m)^kind: Service$`)
	var svc corev1.Service
	if err := yaml.UnmarshalStrict([]byte(out), &svc); err != nil {
		t.Fatalf("dry-run output is not a Service: %v", err)
	}
	if p := svc.Spec.Ports; len(p) != 1 || p[0].Port != 80 || p[0].TargetPort.IntVal != 8080 || svc.Spec.Selector["app"] != "kuard" {
		t.Errorf("dry-run service spec %+v, want port 80 → 8080 selecting app=kuard", svc.Spec)
	}
	// A client dry run sends nothing.
	wantMatch(t, sc.k.fail(t, "get", "service", "kuard"), `NotFound`)
}

func stepExpose(t *testing.T, sc *scenario) {
	wantLines(t, sc.k.run(t, "expose", "deployment", "kuard", "--type=LoadBalancer", "--port=80", "--target-port=8080"),
		"service/kuard exposed")
}

func stepGetServiceYAML(t *testing.T, sc *scenario) {
	out := sc.k.run(t, "get", "svc", "kuard", "-o", "yaml")
	var svc corev1.Service
	if err := yaml.UnmarshalStrict([]byte(out), &svc); err != nil {
		t.Fatalf("get svc -o yaml: %v\n%s", err, out)
	}
	ip, err := netip.ParseAddr(svc.Spec.ClusterIP)
	if err != nil || !netip.MustParsePrefix("10.96.0.0/16").Contains(ip) {
		t.Errorf("clusterIP %q, want an address in 10.96.0.0/16", svc.Spec.ClusterIP)
	}
	if !slices.Equal(svc.Spec.ClusterIPs, []string{svc.Spec.ClusterIP}) {
		t.Errorf("clusterIPs %q, want [%s]", svc.Spec.ClusterIPs, svc.Spec.ClusterIP)
	}
	if len(svc.Spec.Ports) != 1 {
		t.Fatalf("ports %+v, want one", svc.Spec.Ports)
	}
	p := svc.Spec.Ports[0]
	if p.Port != 80 || p.TargetPort.String() != "8080" || p.Protocol != corev1.ProtocolTCP || p.NodePort < 30000 || p.NodePort > 32767 {
		t.Errorf("port %+v, want port 80, targetPort 8080, protocol TCP, a nodePort in 30000-32767", p)
	}
	checks := []struct{ field, got, want string }{
		{"type", string(svc.Spec.Type), "LoadBalancer"},
		{"sessionAffinity", string(svc.Spec.SessionAffinity), "None"},
		{"externalTrafficPolicy", string(svc.Spec.ExternalTrafficPolicy), "Cluster"},
		{"selector", fmt.Sprint(svc.Spec.Selector), "map[app:kuard]"},
		{"metadata.namespace", svc.Namespace, sc.k.ns},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.field, c.got, c.want)
		}
	}
	if svc.UID == "" || svc.ResourceVersion == "" || svc.CreationTimestamp.IsZero() {
		t.Errorf("metadata %+v lacks uid, resourceVersion or creationTimestamp", svc.ObjectMeta)
	}
	wantMatch(t, out, `(?m)^    targetPort: 8080$`, `(?m)^status:\n  loadBalancer: \{\}$`)
}

func stepGetServiceTable(t *testing.T, sc *scenario) {
	ipPort := sc.jsonpath(t, `{.spec.clusterIP} {.spec.ports[0].nodePort}`, "svc", "kuard")
	ip, nodePort, _ := strings.Cut(ipPort, " ")
	tb := parseTable(t, sc.k.run(t, "get", "svc", "-o", "wide"))
	tb.wantCols(t, "NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE", "SELECTOR")
	tb.wantRow(t, "kuard", map[string]string{
		"TYPE": "LoadBalancer", "CLUSTER-IP": ip, "EXTERNAL-IP": "<pending>", "PORT(S)": "80:" + nodePort + "/TCP", "SELECTOR": "app=kuard",
	})
	// Category "all" covers pods, services, deployments and replicasets.
	var names []string
	for _, tb := range parseTables(sc.k.run(t, "get", "all")) {
		for _, r := range tb.rows {
			names = append(names, r["NAME"])
		}
	}
	for _, want := range []string{"pod/web", "service/kuard", "deployment.apps/kuard", "replicaset.apps/kuard-manual"} {
		if !slices.Contains(names, want) {
			t.Errorf("get all: no %s in %q", want, names)
		}
	}
}

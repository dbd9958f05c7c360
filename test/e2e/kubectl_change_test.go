package e2e

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// The steps of TestKubectl that change objects: label, annotate, patch,
// edit, apply, scale, watch, dry runs and delete.

func stepLabel(t *testing.T, sc *scenario) {
	wantLines(t, sc.k.run(t, "label", "deployment", "kuard", "tier=frontend"), "deployment.apps/kuard labeled")
	if got := sc.jsonpath(t, `{.metadata.labels.tier}`, "deployment", "kuard"); got != "frontend" {
		t.Errorf("label tier = %q, want frontend", got)
	}
	wantLines(t, sc.k.run(t, "get", "deployments", "-l", "tier=frontend", "-o", "name"), "deployment.apps/kuard")
	wantLines(t, sc.k.run(t, "get", "deployments", "-l", "tier=backend", "-o", "name"))
	// kubectl 1.20 says "labeled" for a removal too.
	wantMatch(t, sc.k.run(t, "label", "deployment", "kuard", "tier-"), `^deployment.apps/kuard (un)?labeled\n$`)
	if got := sc.jsonpath(t, `{.metadata.labels}`, "deployment", "kuard"); strings.Contains(got, "tier") {
		t.Errorf("labels after removing tier: %s", got)
	}
}

func stepAnnotate(t *testing.T, sc *scenario) {
	want := "deployment.apps/kuard annotated"
	if sc.k.v.name == "1.27" {
		// kubectl 1.27's own typo (kubernetes/kubectl#1462).
		want = "deployment.apps/kuard annotate"
	}
	wantLines(t, sc.k.run(t, "annotate", "deployment", "kuard", "note=hello"), want)
	if got := sc.jsonpath(t, `{.metadata.annotations.note}`, "deployment", "kuard"); got != "hello" {
		t.Errorf("annotation note = %q, want hello", got)
	}
}

func stepPatchJSON(t *testing.T, sc *scenario) {
	wantLines(t, sc.k.run(t, "patch", "deployment", "kuard", "--type=json", "-p", `[{"op":"replace","path":"/spec/replicas","value":3}]`),
		"deployment.apps/kuard patched")
	// Generation 1 at create, 2 after stepAnnotate (upstream bumps a
	// Deployment's generation on annotation changes too, as they are
	// copied to its ReplicaSets), 3 after this spec change.
	if got := sc.jsonpath(t, `{.spec.replicas} {.metadata.generation}`, "deployment", "kuard"); got != "3 3" {
		t.Errorf("replicas and generation %q, want \"3 3\" (a spec or annotation change bumps generation)", got)
	}
	// A failing test operation fails the patch and changes nothing.
	sc.k.fail(t, "patch", "deployment", "kuard", "--type=json", "-p", `[{"op":"test","path":"/spec/replicas","value":7},{"op":"replace","path":"/spec/replicas","value":8}]`)
	if got := sc.jsonpath(t, `{.spec.replicas}`, "deployment", "kuard"); got != "3" {
		t.Errorf("replicas after a failed json patch: %s, want 3", got)
	}
}

func stepPatchMerge(t *testing.T, sc *scenario) {
	wantLines(t, sc.k.run(t, "patch", "deployment", "kuard", "--type=merge", "-p", `{"metadata":{"labels":{"patched":"merge"}}}`),
		"deployment.apps/kuard patched")
	if got := sc.jsonpath(t, `{.metadata.labels.patched} {.metadata.labels.app}`, "deployment", "kuard"); got != "merge kuard" {
		t.Errorf("labels patched, app = %q, want \"merge kuard\"", got)
	}
}

// stepPatchStrategic adds a container: a strategic merge patch merges the
// containers list by name, where a merge patch would replace it. Without
// $setElementOrder upstream puts elements new in the patch first.
func stepPatchStrategic(t *testing.T, sc *scenario) {
	wantLines(t, sc.k.run(t, "patch", "deployment", "kuard", "--type=strategic", "-p",
		`{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","image":"busybox:1.36"}]}}}}`),
		"deployment.apps/kuard patched")
	got := sc.jsonpath(t, `{range .spec.template.spec.containers[*]}{.name}={.image} {end}`, "deployment", "kuard")
	if want := "sidecar=busybox:1.36 kuard-amd64=gcr.io/kuar-demo/kuard-amd64:1 "; got != want {
		t.Errorf("containers %q, want %q", got, want)
	}
	// The default patch type of kubectl patch is strategic; $patch: delete
	// removes a list element by its merge key.
	wantLines(t, sc.k.run(t, "patch", "deployment", "kuard", "-p",
		`{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","$patch":"delete"}]}}}}`),
		"deployment.apps/kuard patched")
	if got := sc.jsonpath(t, `{.spec.template.spec.containers[*].name}`, "deployment", "kuard"); got != "kuard-amd64" {
		t.Errorf("containers after $patch: delete: %q, want kuard-amd64", got)
	}
}

// stepPatchNoChange: a patch that changes nothing is not a write (the
// resourceVersion stays) and kubectl says so.
func stepPatchNoChange(t *testing.T, sc *scenario) {
	before := sc.jsonpath(t, `{.metadata.resourceVersion}`, "deployment", "kuard")
	wantLines(t, sc.k.run(t, "patch", "deployment", "kuard", "--type=merge", "-p", `{"metadata":{"labels":{"patched":"merge"}}}`),
		"deployment.apps/kuard patched (no change)")
	if after := sc.jsonpath(t, `{.metadata.resourceVersion}`, "deployment", "kuard"); after != before {
		t.Errorf("resourceVersion %s → %s after a no-op patch, want unchanged", before, after)
	}
}

func stepEdit(t *testing.T, sc *scenario) {
	editor, err := filepath.Abs("testdata/editor.sh")
	if err != nil {
		t.Fatal(err)
	}
	r := sc.k.try(t, []string{"EDITOR=" + editor, "KUBE_EDITOR="}, "", "edit", "deployment", "kuard")
	if r.err != nil {
		t.Fatalf("kubectl edit: %v\nstdout:\n%s\nstderr:\n%s", r.err, r.stdout, r.stderr)
	}
	wantLines(t, r.stdout, "deployment.apps/kuard edited")
	if got := sc.jsonpath(t, `{.metadata.annotations.note}`, "deployment", "kuard"); got != "edited" {
		t.Errorf("annotation note after edit = %q, want edited", got)
	}
}

func stepApplyTwice(t *testing.T, sc *scenario) {
	wantLines(t, sc.k.run(t, "apply", "-f", "testdata/apply-v1.yaml"),
		"configmap/settings created", "deployment.apps/applied created", "service/applied created")
	// Unchanged manifests: the three-way merge against what the server
	// defaulted must find nothing to do.
	wantLines(t, sc.k.run(t, "apply", "-f", "testdata/apply-v1.yaml"),
		"configmap/settings unchanged", "deployment.apps/applied unchanged", "service/applied unchanged")
	wantLines(t, sc.k.run(t, "apply", "-f", "testdata/apply-v2.yaml"),
		"configmap/settings configured", "deployment.apps/applied unchanged", "service/applied unchanged")
	if got := sc.jsonpath(t, `{.data.color}`, "configmap", "settings"); got != "green" {
		t.Errorf("settings color = %q, want green", got)
	}
	last := sc.jsonpath(t, `{.metadata.annotations.kubectl\.kubernetes\.io/last-applied-configuration}`, "configmap", "settings")
	wantMatch(t, last, `"color":"green"`)
}

func stepScale(t *testing.T, sc *scenario) {
	wantLines(t, sc.k.run(t, "scale", "deployment", "kuard", "--replicas=5"), "deployment.apps/kuard scaled")
	wantLines(t, sc.k.run(t, "scale", "replicaset", "kuard-manual", "--replicas=0"), "replicaset.apps/kuard-manual scaled")
	if got := sc.jsonpath(t, `{.spec.replicas}`, "deployment", "kuard"); got != "5" {
		t.Errorf("deployment replicas = %s, want 5", got)
	}
	if got := sc.jsonpath(t, `{.spec.replicas}`, "replicaset", "kuard-manual"); got != "0" {
		t.Errorf("replicaset replicas = %s, want 0", got)
	}
	// The scale subresource itself, as autoscalers read it.
	var scale struct {
		Kind string
		Spec struct{ Replicas int }
	}
	sc.api.must(t, 200, "GET", "/apis/apps/v1/namespaces/"+sc.k.ns+"/deployments/kuard/scale", "", "").object(t, &scale)
	if scale.Kind != "Scale" || scale.Spec.Replicas != 5 {
		t.Errorf("deployments/kuard/scale = %+v, want a Scale with 5 replicas", scale)
	}
}

// stepWatch runs `kubectl get -w` in the background and sees an ADDED,
// a MODIFIED and a DELETED event arrive as Table rows.
func stepWatch(t *testing.T, sc *scenario) {
	w := sc.k.watch(t, "get", "configmaps", "--watch", "--output-watch-events")
	const timeout = 20 * time.Second
	// The initial list arrives as ADDED events; once settings is there
	// the watch is being served.
	w.next(t, timeout, "initial ADDED settings", func(f []string) bool { return len(f) > 1 && f[0] == "ADDED" && f[1] == "settings" })

	sc.k.run(t, "create", "configmap", "watched", "--from-literal=k=v")
	f := w.next(t, timeout, "ADDED watched", func(f []string) bool { return len(f) > 1 && f[1] == "watched" })
	if f[0] != "ADDED" || len(f) < 3 || f[2] != "1" {
		t.Errorf("event row %q, want ADDED watched 1 <age>", f)
	}
	sc.k.run(t, "label", "configmap", "watched", "seen=yes")
	f = w.next(t, timeout, "MODIFIED watched", func(f []string) bool { return len(f) > 1 && f[1] == "watched" })
	if f[0] != "MODIFIED" {
		t.Errorf("event row %q, want MODIFIED watched", f)
	}
	sc.k.run(t, "delete", "configmap", "watched")
	f = w.next(t, timeout, "DELETED watched", func(f []string) bool { return len(f) > 1 && f[1] == "watched" })
	if f[0] != "DELETED" {
		t.Errorf("event row %q, want DELETED watched", f)
	}
}

func stepExplain(t *testing.T, sc *scenario) {
	out := sc.k.run(t, "explain", "service.spec.clusterIP")
	wantMatch(t, out,
		`(?m)^KIND:\s+Service$`,
		`(?m)^VERSION:\s+v1$`,
		`(?m)^FIELD:\s+clusterIP <string>$`,
		`(?m)^DESCRIPTION:$`,
		`clusterIP is the IP address of the service`)
}

func stepDryRunServer(t *testing.T, sc *scenario) {
	out := sc.k.run(t, "create", "configmap", "dry", "--from-literal=a=b", "--dry-run=server", "-o", "yaml")
	var cm corev1.ConfigMap
	if err := yaml.UnmarshalStrict([]byte(out), &cm); err != nil {
		t.Fatalf("dry-run=server output: %v\n%s", err, out)
	}
	// The server handled it (uid, creationTimestamp) but did not store it
	// (no resourceVersion).
	if cm.Name != "dry" || cm.UID == "" || cm.CreationTimestamp.IsZero() || cm.ResourceVersion != "" || cm.Data["a"] != "b" {
		t.Errorf("dry-run=server configmap %+v, want name dry, a uid and creationTimestamp, no resourceVersion, data a=b", cm)
	}
	wantLines(t, sc.k.run(t, "create", "deployment", "dryd", "--image=gcr.io/kuar-demo/kuard-amd64:1", "--dry-run=server"),
		"deployment.apps/dryd created (server dry run)")
	wantLines(t, sc.k.run(t, "expose", "deployment", "kuard", "--name=drysvc", "--port=80", "--dry-run=server"),
		"service/drysvc exposed (server dry run)")
	for _, what := range [][]string{{"configmap", "dry"}, {"deployment", "dryd"}, {"service", "drysvc"}} {
		wantMatch(t, sc.k.fail(t, append([]string{"get"}, what...)...), `\(NotFound\)`)
	}
	// A dry run still checks for conflicts. kubectl ≥ 1.27 words the
	// error itself ("failed to create configmap: ... already exists").
	wantMatch(t, sc.k.fail(t, "create", "configmap", "settings", "--dry-run=server"), `configmaps "settings" already exists`)
}

// deleted matches kubectl's delete message ("from <ns> namespace" was
// added in 1.34).
func deleted(kindName string) string {
	return `^` + regexp.QuoteMeta(kindName) + ` deleted( from \S+ namespace)?\n$`
}

func stepDelete(t *testing.T, sc *scenario) {
	wantMatch(t, sc.k.run(t, "delete", "deployment", "kuard"), deleted(`deployment.apps "kuard"`))
	wantMatch(t, sc.k.fail(t, "get", "deployment", "kuard"), `Error from server \(NotFound\): deployments.apps "kuard" not found`)
	wantMatch(t, sc.k.run(t, "delete", "service", "kuard"), deleted(`service "kuard"`))
	wantMatch(t, sc.k.fail(t, "get", "service", "kuard"), `Error from server \(NotFound\): services "kuard" not found`)
	out := sc.k.run(t, "delete", "-f", "testdata/apply-v2.yaml")
	for _, what := range []string{`configmap "settings"`, `deployment.apps "applied"`, `service "applied"`} {
		wantMatch(t, out, `(?m)^`+regexp.QuoteMeta(what)+` deleted`)
	}
	// Every namespace keeps the cluster CA's ConfigMap (the root CA
	// publisher puts it back), as upstream.
	wantLines(t, sc.k.run(t, "get", "deployments,services,configmaps", "-o", "name"), "configmap/kube-root-ca.crt")
}

// stepDeletePod: a pod on a node is deleted gracefully (marked, left for
// the node to finish), and removed at once with --grace-period=0 --force.
func stepDeletePod(t *testing.T, sc *scenario) {
	wantMatch(t, sc.k.run(t, "delete", "pod", "web", "--wait=false"), deleted(`pod "web"`))
	if got := sc.jsonpath(t, `{.metadata.deletionGracePeriodSeconds}`, "pod", "web"); got != "30" {
		t.Errorf("deletionGracePeriodSeconds = %q, want 30", got)
	}
	if got := sc.jsonpath(t, `{.metadata.deletionTimestamp}`, "pod", "web"); got == "" {
		t.Error("pod web has no deletionTimestamp after a graceful delete")
	}
	parseTable(t, sc.k.run(t, "get", "pod", "web")).wantRow(t, "web", map[string]string{"STATUS": "Terminating"})
	r := sc.k.try(t, nil, "", "delete", "pod", "web", "--grace-period=0", "--force")
	if r.err != nil {
		t.Fatalf("force delete: %v\n%s", r.err, r.stderr)
	}
	wantMatch(t, r.stdout, `^pod "web" force deleted`)
	wantMatch(t, sc.k.fail(t, "get", "pod", "web"), `\(NotFound\)`)
}

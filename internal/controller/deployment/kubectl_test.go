package deployment

import (
	"regexp"
	"strings"
	"testing"
)

// The walkthrough's deployment steps with the real kubectl: create, set
// image, scale, undo, and what get, describe and rollout print.
func TestKubectlWorkflow(t *testing.T) {
	needKubectl(t)
	e := start(t)
	run := func(want string, args ...string) string {
		t.Helper()
		out, err := e.kubectl(t, wait, args...)
		if err != nil || !strings.Contains(out, want) {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	run("deployment.apps/kuard created", "create", "deployment", "kuard", "--image="+imageV1, "--replicas=10")
	d := e.rollOut(t, "kuard")
	hash := PodTemplateHash(&d.Spec.Template, nil)
	out := run("kuard-"+hash, "get", "rs")
	if !regexp.MustCompile(`(?m)^kuard-` + hash + `\s+10\s+10\s+10\s`).MatchString(out) {
		t.Errorf("kubectl get rs:\n%s", out)
	}
	out = run("kuard", "get", "deployment", "kuard")
	if !regexp.MustCompile(`(?m)^kuard\s+10/10\s+10\s+10\s`).MatchString(out) {
		t.Errorf("kubectl get deployment:\n%s", out)
	}

	run("image updated", "set", "image", "deployment/kuard", "kuard-amd64="+imageV2)
	e.rollOut(t, "kuard")
	run("successfully rolled out", "rollout", "status", "deployment/kuard", "--timeout=30s")
	run("scaled", "scale", "deployment/kuard", "--replicas=3")
	e.rollOut(t, "kuard")
	run("rolled back", "rollout", "undo", "deployment/kuard")
	d = e.rollOut(t, "kuard")
	if img := d.Spec.Template.Spec.Containers[0].Image; img != imageV1 || *d.Spec.Replicas != 3 {
		t.Errorf("after undo: image %s, replicas %d", img, *d.Spec.Replicas)
	}
	if out := run("REVISION", "rollout", "history", "deployment/kuard"); !historyLists(out, "2", "3") {
		t.Errorf("kubectl rollout history:\n%s", out)
	}
	out = run("NewReplicaSet:", "describe", "deployment", "kuard")
	for _, want := range []string{
		"kuard-" + hash + " (3/3 replicas created)",
		"Available      True    MinimumReplicasAvailable",
		"Progressing    True    NewReplicaSetAvailable",
		"ScalingReplicaSet",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("kubectl describe deployment lacks %q:\n%s", want, out)
		}
	}
}

package deployment

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"kite/internal/testutil/apitest"
)

// Scale to 3, then roll back: the old ReplicaSet comes back (same object,
// next revision, its old revision remembered) and kubectl rollout
// history/undo work as with upstream.
func TestScaleAndRollback(t *testing.T) {
	e := start(t)
	d := e.create(t, newDeployment("kuard", 10))
	e.rollOut(t, "kuard")
	e.setImage(t, "kuard", imageV2)
	d = e.rollOut(t, "kuard")
	rss := e.replicaSets(t, d)
	v1, v2 := rss[0], rss[1]

	e.scale(t, "kuard", 3)
	e.waitReplicaSets(t, d, 0, 3)
	apitest.WaitFor(t, wait, "three pods, status 3/3", func() bool {
		d = e.get(t, "kuard")
		return rolledOut(d) && len(e.livePodsOf(t, &v2)) == 3 && d.Status.Replicas == 3
	})
	e.hasEvent(t, "kuard", ReasonScalingReplicaSet, fmt.Sprintf("Scaled down replica set %s from 10 to 3", v2.Name))
	rss = e.replicaSets(t, d)
	if a := rss[1].Annotations; a[DesiredReplicasAnnotation] != "3" || a[MaxReplicasAnnotation] != "4" {
		t.Errorf("replica annotations after scaling: %v", a)
	}

	if kubectlInstalled() {
		out, err := e.kubectl(t, wait, "rollout", "history", "deployment/kuard")
		if err != nil || !historyLists(out, "1", "2") {
			t.Errorf("kubectl rollout history: %v\n%s", err, out)
		}
		out, err = e.kubectl(t, wait, "rollout", "undo", "deployment/kuard")
		if err != nil || !strings.Contains(out, "rolled back") {
			t.Fatalf("kubectl rollout undo: %v\n%s", err, out)
		}
	} else {
		undo(t, e, "kuard", &v1)
	}

	d = e.rollOut(t, "kuard")
	rss = e.waitReplicaSets(t, d, 3, 0)
	if rss[0].UID != v1.UID {
		t.Fatalf("rollback made a new replica set %s instead of reusing %s", rss[0].Name, v1.Name)
	}
	if a := rss[0].Annotations; a[RevisionAnnotation] != "3" || a[RevisionHistoryAnnotation] != "1" {
		t.Errorf("rolled-back replica set annotations: revision %q history %q, want 3 and 1", a[RevisionAnnotation], a[RevisionHistoryAnnotation])
	}
	if img := d.Spec.Template.Spec.Containers[0].Image; img != imageV1 {
		t.Errorf("image after undo: %s", img)
	}
	if kubectlInstalled() {
		out, err := e.kubectl(t, wait, "rollout", "history", "deployment/kuard")
		if err != nil || !historyLists(out, "2", "3") {
			t.Errorf("kubectl rollout history after undo: %v\n%s", err, out)
		}
		out, err = e.kubectl(t, wait, "rollout", "status", "deployment/kuard", "--timeout=30s")
		if err != nil || !strings.Contains(out, "successfully rolled out") {
			t.Errorf("kubectl rollout status: %v\n%s", err, out)
		}
	}
}

// historyLists reports whether kubectl rollout history printed exactly
// these revisions.
func historyLists(out string, revisions ...string) bool {
	got := regexp.MustCompile(`(?m)^(\d+)\s`).FindAllStringSubmatch(out, -1)
	if len(got) != len(revisions) {
		return false
	}
	for i, m := range got {
		if m[1] != revisions[i] {
			return false
		}
	}
	return true
}

// undo is what kubectl rollout undo does, client-side: put the ReplicaSet's
// template (without its hash label) and annotations back on the Deployment.
func undo(t *testing.T, e *env, name string, to *appsv1.ReplicaSet) {
	t.Helper()
	tmpl := to.Spec.Template.DeepCopy()
	delete(tmpl.Labels, PodTemplateHashLabel)
	patch, err := json.Marshal([]map[string]any{{"op": "replace", "path": "/spec/template", "value": tmpl}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.AppsV1().Deployments(e.ns).Patch(e.ctx, name, types.JSONPatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
}

// revisionHistoryLimit old ReplicaSets are kept; older ones are deleted.
func TestRevisionHistoryLimit(t *testing.T) {
	e := start(t)
	spec := newDeployment("kuard", 1)
	spec.Spec.RevisionHistoryLimit = ptr.To[int32](1)
	d := e.create(t, spec)
	e.rollOut(t, "kuard")
	for i := 2; i <= 4; i++ {
		e.setImage(t, "kuard", fmt.Sprintf("gcr.io/kuar-demo/kuard-amd64:%d", i))
		e.rollOut(t, "kuard")
	}
	var rss []appsv1.ReplicaSet
	apitest.WaitFor(t, wait, "one old replica set kept", func() bool {
		rss = e.replicaSets(t, d)
		return len(rss) == 2
	})
	if rss[0].Annotations[RevisionAnnotation] != "3" || rss[1].Annotations[RevisionAnnotation] != "4" {
		t.Errorf("kept revisions %s and %s, want 3 and 4", rss[0].Annotations[RevisionAnnotation], rss[1].Annotations[RevisionAnnotation])
	}

	// Limit 0: no old ReplicaSet is kept.
	e.patch(t, "kuard", `{"spec":{"revisionHistoryLimit":0}}`)
	e.setImage(t, "kuard", imageV1)
	e.rollOut(t, "kuard")
	apitest.WaitFor(t, wait, "no old replica set kept", func() bool { return len(e.replicaSets(t, d)) == 1 })
}

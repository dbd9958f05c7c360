package deployment

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"kite/internal/testutil/apitest"
)

// S1: a Deployment of ten replicas makes one ReplicaSet kuard-<hash> and
// ten pods kuard-<hash>-<5>; once they are ready the Deployment reports
// 10/10, Available and Progressing as upstream, and the real kubectl's
// rollout status agrees.
func TestTenReplicas(t *testing.T) {
	e := start(t)
	d := e.create(t, newDeployment("kuard", 10))
	hash := PodTemplateHash(&d.Spec.Template, nil)
	rsName := "kuard-" + hash

	var rs appsv1.ReplicaSet
	apitest.WaitFor(t, wait, "one replica set with ten pods", func() bool {
		rss := e.replicaSets(t, d)
		if len(rss) != 1 {
			return false
		}
		rs = rss[0]
		return len(e.livePodsOf(t, &rs)) == 10
	})
	if rs.Name != rsName {
		t.Errorf("replica set %q, want %q", rs.Name, rsName)
	}
	if !regexp.MustCompile(`^[bcdfghjklmnpqrstvwxz2456789]{1,10}$`).MatchString(hash) {
		t.Errorf("hash %q is not a SafeEncodeString of a uint32", hash)
	}
	checkReplicaSet(t, &rs, d, hash)
	podName := regexp.MustCompile(`^` + rsName + `-[a-z0-9]{5}$`)
	for _, p := range e.livePodsOf(t, &rs) {
		if !podName.MatchString(p.Name) {
			t.Errorf("pod %q, want %s-<5 chars>", p.Name, rsName)
		}
		if p.Labels[PodTemplateHashLabel] != hash || p.Labels["app"] != "kuard" {
			t.Errorf("pod %s labels %v", p.Name, p.Labels)
		}
	}

	// kubectl rollout status, started now, reports the rollout waiting
	// and then finished.
	var status *bgKubectl
	if kubectlInstalled() {
		status = e.startKubectl(t, "rollout", "status", "deployment/kuard", "--timeout=60s")
		status.waitLine(t, `Waiting for deployment "kuard" rollout to finish: 0 of 10 updated replicas are available...`)
	}

	d = e.rollOut(t, "kuard")
	s := d.Status
	if s.Replicas != 10 || s.UpdatedReplicas != 10 || s.ReadyReplicas != 10 || s.AvailableReplicas != 10 ||
		s.UnavailableReplicas != 0 || s.ObservedGeneration != d.Generation {
		t.Errorf("status %+v", s)
	}
	apitest.WaitFor(t, wait, "Progressing=True(NewReplicaSetAvailable)", func() bool {
		d = e.get(t, "kuard")
		c := condition(d, appsv1.DeploymentProgressing)
		return c != nil && c.Reason == ReasonNewReplicaSetAvailable
	})
	wantConditions(t, d, map[appsv1.DeploymentConditionType][3]string{
		appsv1.DeploymentAvailable:   {"True", ReasonMinimumReplicasAvailable, "Deployment has minimum availability."},
		appsv1.DeploymentProgressing: {"True", ReasonNewReplicaSetAvailable, fmt.Sprintf("ReplicaSet %q has successfully progressed.", rsName)},
	})
	e.hasEvent(t, "kuard", ReasonScalingReplicaSet, "Scaled up replica set "+rsName+" from 0 to 10")

	if status != nil {
		out, err := status.wait()
		if err != nil || !strings.Contains(out, `deployment "kuard" successfully rolled out`) {
			t.Errorf("kubectl rollout status: %v\n%s", err, out)
		}
		t.Logf("kubectl rollout status:\n%s", out)
	}
}

// checkReplicaSet checks what the Deployment controller puts on a
// ReplicaSet it creates for template hash.
func checkReplicaSet(t *testing.T, rs *appsv1.ReplicaSet, d *appsv1.Deployment, hash string) {
	t.Helper()
	ref := metav1.GetControllerOf(rs)
	if ref == nil || ref.UID != d.UID || ref.Kind != "Deployment" || ref.APIVersion != "apps/v1" || !ptr.Deref(ref.BlockOwnerDeletion, false) {
		t.Errorf("replica set controller reference %+v", rs.OwnerReferences)
	}
	if rs.Labels[PodTemplateHashLabel] != hash || rs.Spec.Selector.MatchLabels[PodTemplateHashLabel] != hash ||
		rs.Spec.Template.Labels[PodTemplateHashLabel] != hash || rs.Spec.Selector.MatchLabels["app"] != "kuard" {
		t.Errorf("replica set labels %v, selector %v, template labels %v: want %s=%s added",
			rs.Labels, rs.Spec.Selector.MatchLabels, rs.Spec.Template.Labels, PodTemplateHashLabel, hash)
	}
	n := *d.Spec.Replicas
	want := map[string]string{RevisionAnnotation: "1", DesiredReplicasAnnotation: fmt.Sprint(n),
		MaxReplicasAnnotation: fmt.Sprint(n + maxSurge(d))}
	for k, v := range want {
		if rs.Annotations[k] != v {
			t.Errorf("replica set annotation %s=%q, want %q", k, rs.Annotations[k], v)
		}
	}
}

// wantConditions checks status, reason and message of conditions.
func wantConditions(t *testing.T, d *appsv1.Deployment, want map[appsv1.DeploymentConditionType][3]string) {
	t.Helper()
	for ct, w := range want {
		c := condition(d, ct)
		if c == nil {
			t.Errorf("no %s condition", ct)
			continue
		}
		if string(c.Status) != w[0] || c.Reason != w[1] || c.Message != w[2] {
			t.Errorf("%s condition: %s %s %q, want %s %s %q", ct, c.Status, c.Reason, c.Message, w[0], w[1], w[2])
		}
	}
}

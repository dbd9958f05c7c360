package deployment

import (
	"fmt"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"kite/internal/testutil/apitest"
)

// Recreate: every old pod is gone (terminating pods included) before the
// new ReplicaSet makes its first pod.
func TestRecreate(t *testing.T) {
	e := start(t)
	spec := newDeployment("kuard", 3)
	spec.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
	d := e.create(t, spec)
	d = e.rollOutOn(t, "kuard", "node-1")
	old := e.replicaSets(t, d)[0]

	obs := e.observe(t, func(pods map[string]*corev1.Pod) error {
		hashes := map[string]bool{}
		for _, p := range pods {
			hashes[p.Labels[PodTemplateHashLabel]] = true
		}
		if len(hashes) > 1 {
			return fmt.Errorf("pods of %d templates exist at once", len(hashes))
		}
		return nil
	}, nil)

	e.setImage(t, "kuard", imageV2)
	apitest.WaitFor(t, wait, "old pods terminating", func() bool {
		pods := e.pods(t)
		for _, p := range pods {
			if p.DeletionTimestamp == nil {
				return false
			}
		}
		return len(pods) == 3
	})
	if rss := e.replicaSets(t, d); len(rss) != 1 {
		t.Errorf("%d replica sets while old pods still terminate; want the new one only after", len(rss))
	}
	e.reapTerminating(t) // the node lets them go
	d = e.rollOutOn(t, "kuard", "node-1")
	rss := e.replicaSets(t, d)
	if len(rss) != 2 || rss[0].UID != old.UID || rsReplicas(&rss[0]) != 0 || rsReplicas(&rss[1]) != 3 {
		t.Fatalf("replica sets after recreate: %v", names(rss))
	}
	e.hasEvent(t, "kuard", ReasonScalingReplicaSet, fmt.Sprintf("Scaled down replica set %s from 3 to 0", old.Name))
	e.hasEvent(t, "kuard", ReasonScalingReplicaSet, fmt.Sprintf("Scaled up replica set %s from 0 to 3", rss[1].Name))
	if n := obs.seen(t); n < 6 {
		t.Errorf("observed only %d events", n)
	}
}

func names(rss []appsv1.ReplicaSet) []string {
	var out []string
	for _, rs := range rss {
		out = append(out, fmt.Sprintf("%s=%d", rs.Name, rsReplicas(&rs)))
	}
	return out
}

// Scaling mid-rollout shares the new replicas among the old and new
// ReplicaSets in proportion to their sizes.
func TestProportionalScaling(t *testing.T) {
	e := start(t)
	d := e.create(t, newDeployment("kuard", 10)) // maxSurge 3, maxUnavailable 2
	e.rollOut(t, "kuard")
	// The new pods never become ready: the rollout stops at old 8, new 5
	// (13 = 10+3 pods, 8 = 10-2 available).
	e.setImage(t, "kuard", imageV2)
	e.waitReplicaSets(t, d, 8, 5)
	apitest.WaitFor(t, wait, "status settled", func() bool {
		d = e.get(t, "kuard")
		return d.Status.ObservedGeneration == d.Generation && d.Status.Replicas == 13
	})

	// 20 replicas allow 25 pods: 12 more, shared 8:5 of 13 → old 15.4,
	// new 9.6, rounded to 15 and 10.
	e.scale(t, "kuard", 20)
	rss := e.waitReplicaSets(t, d, 15, 10)
	for _, rs := range rss {
		if a := rs.Annotations; a[DesiredReplicasAnnotation] != "20" || a[MaxReplicasAnnotation] != "25" {
			t.Errorf("%s annotations %v, want desired 20 and max 25", rs.Name, a)
		}
	}
	// Down to 5, which allows 7 pods (maxSurge rounds 1.25 up to 2): 18
	// fewer, shared 15:10 of 25 → old 4.2, new 2.8, rounded to 4 and 3.
	e.scale(t, "kuard", 5)
	e.waitReplicaSets(t, d, 4, 3)
}

// A paused Deployment does not roll out template changes but still
// scales; resumed, it rolls out.
func TestPauseAndResume(t *testing.T) {
	e := start(t)
	d := e.create(t, newDeployment("kuard", 3))
	e.rollOut(t, "kuard")
	e.patch(t, "kuard", `{"spec":{"paused":true}}`)
	apitest.WaitFor(t, wait, "Progressing=Unknown(DeploymentPaused)", func() bool {
		c := condition(e.get(t, "kuard"), appsv1.DeploymentProgressing)
		return c != nil && c.Status == corev1.ConditionUnknown && c.Reason == ReasonDeploymentPaused && c.Message == "Deployment is paused"
	})
	e.setImage(t, "kuard", imageV2)
	e.scale(t, "kuard", 5)
	apitest.WaitFor(t, wait, "scaled while paused, generation observed", func() bool {
		d = e.get(t, "kuard")
		return d.Status.ObservedGeneration == d.Generation && d.Status.Replicas == 5
	})
	if rss := e.replicaSets(t, d); len(rss) != 1 || rsReplicas(&rss[0]) != 5 {
		t.Fatalf("paused deployment rolled out: %v", names(rss))
	}

	e.patch(t, "kuard", `{"spec":{"paused":false}}`)
	d = e.rollOut(t, "kuard")
	e.waitReplicaSets(t, d, 0, 5)
	apitest.WaitFor(t, wait, "Progressing=True(NewReplicaSetAvailable)", func() bool {
		c := condition(e.get(t, "kuard"), appsv1.DeploymentProgressing)
		return c != nil && c.Status == corev1.ConditionTrue && c.Reason == ReasonNewReplicaSetAvailable
	})
}

// A rollout with no progress for progressDeadlineSeconds is reported as
// failed, and kubectl rollout status says so.
func TestProgressDeadline(t *testing.T) {
	e := start(t)
	spec := newDeployment("stuck", 2)
	spec.Spec.ProgressDeadlineSeconds = ptr.To[int32](2)
	d := e.create(t, spec)
	rsName := "stuck-" + PodTemplateHash(&d.Spec.Template, nil)
	apitest.WaitFor(t, wait, "Progressing=False(ProgressDeadlineExceeded)", func() bool {
		d = e.get(t, "stuck")
		c := condition(d, appsv1.DeploymentProgressing)
		return c != nil && c.Status == corev1.ConditionFalse && c.Reason == ReasonProgressDeadlineExceeded &&
			c.Message == fmt.Sprintf("ReplicaSet %q has timed out progressing.", rsName)
	})
	wantConditions(t, d, map[appsv1.DeploymentConditionType][3]string{
		appsv1.DeploymentAvailable: {"False", ReasonMinimumReplicasUnavailable, "Deployment does not have minimum availability."},
	})
	if kubectlInstalled() {
		out, err := e.kubectl(t, wait, "rollout", "status", "deployment/stuck", "--timeout=20s")
		if err == nil || !strings.Contains(out, `deployment "stuck" exceeded its progress deadline`) {
			t.Errorf("kubectl rollout status: %v\n%s", err, out)
		}
	}
	// Ready pods after all: the rollout completes.
	e.rollOut(t, "stuck")
	apitest.WaitFor(t, wait, "Progressing=True(NewReplicaSetAvailable)", func() bool {
		c := condition(e.get(t, "stuck"), appsv1.DeploymentProgressing)
		return c != nil && c.Status == corev1.ConditionTrue && c.Reason == ReasonNewReplicaSetAvailable
	})
}

// An orphan ReplicaSet the Deployment selects, running its template, is
// adopted as its new ReplicaSet; relabelled out of the selector, it is
// released and replaced.
func TestAdoptAndReleaseReplicaSet(t *testing.T) {
	e := start(t)
	spec := newDeployment("kuard", 2)
	labels := map[string]string{"app": "kuard", PodTemplateHashLabel: "manual"}
	orphan := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: "kuard-manual", Labels: labels},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: ptr.To[int32](2),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: *spec.Spec.Template.DeepCopy(),
		},
	}
	orphan.Spec.Template.Labels = labels
	orphan, err := e.client.AppsV1().ReplicaSets(e.ns).Create(e.ctx, orphan, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d := e.create(t, spec)
	apitest.WaitFor(t, wait, "orphan adopted", func() bool {
		rss := e.replicaSets(t, d)
		return len(rss) == 1 && rss[0].UID == orphan.UID && rss[0].Annotations[RevisionAnnotation] == "1"
	})
	d = e.rollOut(t, "kuard")
	if rss := e.replicaSets(t, d); len(rss) != 1 {
		t.Fatalf("replica sets %v, want only the adopted one", names(rss))
	}

	e.patchRS(t, "kuard-manual", `{"metadata":{"labels":{"app":"elsewhere"}}}`)
	apitest.WaitFor(t, wait, "released and replaced", func() bool {
		rs, err := e.client.AppsV1().ReplicaSets(e.ns).Get(e.ctx, "kuard-manual", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		rss := e.replicaSets(t, d)
		return len(rs.OwnerReferences) == 0 && len(rss) == 1 && rss[0].Name == "kuard-"+PodTemplateHash(&d.Spec.Template, nil)
	})
	e.rollOut(t, "kuard")
}

// Pods its ReplicaSet cannot create show on the Deployment as the
// ReplicaSet's ReplicaFailure condition.
func TestReplicaFailureSurfaces(t *testing.T) {
	e := start(t)
	spec := newDeployment("broken", 2)
	spec.Spec.Template.Finalizers = []string{"not a finalizer!"} // valid in a template, not in a pod
	e.create(t, spec)
	apitest.WaitFor(t, wait, "ReplicaFailure=True(FailedCreate) on the deployment", func() bool {
		c := condition(e.get(t, "broken"), appsv1.DeploymentReplicaFailure)
		return c != nil && c.Status == corev1.ConditionTrue && c.Reason == "FailedCreate"
	})
}

package replicaset

import (
	"regexp"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"kite/internal/testutil/apitest"
	"kite/internal/testutil/nodesim"
)

func TestCreatesPodsAndReportsStatus(t *testing.T) {
	e := start(t)
	rs := e.createRS(t, newRS("kuard", 5))

	apitest.WaitFor(t, wait, "five pods", func() bool { return len(e.podsOf(t, rs)) == 5 })
	name := regexp.MustCompile(`^kuard-[a-z0-9]{5}$`)
	for _, p := range e.podsOf(t, rs) {
		if !name.MatchString(p.Name) || p.GenerateName != "kuard-" {
			t.Errorf("pod %q (generateName %q): want kuard-<5 chars>", p.Name, p.GenerateName)
		}
		if p.Labels["app"] != "kuard" || p.Labels["tier"] != "web" {
			t.Errorf("pod %s labels %v: want the template's", p.Name, p.Labels)
		}
		want := metav1.OwnerReference{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "kuard", UID: rs.UID,
			Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}
		if len(p.OwnerReferences) != 1 || !equalRef(p.OwnerReferences[0], want) {
			t.Errorf("pod %s ownerReferences %+v: want %+v", p.Name, p.OwnerReferences, want)
		}
	}
	apitest.WaitFor(t, wait, "status replicas=5", func() bool {
		s := e.getRS(t, "kuard").Status
		return s.Replicas == 5 && s.FullyLabeledReplicas == 5 && s.ReadyReplicas == 0 && s.ObservedGeneration == 1 &&
			ptr.Deref(s.TerminatingReplicas, -1) == 0
	})

	pods := e.podsOf(t, rs)
	for _, p := range pods[:3] {
		if err := nodesim.SetReady(e.ctx, e.client, e.ns, p.Name, true); err != nil {
			t.Fatal(err)
		}
	}
	apitest.WaitFor(t, wait, "three ready and available", func() bool {
		s := e.getRS(t, "kuard").Status
		return s.ReadyReplicas == 3 && s.AvailableReplicas == 3
	})
	apitest.WaitFor(t, wait, "SuccessfulCreate events", func() bool {
		return len(e.events(t, "kuard")[ReasonSuccessfulCreate]) == 5
	})
	for _, msg := range e.events(t, "kuard")[ReasonSuccessfulCreate] {
		if !regexp.MustCompile(`^Created pod: kuard-[a-z0-9]{5}$`).MatchString(msg) {
			t.Errorf("event message %q", msg)
		}
	}

	// A spec change is observed in status.
	e.scale(t, "kuard", 2)
	apitest.WaitFor(t, wait, "scaled to 2, generation 2 observed", func() bool {
		s := e.getRS(t, "kuard").Status
		return len(e.podsOf(t, rs)) == 2 && s.Replicas == 2 && s.ObservedGeneration == 2
	})
	apitest.WaitFor(t, wait, "SuccessfulDelete events", func() bool {
		return len(e.events(t, "kuard")[ReasonSuccessfulDelete]) == 3
	})
	// The three ready pods outlive the two that were never ready.
	for _, p := range e.podsOf(t, rs) {
		if !isPodReady(&p) {
			t.Errorf("kept pod %s is not ready; the not-ready ones should have gone first", p.Name)
		}
	}
}

func equalRef(a, b metav1.OwnerReference) bool {
	return a.APIVersion == b.APIVersion && a.Kind == b.Kind && a.Name == b.Name && a.UID == b.UID &&
		ptr.Deref(a.Controller, false) == ptr.Deref(b.Controller, false) &&
		ptr.Deref(a.BlockOwnerDeletion, false) == ptr.Deref(b.BlockOwnerDeletion, false)
}

func TestReplacesDeletedPods(t *testing.T) {
	e := start(t)
	rs := e.createRS(t, newRS("web", 3))
	apitest.WaitFor(t, wait, "three pods", func() bool { return len(e.podsOf(t, rs)) == 3 })
	before := e.podsOf(t, rs)
	for _, p := range before[:2] {
		if err := e.client.CoreV1().Pods(e.ns).Delete(e.ctx, p.Name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	apitest.WaitFor(t, wait, "two replacements", func() bool {
		pods := e.podsOf(t, rs)
		if len(pods) != 3 {
			return false
		}
		return !slices.ContainsFunc(pods, func(p corev1.Pod) bool { return p.Name == before[0].Name || p.Name == before[1].Name })
	})
	apitest.WaitFor(t, wait, "status replicas=3", func() bool { return e.getRS(t, "web").Status.Replicas == 3 })
}

func TestAdoptsAndReleasesBySelector(t *testing.T) {
	e := start(t)
	// An orphan that the ReplicaSet's selector matches exists first.
	orphan := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "orphan", Labels: map[string]string{"app": "web", "tier": "web"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
	}
	if _, err := e.client.CoreV1().Pods(e.ns).Create(e.ctx, orphan, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// A pod of another controller with matching labels is left alone.
	foreign := orphan.DeepCopy()
	foreign.Name = "foreign"
	foreign.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "ReplicationController", Name: "other",
		UID: types.UID("11111111-2222-3333-4444-555555555555"), Controller: ptr.To(true)}}
	if _, err := e.client.CoreV1().Pods(e.ns).Create(e.ctx, foreign, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	rs := e.createRS(t, newRS("web", 2))
	apitest.WaitFor(t, wait, "orphan adopted, one pod created", func() bool {
		pods := e.podsOf(t, rs)
		return len(pods) == 2 && slices.ContainsFunc(pods, func(p corev1.Pod) bool { return p.Name == "orphan" })
	})
	p, err := e.client.CoreV1().Pods(e.ns).Get(e.ctx, "orphan", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ref := metav1.GetControllerOf(p); ref == nil || ref.UID != rs.UID || !ptr.Deref(ref.BlockOwnerDeletion, false) {
		t.Errorf("adopted pod's controller reference: %+v", p.OwnerReferences)
	}
	f, err := e.client.CoreV1().Pods(e.ns).Get(e.ctx, "foreign", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ref := metav1.GetControllerOf(f); ref == nil || ref.Kind != "ReplicationController" || len(f.OwnerReferences) != 1 {
		t.Errorf("foreign pod's owner changed: %+v", f.OwnerReferences)
	}

	// Relabelled out of the selector: released, and replaced.
	patch := []byte(`{"metadata":{"labels":{"app":"elsewhere"}}}`)
	if _, err := e.client.CoreV1().Pods(e.ns).Patch(e.ctx, "orphan", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	apitest.WaitFor(t, wait, "pod released and replaced", func() bool {
		p, err := e.client.CoreV1().Pods(e.ns).Get(e.ctx, "orphan", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		pods := e.podsOf(t, rs)
		return len(p.OwnerReferences) == 0 && len(pods) == 2 &&
			!slices.ContainsFunc(pods, func(p corev1.Pod) bool { return p.Name == "orphan" })
	})
}

func TestScaleDownPrefersUnscheduledThenNotReady(t *testing.T) {
	e := start(t)
	rs := e.createRS(t, newRS("pick", 4))
	apitest.WaitFor(t, wait, "four pods", func() bool { return len(e.podsOf(t, rs)) == 4 })
	pods := e.podsOf(t, rs)
	// pods[0] stays unscheduled; pods[1] is scheduled, pending; pods[2]
	// running, not ready; pods[3] running and ready.
	for _, p := range pods[1:] {
		if err := nodesim.Bind(e.ctx, e.client, e.ns, p.Name, "node-a"); err != nil {
			t.Fatal(err)
		}
	}
	if err := nodesim.SetReady(e.ctx, e.client, e.ns, pods[2].Name, false); err != nil {
		t.Fatal(err)
	}
	if err := nodesim.SetReady(e.ctx, e.client, e.ns, pods[3].Name, true); err != nil {
		t.Fatal(err)
	}
	apitest.WaitFor(t, wait, "one ready", func() bool { return e.getRS(t, "pick").Status.ReadyReplicas == 1 })

	for want := 3; want >= 1; want-- {
		e.scale(t, "pick", int32(want))
		gone := pods[3-want]
		apitest.WaitFor(t, wait, "pod "+gone.Name+" deleted first", func() bool {
			e.reapTerminating(t)
			_, err := e.client.CoreV1().Pods(e.ns).Get(e.ctx, gone.Name, metav1.GetOptions{})
			return apierrors.IsNotFound(err) && len(e.podsOf(t, rs)) == want
		})
	}
	if left := e.podsOf(t, rs); left[0].Name != pods[3].Name {
		t.Errorf("kept %s, want the ready pod %s", left[0].Name, pods[3].Name)
	}
}

func TestTerminatingReplicas(t *testing.T) {
	e := start(t)
	rs := e.createRS(t, newRS("term", 2))
	apitest.WaitFor(t, wait, "two pods", func() bool { return len(e.podsOf(t, rs)) == 2 })
	p := e.podsOf(t, rs)[0]
	if err := nodesim.Bind(e.ctx, e.client, e.ns, p.Name, "node-a"); err != nil {
		t.Fatal(err)
	}
	if err := nodesim.SetReady(e.ctx, e.client, e.ns, p.Name, true); err != nil {
		t.Fatal(err)
	}
	// A graceful deletion: the pod stays, terminating, until its node
	// lets go; the ReplicaSet replaces it at once and counts it.
	if err := e.client.CoreV1().Pods(e.ns).Delete(e.ctx, p.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	apitest.WaitFor(t, wait, "replacement made, one terminating", func() bool {
		s := e.getRS(t, "term").Status
		return len(e.podsOf(t, rs)) == 2 && s.Replicas == 2 && ptr.Deref(s.TerminatingReplicas, 0) == 1
	})
	if err := e.client.CoreV1().Pods(e.ns).Delete(e.ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}); err != nil {
		t.Fatal(err)
	}
	apitest.WaitFor(t, wait, "no terminating pods", func() bool {
		return ptr.Deref(e.getRS(t, "term").Status.TerminatingReplicas, -1) == 0
	})
}

func TestMinReadySeconds(t *testing.T) {
	e := start(t)
	spec := newRS("slow", 1)
	spec.Spec.MinReadySeconds = 1
	rs := e.createRS(t, spec)
	apitest.WaitFor(t, wait, "one pod", func() bool { return len(e.podsOf(t, rs)) == 1 })
	if err := nodesim.SetReady(e.ctx, e.client, e.ns, e.podsOf(t, rs)[0].Name, true); err != nil {
		t.Fatal(err)
	}
	apitest.WaitFor(t, wait, "ready", func() bool { return e.getRS(t, "slow").Status.ReadyReplicas == 1 })
	// Available only once ready for a whole second, with no further event
	// to prompt the controller.
	apitest.WaitFor(t, wait, "available", func() bool { return e.getRS(t, "slow").Status.AvailableReplicas == 1 })
	pod := e.podsOf(t, rs)[0]
	readySince := podReadyCondition(&pod).LastTransitionTime.Time // whole seconds
	if early := readySince.Add(time.Second).Sub(time.Now()); early > 0 {
		t.Errorf("available %v before minReadySeconds had passed", early)
	}
}

package agent

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"kite/internal/runtime"
)

// Sidecars: init containers with restartPolicy Always (upstream 1.29+).

func sidecar(name string) corev1.Container {
	return corev1.Container{Name: name, Image: "busybox", Command: []string{"sleep", "1000"},
		RestartPolicy: ptr.To(corev1.ContainerRestartPolicyAlways)}
}

// A sidecar starts in its place among the init containers, keeps running
// and is restarted whatever the pod's restartPolicy, counts toward Ready,
// and is stopped once the containers of a Never pod have finished, which
// lets the pod succeed.
func TestSidecarLifecycle(t *testing.T) {
	h := newHarness(t)
	pod := h.create(newPod("sidecar", func(p *corev1.Pod) {
		p.Spec.RestartPolicy = corev1.RestartPolicyNever
		p.Spec.InitContainers = []corev1.Container{sidecar("proxy"),
			{Name: "setup", Image: "busybox", Command: []string{"true"}}}
	}))
	id := func(name string, n int) string { return containerID(pod.UID, name, n) }

	st := h.status(pod)
	if _, ok := h.rt.ContainerConfig(id("setup", 0)); !ok {
		t.Fatal("the init container after a started sidecar did not start")
	}
	if _, ok := h.rt.ContainerConfig(id("app", 0)); ok {
		t.Fatal("app started before the init containers finished")
	}
	if c := findCondition(st.Conditions, corev1.PodInitialized); st.Phase != corev1.PodPending || c.Status != corev1.ConditionFalse ||
		c.Message != "containers with incomplete status: [setup]" {
		t.Fatalf("while initializing: phase %s, Initialized %+v", st.Phase, c)
	}

	h.rt.Exit(id("setup", 0), 0, false)
	h.sync(pod)
	st = h.status(pod)
	if st.Phase != corev1.PodRunning || condition(st, corev1.PodInitialized) != corev1.ConditionTrue || condition(st, corev1.PodReady) != corev1.ConditionTrue {
		t.Fatalf("after init: phase %s, %+v", st.Phase, st.Conditions)
	}
	if s := findStatus(st.InitContainerStatuses, "proxy"); s.State.Running == nil || !s.Ready || !*s.Started {
		t.Errorf("sidecar status %+v", s)
	}

	// Restarted although the pod's restartPolicy is Never.
	h.rt.Exit(id("proxy", 0), 1, false)
	st = h.status(pod)
	if s := findStatus(st.InitContainerStatuses, "proxy"); s.RestartCount != 1 || s.State.Running == nil {
		t.Fatalf("sidecar not restarted: %+v", s)
	}
	if st.Phase != corev1.PodRunning {
		t.Errorf("phase %s", st.Phase)
	}

	// The app finishes: the sidecar is stopped and the pod succeeds.
	h.rt.ResetCalls()
	h.rt.Exit(id("app", 0), 0, false)
	h.sync(pod)
	if stops := callsWith(h.rt.Calls(), "StopContainer"); !slices.Equal(stops, []string{"StopContainer " + id("proxy", 1) + " 30s"}) {
		t.Errorf("stops %q", stops)
	}
	st = h.status(pod)
	if st.Phase != corev1.PodSucceeded {
		t.Errorf("phase %s, statuses %+v", st.Phase, st.InitContainerStatuses)
	}
	if _, ok := h.rt.ContainerConfig(id("proxy", 2)); ok {
		t.Error("sidecar restarted after the pod finished")
	}
}

// The next init container waits for the sidecar's startup probe; the
// sidecar's readiness makes the pod Ready or not.
func TestSidecarProbes(t *testing.T) {
	h := newHarness(t)
	var started, ready atomic.Bool
	h.rt.ExecFunc = func(id string, cfg runtime.ExecConfig) (int, error) {
		if (cfg.Cmd[0] == "started" && !started.Load()) || (cfg.Cmd[0] == "ready" && !ready.Load()) {
			return 1, nil
		}
		return 0, nil
	}
	probe := func(cmd string) *corev1.Probe {
		return &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{cmd}}},
			PeriodSeconds: 1, TimeoutSeconds: 1, SuccessThreshold: 1, FailureThreshold: 100}
	}
	pod := h.create(newPod("probed-sidecar", func(p *corev1.Pod) {
		sc := sidecar("proxy")
		sc.StartupProbe, sc.ReadinessProbe = probe("started"), probe("ready")
		p.Spec.InitContainers = []corev1.Container{sc}
	}))
	st := h.status(pod)
	if _, ok := h.rt.ContainerConfig(containerID(pod.UID, "app", 0)); ok || st.Phase != corev1.PodPending {
		t.Fatalf("app started before the sidecar's startup probe passed (phase %s)", st.Phase)
	}
	started.Store(true)
	waitCond(t, "app started", func() bool {
		h.sync(pod)
		_, ok := h.rt.ContainerConfig(containerID(pod.UID, "app", 0))
		return ok
	})
	if st := h.status(pod); st.Phase != corev1.PodRunning || condition(st, corev1.PodReady) != corev1.ConditionFalse {
		t.Fatalf("with an unready sidecar: phase %s, %+v", st.Phase, st.Conditions)
	}
	ready.Store(true)
	waitCond(t, "Ready", func() bool { return condition(h.status(pod), corev1.PodReady) == corev1.ConditionTrue })
}

// On deletion the containers stop first, then the sidecars, last first.
func TestSidecarStopOrder(t *testing.T) {
	h := newHarness(t)
	pod := h.create(newPod("order", func(p *corev1.Pod) {
		p.Spec.InitContainers = []corev1.Container{sidecar("first"), sidecar("second")}
	}))
	h.sync(pod)
	h.sync(pod)
	if _, ok := h.rt.ContainerConfig(containerID(pod.UID, "app", 0)); !ok {
		t.Fatal("app not started")
	}
	h.rt.ResetCalls()
	cur := h.get(pod)
	cur.DeletionTimestamp, cur.DeletionGracePeriodSeconds = ptr.To(metav1.Now()), ptr.To(int64(10))
	h.client.CoreV1().Pods("default").Update(context.Background(), cur, metav1.UpdateOptions{})
	h.sync(pod)
	want := []string{"StopContainer " + containerID(pod.UID, "app", 0) + " 10s",
		"StopContainer " + containerID(pod.UID, "second", 0) + " 10s",
		"StopContainer " + containerID(pod.UID, "first", 0) + " 10s"}
	if stops := callsWith(h.rt.Calls(), "StopContainer"); !slices.Equal(stops, want) {
		t.Errorf("stops %q, want %q", stops, want)
	}
}

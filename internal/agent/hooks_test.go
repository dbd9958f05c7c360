package agent

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"kite/internal/runtime"
)

func execHook(cmd ...string) *corev1.LifecycleHandler {
	return &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: cmd}}
}

// postStart runs right after the start; a failing one kills the
// instance (FailedPostStartHook), which the restart policy then restarts.
func TestPostStartHook(t *testing.T) {
	h := newHarness(t)
	fail := true
	h.rt.ExecFunc = func(id string, cfg runtime.ExecConfig) (int, error) {
		if fail {
			fmt.Fprint(cfg.Stderr, "not yet")
			return 2, nil
		}
		return 0, nil
	}
	pod := h.create(newPod("hooked", func(p *corev1.Pod) {
		p.Spec.Containers[0].Lifecycle = &corev1.Lifecycle{PostStart: execHook("setup"), PreStop: execHook("drain")}
	}))
	h.sync(pod)
	id0 := containerID(pod.UID, "app", 0)
	calls := h.rt.Calls()
	want := []string{"StartContainer " + id0, "Exec " + id0 + " [setup]", "Exec " + id0 + " [drain]", "StopContainer " + id0 + " 30s"}
	var got []string
	for _, c := range calls {
		if strings.HasPrefix(c, "StartContainer "+id0) || strings.HasPrefix(c, "Exec") || strings.HasPrefix(c, "StopContainer") {
			got = append(got, c)
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("calls %q, want %q", got, want)
	}
	ev := h.eventList()
	if !slices.ContainsFunc(ev, func(e string) bool {
		return strings.HasPrefix(e, "Warning FailedPostStartHook Exec lifecycle hook ([setup]) for Container \"app\" in Pod \"hooked_default(") &&
			strings.Contains(e, `message: "not yet"`)
	}) || !slices.Contains(ev, "Normal Killing FailedPostStartHook") {
		t.Errorf("events %q", ev)
	}

	// Restarted (at once, the first time); this time the hook passes.
	fail = false
	st := h.status(pod)
	if cs := st.ContainerStatuses[0]; cs.RestartCount != 1 || cs.State.Running == nil || cs.LastTerminationState.Terminated == nil {
		t.Errorf("after a failed postStart: %+v", cs)
	}
}

// preStop runs before SIGTERM, and SIGTERM gets what is left of the
// grace period.
func TestPreStopHook(t *testing.T) {
	h := newHarness(t)
	pod := h.create(newPod("drained", func(p *corev1.Pod) {
		p.Spec.Containers[0].Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: 1}}}
	}))
	h.sync(pod)
	h.rt.ResetCalls()
	cur := h.get(pod)
	cur.DeletionTimestamp, cur.DeletionGracePeriodSeconds = ptr.To(metav1.Now()), ptr.To(int64(10))
	h.client.CoreV1().Pods("default").Update(context.Background(), cur, metav1.UpdateOptions{})
	h.sync(pod)
	if stops := callsWith(h.rt.Calls(), "StopContainer"); !slices.Equal(stops, []string{"StopContainer " + containerID(pod.UID, "app", 0) + " 9s"}) {
		t.Errorf("stops %q", stops)
	}
}

// httpGet hooks go to the pod's IP (here the host of the action), and a
// request that fails is a FailedPreStopHook event.
func TestHTTPHooks(t *testing.T) {
	var paths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		paths = append(paths, r.URL.Path)
		w.WriteHeader(http.StatusInternalServerError) // any answer is a success
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	get := func(path, port string) *corev1.LifecycleHandler {
		return &corev1.LifecycleHandler{HTTPGet: &corev1.HTTPGetAction{Host: "127.0.0.1", Path: path, Port: intstr.Parse(port)}}
	}
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	_, closedPort, _ := net.SplitHostPort(closed.Addr().String())
	closed.Close()

	h := newHarness(t)
	pod := h.create(newPod("web-hooks", func(p *corev1.Pod) {
		p.Spec.Containers[0].Lifecycle = &corev1.Lifecycle{PostStart: get("/started", port), PreStop: get("/stop", closedPort)}
	}))
	if cs := h.status(pod).ContainerStatuses[0]; cs.State.Running == nil || cs.RestartCount != 0 {
		t.Fatalf("status %+v", cs)
	}
	if !slices.Equal(paths, []string{"/started"}) {
		t.Errorf("requests %q", paths)
	}
	cur := h.get(pod)
	cur.DeletionTimestamp, cur.DeletionGracePeriodSeconds = ptr.To(metav1.Now()), ptr.To(int64(5))
	h.client.CoreV1().Pods("default").Update(context.Background(), cur, metav1.UpdateOptions{})
	h.sync(pod)
	if ev := h.eventList(); !slices.ContainsFunc(ev, func(e string) bool {
		return strings.HasPrefix(e, "Warning FailedPreStopHook HTTP lifecycle hook (/stop) for Container \"app\"")
	}) {
		t.Errorf("events %q", ev)
	}
	if h.get(pod) != nil {
		t.Error("pod not deleted after a failed preStop")
	}
}

// A postStart hook that would run long is cancelled when the pod is
// being deleted, and the deletion goes on.
func TestPostStartCancelledByDeletion(t *testing.T) {
	h := newHarness(t)
	pod := h.create(newPod("slow-hook", func(p *corev1.Pod) {
		p.Spec.Containers[0].Lifecycle = &corev1.Lifecycle{PostStart: &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: 600}}}
	}))
	h.m.podIndexer.Update(h.get(pod))
	if err := h.m.relist(context.Background()); err != nil {
		t.Fatal(err)
	}
	w := newPodWorker(h.m, pod.UID)
	h.workers[pod.UID] = w
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.sync(context.Background(), h.m.pod(pod.UID))
	}()
	waitCond(t, "the container started", func() bool {
		return slices.Contains(h.rt.Calls(), "StartContainer "+containerID(pod.UID, "app", 0))
	})
	cur := h.get(pod)
	cur.DeletionTimestamp, cur.DeletionGracePeriodSeconds = ptr.To(metav1.Now()), ptr.To(int64(5))
	cur, _ = h.client.CoreV1().Pods("default").Update(context.Background(), cur, metav1.UpdateOptions{})
	h.m.podIndexer.Update(cur)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the postStart hook kept the sync after the pod's deletion began")
	}
	if ev := h.eventList(); slices.ContainsFunc(ev, func(e string) bool { return strings.Contains(e, "FailedPostStartHook") }) {
		t.Errorf("a cancelled hook reported as failed: %q", ev)
	}
	// The fake clientset's UpdateStatus (from the interrupted sync) writes
	// the whole object: mark the deletion again, as the API server keeps it.
	cur = h.get(pod)
	cur.DeletionTimestamp, cur.DeletionGracePeriodSeconds = ptr.To(metav1.Now()), ptr.To(int64(5))
	h.client.CoreV1().Pods("default").Update(context.Background(), cur, metav1.UpdateOptions{})
	h.sync(pod)
	if h.get(pod) != nil {
		t.Error("pod not deleted")
	}
}

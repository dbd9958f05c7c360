package agent

import (
	"bytes"
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"

	"kite/internal/runtime"
)

// Lifecycle hooks, with upstream's semantics:
//
//   - postStart runs right after the container has started; the worker
//     waits for it (the sync is blocked, so the status does not show the
//     container running or started before it has finished). A failing
//     postStart is a FailedPostStartHook event, and the container is
//     killed (its preStop hook runs first, as with any kill); the restart
//     policy then decides as for any exit. A hook still running when the
//     pod is being deleted is cancelled, so deletion proceeds.
//   - preStop runs before SIGTERM whenever a running container is
//     stopped (deletion, a failed liveness probe, a changed spec, sidecars
//     after the containers), within the grace period: SIGTERM follows
//     when it returns, with what is left of the grace period (at least
//     2 s). A failing preStop is a FailedPreStopHook event; the stop goes
//     on.
//
// Handlers: exec in the container, httpGet to the pod's IP (any response
// is a success, as upstream: only a failed request fails the hook), and
// sleep.

// runHook runs one lifecycle handler for a container instance and
// returns an error with upstream's message when it fails.
func (w *podWorker) runHook(ctx context.Context, pod *corev1.Pod, c *corev1.Container, id string, h *corev1.LifecycleHandler, podIP string) error {
	podName := fmt.Sprintf("%s_%s(%s)", pod.Name, pod.Namespace, pod.UID)
	switch {
	case h.Exec != nil:
		var out bytes.Buffer
		lw := &limitWriter{w: &out, n: maxProbeOutput}
		code, err := w.m.rt.Exec(ctx, id, runtime.ExecConfig{Cmd: h.Exec.Command, Stdout: lw, Stderr: lw})
		if err == nil && code != 0 {
			err = fmt.Errorf("command '%v' exited with %d: %s", h.Exec.Command, code, out.String())
		}
		if err != nil {
			return fmt.Errorf("Exec lifecycle hook (%v) for Container %q in Pod %q failed - error: %v, message: %q",
				h.Exec.Command, c.Name, podName, err, out.String())
		}
	case h.HTTPGet != nil:
		r := probeRunner{rt: w.m.rt, containerID: id, container: c, podIP: podIP}
		if _, err := r.doHTTPGet(ctx, h.HTTPGet); err != nil {
			return fmt.Errorf("HTTP lifecycle hook (%s) for Container %q in Pod %q failed - error: %v", h.HTTPGet.Path, c.Name, podName, err)
		}
	case h.Sleep != nil:
		sleepUntil(ctx, time.Now().Add(time.Duration(h.Sleep.Seconds)*time.Second))
	case h.TCPSocket != nil:
		return fmt.Errorf("lifecycle hook for Container %q in Pod %q: tcpSocket handlers are deprecated and not supported", c.Name, podName)
	default:
		return fmt.Errorf("lifecycle hook for Container %q in Pod %q has no handler", c.Name, podName)
	}
	return nil
}

// postStart runs the container's postStart hook, if any, for a freshly
// started instance; false when the hook failed and the instance was
// killed.
func (w *podWorker) postStart(ctx context.Context, pod *corev1.Pod, c *corev1.Container, id string, ips []string) bool {
	if c.Lifecycle == nil || c.Lifecycle.PostStart == nil {
		return true
	}
	hctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go w.cancelOnDeletion(hctx, cancel)
	err := w.runHook(hctx, pod, c, id, c.Lifecycle.PostStart, firstOr(ips, pod.Status.PodIP))
	if err == nil || hctx.Err() != nil {
		// Interrupted: the agent stops, or the pod is being deleted (the
		// next sync stops the container).
		return err == nil
	}
	w.m.event(pod, corev1.EventTypeWarning, "FailedPostStartHook", "%v", err)
	w.m.event(pod, corev1.EventTypeNormal, "Killing", "FailedPostStartHook")
	st, serr := w.m.rt.ContainerStatus(ctx, id)
	if serr == nil {
		serr = w.stopInstance(ctx, pod, c, st, podGrace(pod))
	}
	if serr != nil {
		klog.FromContext(ctx).Error(serr, "kill container after its postStart hook failed", "container", c.Name)
	}
	w.waiting[c.Name] = &corev1.ContainerStateWaiting{Reason: "PostStartHookError", Message: err.Error()}
	return false
}

// deletionPoll is how often a running postStart hook looks whether its
// pod is being deleted.
const deletionPoll = 200 * time.Millisecond

// cancelOnDeletion cancels a postStart hook once the pod is being deleted
// or gone, as kubelet cancels a pod's sync for its termination: a hook
// that hangs must not keep the pod from being deleted.
func (w *podWorker) cancelOnDeletion(ctx context.Context, cancel context.CancelFunc) {
	t := time.NewTicker(deletionPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if p := w.m.pod(w.uid); p == nil || p.DeletionTimestamp != nil {
				cancel()
				return
			}
		}
	}
}

// preStop runs the container's preStop hook, if any, before a running
// instance is stopped, bounded by grace; it returns the grace left for
// SIGTERM (at least minKillGrace).
func (w *podWorker) preStop(ctx context.Context, pod *corev1.Pod, c *corev1.Container, inst runtime.ContainerStatus, grace time.Duration) time.Duration {
	if pod == nil || c == nil || c.Lifecycle == nil || c.Lifecycle.PreStop == nil || inst.State != runtime.StateRunning {
		return grace
	}
	start := time.Now()
	hctx, cancel := context.WithTimeout(ctx, grace)
	defer cancel()
	if err := w.runHook(hctx, pod, c, inst.ID, c.Lifecycle.PreStop, pod.Status.PodIP); err != nil {
		w.m.event(pod, corev1.EventTypeWarning, "FailedPreStopHook", "%v", err)
	}
	// Whole seconds, as upstream counts the grace period.
	return max(grace-time.Since(start).Truncate(time.Second), minKillGrace)
}

func firstOr(list []string, def string) string {
	if len(list) > 0 {
		return list[0]
	}
	return def
}

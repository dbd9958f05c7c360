package agent

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"

	"kite/internal/runtime"
)

// Resync periods of a pod worker.
const (
	// resyncPeriod: a worker with nothing pending looks again this often
	// (the relister and probes wake it sooner when anything changes).
	resyncPeriod = time.Minute
	// retryPeriod: after an error (API, runtime, CNI), try again soon.
	retryPeriod = 2 * time.Second
)

// podWorker syncs one pod. Everything below is owned by the worker's
// goroutine except kick.
type podWorker struct {
	m    *podManager
	uid  types.UID
	kick chan struct{}

	// sandbox is the pod's sandbox once created or adopted.
	sandbox *runtime.Sandbox
	// checked: an adopted attachment was CHECKed once.
	checked bool
	// own are the container IDs this worker created (the relister's
	// listing may not have them yet).
	own map[string]bool
	// startErrors are instances that runc could not create or start:
	// they exist only here, as exited instances with exit code 128.
	startErrors map[string]runtime.ContainerStatus
	// retries space out image pulls and configuration errors per
	// container name; waiting is the reason shown meanwhile.
	retries map[string]*retryBackoff
	waiting map[string]*corev1.ContainerStateWaiting
	// probers by container ID.
	probers map[string]*prober
	// termMessages are termination messages of exited instances.
	termMessages map[string]string
	// lastStatus is the status last written, to skip writing it again
	// before the informer catches up.
	lastStatus *writtenStatus
}

func newPodWorker(m *podManager, uid types.UID) *podWorker {
	return &podWorker{
		m: m, uid: uid, kick: make(chan struct{}, 1),
		own: map[string]bool{}, startErrors: map[string]runtime.ContainerStatus{},
		retries: map[string]*retryBackoff{}, waiting: map[string]*corev1.ContainerStateWaiting{},
		probers: map[string]*prober{}, termMessages: map[string]string{},
	}
}

// wake makes the worker sync soon; wakes coalesce.
func (w *podWorker) wake() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

func (w *podWorker) run(ctx context.Context) {
	log := klog.FromContext(ctx).WithValues("podUID", w.uid)
	ctx = klog.NewContext(ctx, log)
	defer w.stopProbers(nil)
	select {
	case <-w.m.ready:
	case <-ctx.Done():
		return
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		pod := w.m.pod(w.uid)
		slog := log
		if pod != nil {
			slog = log.WithValues("pod", klog.KObj(pod))
		}
		next, done := w.sync(klog.NewContext(ctx, slog), pod)
		if ctx.Err() != nil {
			return
		}
		if h := w.m.cfg.hooks; h != nil && h.synced != nil {
			h.synced(w.uid)
		}
		if done {
			w.m.retire(w)
			return
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(next)
		select {
		case <-ctx.Done():
			return
		case <-w.kick:
		case <-timer.C:
		}
	}
}

// stopProbers stops the probers of instances not in keep (all when keep
// is nil).
func (w *podWorker) stopProbers(keep map[string]bool) {
	for id, p := range w.probers {
		if !keep[id] {
			p.stop()
			delete(w.probers, id)
		}
	}
}

// syncProbers runs probers for the running instances of containers that
// have probes, and stops the others. A new prober takes its first
// verdicts from the pod's status for the same instance, so that an agent
// restart does not make a ready pod unready until its probes run again.
func (w *podWorker) syncProbers(ctx context.Context, pod *corev1.Pod, insts map[string][]runtime.ContainerStatus, ips []string) {
	keep := map[string]bool{}
	podIP := ""
	if len(ips) > 0 {
		podIP = ips[0]
	}
	for _, c := range probedContainers(pod) {
		list := insts[c.Name]
		if len(list) == 0 || list[0].State != runtime.StateRunning ||
			(c.LivenessProbe == nil && c.ReadinessProbe == nil && c.StartupProbe == nil) {
			continue
		}
		inst := list[0]
		keep[inst.ID] = true
		if w.probers[inst.ID] != nil {
			continue
		}
		ps := probeSet{Container: c, Instance: inst, PodIP: podIP, Changed: w.wake,
			Run: probeRunner{rt: w.m.rt, containerID: inst.ID, container: c, podIP: podIP}.run,
			Failed: func(kind, msg string) {
				w.m.event(pod, corev1.EventTypeWarning, "Unhealthy", "%s probe failed: %s", kind, msg)
			}}
		if h := w.m.cfg.hooks; h != nil && h.probed != nil {
			ps.Probed = func() { h.probed(w.uid) }
		}
		if s := findStatus(pod.Status.ContainerStatuses, c.Name); s != nil && s.ContainerID == containerIDPrefix+inst.ID {
			ps.Ready, ps.Started = s.Ready, ptr.Deref(s.Started, false)
		}
		w.probers[inst.ID] = startProber(ctx, ps)
	}
	w.stopProbers(keep)
}

// probedContainers are the containers probes run for: the sidecars and
// the regular containers.
func probedContainers(pod *corev1.Pod) []*corev1.Container {
	var out []*corev1.Container
	for i := range pod.Spec.InitContainers {
		if isSidecar(&pod.Spec.InitContainers[i]) {
			out = append(out, &pod.Spec.InitContainers[i])
		}
	}
	for i := range pod.Spec.Containers {
		out = append(out, &pod.Spec.Containers[i])
	}
	return out
}

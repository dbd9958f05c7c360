package agent

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path"
	"slices"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"

	"kite/internal/runtime"
)

// syncContainers runs the init containers one at a time, in order, each
// to success, then all the containers; it returns when to look again
// (the earliest end of a back-off).
//
// Sidecars (init containers with restartPolicy Always, upstream's
// restartable init containers) start in their place among the init
// containers; the next one starts once the sidecar has started (its
// startupProbe passed, if it has one). They are kept running, restarted
// whatever the pod's restartPolicy, until the pod's regular containers
// have all finished for good: then they are stopped, last first, and the
// pod can complete.
func (w *podWorker) syncContainers(ctx context.Context, pod *corev1.Pod, insts map[string][]runtime.ContainerStatus, ips []string) time.Duration {
	if mainContainersDone(pod, insts) {
		return w.stopSidecars(ctx, pod, insts)
	}
	initialized := containersRan(pod, insts)
	next := resyncPeriod
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		if isSidecar(c) {
			next = min(next, w.syncContainer(ctx, pod, c, true, insts[c.Name], ips))
			if !initialized && !w.sidecarStarted(ctx, c) {
				return next
			}
			continue
		}
		if initialized {
			continue
		}
		if list := insts[c.Name]; len(list) > 0 && list[0].State == runtime.StateExited && list[0].ExitCode == 0 {
			delete(w.waiting, c.Name)
			continue
		}
		return min(next, w.syncContainer(ctx, pod, c, true, insts[c.Name], ips))
	}
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		next = min(next, w.syncContainer(ctx, pod, c, false, insts[c.Name], ips))
	}
	return next
}

// containersRan: some container has an instance, so the pod was
// initialized before (init containers are not run again).
func containersRan(pod *corev1.Pod, insts map[string][]runtime.ContainerStatus) bool {
	for _, c := range pod.Spec.Containers {
		if len(insts[c.Name]) > 0 {
			return true
		}
	}
	return false
}

// isSidecar: an init container with restartPolicy Always.
func isSidecar(c *corev1.Container) bool {
	return c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
}

// sidecarStarted: the sidecar's latest instance runs and its startup
// probe (if any) has passed. It looks afresh, so that a sidecar started
// by this sync lets the next init container start in the same sync.
func (w *podWorker) sidecarStarted(ctx context.Context, c *corev1.Container) bool {
	list := w.instances(ctx)[c.Name]
	if len(list) == 0 || list[0].State != runtime.StateRunning {
		return false
	}
	if p := w.probers[list[0].ID]; p != nil {
		return p.verdict().Started
	}
	return c.StartupProbe == nil
}

// mainContainersDone: the pod's regular containers have all exited and
// none is to be restarted, so the pod is finishing (never under
// restartPolicy Always).
func mainContainersDone(pod *corev1.Pod, insts map[string][]runtime.ContainerStatus) bool {
	if pod.Spec.RestartPolicy == corev1.RestartPolicyAlways || len(pod.Spec.Containers) == 0 {
		return false
	}
	for _, c := range pod.Spec.Containers {
		list := insts[c.Name]
		if len(list) == 0 || list[0].State != runtime.StateExited || shouldRestart(pod.Spec.RestartPolicy, false, list[0].ExitCode) {
			return false
		}
	}
	return true
}

// stopSidecars stops the running sidecars of a pod whose regular
// containers have finished, in the reverse of their order, within the
// pod's grace period.
func (w *podWorker) stopSidecars(ctx context.Context, pod *corev1.Pod, insts map[string][]runtime.ContainerStatus) time.Duration {
	deadline := w.m.now().Add(podGrace(pod))
	for i := len(pod.Spec.InitContainers) - 1; i >= 0; i-- {
		c := &pod.Spec.InitContainers[i]
		list := insts[c.Name]
		if !isSidecar(c) {
			continue
		}
		delete(w.waiting, c.Name)
		if len(list) == 0 || (list[0].State != runtime.StateRunning && list[0].State != runtime.StateCreated) {
			continue
		}
		w.m.event(pod, corev1.EventTypeNormal, "Killing", "Stopping container %s", c.Name)
		if err := w.stopInstance(ctx, pod, c, list[0], max(deadline.Sub(w.m.now()), minKillGrace)); err != nil {
			klog.FromContext(ctx).Error(err, "stop sidecar", "container", c.Name)
			return retryPeriod
		}
	}
	return resyncPeriod
}

// podGrace is the pod's termination grace period: the deletion's when it
// is being deleted, else terminationGracePeriodSeconds (30 s by default).
func podGrace(pod *corev1.Pod) time.Duration {
	secs := ptr.Deref(pod.Spec.TerminationGracePeriodSeconds, 30)
	if pod.DeletionGracePeriodSeconds != nil {
		secs = *pod.DeletionGracePeriodSeconds
	}
	return max(time.Duration(secs)*time.Second, minKillGrace)
}

// stopInstance stops a running instance: its preStop hook (when c, its
// spec, has one), then SIGTERM, then SIGKILL once grace has passed.
func (w *podWorker) stopInstance(ctx context.Context, pod *corev1.Pod, c *corev1.Container, inst runtime.ContainerStatus, grace time.Duration) error {
	return w.m.rt.StopContainer(ctx, inst.ID, w.preStop(ctx, pod, c, inst, grace))
}

// syncContainer brings one container to what it should be: its latest
// instance running, or exited for good, or a new instance started when
// the restart policy and the back-off allow.
func (w *podWorker) syncContainer(ctx context.Context, pod *corev1.Pod, c *corev1.Container, isInit bool, insts []runtime.ContainerStatus, ips []string) time.Duration {
	if len(insts) == 0 {
		return w.startInstance(ctx, pod, c, isInit, 0, 0, insts, ips)
	}
	latest := insts[0]
	forced := false
	switch latest.State {
	case runtime.StateRunning:
		reason := w.killReason(c, &latest)
		if reason == "" {
			delete(w.waiting, c.Name)
			return resyncPeriod
		}
		forced = reason == "definition changed"
		w.m.event(pod, corev1.EventTypeNormal, "Killing", "Container %s %s, will be restarted", c.Name, reason)
		if err := w.stopInstance(ctx, pod, c, latest, w.killGrace(pod, c, reason)); err != nil {
			klog.FromContext(ctx).Error(err, "stop container", "container", c.Name)
			return retryPeriod
		}
		if p := w.probers[latest.ID]; p != nil {
			p.stop()
			delete(w.probers, latest.ID)
		}
		st, err := w.m.rt.ContainerStatus(ctx, latest.ID)
		if err != nil {
			return retryPeriod
		}
		latest, insts[0] = st, st
	case runtime.StateCreated:
		// Created by an earlier sync that did not get to start it.
		if err := w.m.rt.StartContainer(ctx, latest.ID); err != nil {
			klog.FromContext(ctx).Error(err, "start container", "container", c.Name)
			w.m.rt.RemoveContainer(ctx, latest.ID)
			return 0
		}
		w.m.event(pod, corev1.EventTypeNormal, "Started", "Started container %s", c.Name)
		if !w.postStart(ctx, pod, c, latest.ID, ips) {
			return 0
		}
		return resyncPeriod
	case runtime.StateUnknown:
		return retryPeriod
	}
	if latest.State != runtime.StateExited {
		return retryPeriod
	}
	policy, restartInit := pod.Spec.RestartPolicy, isInit
	if isSidecar(c) {
		policy, restartInit = corev1.RestartPolicyAlways, false
	}
	if !forced && !shouldRestart(policy, restartInit, latest.ExitCode) {
		delete(w.waiting, c.Name)
		return resyncPeriod
	}
	delay, step := restartDelay(backoffStepOf(&latest), ranFor(&latest))
	if until := latest.FinishedAt.Add(delay); w.m.now().Before(until) {
		w.waiting[c.Name] = &corev1.ContainerStateWaiting{Reason: reasonCrashLoopBackOff,
			Message: fmt.Sprintf("back-off %s restarting failed container=%s pod=%s_%s(%s)", delay, c.Name, pod.Name, pod.Namespace, pod.UID)}
		w.m.event(pod, corev1.EventTypeWarning, "BackOff", "Back-off restarting failed container %s in pod %s_%s(%s)", c.Name, pod.Name, pod.Namespace, pod.UID)
		return until.Sub(w.m.now())
	}
	return w.startInstance(ctx, pod, c, isInit, attemptOf(&latest)+1, step, insts, ips)
}

// killReason says why a running instance must be replaced, or "".
func (w *podWorker) killReason(c *corev1.Container, inst *runtime.ContainerStatus) string {
	if h := inst.Labels[labelHash]; h != "" && h != specHash(c) {
		return "definition changed"
	}
	if p := w.probers[inst.ID]; p != nil {
		return p.verdict().KillReason
	}
	return ""
}

// killGrace is the time a container killed by a probe gets: the probe's
// terminationGracePeriodSeconds, else the pod's.
func (w *podWorker) killGrace(pod *corev1.Pod, c *corev1.Container, reason string) time.Duration {
	secs := ptr.Deref(pod.Spec.TerminationGracePeriodSeconds, 30)
	probe := c.LivenessProbe
	if reason == "failed startup probe" {
		probe = c.StartupProbe
	}
	if probe != nil && probe.TerminationGracePeriodSeconds != nil {
		secs = *probe.TerminationGracePeriodSeconds
	}
	return max(time.Duration(secs)*time.Second, minKillGrace)
}

// startInstance pulls the image, creates and starts instance attempt of
// a container, and removes instances older than the one it replaces.
// Failures become the container's waiting reason with a back-off; a
// container runc cannot create or start counts as an instance that
// exited with 128 (StartError), so it crash-loops like one that fails.
func (w *podWorker) startInstance(ctx context.Context, pod *corev1.Pod, c *corev1.Container, isInit bool, attempt, step int, insts []runtime.ContainerStatus, ips []string) time.Duration {
	now := w.m.now()
	if r := w.retries[c.Name]; r != nil && now.Before(r.until) {
		if wt := w.waiting[c.Name]; wt != nil && wt.Reason == reasonErrImagePull {
			w.waiting[c.Name] = &corev1.ContainerStateWaiting{Reason: reasonImagePullBackOff, Message: fmt.Sprintf("Back-off pulling image %q", c.Image)}
			w.m.event(pod, corev1.EventTypeNormal, "BackOff", "Back-off pulling image %q", c.Image)
		}
		return r.until.Sub(now)
	}
	img, err := w.pullImage(ctx, pod, c)
	if err != nil {
		return w.retryLater(c.Name)
	}
	cfg, err := w.containerConfig(ctx, pod, c, isInit, img, attempt, step, ips)
	if err != nil {
		w.waiting[c.Name] = &corev1.ContainerStateWaiting{Reason: reasonCreateConfigError, Message: err.Error()}
		w.m.event(pod, corev1.EventTypeWarning, "Failed", "Error: %v", err)
		return w.retryLater(c.Name)
	}
	delete(w.retries, c.Name)
	// Keep the instance being replaced (for logs --previous), not older.
	for i := 1; i < len(insts); i++ {
		old := insts[i]
		if err := w.m.rt.RemoveContainer(ctx, old.ID); err != nil {
			klog.FromContext(ctx).Error(err, "remove old instance", "container", old.ID)
			continue
		}
		delete(w.startErrors, old.ID)
		removeLogs(old.LogPath)
		os.Remove(w.m.terminationFile(pod.UID, old.ID))
	}
	if err := w.m.rt.CreateContainer(ctx, cfg); err != nil {
		if runtime.IsAlreadyExists(err) {
			w.own[cfg.ID] = true
			return 0
		}
		w.startFailed(pod, c, cfg, err)
		return 0
	}
	w.own[cfg.ID] = true
	w.m.event(pod, corev1.EventTypeNormal, "Created", "Created container %s", c.Name)
	if err := w.m.rt.StartContainer(ctx, cfg.ID); err != nil {
		if rerr := w.m.rt.RemoveContainer(ctx, cfg.ID); rerr != nil {
			klog.FromContext(ctx).Error(rerr, "remove container that did not start", "container", cfg.ID)
		}
		w.startFailed(pod, c, cfg, err)
		return 0
	}
	w.m.event(pod, corev1.EventTypeNormal, "Started", "Started container %s", c.Name)
	delete(w.waiting, c.Name)
	if !w.postStart(ctx, pod, c, cfg.ID, ips) {
		return 0
	}
	return resyncPeriod
}

func (w *podWorker) retryLater(name string) time.Duration {
	r := w.retries[name]
	if r == nil {
		r = &retryBackoff{}
		w.retries[name] = r
	}
	r.fail(w.m.now())
	return r.delay
}

// startFailed records an instance that never ran.
func (w *podWorker) startFailed(pod *corev1.Pod, c *corev1.Container, cfg runtime.ContainerConfig, err error) {
	now := w.m.now()
	labels := maps.Clone(cfg.Labels)
	labels[labelStartError] = "true"
	w.startErrors[cfg.ID] = runtime.ContainerStatus{ID: cfg.ID, SandboxID: cfg.SandboxID, Labels: labels,
		State: runtime.StateExited, ExitCode: 128, CreatedAt: now, FinishedAt: now, Message: err.Error()}
	delete(w.waiting, c.Name)
	w.m.event(pod, corev1.EventTypeWarning, "Failed", "Error: %v", err)
}

// pullImage makes the container's image present, with kubelet's reasons
// and events on failure.
func (w *podWorker) pullImage(ctx context.Context, pod *corev1.Pod, c *corev1.Container) (Image, error) {
	start := w.m.now()
	img, err := w.m.images.Ensure(ctx, ImageRequest{Ref: c.Image, Policy: c.ImagePullPolicy, PullSecrets: w.pullSecrets(pod)})
	switch {
	case err == nil && img.Pulled:
		w.m.event(pod, corev1.EventTypeNormal, "Pulled", "Successfully pulled image %q in %s", c.Image, w.m.now().Sub(start).Round(time.Millisecond))
	case err == nil:
		w.m.event(pod, corev1.EventTypeNormal, "Pulled", "Container image %q already present on machine", c.Image)
	case errors.Is(err, ErrImageNeverPull):
		msg := fmt.Sprintf("Container image %q is not present with pull policy of Never", c.Image)
		w.waiting[c.Name] = &corev1.ContainerStateWaiting{Reason: "ErrImageNeverPull", Message: msg}
		w.m.event(pod, corev1.EventTypeWarning, "ErrImageNeverPull", "%s", msg)
	case errors.Is(err, ErrInvalidImageName):
		msg := fmt.Sprintf("Failed to apply default image tag %q: %v", c.Image, err)
		w.waiting[c.Name] = &corev1.ContainerStateWaiting{Reason: "InvalidImageName", Message: msg}
		w.m.event(pod, corev1.EventTypeWarning, "InspectFailed", "%s", msg)
	default:
		w.waiting[c.Name] = &corev1.ContainerStateWaiting{Reason: reasonErrImagePull, Message: err.Error()}
		w.m.event(pod, corev1.EventTypeWarning, "Failed", "Failed to pull image %q: %v", c.Image, err)
	}
	return img, err
}

// pullSecrets reads the pod's imagePullSecrets; missing ones are skipped,
// as kubelet does.
func (w *podWorker) pullSecrets(pod *corev1.Pod) []corev1.Secret {
	var out []corev1.Secret
	for _, ref := range pod.Spec.ImagePullSecrets {
		if s, err := w.m.secret(pod.Namespace, ref.Name); err == nil {
			out = append(out, *s)
		}
	}
	return out
}

// containerConfig is the runtime's config for one instance.
func (w *podWorker) containerConfig(ctx context.Context, pod *corev1.Pod, c *corev1.Container, isInit bool, img Image, attempt, step int, ips []string) (runtime.ContainerConfig, error) {
	hostname, _ := podHostname(pod, w.m.cfg.ClusterDomain)
	if pod.Spec.HostNetwork {
		hostname, _ = osHostname()
	}
	env, podEnv, err := containerEnv(envInput{Pod: pod, Container: c, Image: img, Hostname: hostname, PodIPs: ips,
		HostIP: w.m.cfg.NodeIP, Allocatable: w.m.allocatable, Source: w.m})
	if err != nil {
		return runtime.ContainerConfig{}, err
	}
	argv := commandLine(c, img, podEnv)
	if len(argv) == 0 {
		return runtime.ContainerConfig{}, fmt.Errorf("no command specified")
	}
	user, err := containerUser(pod, c, img)
	if err != nil {
		return runtime.ContainerConfig{}, err
	}
	mounts, err := w.mounts(ctx, pod, c, attempt, ips)
	if err != nil {
		return runtime.ContainerConfig{}, err
	}
	mounts = withSharedKite(mounts, img.SharedKite)
	cwd := c.WorkingDir
	if cwd == "" {
		cwd = img.WorkingDir
	}
	labels := podLabels(pod)
	labels[labelContainer] = c.Name
	labels[labelAttempt] = strconv.Itoa(attempt)
	labels[labelBackoff] = strconv.Itoa(step)
	labels[labelHash] = specHash(c)
	labels[labelImage] = img.Ref
	labels[labelImageID] = img.ID
	if isInit {
		labels[labelInit] = "true"
	}
	return runtime.ContainerConfig{
		ID: containerID(pod.UID, c.Name, attempt), SandboxID: sandboxID(pod.UID), Labels: labels,
		LowerDirs: img.LowerDirs, Args: argv, Env: env, Cwd: cwd,
		UID: user.UID, GID: user.GID, AdditionalGIDs: user.Groups,
		Mounts: mounts, LogPath: w.m.logPath(pod, c.Name, attempt), Resources: containerResources(c),
		Stdin: c.Stdin, StdinOnce: c.StdinOnce, TTY: c.TTY,
	}, nil
}

// containerResources are a container's cgroup limits: memory and CPU
// limits, and CPU shares from the CPU request (kubelet's conversions).
func containerResources(c *corev1.Container) *runtime.Resources {
	var r runtime.Resources
	if m, ok := c.Resources.Limits[corev1.ResourceMemory]; ok {
		r.MemoryLimitBytes = m.Value()
	}
	if cpu, ok := c.Resources.Limits[corev1.ResourceCPU]; ok && cpu.MilliValue() > 0 {
		r.CPUPeriod = 100000
		r.CPUQuota = max(cpu.MilliValue()*100, 1000)
	}
	if cpu, ok := c.Resources.Requests[corev1.ResourceCPU]; ok {
		r.CPUShares = uint64(max(cpu.MilliValue()*1024/1000, 2))
	}
	if r == (runtime.Resources{}) {
		return nil
	}
	return &r
}

// withSharedKite binds the host's kite binary over /kite and /kuard of a
// built-in image made of it (Image.SharedKite), where no volume is mounted.
func withSharedKite(mounts []runtime.Mount, kite string) []runtime.Mount {
	if kite == "" {
		return mounts
	}
	for _, dst := range []string{"/kite", "/kuard"} {
		if !slices.ContainsFunc(mounts, func(m runtime.Mount) bool { return path.Clean(m.Destination) == dst }) {
			mounts = append(mounts, runtime.Mount{Source: kite, Destination: dst, ReadOnly: true})
		}
	}
	return mounts
}

package agent

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"

	"kite/internal/runtime"
)

// minKillGrace is the least time a container gets to stop, as kubelet's.
const minKillGrace = 2 * time.Second

// sync makes the node match the pod: level-triggered and idempotent, so
// an agent restart replays it over what runs. It returns when to sync
// again, and done once the pod is gone and nothing of it is left.
//
//	pod gone                 → stop and remove everything (cleanup)
//	deletionTimestamp set    → stop with the grace period, clean up, delete the object
//	finished (Succeeded/Failed) → release its network, keep its containers for logs
//	otherwise                → sandbox → CNI ADD → /etc files → init containers in
//	                           order → containers → probes → status
func (w *podWorker) sync(ctx context.Context, pod *corev1.Pod) (time.Duration, bool) {
	log := klog.FromContext(ctx)
	if pod == nil {
		if err := w.cleanup(ctx, nil, minKillGrace); err != nil {
			log.Error(err, "clean up a deleted pod")
			return retryPeriod, false
		}
		return 0, true
	}
	if pod.DeletionTimestamp != nil {
		if err := w.syncDeleted(ctx, pod); err != nil {
			log.Error(err, "delete pod")
		}
		return retryPeriod, false
	}
	pod = w.withBaseStatus(pod)
	if isTerminal(pod.Status.Phase) {
		if err := w.syncFinished(ctx, pod); err != nil {
			log.Error(err, "finished pod")
			return retryPeriod, false
		}
		return resyncPeriod, false
	}
	next, err := w.syncPod(ctx, pod)
	if err != nil {
		log.Error(err, "sync pod")
		return min(next, retryPeriod), false
	}
	return next, false
}

// withBaseStatus returns the pod with the newer of the informer's status
// and the one this worker last wrote (the informer lags behind writes).
func (w *podWorker) withBaseStatus(pod *corev1.Pod) *corev1.Pod {
	if w.lastStatus == nil || !olderThan(pod.ResourceVersion, w.lastStatus.rv) {
		return pod
	}
	p := pod.DeepCopy()
	p.Status = *w.lastStatus.status.DeepCopy()
	return p
}

// olderThan compares resourceVersions, which kite's API server makes
// etcd revisions; anything else counts as not older.
func olderThan(a, b string) bool {
	x, err1 := strconv.ParseUint(a, 10, 64)
	y, err2 := strconv.ParseUint(b, 10, 64)
	return err1 == nil && err2 == nil && x < y
}

func (w *podWorker) syncPod(ctx context.Context, pod *corev1.Pod) (time.Duration, error) {
	ips, err := w.ensureSandbox(ctx, pod)
	if err != nil {
		w.m.event(pod, corev1.EventTypeWarning, "FailedCreatePodSandBox", "Failed to create pod sandbox: %v", err)
		w.writeStatus(ctx, pod, w.statusInput(ctx, pod, nil, nil, false))
		return retryPeriod, err
	}
	if err := w.writePodFiles(pod, ips); err != nil {
		return retryPeriod, fmt.Errorf("pod files: %w", err)
	}
	next := w.syncContainers(ctx, pod, w.instances(ctx), ips)
	if due, err := w.refreshVolumes(ctx, pod, ips); err != nil {
		klog.FromContext(ctx).Error(err, "refresh volumes")
		next = min(next, retryPeriod)
	} else {
		next = min(next, due)
	}
	insts := w.instances(ctx)
	w.syncProbers(ctx, pod, insts, ips)
	in := w.statusInput(ctx, pod, insts, ips, true)
	status := w.writeStatus(ctx, pod, in)
	if isTerminal(status.Phase) {
		w.stopProbers(nil)
		if err := w.releaseNetwork(ctx); err != nil {
			return retryPeriod, err
		}
	}
	return next, nil
}

// instances lists the pod's container instances by container name,
// newest first: what the relister saw, what this worker made since, and
// the instances that failed to start.
func (w *podWorker) instances(ctx context.Context) map[string][]runtime.ContainerStatus {
	_, listed := w.m.listed(w.uid)
	ids := map[string]bool{}
	for _, id := range listed {
		ids[id] = true
	}
	for id := range w.own {
		ids[id] = true
	}
	for id := range w.startErrors {
		ids[id] = true
	}
	out := map[string][]runtime.ContainerStatus{}
	for id := range ids {
		st, err := w.m.rt.ContainerStatus(ctx, id)
		switch {
		case runtime.IsNotFound(err):
			delete(w.own, id)
			se, ok := w.startErrors[id]
			if !ok {
				continue
			}
			st = se
		case err != nil:
			klog.FromContext(ctx).Error(err, "container status", "container", id)
			continue
		}
		name := st.Labels[labelContainer]
		out[name] = append(out[name], st)
	}
	for _, list := range out {
		sort.Slice(list, func(i, j int) bool { return attemptOf(&list[i]) > attemptOf(&list[j]) })
	}
	return out
}

// statusInput gathers what the status is computed from.
func (w *podWorker) statusInput(ctx context.Context, pod *corev1.Pod, insts map[string][]runtime.ContainerStatus, ips []string, sandboxReady bool) statusInput {
	in := statusInput{Pod: pod, HostIP: w.m.cfg.NodeIP, PodIPs: ips, SandboxReady: sandboxReady, Now: w.m.now()}
	view := func(c *corev1.Container) containerView {
		v := containerView{Spec: c, Waiting: w.waiting[c.Name], TerminationMessages: map[string]string{}}
		list := insts[c.Name]
		if len(list) > 0 {
			v.Latest = &list[0]
		}
		if len(list) > 1 {
			v.Previous = &list[1]
		}
		for _, inst := range []*runtime.ContainerStatus{v.Latest, v.Previous} {
			if inst != nil && inst.State == runtime.StateExited {
				v.TerminationMessages[inst.ID] = w.m.terminationMessage(pod, c, inst)
			}
		}
		if v.Latest != nil && v.Latest.State == runtime.StateRunning {
			v.Ready, v.Started = true, true
			if p := w.probers[v.Latest.ID]; p != nil {
				verdict := p.verdict()
				v.Ready, v.Started = verdict.Ready, verdict.Started
			} else if c.ReadinessProbe != nil || c.StartupProbe != nil {
				v.Ready, v.Started = false, c.StartupProbe == nil
			}
		}
		return v
	}
	for i := range pod.Spec.InitContainers {
		in.Init = append(in.Init, view(&pod.Spec.InitContainers[i]))
	}
	for i := range pod.Spec.Containers {
		in.Containers = append(in.Containers, view(&pod.Spec.Containers[i]))
	}
	return in
}

// writtenStatus is a status this worker wrote and the resourceVersion
// the write produced.
type writtenStatus struct {
	status corev1.PodStatus
	rv     string
}

// writeStatus computes the pod's status and writes it through the
// pods/status subresource when it changed; it returns the status.
func (w *podWorker) writeStatus(ctx context.Context, pod *corev1.Pod, in statusInput) corev1.PodStatus {
	status := buildStatus(in)
	if equality.Semantic.DeepEqual(pod.Status, status) {
		return status
	}
	pods := w.m.client.CoreV1().Pods(pod.Namespace)
	p := pod.DeepCopy()
	p.Status = status
	updated, err := pods.UpdateStatus(ctx, p, metav1.UpdateOptions{})
	if apierrors.IsConflict(err) {
		var cur *corev1.Pod
		if cur, err = pods.Get(ctx, pod.Name, metav1.GetOptions{}); err == nil {
			if cur.UID != pod.UID {
				return status
			}
			cur.Status = status
			updated, err = pods.UpdateStatus(ctx, cur, metav1.UpdateOptions{})
		}
	}
	if err != nil {
		if ctx.Err() == nil && !apierrors.IsNotFound(err) {
			klog.FromContext(ctx).Error(err, "update pod status")
		}
		return status
	}
	w.lastStatus = &writtenStatus{status: *updated.Status.DeepCopy(), rv: updated.ResourceVersion}
	return status
}

// syncDeleted stops a pod that is being deleted: its containers get
// SIGTERM and the grace period, then its network, sandbox and files go,
// and the object is deleted for good (grace 0, only this UID).
func (w *podWorker) syncDeleted(ctx context.Context, pod *corev1.Pod) error {
	if err := w.cleanup(ctx, pod, podGrace(pod)); err != nil {
		return err
	}
	err := w.m.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: ptr.To(int64(0)), Preconditions: metav1.NewUIDPreconditions(string(pod.UID)),
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("delete pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	return nil
}

// syncFinished: a Succeeded or Failed pod keeps its sandbox and exited
// containers (for logs) until it is deleted, but gives its address back.
func (w *podWorker) syncFinished(ctx context.Context, pod *corev1.Pod) error {
	w.stopProbers(nil)
	for _, list := range w.instances(ctx) {
		for _, c := range list {
			if c.State == runtime.StateRunning || c.State == runtime.StateCreated {
				if err := w.m.rt.StopContainer(ctx, c.ID, minKillGrace); err != nil {
					return err
				}
			}
		}
	}
	return w.releaseNetwork(ctx)
}

// releaseNetwork deletes the pod's attachment, keeping its record (and
// so its IPs for the status) marked released.
func (w *podWorker) releaseNetwork(ctx context.Context) error {
	rec, err := w.m.readNetRecord(string(w.uid))
	if err != nil || rec == nil || rec.Released {
		return err
	}
	if err := w.m.net.Del(ctx, rec.Attachment); err != nil {
		return err
	}
	rec.Released = true
	return w.m.writeNetRecord(string(w.uid), rec)
}

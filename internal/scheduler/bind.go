package scheduler

import (
	"context"
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
)

// Event reasons, as upstream's.
const (
	eventScheduled        = "Scheduled"
	eventFailedScheduling = "FailedScheduling"
)

// bind assigns pod to host through pods/binding; the API server sets
// spec.nodeName and PodScheduled=True. The pod is assumed on host until
// the cache shows the binding.
func (s *Scheduler) bind(ctx context.Context, key string, pod *corev1.Pod, host string) error {
	log := klog.FromContext(ctx)
	b := &corev1.Binding{
		ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID},
		Target:     corev1.ObjectReference{Kind: "Node", Name: host},
	}
	s.assume(pod.UID, host)
	err := s.cfg.Client.CoreV1().Pods(pod.Namespace).Bind(ctx, b, metav1.CreateOptions{})
	if err != nil {
		s.forgetAssumed(pod.UID)
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			// Deleted, bound by someone else, or replaced by a pod of the
			// same name: the informer brings the news.
			log.V(2).Info("binding rejected", "pod", klog.KObj(pod), "node", host, "err", err)
			return nil
		}
		s.cfg.Recorder.Eventf(pod, corev1.EventTypeWarning, eventFailedScheduling, "Binding rejected: %v", err)
		return fmt.Errorf("bind pod %s to %s: %w", key, host, err)
	}
	s.setUnschedulable(key, false)
	log.V(2).Info("bound", "pod", klog.KObj(pod), "node", host)
	s.cfg.Recorder.Eventf(pod, corev1.EventTypeNormal, eventScheduled, "Successfully assigned %s/%s to %s", pod.Namespace, pod.Name, host)
	return nil
}

// recordUnschedulable reports that pod fits nowhere: a FailedScheduling
// event, and PodScheduled=False/Unschedulable with the diagnosis (written
// only when it changed). The pod is tried again when the cluster changes,
// or after UnschedulableRetry.
func (s *Scheduler) recordUnschedulable(ctx context.Context, key string, pod *corev1.Pod, fitErr *fitError) error {
	msg := fitErr.Error()
	klog.FromContext(ctx).V(2).Info("unschedulable", "pod", klog.KObj(pod), "reason", msg)
	s.setUnschedulable(key, true)
	s.queue.AddAfter(key, s.cfg.UnschedulableRetry)
	s.cfg.Recorder.Event(pod, corev1.EventTypeWarning, eventFailedScheduling, msg)
	want := corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable, Message: msg}
	if cur := podCondition(pod, corev1.PodScheduled); cur != nil {
		if cur.Status == want.Status && cur.Reason == want.Reason && cur.Message == want.Message {
			return nil
		}
		if cur.Status == want.Status {
			want.LastTransitionTime = cur.LastTransitionTime
		}
	}
	if want.LastTransitionTime.IsZero() {
		want.LastTransitionTime = metav1.Now()
	}
	if err := s.patchCondition(ctx, pod, want); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("set PodScheduled=False on %s: %w", key, err)
	}
	return nil
}

// patchCondition sets one pod condition through pods/status with a
// strategic merge patch: conditions merge by type, so the others stay.
func (s *Scheduler) patchCondition(ctx context.Context, pod *corev1.Pod, c corev1.PodCondition) error {
	patch := map[string]interface{}{
		"status": map[string]interface{}{"conditions": []corev1.PodCondition{c}},
	}
	data, err := json.Marshal(patch)
	if err != nil {
		return err
	}
	_, err = s.cfg.Client.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.StrategicMergePatchType, data, metav1.PatchOptions{}, "status")
	return err
}

// podCondition returns pod's condition of type t, or nil.
func podCondition(pod *corev1.Pod, t corev1.PodConditionType) *corev1.PodCondition {
	for i := range pod.Status.Conditions {
		if pod.Status.Conditions[i].Type == t {
			return &pod.Status.Conditions[i]
		}
	}
	return nil
}

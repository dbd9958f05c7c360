package nodelifecycle

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
)

// The DisruptionTarget condition upstream's taint eviction sets before it
// deletes a pod.
const (
	reasonDeletionByTaintManager  = "DeletionByTaintManager"
	messageDeletionByTaintManager = "Taint manager: deleting due to NoExecute taint"
)

// markNotReady sets the pod's Ready and ContainersReady conditions False
// (those it has that are not False already), so endpoint controllers drop
// it; its agent cannot, being out of reach.
func (c *Controller) markNotReady(ctx context.Context, pod *corev1.Pod) error {
	now := metav1.Now()
	var conds []map[string]interface{}
	for _, t := range []corev1.PodConditionType{corev1.ContainersReady, corev1.PodReady} {
		for _, cond := range pod.Status.Conditions {
			if cond.Type == t && cond.Status != corev1.ConditionFalse {
				conds = append(conds, map[string]interface{}{"type": t, "status": corev1.ConditionFalse, "lastTransitionTime": now})
			}
		}
	}
	if len(conds) == 0 {
		return nil
	}
	if err := c.patchStatus(ctx, pod, conds); err != nil {
		return fmt.Errorf("mark pod %s/%s not ready: %w", pod.Namespace, pod.Name, err)
	}
	klog.FromContext(ctx).V(2).Info("pod marked not ready", "pod", klog.KObj(pod), "node", pod.Spec.NodeName)
	c.cfg.Recorder.Event(pod, corev1.EventTypeWarning, eventNodeNotReady, "Node is not ready")
	return nil
}

// evict deletes a pod whose toleration of its node's NoExecute taints ran
// out, first marking it DisruptionTarget as upstream does. The delete is
// graceful and guarded by the pod's UID.
func (c *Controller) evict(ctx context.Context, pod *corev1.Pod) error {
	if c.recentlyEvicted(pod.UID) {
		return nil
	}
	cond := map[string]interface{}{"type": corev1.DisruptionTarget, "status": corev1.ConditionTrue,
		"reason": reasonDeletionByTaintManager, "message": messageDeletionByTaintManager, "lastTransitionTime": metav1.Now()}
	if err := c.patchStatus(ctx, pod, []map[string]interface{}{cond}); err != nil {
		return fmt.Errorf("mark pod %s/%s for eviction: %w", pod.Namespace, pod.Name, err)
	}
	c.cfg.Recorder.Eventf(pod, corev1.EventTypeNormal, eventTaintManagerEviction, "Marking for deletion Pod %s/%s", pod.Namespace, pod.Name)
	err := c.cfg.Client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{Preconditions: metav1.NewUIDPreconditions(string(pod.UID))})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("evict pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	c.mu.Lock()
	c.evicting[pod.UID] = time.Now()
	c.mu.Unlock()
	klog.FromContext(ctx).Info("evicted pod", "pod", klog.KObj(pod), "node", pod.Spec.NodeName)
	return nil
}

// evictionMemory is how long a deleted pod is remembered: ample for the
// cache to show the deletion.
const evictionMemory = time.Minute

// recentlyEvicted reports whether this controller deleted the pod lately,
// and forgets deletions older than evictionMemory.
func (c *Controller) recentlyEvicted(uid types.UID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	for u, at := range c.evicting {
		if now.Sub(at) > evictionMemory {
			delete(c.evicting, u)
		}
	}
	_, ok := c.evicting[uid]
	return ok
}

// patchStatus merges conditions into the pod's status (by type, leaving
// the others) through pods/status.
func (c *Controller) patchStatus(ctx context.Context, pod *corev1.Pod, conds []map[string]interface{}) error {
	data, err := json.Marshal(map[string]interface{}{"status": map[string]interface{}{"conditions": conds}})
	if err != nil {
		return err
	}
	_, err = c.cfg.Client.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.StrategicMergePatchType, data, metav1.PatchOptions{}, "status")
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

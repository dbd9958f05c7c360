// Package nodesim lets a test play the node for pods when no kubelet runs:
// it binds pods and reports them running and ready (or not) through the
// pods/status subresource, as a kubelet would.
package nodesim

import (
	"context"
	"fmt"
	"hash/fnv"
	"net/netip"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
)

// podIP derives a pod IP in 10.244.0.0/16 (the default cluster CIDR) from
// the pod's uid; it is only written into status, never configured.
func podIP(pod *corev1.Pod) string {
	h := fnv.New32a()
	h.Write([]byte(pod.UID))
	n := h.Sum32()
	return netip.AddrFrom4([4]byte{10, 244, byte(n >> 8), byte(n)}).String()
}

// SetReady marks the pod Running with Ready (and ContainersReady) set to
// ready, and gives it an IP if it has none.
func SetReady(ctx context.Context, client kubernetes.Interface, namespace, name string, ready bool) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		pod, err := client.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		now := metav1.NewTime(time.Now())
		status := corev1.ConditionFalse
		if ready {
			status = corev1.ConditionTrue
		}
		pod.Status.Phase = corev1.PodRunning
		if pod.Status.PodIP == "" {
			ip := podIP(pod)
			pod.Status.PodIP = ip
			pod.Status.PodIPs = []corev1.PodIP{{IP: ip}}
		}
		if pod.Status.StartTime == nil {
			pod.Status.StartTime = &now
		}
		for _, t := range []corev1.PodConditionType{corev1.PodScheduled, corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady} {
			s := status
			if t == corev1.PodScheduled || t == corev1.PodInitialized {
				s = corev1.ConditionTrue
			}
			setCondition(pod, corev1.PodCondition{Type: t, Status: s, LastTransitionTime: now})
		}
		if _, err := client.CoreV1().Pods(namespace).UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("mark pod %s/%s ready=%v: %w", namespace, name, ready, err)
		}
		return nil
	})
}

// setCondition sets a condition, keeping its transition time if its status
// does not change.
func setCondition(pod *corev1.Pod, c corev1.PodCondition) {
	for i, cur := range pod.Status.Conditions {
		if cur.Type == c.Type {
			if cur.Status == c.Status {
				c.LastTransitionTime = cur.LastTransitionTime
			}
			pod.Status.Conditions[i] = c
			return
		}
	}
	pod.Status.Conditions = append(pod.Status.Conditions, c)
}

// Bind schedules the pod onto node through the pods/binding subresource.
func Bind(ctx context.Context, client kubernetes.Interface, namespace, name, node string) error {
	err := client.CoreV1().Pods(namespace).Bind(ctx, &corev1.Binding{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Target:     corev1.ObjectReference{Kind: "Node", Name: node},
	}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("bind pod %s/%s to %s: %w", namespace, name, node, err)
	}
	return nil
}

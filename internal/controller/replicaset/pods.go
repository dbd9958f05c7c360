package replicaset

import (
	"fmt"
	"maps"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// podReadyCondition is the pod's Ready condition, or nil.
func podReadyCondition(pod *corev1.Pod) *corev1.PodCondition {
	for i := range pod.Status.Conditions {
		if pod.Status.Conditions[i].Type == corev1.PodReady {
			return &pod.Status.Conditions[i]
		}
	}
	return nil
}

// isPodReady reports whether the pod's Ready condition is True.
func isPodReady(pod *corev1.Pod) bool {
	c := podReadyCondition(pod)
	return c != nil && c.Status == corev1.ConditionTrue
}

// isPodAvailable reports whether the pod has been ready for at least
// minReadySeconds at now.
func isPodAvailable(pod *corev1.Pod, minReadySeconds int32, now time.Time) bool {
	if !isPodReady(pod) {
		return false
	}
	if minReadySeconds == 0 {
		return true
	}
	since := podReadyCondition(pod).LastTransitionTime
	return !since.IsZero() && since.Add(time.Duration(minReadySeconds)*time.Second).Before(now)
}

// untilAvailable is how long a ready pod still needs to become available
// (zero if it is, or if it is not ready at all).
func untilAvailable(pod *corev1.Pod, minReadySeconds int32, now time.Time) time.Duration {
	if minReadySeconds == 0 || !isPodReady(pod) || isPodAvailable(pod, minReadySeconds, now) {
		return 0
	}
	since := podReadyCondition(pod).LastTransitionTime
	if since.IsZero() {
		return 0
	}
	return since.Add(time.Duration(minReadySeconds) * time.Second).Sub(now)
}

// isPodActive: neither finished nor being deleted. Only active pods count
// towards a ReplicaSet's replicas.
func isPodActive(pod *corev1.Pod) bool {
	return pod.Status.Phase != corev1.PodSucceeded && pod.Status.Phase != corev1.PodFailed && pod.DeletionTimestamp == nil
}

// isPodTerminating: being deleted and not finished yet.
func isPodTerminating(pod *corev1.Pod) bool {
	return pod.DeletionTimestamp != nil && pod.Status.Phase != corev1.PodSucceeded && pod.Status.Phase != corev1.PodFailed
}

// podNamePrefix is the generateName of the controller's pods: "<name>-",
// or the bare name where the dash would make it invalid.
func podNamePrefix(controllerName string) string {
	prefix := controllerName + "-"
	if len(apivalidation.NameIsDNSSubdomain(prefix, true)) != 0 {
		return controllerName
	}
	return prefix
}

// podFromTemplate is the pod a ReplicaSet creates: the template's labels,
// annotations, finalizers and spec, a generated name and a controller
// reference to the owner.
func podFromTemplate(template *corev1.PodTemplateSpec, ownerName, namespace string, ref *metav1.OwnerReference) (*corev1.Pod, error) {
	if len(template.Labels) == 0 {
		return nil, fmt.Errorf("unable to create pods, no labels")
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: podNamePrefix(ownerName),
			Namespace:    namespace,
			Labels:       maps.Clone(template.Labels),
			Annotations:  maps.Clone(template.Annotations),
			Finalizers:   slices.Clone(template.Finalizers),
		},
		Spec: *template.Spec.DeepCopy(),
	}
	if ref != nil {
		pod.OwnerReferences = []metav1.OwnerReference{*ref}
	}
	return pod, nil
}

// podKey is the expectations key of a pod: namespace/name.
func podKey(pod *corev1.Pod) string { return pod.Namespace + "/" + pod.Name }

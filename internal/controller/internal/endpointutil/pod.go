// Package endpointutil is what the endpoints, endpointslice and
// endpointslicemirroring controllers share, as upstream's
// k8s.io/endpointslice/util is: which pods count as endpoints, port
// resolution, which Services a pod change touches, the
// last-change-trigger-time tracker, and the tracker that tells a stale
// EndpointSlice cache from a current one.
package endpointutil

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// IsPodReady reports whether the pod's Ready condition is True.
func IsPodReady(pod *corev1.Pod) bool {
	c := PodReadyCondition(pod)
	return c != nil && c.Status == corev1.ConditionTrue
}

// PodReadyCondition is the pod's Ready condition, or nil.
func PodReadyCondition(pod *corev1.Pod) *corev1.PodCondition {
	for i := range pod.Status.Conditions {
		if pod.Status.Conditions[i].Type == corev1.PodReady {
			return &pod.Status.Conditions[i]
		}
	}
	return nil
}

// IsPodTerminal reports a pod that has finished: phase Succeeded or Failed.
func IsPodTerminal(pod *corev1.Pod) bool {
	return pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed
}

// ShouldPodBeInEndpoints reports whether a pod's address belongs in a
// Service's endpoints at all: it has an IP, has not finished, and — unless
// includeTerminating — is not being deleted. Readiness decides where it
// goes, not whether.
func ShouldPodBeInEndpoints(pod *corev1.Pod, includeTerminating bool) bool {
	if IsPodTerminal(pod) {
		return false
	}
	if pod.Status.PodIP == "" && len(pod.Status.PodIPs) == 0 {
		return false
	}
	if !includeTerminating && pod.DeletionTimestamp != nil {
		return false
	}
	return true
}

// ShouldSetHostname reports whether the endpoint for pod carries the pod's
// hostname: it has one and its subdomain is the Service's name.
func ShouldSetHostname(pod *corev1.Pod, svc *corev1.Service) bool {
	return pod.Spec.Hostname != "" && pod.Spec.Subdomain == svc.Name && svc.Namespace == pod.Namespace
}

// FindPort resolves a Service port's targetPort on one pod: a number is
// itself, a name is looked up among the pod's container ports (and those of
// restartable init containers, i.e. sidecars) with the same protocol.
func FindPort(pod *corev1.Pod, svcPort *corev1.ServicePort) (int, error) {
	target := svcPort.TargetPort
	switch target.Type {
	case intstr.Int:
		return target.IntValue(), nil
	case intstr.String:
		name := target.StrVal
		for _, c := range pod.Spec.Containers {
			for _, p := range c.Ports {
				if p.Name == name && p.Protocol == svcPort.Protocol {
					return int(p.ContainerPort), nil
				}
			}
		}
		for _, c := range pod.Spec.InitContainers {
			if c.RestartPolicy == nil || *c.RestartPolicy != corev1.ContainerRestartPolicyAlways {
				continue
			}
			for _, p := range c.Ports {
				if p.Name == name && p.Protocol == svcPort.Protocol {
					return int(p.ContainerPort), nil
				}
			}
		}
	}
	return 0, fmt.Errorf("pod %s/%s has no port %q for protocol %s", pod.Namespace, pod.Name, target.String(), svcPort.Protocol)
}

// PodEndpointsChanged reports whether a pod update can change an endpoint
// built from it (podChanged), and whether its labels changed (which can
// change the Services it belongs to).
func PodEndpointsChanged(old, cur *corev1.Pod) (podChanged, labelsChanged bool) {
	labelsChanged = !mapsEqual(old.Labels, cur.Labels)
	if (old.DeletionTimestamp == nil) != (cur.DeletionTimestamp == nil) {
		return true, labelsChanged
	}
	if IsPodReady(old) != IsPodReady(cur) || IsPodTerminal(old) != IsPodTerminal(cur) {
		return true, labelsChanged
	}
	if old.Status.PodIP != cur.Status.PodIP || len(old.Status.PodIPs) != len(cur.Status.PodIPs) {
		return true, labelsChanged
	}
	for i := range old.Status.PodIPs {
		if old.Status.PodIPs[i].IP != cur.Status.PodIPs[i].IP {
			return true, labelsChanged
		}
	}
	// Name, namespace and UID are immutable; nodeName, hostname and
	// subdomain are set before the pod has an IP.
	if old.Spec.NodeName != cur.Spec.NodeName {
		return true, labelsChanged
	}
	return false, labelsChanged
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

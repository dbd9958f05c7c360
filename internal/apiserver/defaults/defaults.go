package defaults

import (
	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// Object applies the defaults of obj's kind. Kinds without defaults (Events,
// Leases, ServiceAccounts, ...) and unknown kinds are left alone.
func Object(obj runtime.Object) {
	switch o := obj.(type) {
	case *corev1.Pod:
		Pod(o)
	case *corev1.PodTemplate:
		PodTemplate(o)
	case *corev1.Service:
		Service(o)
	case *corev1.Namespace:
		Namespace(o)
	case *corev1.Node:
		Node(o)
	case *corev1.Endpoints:
		Endpoints(o)
	case *corev1.Secret:
		Secret(o)
	case *corev1.ConfigMap:
		ConfigMap(o)
	case *appsv1.Deployment:
		Deployment(o)
	case *appsv1.ReplicaSet:
		ReplicaSet(o)
	case *discoveryv1.EndpointSlice:
		EndpointSlice(o)
	}
}

// Event has no defaults upstream (neither core/v1 nor events.k8s.io/v1); it
// exists so every served kind has a named entry point.
func Event(*corev1.Event) {}

// Lease has no defaults upstream; see Event.
func Lease(*coordinationv1.Lease) {}

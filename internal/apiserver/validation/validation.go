package validation

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// ValidateCreate validates obj as it is about to be created. It returns nil
// for kinds it does not know.
func ValidateCreate(obj runtime.Object) field.ErrorList {
	switch o := obj.(type) {
	case *corev1.Pod:
		return ValidatePod(o)
	case *corev1.Service:
		return ValidateService(o)
	case *corev1.Namespace:
		return ValidateNamespace(o)
	case *corev1.Node:
		return ValidateNode(o)
	case *corev1.Endpoints:
		return ValidateEndpoints(o)
	case *corev1.ConfigMap:
		return ValidateConfigMap(o)
	case *corev1.Secret:
		return ValidateSecret(o)
	case *corev1.ServiceAccount:
		return ValidateServiceAccount(o)
	case *corev1.Event:
		return ValidateEvent(o)
	case *eventsv1.Event:
		return ValidateEventV1(o)
	case *appsv1.Deployment:
		return ValidateDeployment(o)
	case *appsv1.ReplicaSet:
		return ValidateReplicaSet(o)
	case *discoveryv1.EndpointSlice:
		return ValidateEndpointSlice(o)
	case *coordinationv1.Lease:
		return ValidateLease(o)
	}
	return nil
}

// ValidateUpdate validates obj as the replacement of old (same kind). It
// returns nil for kinds it does not know.
func ValidateUpdate(obj, old runtime.Object) field.ErrorList {
	switch o := obj.(type) {
	case *corev1.Pod:
		return update(o, old, ValidatePodUpdate)
	case *corev1.Service:
		return update(o, old, ValidateServiceUpdate)
	case *corev1.Namespace:
		return update(o, old, ValidateNamespaceUpdate)
	case *corev1.Node:
		return update(o, old, ValidateNodeUpdate)
	case *corev1.Endpoints:
		return update(o, old, ValidateEndpointsUpdate)
	case *corev1.ConfigMap:
		return update(o, old, ValidateConfigMapUpdate)
	case *corev1.Secret:
		return update(o, old, ValidateSecretUpdate)
	case *corev1.ServiceAccount:
		return update(o, old, ValidateServiceAccountUpdate)
	case *corev1.Event:
		return update(o, old, ValidateEventUpdate)
	case *eventsv1.Event:
		return update(o, old, ValidateEventV1Update)
	case *appsv1.Deployment:
		return update(o, old, ValidateDeploymentUpdate)
	case *appsv1.ReplicaSet:
		return update(o, old, ValidateReplicaSetUpdate)
	case *discoveryv1.EndpointSlice:
		return update(o, old, ValidateEndpointSliceUpdate)
	case *coordinationv1.Lease:
		return update(o, old, ValidateLeaseUpdate)
	}
	return nil
}

func update[T runtime.Object](obj T, old runtime.Object, fn func(obj, old T) field.ErrorList) field.ErrorList {
	o, ok := old.(T)
	if !ok {
		return field.ErrorList{field.InternalError(nil, fmt.Errorf("cannot update a %T with a %T", old, obj))}
	}
	return fn(obj, o)
}

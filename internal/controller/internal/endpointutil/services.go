package endpointutil

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/sets"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

// SelectorMatches reports whether a Service selector selects a pod with
// these labels. A nil selector selects nothing (such Services get their
// endpoints from elsewhere); an empty one selects everything.
func SelectorMatches(selector, podLabels map[string]string) bool {
	if selector == nil {
		return false
	}
	for k, v := range selector {
		if w, ok := podLabels[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// PodServiceKeys are the namespace/name keys of the Services whose selector
// selects pod.
func PodServiceKeys(services corelisters.ServiceLister, pod *corev1.Pod) sets.Set[string] {
	keys := sets.New[string]()
	list, err := services.Services(pod.Namespace).List(labels.Everything())
	if err != nil {
		return keys
	}
	for _, svc := range list {
		if SelectorMatches(svc.Spec.Selector, pod.Labels) {
			keys.Insert(svc.Namespace + "/" + svc.Name)
		}
	}
	return keys
}

// ServicesToUpdateOnPodChange are the Services a pod update affects: none if
// nothing an endpoint shows changed; those it belongs to now; and, if its
// labels changed, those it left or joined.
func ServicesToUpdateOnPodChange(services corelisters.ServiceLister, old, cur *corev1.Pod) sets.Set[string] {
	if old.ResourceVersion == cur.ResourceVersion {
		return nil // a resync, not a change
	}
	podChanged, labelsChanged := PodEndpointsChanged(old, cur)
	if !podChanged && !labelsChanged {
		return nil
	}
	keys := PodServiceKeys(services, cur)
	if labelsChanged {
		before := PodServiceKeys(services, old)
		if podChanged {
			keys = keys.Union(before)
		} else {
			keys = keys.Difference(before).Union(before.Difference(keys))
		}
	}
	return keys
}

// PodFromDeleteAction unwraps an informer's delete notification.
func PodFromDeleteAction(obj any) *corev1.Pod {
	switch o := obj.(type) {
	case *corev1.Pod:
		return o
	case cache.DeletedFinalStateUnknown:
		p, _ := o.Obj.(*corev1.Pod)
		return p
	}
	return nil
}

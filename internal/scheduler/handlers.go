package scheduler

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/client-go/tools/cache"
)

// addHandlers queues pods that need a node, and requeues unschedulable ones
// when the cluster changes in a way that could make room for them.
func (s *Scheduler) addHandlers() error {
	if _, err := s.pods.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj interface{}) { s.podChanged(nil, obj.(*corev1.Pod)) },
		UpdateFunc: func(old, obj interface{}) { s.podChanged(old.(*corev1.Pod), obj.(*corev1.Pod)) },
		DeleteFunc: s.podDeleted,
	}); err != nil {
		return err
	}
	_, err := s.nodes.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(interface{}) { s.retryUnschedulable() },
		UpdateFunc: func(old, obj interface{}) {
			if nodeGainedRoom(old.(*corev1.Node), obj.(*corev1.Node)) {
				s.retryUnschedulable()
			}
		},
	})
	return err
}

func (s *Scheduler) podChanged(old, pod *corev1.Pod) {
	key, err := cache.MetaNamespaceKeyFunc(pod)
	if err != nil {
		return
	}
	if pod.Spec.NodeName != "" {
		// Bound (by us or anyone): the cache now counts it by nodeName.
		s.forgetAssumed(pod.UID)
		s.setUnschedulable(key, false)
		if old != nil && old.Spec.NodeName != "" && !terminal(old) && terminal(pod) {
			s.retryUnschedulable() // a finished pod frees its node's room
		}
		return
	}
	if !s.responsibleFor(pod) {
		return
	}
	// Our own status writes update unschedulable pods; only a change of
	// what the pod asks for is a reason to try again at once.
	if old == nil || !s.isUnschedulable(key) || podRequirementsChanged(old, pod) {
		s.queue.Add(key)
	}
}

func (s *Scheduler) podDeleted(obj interface{}) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	wasAssumed := s.isAssumed(pod.UID)
	s.forgetAssumed(pod.UID)
	if key, err := cache.MetaNamespaceKeyFunc(pod); err == nil {
		s.setUnschedulable(key, false)
	}
	if pod.Spec.NodeName != "" || wasAssumed {
		s.retryUnschedulable() // its node has room again
	}
}

// podRequirementsChanged reports whether what decides where a pod may go
// changed: its spec, labels or annotations (not its status).
func podRequirementsChanged(old, pod *corev1.Pod) bool {
	return !equality.Semantic.DeepEqual(old.Spec, pod.Spec) ||
		!equality.Semantic.DeepEqual(old.Labels, pod.Labels) ||
		!equality.Semantic.DeepEqual(old.Annotations, pod.Annotations)
}

// nodeGainedRoom reports whether a node update could let a pod fit that did
// not: its labels, taints, cordon, allocatable resources or readiness
// changed. Heartbeats alone do not count.
func nodeGainedRoom(old, node *corev1.Node) bool {
	return !equality.Semantic.DeepEqual(old.Labels, node.Labels) ||
		!equality.Semantic.DeepEqual(old.Spec.Taints, node.Spec.Taints) ||
		old.Spec.Unschedulable != node.Spec.Unschedulable ||
		!equality.Semantic.DeepEqual(old.Status.Allocatable, node.Status.Allocatable) ||
		readyStatus(old) != readyStatus(node)
}

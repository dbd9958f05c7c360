package endpointutil

import (
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// TriggerTimeTracker computes the endpoints.kubernetes.io/last-change-trigger-time
// annotation as upstream: the earliest time of a change (a pod's Ready
// transition, the Service's creation) not yet reflected in a sync of the
// Service. Zero means "nothing new": the annotation is then removed.
type TriggerTimeTracker struct {
	mu     sync.Mutex
	states map[types.NamespacedName]serviceState
}

type serviceState struct {
	podTriggerTimes    map[string]time.Time
	serviceTriggerTime time.Time
}

// NewTriggerTimeTracker returns an empty tracker.
func NewTriggerTimeTracker() *TriggerTimeTracker {
	return &TriggerTimeTracker{states: map[types.NamespacedName]serviceState{}}
}

// Compute records the current trigger times of svc and its pods and
// returns the earliest one that changed since the previous call.
func (t *TriggerTimeTracker) Compute(svc *corev1.Service, pods []*corev1.Pod) time.Time {
	key := types.NamespacedName{Namespace: svc.Namespace, Name: svc.Name}
	t.mu.Lock()
	prev, known := t.states[key]
	t.mu.Unlock()

	next := serviceState{podTriggerTimes: make(map[string]time.Time, len(pods))}
	var earliest time.Time
	consider := func(ts time.Time) {
		if earliest.IsZero() || ts.Before(earliest) {
			earliest = ts
		}
	}
	for _, pod := range pods {
		c := PodReadyCondition(pod)
		if c == nil || c.LastTransitionTime.IsZero() {
			continue
		}
		ts := c.LastTransitionTime.Time
		next.podTriggerTimes[pod.Name] = ts
		if ts.After(prev.podTriggerTimes[pod.Name]) {
			consider(ts)
		}
	}
	if ts := svc.CreationTimestamp.Time; !ts.IsZero() {
		next.serviceTriggerTime = ts
		if !known || ts.After(prev.serviceTriggerTime) {
			consider(ts)
		}
	}
	t.mu.Lock()
	t.states[key] = next
	t.mu.Unlock()
	return earliest
}

// Delete forgets a Service.
func (t *TriggerTimeTracker) Delete(namespace, name string) {
	t.mu.Lock()
	delete(t.states, types.NamespacedName{Namespace: namespace, Name: name})
	t.mu.Unlock()
}

// SetTriggerTime sets or clears the annotation on annotations (which must
// not be nil).
func SetTriggerTime(annotations map[string]string, ts time.Time) {
	if ts.IsZero() {
		delete(annotations, corev1.EndpointsLastChangeTriggerTime)
		return
	}
	annotations[corev1.EndpointsLastChangeTriggerTime] = ts.UTC().Format(time.RFC3339Nano)
}

package replicaset

import (
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

func TestSlowStartBatch(t *testing.T) {
	fail := errors.New("quota exceeded")
	tests := []struct {
		name      string
		count     int
		failAfter int // calls that succeed before every later one fails; -1: none fail
		wantCalls int
		wantOK    int
	}{
		{"all succeed in 1+2+4+3", 10, -1, 10, 10},
		{"first call fails: nothing more", 10, 0, 1, 0},
		{"fails in the batch of two", 10, 2, 3, 2},
		{"fails in the batch of four", 10, 4, 7, 4},
		{"nothing to do", 0, -1, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls atomic.Int32
			ok, err := slowStartBatch(tt.count, 1, func() error {
				if n := calls.Add(1); tt.failAfter >= 0 && int(n) > tt.failAfter {
					return fail
				}
				return nil
			})
			if int(calls.Load()) != tt.wantCalls || ok != tt.wantOK {
				t.Errorf("calls=%d successes=%d, want %d and %d", calls.Load(), ok, tt.wantCalls, tt.wantOK)
			}
			if (err != nil) != (tt.failAfter >= 0) {
				t.Errorf("err = %v", err)
			}
		})
	}
}

// pod builds a pod for ordering tests.
type podOpt func(*corev1.Pod)

func testPod(name string, opts ...podOpt) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID(name)},
		Status: corev1.PodStatus{Phase: corev1.PodRunning}}
	for _, o := range opts {
		o(p)
	}
	return p
}

func onNode(n string) podOpt { return func(p *corev1.Pod) { p.Spec.NodeName = n } }
func phase(ph corev1.PodPhase) podOpt {
	return func(p *corev1.Pod) { p.Status.Phase = ph }
}
func readySince(t time.Time) podOpt {
	return func(p *corev1.Pod) {
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(t)}}
	}
}
func created(t time.Time) podOpt {
	return func(p *corev1.Pod) { p.CreationTimestamp = metav1.NewTime(t) }
}
func restarts(n int32) podOpt {
	return func(p *corev1.Pod) { p.Status.ContainerStatuses = []corev1.ContainerStatus{{RestartCount: n}} }
}
func cost(v string) podOpt {
	return func(p *corev1.Pod) { p.Annotations = map[string]string{DeletionCostAnnotation: v} }
}

func TestPodsToDeleteOrder(t *testing.T) {
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	hourAgo, dayAgo := now.Add(-time.Hour), now.Add(-24*time.Hour)
	tests := []struct {
		name    string
		pods    []*corev1.Pod
		related []*corev1.Pod // nil: the pods themselves
		want    []string      // full deletion order
	}{
		{"unscheduled before scheduled", []*corev1.Pod{
			testPod("scheduled", onNode("a"), phase(corev1.PodPending)), testPod("unscheduled", phase(corev1.PodPending)),
		}, nil, []string{"unscheduled", "scheduled"}},
		{"pending, unknown, running", []*corev1.Pod{
			testPod("running", onNode("a")), testPod("unknown", onNode("a"), phase(corev1.PodUnknown)), testPod("pending", onNode("a"), phase(corev1.PodPending)),
		}, nil, []string{"pending", "unknown", "running"}},
		{"not ready before ready", []*corev1.Pod{
			testPod("ready", onNode("a"), readySince(dayAgo)), testPod("notready", onNode("a")),
		}, nil, []string{"notready", "ready"}},
		{"lower deletion cost first", []*corev1.Pod{
			testPod("dear", onNode("a"), readySince(hourAgo), cost("100")), testPod("cheap", onNode("a"), readySince(dayAgo), cost("-5")),
			testPod("default", onNode("a"), readySince(dayAgo)),
		}, nil, []string{"cheap", "default", "dear"}},
		{"doubled-up node first", []*corev1.Pod{
			testPod("alone", onNode("a"), readySince(hourAgo)), testPod("crowded", onNode("b"), readySince(dayAgo)),
		}, []*corev1.Pod{
			testPod("alone", onNode("a")), testPod("crowded", onNode("b")), testPod("sibling", onNode("b")),
		}, []string{"crowded", "alone"}},
		{"ready more recently first", []*corev1.Pod{
			testPod("old", onNode("a"), readySince(dayAgo)), testPod("young", onNode("a"), readySince(now.Add(-time.Minute))),
		}, nil, []string{"young", "old"}},
		{"more restarts first", []*corev1.Pod{
			testPod("calm", onNode("a"), restarts(0)), testPod("flappy", onNode("a"), restarts(7)),
		}, nil, []string{"flappy", "calm"}},
		{"newer first, zero time first of all", []*corev1.Pod{
			testPod("old", onNode("a"), created(dayAgo)), testPod("new", onNode("a"), created(now.Add(-time.Second))), testPod("zero", onNode("a")),
		}, nil, []string{"zero", "new", "old"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			related := tt.related
			if related == nil {
				related = tt.pods
			}
			// Pick all but one, so the ordering is exercised; then the
			// full order by picking len-1 and appending the survivor.
			picked := podsToDelete(slices.Clone(tt.pods), related, len(tt.pods)-1, now)
			var got []string
			for _, p := range picked {
				got = append(got, p.Name)
			}
			for _, p := range tt.pods {
				if !slices.Contains(got, p.Name) {
					got = append(got, p.Name)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("deletion order %v, want %v", got, tt.want)
			}
		})
	}
}

func TestCalculateStatus(t *testing.T) {
	now := time.Now()
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Generation: 3},
		Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To[int32](4), MinReadySeconds: 10,
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "a", "v": "1"}}}},
	}
	labelled := func(p *corev1.Pod) { p.Labels = map[string]string{"app": "a", "v": "1"} }
	active := []*corev1.Pod{
		testPod("a", labelled, readySince(now.Add(-time.Minute))), // available
		testPod("b", labelled, readySince(now.Add(-time.Second))), // ready, not yet available
		testPod("c"), // not fully labelled, not ready
	}
	st := calculateStatus(rs, active, []*corev1.Pod{testPod("d")}, errors.New("pods \"x\" is forbidden: quota"), now)
	if st.Replicas != 3 || st.FullyLabeledReplicas != 2 || st.ReadyReplicas != 2 || st.AvailableReplicas != 1 || ptr.Deref(st.TerminatingReplicas, 0) != 1 {
		t.Errorf("counts: %+v", st)
	}
	c := getCondition(st, appsv1.ReplicaSetReplicaFailure)
	if c == nil || c.Status != corev1.ConditionTrue || c.Reason != "FailedCreate" || c.Message != `pods "x" is forbidden: quota` {
		t.Fatalf("ReplicaFailure condition: %+v", c)
	}
	// A later success clears it.
	rs.Status = st
	if st := calculateStatus(rs, active, nil, nil, now); getCondition(st, appsv1.ReplicaSetReplicaFailure) != nil {
		t.Errorf("ReplicaFailure kept after success: %+v", st.Conditions)
	}
	// Too many pods and a failure: FailedDelete.
	rs.Status = appsv1.ReplicaSetStatus{}
	rs.Spec.Replicas = ptr.To[int32](1)
	if c := getCondition(calculateStatus(rs, active, nil, errors.New("boom"), now), appsv1.ReplicaSetReplicaFailure); c == nil || c.Reason != "FailedDelete" {
		t.Errorf("want FailedDelete, got %+v", c)
	}
}

func TestExpectations(t *testing.T) {
	clock := time.Now()
	e := newExpectations(func() time.Time { return clock })
	if !e.satisfied("ns/rs") {
		t.Fatal("no expectations must mean satisfied")
	}
	e.expectCreations("ns/rs", 2)
	e.creationObserved("ns/rs")
	if e.satisfied("ns/rs") {
		t.Fatal("one creation still pending")
	}
	e.creationObserved("ns/rs")
	if !e.satisfied("ns/rs") {
		t.Fatal("all creations observed")
	}
	e.expectDeletions("ns/rs", []string{"ns/a", "ns/b"})
	e.deletionObserved("ns/rs", "ns/a")
	e.deletionObserved("ns/rs", "ns/a") // seen twice (deletionTimestamp, then gone): counts once
	e.deletionObserved("ns/rs", "ns/other")
	if e.satisfied("ns/rs") {
		t.Fatal("ns/b still pending")
	}
	clock = clock.Add(expectationsTimeout + time.Second)
	if !e.satisfied("ns/rs") {
		t.Fatal("expired expectations must count as satisfied")
	}
	e.forget("ns/rs")
	if !e.satisfied("ns/rs") {
		t.Fatal("forgotten")
	}
}

func TestPodNamePrefix(t *testing.T) {
	if got := podNamePrefix("kuard-5d8f7c9b4"); got != "kuard-5d8f7c9b4-" {
		t.Errorf("prefix %q", got)
	}
}

package replicaset

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"kite/internal/testutil/apitest"
)

// A template the API server accepts in a ReplicaSet but refuses in a pod
// (a malformed finalizer: pod metadata is validated, template metadata is
// not, as upstream): creations fail, slow start stops after the first,
// and the failure shows as a FailedCreate event and a ReplicaFailure
// condition.
func TestFailedCreate(t *testing.T) {
	e := start(t)
	spec := newRS("broken", 5)
	spec.Spec.Template.Finalizers = []string{"not a finalizer!"}
	e.createRS(t, spec)
	apitest.WaitFor(t, wait, "ReplicaFailure=True(FailedCreate)", func() bool {
		c := getCondition(e.getRS(t, "broken").Status, appsv1.ReplicaSetReplicaFailure)
		return c != nil && c.Status == corev1.ConditionTrue && c.Reason == ReasonFailedCreateCondition
	})
	apitest.WaitFor(t, wait, "FailedCreate event", func() bool {
		msgs := e.events(t, "broken")[ReasonFailedCreate]
		return len(msgs) > 0 && strings.HasPrefix(msgs[0], "Error creating: ")
	})
	if pods := e.pods(t); len(pods) != 0 {
		t.Errorf("%d pods exist", len(pods))
	}
}

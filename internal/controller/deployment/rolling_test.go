package deployment

import (
	"fmt"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"kite/internal/testutil/apitest"
	"kite/internal/testutil/nodesim"
)

// `kubectl set image` on ten replicas: a second ReplicaSet takes over while
// at every observed moment at most replicas+maxSurge pods exist and at
// least replicas-maxUnavailable are available; the old ReplicaSet ends at
// zero.
func TestRollingUpdateBounds(t *testing.T) {
	tests := []struct {
		name                 string
		surge, unavailable   *intstr.IntOrString
		wantSurge, wantUnavl int32
	}{
		{"defaults 25 and 25 percent", nil, nil, 3, 2},
		{"1 and 1 as in S19", ptr.To(intstr.FromInt32(1)), ptr.To(intstr.FromInt32(1)), 1, 1},
		{"50 percent surge none unavailable", ptr.To(intstr.FromString("50%")), ptr.To(intstr.FromInt32(0)), 5, 0},
		{"no surge 30 percent unavailable", ptr.To(intstr.FromInt32(0)), ptr.To(intstr.FromString("30%")), 0, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := start(t)
			spec := newDeployment("kuard", 10)
			if tt.surge != nil {
				spec.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType,
					RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: tt.surge, MaxUnavailable: tt.unavailable}}
			}
			d := e.create(t, spec)
			if s, u := maxSurge(d), maxUnavailable(d); s != tt.wantSurge || u != tt.wantUnavl {
				t.Fatalf("resolved surge %d, unavailable %d; want %d, %d", s, u, tt.wantSurge, tt.wantUnavl)
			}
			d = e.rollOut(t, "kuard")
			oldRS := e.replicaSets(t, d)[0]

			maxPods, minAvailable := 10+int(tt.wantSurge), 10-int(tt.wantUnavl)
			// maxSurge bounds what the replica sets want (checked exactly
			// below), not the pods at every instant: as upstream, a new
			// replica set's pods may be stored before the pods an old one
			// was scaled down from are deleted — at most one scale-down
			// step (≤ surge + unavailable) of them.
			maxLive := maxPods + int(tt.wantSurge+tt.wantUnavl)
			obs := e.observe(t, func(pods map[string]*corev1.Pod) error {
				live, available := 0, 0
				for _, p := range pods {
					if p.DeletionTimestamp == nil {
						live++
						if podReady(p) {
							available++
						}
					}
				}
				if live > maxLive || available < minAvailable {
					return fmt.Errorf("%d pods, %d available: want at most %d and at least %d", live, available, maxLive, minAvailable)
				}
				return nil
			}, func(rss map[string]*appsv1.ReplicaSet) error {
				var sum int32
				for _, rs := range rss {
					sum += rsReplicas(rs)
				}
				if sum > int32(maxPods) {
					return fmt.Errorf("replica sets want %d pods in all, more than %d", sum, maxPods)
				}
				return nil
			})

			e.setImage(t, "kuard", imageV2)
			newHash := ""
			apitest.WaitFor(t, time.Minute, "rollout to the new image", func() bool {
				d = e.get(t, "kuard")
				if rolledOut(d) && d.Spec.Template.Spec.Containers[0].Image == imageV2 {
					return true
				}
				// Play the node: one new pod becomes ready per look.
				for _, rs := range e.replicaSets(t, d) {
					if rs.UID == oldRS.UID {
						continue
					}
					newHash = rs.Labels[PodTemplateHashLabel]
					for _, p := range e.livePodsOf(t, &rs) {
						if !podReady(&p) {
							if err := nodesim.SetReady(e.ctx, e.client, e.ns, p.Name, true); err != nil && !apierrors.IsNotFound(err) {
								t.Fatal(err)
							}
							return false
						}
					}
				}
				return false
			})

			rss := e.replicaSets(t, d)
			if len(rss) != 2 {
				t.Fatalf("%d replica sets, want the old and the new", len(rss))
			}
			old, cur := rss[0], rss[1]
			if old.UID != oldRS.UID || rsReplicas(&old) != 0 || old.Status.Replicas != 0 {
				t.Errorf("old replica set %s: %d wanted, %d reported; want 0", old.Name, rsReplicas(&old), old.Status.Replicas)
			}
			if cur.Name != "kuard-"+newHash || rsReplicas(&cur) != 10 || cur.Status.AvailableReplicas != 10 {
				t.Errorf("new replica set %s: %d wanted, %d available", cur.Name, rsReplicas(&cur), cur.Status.AvailableReplicas)
			}
			if old.Annotations[RevisionAnnotation] != "1" || cur.Annotations[RevisionAnnotation] != "2" {
				t.Errorf("revisions: old %q, new %q; want 1 and 2", old.Annotations[RevisionAnnotation], cur.Annotations[RevisionAnnotation])
			}
			// The first step, as upstream: surge first if allowed, else
			// make room. (Later events are aggregated after ten similar
			// ones, as upstream's recorder does.)
			first := fmt.Sprintf("Scaled up replica set %s from 0 to %d", cur.Name, tt.wantSurge)
			if tt.wantSurge == 0 {
				first = fmt.Sprintf("Scaled down replica set %s from 10 to %d", old.Name, 10-tt.wantUnavl)
			}
			e.hasEvent(t, "kuard", ReasonScalingReplicaSet, first)
			apitest.WaitFor(t, wait, "Progressing=True(NewReplicaSetAvailable)", func() bool {
				c := condition(e.get(t, "kuard"), appsv1.DeploymentProgressing)
				return c != nil && c.Reason == ReasonNewReplicaSetAvailable && c.Message == fmt.Sprintf("ReplicaSet %q has successfully progressed.", cur.Name)
			})
			if n := obs.seen(t); n < 20 {
				t.Errorf("observed only %d events", n)
			}
		})
	}
}

package deployment

import (
	"fmt"
	"regexp"
	"slices"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
)

func TestPodTemplateHash(t *testing.T) {
	tmpl := func(labels map[string]string, image string) *corev1.PodTemplateSpec {
		return &corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "kuard", Image: image}}}}
	}
	// Maps with the same content hash the same whatever their history.
	a := map[string]string{}
	b := map[string]string{}
	for i := range 20 {
		a[fmt.Sprint("k", i)] = "v"
		b[fmt.Sprint("k", 19-i)] = "v"
	}
	h := PodTemplateHash(tmpl(a, imageV1), nil)
	if h != PodTemplateHash(tmpl(b, imageV1), nil) {
		t.Error("hash depends on map order")
	}
	if !regexp.MustCompile(`^[bcdfghjklmnpqrstvwxz2456789]{1,10}$`).MatchString(h) {
		t.Errorf("hash %q: want rand.SafeEncodeString of a uint32", h)
	}
	seen := map[string]bool{h: true}
	for _, other := range []string{
		PodTemplateHash(tmpl(a, imageV2), nil),
		PodTemplateHash(tmpl(a, imageV1), ptr.To[int32](0)),
		PodTemplateHash(tmpl(a, imageV1), ptr.To[int32](1)),
	} {
		if seen[other] {
			t.Errorf("hash %q repeats for a different template or collision count", other)
		}
		seen[other] = true
	}
}

func rolling(replicas int32, surge, unavailable intstr.IntOrString) *appsv1.Deployment {
	return &appsv1.Deployment{Spec: appsv1.DeploymentSpec{Replicas: ptr.To(replicas), Strategy: appsv1.DeploymentStrategy{
		Type: appsv1.RollingUpdateDeploymentStrategyType, RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &surge, MaxUnavailable: &unavailable}}}}
}

func TestSurgeAndUnavailable(t *testing.T) {
	pct, n := intstr.FromString, intstr.FromInt32
	tests := []struct {
		d                  *appsv1.Deployment
		surge, unavailable int32
	}{
		{rolling(10, pct("25%"), pct("25%")), 3, 2}, // surge rounds up, unavailable down
		{rolling(10, n(1), n(1)), 1, 1},
		{rolling(5, pct("25%"), pct("25%")), 2, 1},
		{rolling(1, pct("25%"), pct("25%")), 1, 0},
		{rolling(3, pct("0%"), pct("10%")), 0, 1}, // both resolve to 0: one may be unavailable
		{rolling(2, n(0), n(5)), 0, 2},            // never more than replicas
		{rolling(0, pct("25%"), pct("25%")), 0, 0},
		{&appsv1.Deployment{Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](4),
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}}}, 0, 0},
	}
	for _, tt := range tests {
		name := fmt.Sprintf("%d replicas %s", *tt.d.Spec.Replicas, tt.d.Spec.Strategy.Type)
		if ru := tt.d.Spec.Strategy.RollingUpdate; ru != nil {
			name += fmt.Sprintf(" surge %s unavailable %s", ru.MaxSurge.String(), ru.MaxUnavailable.String())
		}
		t.Run(name, func(t *testing.T) {
			if s, u := maxSurge(tt.d), maxUnavailable(tt.d); s != tt.surge || u != tt.unavailable {
				t.Errorf("surge %d unavailable %d, want %d and %d", s, u, tt.surge, tt.unavailable)
			}
		})
	}
}

// rs is a ReplicaSet of size n created at minute m.
func rs(name string, n int32, m int, annotations ...string) *appsv1.ReplicaSet {
	r := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID(name),
		CreationTimestamp: metav1.NewTime(time.Date(2025, 1, 1, 0, m, 0, 0, time.UTC)), Annotations: map[string]string{}},
		Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To(n)}}
	for i := 0; i+1 < len(annotations); i += 2 {
		r.Annotations[annotations[i]] = annotations[i+1]
	}
	return r
}

func TestNewRSReplicas(t *testing.T) {
	d := rolling(10, intstr.FromString("25%"), intstr.FromString("25%"))
	tests := []struct {
		name string
		all  []*appsv1.ReplicaSet
		want int32
	}{
		{"first step surges", []*appsv1.ReplicaSet{rs("old", 10, 0), rs("new", 0, 1)}, 3},
		{"room after old shrank", []*appsv1.ReplicaSet{rs("old", 8, 0), rs("new", 3, 1)}, 5},
		{"no room", []*appsv1.ReplicaSet{rs("old", 8, 0), rs("new", 5, 1)}, 5},
		{"never past replicas", []*appsv1.ReplicaSet{rs("old", 1, 0), rs("new", 9, 1)}, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := newRSReplicas(d, tt.all, tt.all[len(tt.all)-1]); got != tt.want {
				t.Errorf("new replica set may grow to %d, want %d", got, tt.want)
			}
		})
	}
	recreate := &appsv1.Deployment{Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](4),
		Strategy: appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}}}
	if got := newRSReplicas(recreate, nil, rs("new", 0, 0)); got != 4 {
		t.Errorf("recreate: %d", got)
	}
}

func TestProportionalSizes(t *testing.T) {
	maxAnn := func(n int) []string { return []string{MaxReplicasAnnotation, fmt.Sprint(n)} }
	tests := []struct {
		name     string
		replicas int32
		rss      []*appsv1.ReplicaSet
		want     map[string]int32
		op       string
	}{
		{"10 to 20 mid-rollout", 20, []*appsv1.ReplicaSet{rs("old", 8, 0, maxAnn(13)...), rs("new", 5, 1, maxAnn(13)...)},
			map[string]int32{"old": 15, "new": 10}, "up"},
		{"20 to 5", 5, []*appsv1.ReplicaSet{rs("old", 15, 0, maxAnn(25)...), rs("new", 10, 1, maxAnn(25)...)},
			map[string]int32{"old": 4, "new": 3}, "down"},
		{"to zero", 0, []*appsv1.ReplicaSet{rs("old", 3, 0, maxAnn(13)...), rs("new", 5, 1, maxAnn(13)...)},
			map[string]int32{"old": 0, "new": 0}, "down"},
		{"equal sizes growing: leftover to the newest", 11, []*appsv1.ReplicaSet{rs("a", 5, 0, maxAnn(13)...), rs("b", 5, 1, maxAnn(13)...)},
			map[string]int32{"a": 5, "b": 9}, "up"},
		{"equal sizes shrinking: the oldest first", 7, []*appsv1.ReplicaSet{rs("a", 6, 0, maxAnn(13)...), rs("b", 6, 1, maxAnn(13)...)},
			map[string]int32{"a": 4, "b": 5}, "down"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := rolling(tt.replicas, intstr.FromString("25%"), intstr.FromString("25%"))
			all, sizes, op := proportionalSizes(klog.Background(), d, tt.rss)
			got := map[string]int32{}
			for i, r := range all {
				got[r.Name] = sizes[i]
			}
			if op != tt.op || fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("sizes %v %s, want %v %s", got, op, tt.want, tt.op)
			}
		})
	}
}

func TestNewReplicaSetAnnotations(t *testing.T) {
	log := klog.Background()
	d := rolling(4, intstr.FromInt32(1), intstr.FromInt32(0))
	d.Annotations = map[string]string{"team": "web", lastAppliedAnnotation: "{}", RevisionAnnotation: "7"}

	created := rs("new", 0, 0)
	if !setNewReplicaSetAnnotations(log, d, created, "3", false) {
		t.Fatal("no change reported")
	}
	want := map[string]string{"team": "web", RevisionAnnotation: "3", DesiredReplicasAnnotation: "4", MaxReplicasAnnotation: "5"}
	if fmt.Sprint(created.Annotations) != fmt.Sprint(want) {
		t.Errorf("created: %v, want %v", created.Annotations, want)
	}

	// Rolled back to: the revision moves on, the old one is remembered.
	back := rs("back", 0, 0, RevisionAnnotation, "1", RevisionHistoryAnnotation, "0")
	setNewReplicaSetAnnotations(log, d, back, "4", true)
	if back.Annotations[RevisionAnnotation] != "4" || back.Annotations[RevisionHistoryAnnotation] != "0,1" {
		t.Errorf("rolled back: %v", back.Annotations)
	}
	if _, ok := back.Annotations[DesiredReplicasAnnotation]; ok {
		t.Errorf("an existing replica set got replica annotations: %v", back.Annotations)
	}
	// Never lowered.
	if setNewReplicaSetAnnotations(log, d, back, "2", true) || back.Annotations[RevisionAnnotation] != "4" {
		t.Errorf("revision lowered: %v", back.Annotations)
	}
}

func TestActiveOrLatest(t *testing.T) {
	tests := []struct {
		name string
		new  *appsv1.ReplicaSet
		olds []*appsv1.ReplicaSet
		want string
	}{
		{"only the new one is active", rs("new", 3, 2), []*appsv1.ReplicaSet{rs("a", 0, 0)}, "new"},
		{"only an old one is active", rs("new", 0, 2), []*appsv1.ReplicaSet{rs("a", 2, 0), rs("b", 0, 1)}, "a"},
		{"none active: the new one", rs("new", 0, 2), []*appsv1.ReplicaSet{rs("a", 0, 0)}, "new"},
		{"none active, no new: the newest old", nil, []*appsv1.ReplicaSet{rs("a", 0, 0), rs("b", 0, 1)}, "b"},
		{"two active: none", rs("new", 1, 2), []*appsv1.ReplicaSet{rs("a", 1, 0)}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ""
			if r := activeOrLatest(tt.new, tt.olds); r != nil {
				got = r.Name
			}
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestConditionsKeepTransitionTime(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var s appsv1.DeploymentStatus
	setCondition(&s, newCondition(appsv1.DeploymentProgressing, corev1.ConditionTrue, ReasonNewReplicaSetCreated, "a", t0))
	setCondition(&s, newCondition(appsv1.DeploymentProgressing, corev1.ConditionTrue, ReasonReplicaSetUpdated, "b", t0.Add(time.Minute)))
	c := getCondition(s, appsv1.DeploymentProgressing)
	if c.Reason != ReasonReplicaSetUpdated || !c.LastTransitionTime.Time.Equal(t0) || !c.LastUpdateTime.Time.Equal(t0.Add(time.Minute)) {
		t.Errorf("same status, new reason: %+v", c)
	}
	setCondition(&s, newCondition(appsv1.DeploymentProgressing, corev1.ConditionFalse, ReasonProgressDeadlineExceeded, "c", t0.Add(2*time.Minute)))
	if c := getCondition(s, appsv1.DeploymentProgressing); !c.LastTransitionTime.Time.Equal(t0.Add(2 * time.Minute)) {
		t.Errorf("status change keeps the old transition time: %+v", c)
	}
	if len(s.Conditions) != 1 {
		t.Errorf("conditions %v", s.Conditions)
	}
}

func TestCleanupOrder(t *testing.T) {
	rss := []*appsv1.ReplicaSet{rs("c", 0, 0, RevisionAnnotation, "3"), rs("a", 0, 5, RevisionAnnotation, "1"), rs("b", 0, 1, RevisionAnnotation, "2")}
	slices.SortFunc(rss, byRevision(klog.Background()))
	var got []string
	for _, r := range rss {
		got = append(got, r.Name)
	}
	if !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Errorf("order %v", got)
	}
}

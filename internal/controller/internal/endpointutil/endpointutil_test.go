package endpointutil

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

func TestFindPort(t *testing.T) {
	always := corev1.ContainerRestartPolicyAlways
	pod := &corev1.Pod{Spec: corev1.PodSpec{
		Containers: []corev1.Container{{Ports: []corev1.ContainerPort{
			{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP},
			{Name: "dns", ContainerPort: 5353, Protocol: corev1.ProtocolUDP},
		}}},
		InitContainers: []corev1.Container{
			{RestartPolicy: &always, Ports: []corev1.ContainerPort{{Name: "metrics", ContainerPort: 9100, Protocol: corev1.ProtocolTCP}}},
			{Ports: []corev1.ContainerPort{{Name: "setup", ContainerPort: 7000, Protocol: corev1.ProtocolTCP}}},
		},
	}}
	tests := []struct {
		target intstr.IntOrString
		proto  corev1.Protocol
		want   int
		ok     bool
	}{
		{intstr.FromInt32(80), corev1.ProtocolTCP, 80, true},
		{intstr.FromString("http"), corev1.ProtocolTCP, 8080, true},
		{intstr.FromString("http"), corev1.ProtocolUDP, 0, false},
		{intstr.FromString("dns"), corev1.ProtocolUDP, 5353, true},
		{intstr.FromString("metrics"), corev1.ProtocolTCP, 9100, true}, // sidecar
		{intstr.FromString("setup"), corev1.ProtocolTCP, 0, false},     // plain init container
		{intstr.FromString("nope"), corev1.ProtocolTCP, 0, false},
	}
	for _, tt := range tests {
		got, err := FindPort(pod, &corev1.ServicePort{TargetPort: tt.target, Protocol: tt.proto})
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("FindPort(%s/%s) = %d, %v; want %d ok=%v", tt.target.String(), tt.proto, got, err, tt.want, tt.ok)
		}
	}
}

func readyPod(name string, labels map[string]string, ready bool, ts time.Time) *corev1.Pod {
	s := corev1.ConditionFalse
	if ready {
		s = corev1.ConditionTrue
	}
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, Labels: labels, ResourceVersion: "1"},
		Status: corev1.PodStatus{PodIP: "10.0.0.1", PodIPs: []corev1.PodIP{{IP: "10.0.0.1"}},
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: s, LastTransitionTime: metav1.NewTime(ts)}}}}
}

func TestShouldPodBeInEndpoints(t *testing.T) {
	now := metav1.Now()
	base := readyPod("a", nil, true, time.Now())
	noIP := base.DeepCopy()
	noIP.Status.PodIP, noIP.Status.PodIPs = "", nil
	failed := base.DeepCopy()
	failed.Status.Phase = corev1.PodFailed
	deleting := base.DeepCopy()
	deleting.DeletionTimestamp = &now
	tests := []struct {
		pod                *corev1.Pod
		includeTerminating bool
		want               bool
	}{{base, false, true}, {noIP, true, false}, {failed, true, false}, {deleting, false, false}, {deleting, true, true}}
	for i, tt := range tests {
		if got := ShouldPodBeInEndpoints(tt.pod, tt.includeTerminating); got != tt.want {
			t.Errorf("%d: got %v want %v", i, got, tt.want)
		}
	}
}

func TestServicesToUpdateOnPodChange(t *testing.T) {
	store := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	for name, sel := range map[string]map[string]string{"web": {"app": "web"}, "v2": {"app": "web", "v": "2"}, "db": {"app": "db"}, "manual": nil} {
		_ = store.Add(&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name}, Spec: corev1.ServiceSpec{Selector: sel}})
	}
	lister := corelisters.NewServiceLister(store)
	ts := time.Now()
	old := readyPod("p", map[string]string{"app": "web", "v": "2"}, true, ts)

	// A resync (same resourceVersion) is no change.
	if got := ServicesToUpdateOnPodChange(lister, old, old.DeepCopy()); len(got) != 0 {
		t.Errorf("resync: %v", got)
	}
	// Annotation only: nothing.
	cur := old.DeepCopy()
	cur.ResourceVersion, cur.Annotations = "2", map[string]string{"x": "y"}
	if got := ServicesToUpdateOnPodChange(lister, old, cur); len(got) != 0 {
		t.Errorf("annotation: %v", got)
	}
	// Readiness: every service it is in.
	cur = readyPod("p", old.Labels, false, ts)
	cur.ResourceVersion = "2"
	if got := ServicesToUpdateOnPodChange(lister, old, cur); !got.Equal(setOf("default/web", "default/v2")) {
		t.Errorf("readiness: %v", sortedList(got))
	}
	// Labels only: the services it left or joined.
	cur = old.DeepCopy()
	cur.ResourceVersion, cur.Labels = "2", map[string]string{"app": "web"}
	if got := ServicesToUpdateOnPodChange(lister, old, cur); !got.Equal(setOf("default/v2")) {
		t.Errorf("labels: %v", sortedList(got))
	}
}

func TestTriggerTimeTracker(t *testing.T) {
	tr := NewTriggerTimeTracker()
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "s", CreationTimestamp: metav1.NewTime(t0)}}
	a := readyPod("a", nil, true, t0.Add(time.Second))
	b := readyPod("b", nil, true, t0.Add(2*time.Second))
	if got := tr.Compute(svc, []*corev1.Pod{a, b}); !got.Equal(t0) {
		t.Errorf("first sync: %v, want the service's creation %v", got, t0)
	}
	if got := tr.Compute(svc, []*corev1.Pod{a, b}); !got.IsZero() {
		t.Errorf("nothing changed: %v, want zero", got)
	}
	b2 := readyPod("b", nil, false, t0.Add(5*time.Second))
	if got := tr.Compute(svc, []*corev1.Pod{a, b2}); !got.Equal(t0.Add(5 * time.Second)) {
		t.Errorf("b changed: %v", got)
	}
	annotations := map[string]string{}
	SetTriggerTime(annotations, t0)
	if annotations[corev1.EndpointsLastChangeTriggerTime] != "2024-01-01T00:00:00Z" {
		t.Errorf("annotation %v", annotations)
	}
	SetTriggerTime(annotations, time.Time{})
	if len(annotations) != 0 {
		t.Errorf("zero time must remove the annotation: %v", annotations)
	}
}

func slice(uid, rv string) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: uid, UID: typesUID(uid), ResourceVersion: rv,
		Labels: map[string]string{discoveryv1.LabelServiceName: "svc"}}}
}

func TestSliceTracker(t *testing.T) {
	tr := NewSliceTracker()
	if !tr.ShouldSync(slice("a", "5")) || tr.Stale("default", "svc", nil) {
		t.Fatal("an untracked slice is someone else's; nothing tracked is never stale")
	}
	tr.Update(slice("a", "10"))
	switch {
	case !tr.Stale("default", "svc", nil):
		t.Error("a slice we wrote missing from the cache: stale")
	case !tr.Stale("default", "svc", []*discoveryv1.EndpointSlice{slice("a", "9")}):
		t.Error("an older copy in the cache: stale")
	case tr.Stale("default", "svc", []*discoveryv1.EndpointSlice{slice("a", "10")}):
		t.Error("our own write in the cache: current")
	case tr.ShouldSync(slice("a", "10")):
		t.Error("our own write needs no sync")
	case !tr.ShouldSync(slice("a", "11")):
		t.Error("a newer write by someone else needs a sync")
	}
	tr.ExpectDeletion(slice("a", "10"))
	if !tr.Stale("default", "svc", []*discoveryv1.EndpointSlice{slice("a", "10")}) {
		t.Error("a slice we deleted still cached: stale")
	}
	if !tr.HandleDeletion(slice("a", "10")) {
		t.Error("the deletion was expected")
	}
	tr.Update(slice("b", "3"))
	if tr.HandleDeletion(slice("b", "3")) {
		t.Error("someone else deleted b: unexpected")
	}
}

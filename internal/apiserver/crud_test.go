package apiserver

import (
	"context"
	"fmt"
	"strconv"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

func TestCreateGetUpdateConflictDelete(t *testing.T) {
	ts := startServer(t)
	ctx := context.Background()
	cms := ts.client.CoreV1().ConfigMaps("default")
	cm, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{GenerateName: "cm-", Labels: map[string]string{"app": "a"}},
		Data: map[string]string{"k": "v"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(cm.Name) != len("cm-")+5 || cm.UID == "" || cm.CreationTimestamp.IsZero() || cm.ResourceVersion == "" {
		t.Fatalf("server-set metadata missing: %+v", cm.ObjectMeta)
	}
	stale := cm.DeepCopy()
	cm.Data["k"] = "v2"
	updated, err := cms.Update(ctx, cm, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if updated.ResourceVersion == cm.ResourceVersion {
		t.Fatal("update kept the resourceVersion")
	}
	stale.Data["k"] = "lost update"
	if _, err := cms.Update(ctx, stale, metav1.UpdateOptions{}); !apierrors.IsConflict(err) {
		t.Fatalf("update with stale resourceVersion: got %v, want 409 Conflict", err)
	}
	if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: updated.Name}}, metav1.CreateOptions{}); !apierrors.IsAlreadyExists(err) {
		t.Fatalf("second create: got %v, want AlreadyExists", err)
	}
	if _, err := ts.client.CoreV1().ConfigMaps("nope").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x"}}, metav1.CreateOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("create in a missing namespace: got %v, want NotFound", err)
	}
	list, err := cms.List(ctx, metav1.ListOptions{LabelSelector: "app=a"})
	if err != nil || len(list.Items) != 1 {
		t.Fatalf("list by label: %v items, err %v", len(list.Items), err)
	}
	if _, err := cms.List(ctx, metav1.ListOptions{FieldSelector: "spec.nothing=x"}); !apierrors.IsBadRequest(err) {
		t.Fatalf("unsupported field selector: got %v, want 400", err)
	}
	list, err = cms.List(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + cm.Name})
	if err != nil || len(list.Items) != 1 {
		t.Fatalf("list by name: %v, %v", list, err)
	}
	// Dry run: validated, answered, not stored.
	if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "dry"}}, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
		t.Fatal(err)
	}
	if _, err := cms.Get(ctx, "dry", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("dry-run create was stored: %v", err)
	}
	if err := cms.Delete(ctx, cm.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: ptr.To(types.UID("other"))}}); !apierrors.IsConflict(err) {
		t.Fatalf("delete with wrong uid precondition: %v", err)
	}
	if err := cms.Delete(ctx, cm.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cms.Get(ctx, cm.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("get after delete: %v", err)
	}
}

func TestPaging(t *testing.T) {
	ts := startServer(t)
	ctx := context.Background()
	for i := 0; i < 25; i++ {
		if _, err := ts.client.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm%02d", i)}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	var names []string
	opts := metav1.ListOptions{Limit: 10}
	for {
		l, err := ts.client.CoreV1().ConfigMaps("default").List(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range l.Items {
			names = append(names, c.Name)
		}
		if l.Continue == "" {
			break
		}
		opts.Continue = l.Continue
	}
	if len(names) != 25 || names[0] != "cm00" || names[24] != "cm24" {
		t.Fatalf("paged list: %v", names)
	}
}

func TestFinalizersAndGracefulPodDeletion(t *testing.T) {
	ts := startServer(t)
	ctx := context.Background()
	cms := ts.client.CoreV1().ConfigMaps("default")
	cm, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "held", Finalizers: []string{"example.com/hold"}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := cms.Delete(ctx, cm.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	cm, err = cms.Get(ctx, cm.Name, metav1.GetOptions{})
	if err != nil || cm.DeletionTimestamp == nil {
		t.Fatalf("finalized object should remain, marked: %v %v", cm, err)
	}
	cm.Finalizers = nil
	if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cms.Get(ctx, cm.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("removing the last finalizer should delete: %v", err)
	}

	pods := ts.client.CoreV1().Pods("default")
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: corev1.PodSpec{NodeName: "n1",
		Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}
	if _, err := pods.Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := pods.Delete(ctx, "p", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := pods.Get(ctx, "p", metav1.GetOptions{})
	if err != nil || got.DeletionTimestamp == nil || got.DeletionGracePeriodSeconds == nil || *got.DeletionGracePeriodSeconds != 30 {
		t.Fatalf("a pod on a node is deleted gracefully (30s): %+v %v", got.ObjectMeta, err)
	}
	if err := pods.Delete(ctx, "p", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}); err != nil {
		t.Fatal(err)
	}
	if _, err := pods.Get(ctx, "p", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("grace period 0 deletes at once: %v", err)
	}
	// An unscheduled pod has nothing to stop: gone at once.
	pod.Spec.NodeName = ""
	if _, err := pods.Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := pods.Delete(ctx, "p", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := pods.Get(ctx, "p", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("unscheduled pod deleted at once: %v", err)
	}
}

func TestStatusSplitScaleAndBinding(t *testing.T) {
	ts := startServer(t)
	ctx := context.Background()
	deps := ts.client.AppsV1().Deployments("default")
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "d"},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](2), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "d"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "d"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}},
		Status: appsv1.DeploymentStatus{Replicas: 99},
	}
	d, err := deps.Create(ctx, d, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Status.Replicas != 0 || d.Generation != 1 {
		t.Fatalf("create must drop status and start at generation 1: %+v gen %d", d.Status, d.Generation)
	}
	if d.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType || *d.Spec.RevisionHistoryLimit != 10 {
		t.Fatalf("defaults not applied: %+v", d.Spec)
	}
	d.Status.Replicas = 2
	d, err = deps.UpdateStatus(ctx, d, metav1.UpdateOptions{})
	if err != nil || d.Status.Replicas != 2 || d.Generation != 1 {
		t.Fatalf("status update: %+v gen %d err %v", d.Status, d.Generation, err)
	}
	d.Spec.Replicas = ptr.To[int32](3)
	d.Status.Replicas = 0
	d, err = deps.Update(ctx, d, metav1.UpdateOptions{})
	if err != nil || d.Status.Replicas != 2 || d.Generation != 2 {
		t.Fatalf("spec update must keep status and bump generation: %+v gen %d err %v", d.Status, d.Generation, err)
	}
	sc, err := deps.GetScale(ctx, "d", metav1.GetOptions{})
	if err != nil || sc.Spec.Replicas != 3 || sc.Status.Selector != "app=d" {
		t.Fatalf("scale: %+v %v", sc, err)
	}
	sc.Spec.Replicas = 5
	if _, err := deps.UpdateScale(ctx, "d", sc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if d, _ = deps.Get(ctx, "d", metav1.GetOptions{}); *d.Spec.Replicas != 5 {
		t.Fatalf("scale did not set replicas: %d", *d.Spec.Replicas)
	}
	if _, err := deps.Patch(ctx, "d", types.MergePatchType, []byte(`{"spec":{"replicas":1}}`), metav1.PatchOptions{}, "scale"); err != nil {
		t.Fatal(err)
	}

	pods := ts.client.CoreV1().Pods("default")
	if _, err := pods.Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	bind := &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Target: corev1.ObjectReference{Kind: "Node", Name: "n1"}}
	if err := pods.Bind(ctx, bind, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := pods.Bind(ctx, bind, metav1.CreateOptions{}); !apierrors.IsConflict(err) {
		t.Fatalf("second binding: got %v, want Conflict", err)
	}
	p, err := pods.Get(ctx, "p", metav1.GetOptions{})
	if err != nil || p.Spec.NodeName != "n1" || p.Status.Phase != corev1.PodPending {
		t.Fatalf("bound pod: %+v %v", p, err)
	}
	if got := strconv.Itoa(len(p.Status.Conditions)); got != "1" {
		t.Fatalf("PodScheduled condition missing: %+v", p.Status.Conditions)
	}
}

// Events of the two groups are one resource seen two ways.
func TestEventsSharedAcrossGroups(t *testing.T) {
	ts := startServer(t)
	ctx := context.Background()
	now := metav1.NowMicro()
	_, err := ts.client.EventsV1().Events("default").Create(ctx, &eventsv1.Event{
		ObjectMeta: metav1.ObjectMeta{Name: "e1"}, EventTime: now, Reason: "Scheduled", Note: "placed on n1", Type: "Normal",
		Action: "Binding", ReportingController: "kite-scheduler", ReportingInstance: "kite-scheduler-1",
		Regarding: corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: "p"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	core, err := ts.client.CoreV1().Events("default").Get(ctx, "e1", metav1.GetOptions{})
	if err != nil || core.Message != "placed on n1" || core.InvolvedObject.Name != "p" || core.ReportingController != "kite-scheduler" {
		t.Fatalf("core view of an events.k8s.io event: %+v %v", core, err)
	}
	list, err := ts.client.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=p,reason=Scheduled"})
	if err != nil || len(list.Items) != 1 {
		t.Fatalf("field-selected core list: %v %v", list, err)
	}
	if _, err := ts.client.CoreV1().Events("default").Create(ctx, &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "e2"},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: "q"}, Reason: "Pulled", Message: "pulled", Type: "Normal",
		Source: corev1.EventSource{Component: "kite-agent"}, Count: 3, FirstTimestamp: metav1.Now(), LastTimestamp: metav1.Now()}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ev, err := ts.client.EventsV1().Events("default").Get(ctx, "e2", metav1.GetOptions{})
	if err != nil || ev.Note != "pulled" || ev.DeprecatedCount != 3 || ev.DeprecatedSource.Component != "kite-agent" || ev.Regarding.Name != "q" {
		t.Fatalf("events.k8s.io view of a core event: %+v %v", ev, err)
	}
}

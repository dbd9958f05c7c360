package garbagecollector

import (
	"context"
	"fmt"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"kite/internal/controller/internal/ctrltest"
	"kite/internal/testutil/apitest"
)

const wait = 30 * time.Second

// holdFinalizer keeps a pod around, being deleted, until the test lets go.
const holdFinalizer = "kite.test/hold"

func startGC(t *testing.T, beforeStart func(kubernetes.Interface)) kubernetes.Interface {
	t.Helper()
	srv := apitest.Start(t, apitest.Options{})
	if beforeStart != nil {
		beforeStart(srv.Client)
	}
	md := metadataClient(t, srv)
	gc, err := New(Config{Client: srv.Client, Metadata: md, ResyncPeriod: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctrltest.Run(t, gc.Run)
	return srv.Client
}

func ownerRef(apiVersion, kind, name string, uid types.UID) metav1.OwnerReference {
	yes := true
	return metav1.OwnerReference{APIVersion: apiVersion, Kind: kind, Name: name, UID: uid, Controller: &yes, BlockOwnerDeletion: &yes}
}

// replicaSet makes a ReplicaSet (owned by owner, if given) and n pods it
// owns, as the ReplicaSet controller would.
func replicaSet(t *testing.T, client kubernetes.Interface, name string, n int, owner *metav1.OwnerReference, podFinalizer string) *appsv1.ReplicaSet {
	t.Helper()
	one := int32(n)
	labels := map[string]string{"run": name}
	rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: labels},
		Spec: appsv1.ReplicaSetSpec{Replicas: &one, Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "kuard"}}}}}}
	if owner != nil {
		rs.OwnerReferences = []metav1.OwnerReference{*owner}
	}
	rs, err := client.AppsV1().ReplicaSets("default").Create(context.Background(), rs, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		var fins []string
		if i == 0 && podFinalizer != "" {
			fins = []string{podFinalizer}
		}
		ctrltest.Pod(t, client, ctrltest.PodSpec{Name: fmt.Sprintf("%s-%d", name, i), Labels: labels, Finalizers: fins,
			OwnerReferences: []metav1.OwnerReference{ownerRef("apps/v1", "ReplicaSet", rs.Name, rs.UID)}})
	}
	return rs
}

func podNames(t *testing.T, client kubernetes.Interface, label string) map[string]*corev1.Pod {
	t.Helper()
	l, err := client.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{LabelSelector: "run=" + label})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*corev1.Pod{}
	for i := range l.Items {
		out[l.Items[i].Name] = &l.Items[i]
	}
	return out
}

func rsGone(client kubernetes.Interface, name string) bool {
	_, err := client.AppsV1().ReplicaSets("default").Get(context.Background(), name, metav1.GetOptions{})
	return apierrors.IsNotFound(err)
}

func deleteRS(t *testing.T, client kubernetes.Interface, name string, policy metav1.DeletionPropagation) {
	t.Helper()
	if err := client.AppsV1().ReplicaSets("default").Delete(context.Background(), name, metav1.DeleteOptions{PropagationPolicy: &policy}); err != nil {
		t.Fatal(err)
	}
}

// TestBackground: deleting a Deployment (kubectl's default, background)
// removes its ReplicaSet and, through it, the pods; a pod with another,
// living owner stays, without the reference to the dead one.
func TestBackground(t *testing.T) {
	client := startGC(t, nil)
	ctx := context.Background()
	labels := map[string]string{"run": "kuard"}
	replicas := int32(3)
	dep, err := client.AppsV1().Deployments("default").Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "kuard", Namespace: "default"},
		Spec: appsv1.DeploymentSpec{Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "kuard"}}}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	depRef := ownerRef("apps/v1", "Deployment", dep.Name, dep.UID)
	rs := replicaSet(t, client, "kuard-7d4b9", 3, &depRef, "")
	cm, err := client.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "keeper", Namespace: "default"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	shared := ctrltest.Pod(t, client, ctrltest.PodSpec{Name: "shared", Labels: map[string]string{"run": "kuard-7d4b9"},
		OwnerReferences: []metav1.OwnerReference{ownerRef("apps/v1", "ReplicaSet", rs.Name, rs.UID),
			{APIVersion: "v1", Kind: "ConfigMap", Name: cm.Name, UID: cm.UID}}})

	if err := client.AppsV1().Deployments("default").Delete(ctx, "kuard", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	apitest.WaitFor(t, wait, "replica set and its pods collected", func() bool {
		pods := podNames(t, client, "kuard-7d4b9")
		return rsGone(client, rs.Name) && len(pods) == 1 && pods["shared"] != nil
	})
	// The reference to the collected replica set is removed from the pod
	// that has another owner (after the replica set is gone: wait for it).
	var p *corev1.Pod
	apitest.WaitFor(t, wait, "the shared pod owned by the config map only", func() bool {
		var err error
		p, err = client.CoreV1().Pods("default").Get(ctx, "shared", metav1.GetOptions{})
		return err == nil && len(p.OwnerReferences) == 1
	})
	if len(p.OwnerReferences) != 1 || p.OwnerReferences[0].UID != cm.UID || p.UID != shared.UID {
		t.Errorf("shared pod owners %+v, want only the config map", p.OwnerReferences)
	}
}

// TestForeground: the owner stays, marked for deletion, until the
// dependents that block it are gone.
func TestForeground(t *testing.T) {
	client := startGC(t, nil)
	ctx := context.Background()
	rs := replicaSet(t, client, "fg", 3, nil, holdFinalizer)
	// An owner is held only for the dependents the collector has seen
	// (as upstream's graph); make sure it has seen these (see TestOrphan).
	seenBarrier(t, client)
	deleteRS(t, client, rs.Name, metav1.DeletePropagationForeground)

	apitest.WaitFor(t, wait, "the dependents deleted, the held one terminating", func() bool {
		pods := podNames(t, client, "fg")
		return len(pods) == 1 && pods["fg-0"] != nil && pods["fg-0"].DeletionTimestamp != nil
	})
	got, err := client.AppsV1().ReplicaSets("default").Get(ctx, rs.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the owner must wait for its blocking dependent: %v", err)
	}
	if got.DeletionTimestamp == nil || len(got.Finalizers) != 1 || got.Finalizers[0] != metav1.FinalizerDeleteDependents {
		t.Fatalf("owner while waiting: deletionTimestamp %v finalizers %v", got.DeletionTimestamp, got.Finalizers)
	}

	// Let the held pod go; then the owner goes.
	p, _ := client.CoreV1().Pods("default").Get(ctx, "fg-0", metav1.GetOptions{})
	p.Finalizers = nil
	if _, err := client.CoreV1().Pods("default").Update(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	apitest.WaitFor(t, wait, "owner deleted after its dependents", func() bool {
		return rsGone(client, rs.Name) && len(podNames(t, client, "fg")) == 0
	})
}

// seenBarrier returns once the collector has seen every pod created
// before it was called: it collects a barrier pod created after them
// (its pod events arrive in order).
func seenBarrier(t *testing.T, client kubernetes.Interface) {
	t.Helper()
	barrier := replicaSet(t, client, "barrier", 1, nil, "")
	deleteRS(t, client, barrier.Name, metav1.DeletePropagationBackground)
	apitest.WaitFor(t, wait, "barrier collected", func() bool { return len(podNames(t, client, "barrier")) == 0 })
}

// TestOrphan: the owner goes, the dependents stay without references.
func TestOrphan(t *testing.T) {
	client := startGC(t, nil)
	rs := replicaSet(t, client, "orphan", 3, nil, "")
	// The collector orphans the dependents it has seen: make sure it has
	// seen these.
	seenBarrier(t, client)
	deleteRS(t, client, rs.Name, metav1.DeletePropagationOrphan)
	apitest.WaitFor(t, wait, "owner deleted", func() bool { return rsGone(client, rs.Name) })
	apitest.WaitFor(t, wait, "dependents orphaned", func() bool {
		pods := podNames(t, client, "orphan")
		for _, p := range pods {
			if len(p.OwnerReferences) != 0 {
				return false
			}
		}
		return len(pods) == 3
	})
}

// TestDanglingAtStart: objects whose owner vanished while the collector was
// not running are collected when it starts.
func TestDanglingAtStart(t *testing.T) {
	client := startGC(t, func(client kubernetes.Interface) {
		ctrltest.Pod(t, client, ctrltest.PodSpec{Name: "dangling", Labels: map[string]string{"run": "dangling"},
			OwnerReferences: []metav1.OwnerReference{ownerRef("apps/v1", "ReplicaSet", "gone", "0d9e6a4c-0000-4000-8000-000000000000")}})
		ctrltest.Pod(t, client, ctrltest.PodSpec{Name: "unknown-kind", Labels: map[string]string{"run": "dangling"},
			OwnerReferences: []metav1.OwnerReference{ownerRef("example.com/v1", "Widget", "w", "0d9e6a4c-0000-4000-8000-000000000001")}})
	})
	apitest.WaitFor(t, wait, "dangling pod collected", func() bool {
		pods := podNames(t, client, "dangling")
		return pods["dangling"] == nil
	})
	if podNames(t, client, "dangling")["unknown-kind"] == nil {
		t.Error("a pod owned by a kind the API does not serve must be kept")
	}
}

package replicaset

import (
	"context"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2/ktesting"
	"k8s.io/utils/ptr"

	"kite/internal/testutil"
	"kite/internal/testutil/apitest"
)

func TestMain(m *testing.M) { testutil.MainInNetns(m) }

// wait is how long a test waits for the controller to converge.
const wait = 30 * time.Second

// env is a real API server with the ReplicaSet controller running against
// it, and a namespace of the test's own.
type env struct {
	ctx    context.Context
	client kubernetes.Interface
	ns     string
}

func start(t *testing.T) *env {
	t.Helper()
	srv := apitest.Start(t, apitest.Options{})
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	factory := informers.NewSharedInformerFactory(srv.Client, 0)
	c, err := New(Config{Client: srv.Client, Informers: factory, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	factory.Start(ctx.Done())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		factory.Shutdown()
	})
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "rs-test"}}
	if _, err := srv.Client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return &env{ctx: ctx, client: srv.Client, ns: ns.Name}
}

// newRS is a ReplicaSet of n kuard pods selected by app=name.
func newRS(name string, n int32) *appsv1.ReplicaSet {
	labels := map[string]string{"app": name}
	return &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: ptr.To(n),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name, "tier": "web"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "kuard", Image: "gcr.io/kuar-demo/kuard-amd64:1",
				}}},
			},
		},
	}
}

func (e *env) createRS(t *testing.T, rs *appsv1.ReplicaSet) *appsv1.ReplicaSet {
	t.Helper()
	out, err := e.client.AppsV1().ReplicaSets(e.ns).Create(e.ctx, rs, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (e *env) getRS(t *testing.T, name string) *appsv1.ReplicaSet {
	t.Helper()
	rs, err := e.client.AppsV1().ReplicaSets(e.ns).Get(e.ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// pods are the namespace's pods not being deleted.
func (e *env) pods(t *testing.T) []corev1.Pod {
	t.Helper()
	list, err := e.client.CoreV1().Pods(e.ns).List(e.ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []corev1.Pod
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	return out
}

// podsOf are the live pods the ReplicaSet controls.
func (e *env) podsOf(t *testing.T, rs *appsv1.ReplicaSet) []corev1.Pod {
	t.Helper()
	var out []corev1.Pod
	for _, p := range e.pods(t) {
		if ref := metav1.GetControllerOf(&p); ref != nil && ref.UID == rs.UID {
			out = append(out, p)
		}
	}
	return out
}

// events are the reasons and messages of events about the named object.
func (e *env) events(t *testing.T, name string) map[string][]string {
	t.Helper()
	list, err := e.client.CoreV1().Events(e.ns).List(e.ctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("involvedObject.name", name).String()})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, ev := range list.Items {
		out[ev.Reason] = append(out[ev.Reason], ev.Message)
	}
	return out
}

// reapTerminating plays the kubelet's last step: pods whose graceful
// deletion has begun are removed for good.
func (e *env) reapTerminating(t *testing.T) {
	t.Helper()
	list, err := e.client.CoreV1().Pods(e.ns).List(e.ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range list.Items {
		if p.DeletionTimestamp != nil {
			err := e.client.CoreV1().Pods(e.ns).Delete(e.ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})
			if err != nil && !apierrors.IsNotFound(err) {
				t.Fatal(err)
			}
		}
	}
}

// scale sets the ReplicaSet's spec.replicas through the scale subresource,
// as kubectl scale does.
func (e *env) scale(t *testing.T, name string, n int32) {
	t.Helper()
	sc, err := e.client.AppsV1().ReplicaSets(e.ns).GetScale(e.ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sc.Spec.Replicas = n
	sc.ResourceVersion = "" // unconditional, like kubectl scale
	if _, err := e.client.AppsV1().ReplicaSets(e.ns).UpdateScale(e.ctx, name, sc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

package apiserver

import (
	"context"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
)

// Protobuf clients (what controllers use) create, list and watch.
func TestProtobufClient(t *testing.T) {
	ts := startServer(t)
	cfg := *ts.cfg
	cfg.ContentType = runtime.ContentTypeProtobuf
	cfg.AcceptContentTypes = runtime.ContentTypeProtobuf
	client, err := kubernetes.NewForConfig(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	pods := client.CoreV1().Pods("default")
	w, err := pods.Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}
	if _, err := pods.Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	list, err := pods.List(ctx, metav1.ListOptions{})
	if err != nil || len(list.Items) != 1 || list.Items[0].Spec.Containers[0].Image != "busybox" {
		t.Fatalf("protobuf list: %+v %v", list, err)
	}
	select {
	case e := <-w.ResultChan():
		if e.Type != watch.Added || e.Object.(*corev1.Pod).Name != "p" {
			t.Fatalf("protobuf watch: %s %v", e.Type, e.Object)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no protobuf watch event")
	}
}

// Discovery through client-go (aggregated discovery) shows the served
// resources with short names and subresources.
func TestDiscovery(t *testing.T) {
	ts := startServer(t)
	_, lists, err := ts.client.Discovery().ServerGroupsAndResources()
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, l := range lists {
		for _, r := range l.APIResources {
			found[l.GroupVersion+"/"+r.Name] = true
			if r.Name == "pods" && !slices.Contains(r.ShortNames, "po") {
				t.Fatalf("pods short names: %v", r.ShortNames)
			}
		}
	}
	for _, want := range []string{"v1/pods", "v1/pods/status", "v1/pods/binding", "v1/services", "apps/v1/deployments/scale",
		"discovery.k8s.io/v1/endpointslices", "coordination.k8s.io/v1/leases", "events.k8s.io/v1/events", "v1/namespaces/finalize"} {
		if !found[want] {
			t.Errorf("discovery lacks %s", want)
		}
	}
}

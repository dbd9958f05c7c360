package garbagecollector

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/metadata"

	"kite/internal/testutil/apitest"
)

// TestAPIServerPartialObjectMetadata asserts what the collector's metadata
// informers rely on: the server answers get, list and watch with
// as=PartialObjectMetadata(List) carrying the objects' metadata.
func TestAPIServerPartialObjectMetadata(t *testing.T) {
	srv := apitest.Start(t, apitest.Options{})
	ctx := context.Background()
	if _, err := srv.Client.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if !partialMetadataWorks(t, srv) {
		t.Fatal("metadata client: get/list/watch of configmap default/x returned empty metadata")
	}
}

// partialMetadataWorks reports whether the server's PartialObjectMetadata
// answers carry metadata (get, list and watch of configmap default/x).
func partialMetadataWorks(t *testing.T, srv *apitest.Server) bool {
	t.Helper()
	ctx := context.Background()
	md, err := metadata.NewForConfig(srv.Config)
	if err != nil {
		t.Fatal(err)
	}
	r := md.Resource(corev1.SchemeGroupVersion.WithResource("configmaps")).Namespace("default")
	g, err := r.Get(ctx, "x", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	l, err := r.List(ctx, metav1.ListOptions{FieldSelector: "metadata.name=x"})
	if err != nil {
		t.Fatal(err)
	}
	w, err := r.Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=x"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	ev := <-w.ResultChan()
	wm, _ := ev.Object.(*metav1.PartialObjectMetadata)
	return g.Name == "x" && g.UID != "" && len(l.Items) == 1 && l.Items[0].Name == "x" && wm != nil && wm.Name == "x"
}

// metadataClient is the metadata client the collector tests use.
func metadataClient(t *testing.T, srv *apitest.Server) metadata.Interface {
	t.Helper()
	md, err := metadata.NewForConfig(srv.Config)
	if err != nil {
		t.Fatal(err)
	}
	return md
}

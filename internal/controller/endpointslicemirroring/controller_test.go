package endpointslicemirroring

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"kite/internal/controller/internal/ctrltest"
	"kite/internal/testutil/apitest"
)

const wait = 20 * time.Second

func mirrored(t *testing.T, client kubernetes.Interface, name string) []discoveryv1.EndpointSlice {
	t.Helper()
	l, err := client.DiscoveryV1().EndpointSlices("default").List(context.Background(), metav1.ListOptions{
		LabelSelector: discoveryv1.LabelServiceName + "=" + name + "," + discoveryv1.LabelManagedBy + "=" + ControllerName})
	if err != nil {
		t.Fatal(err)
	}
	return l.Items
}

// TestMirrorSelectorlessService: a Service without a selector and the
// Endpoints its user writes get a mirrored slice, kept in step; giving the
// Service a selector, or deleting the Endpoints, removes it.
func TestMirrorSelectorlessService(t *testing.T) {
	srv := apitest.Start(t, apitest.Options{})
	client := srv.Client
	c, err := New(Config{Client: client, Informers: ctrltest.Informers(t, client)})
	if err != nil {
		t.Fatal(err)
	}
	ctrltest.Run(t, c.Run)
	ctx := context.Background()

	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "default"},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "sql", Port: 5432, Protocol: corev1.ProtocolTCP}}}}
	if _, err := client.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ep := &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "default", Labels: map[string]string{"app": "db"}},
		Subsets: []corev1.EndpointSubset{{
			Addresses:         []corev1.EndpointAddress{{IP: "192.0.2.10"}, {IP: "192.0.2.11"}},
			NotReadyAddresses: []corev1.EndpointAddress{{IP: "192.0.2.12"}},
			Ports:             []corev1.EndpointPort{{Name: "sql", Port: 5432, Protocol: corev1.ProtocolTCP}},
		}}}
	ep, err = client.CoreV1().Endpoints("default").Create(ctx, ep, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var slice discoveryv1.EndpointSlice
	apitest.WaitFor(t, wait, "a mirrored slice", func() bool {
		ss := mirrored(t, client, "db")
		if len(ss) == 1 && len(ss[0].Endpoints) == 3 {
			slice = ss[0]
			return true
		}
		return false
	})
	if slice.Labels["app"] != "db" || slice.OwnerReferences[0].UID != ep.UID || *slice.Ports[0].Port != 5432 {
		t.Errorf("mirrored slice %+v", slice.ObjectMeta)
	}
	for _, e := range slice.Endpoints {
		if want := e.Addresses[0] != "192.0.2.12"; *e.Conditions.Ready != want {
			t.Errorf("%s ready=%v, want %v", e.Addresses[0], *e.Conditions.Ready, want)
		}
	}

	// The user changes the Endpoints: the slice follows, in place.
	ep.Subsets[0].Addresses = append(ep.Subsets[0].Addresses, corev1.EndpointAddress{IP: "192.0.2.13"})
	if _, err := client.CoreV1().Endpoints("default").Update(ctx, ep, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	apitest.WaitFor(t, wait, "four mirrored endpoints", func() bool {
		ss := mirrored(t, client, "db")
		return len(ss) == 1 && len(ss[0].Endpoints) == 4 && ss[0].UID == slice.UID
	})

	// The Service gets a selector: the Endpoints are no longer the user's.
	s, _ := client.CoreV1().Services("default").Get(ctx, "db", metav1.GetOptions{})
	s.Spec.Selector = map[string]string{"app": "db"}
	if _, err := client.CoreV1().Services("default").Update(ctx, s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	apitest.WaitFor(t, wait, "mirror removed", func() bool { return len(mirrored(t, client, "db")) == 0 })

	// Back to no selector, then the Endpoints go: so does the mirror.
	s, _ = client.CoreV1().Services("default").Get(ctx, "db", metav1.GetOptions{})
	s.Spec.Selector = nil
	if _, err := client.CoreV1().Services("default").Update(ctx, s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	apitest.WaitFor(t, wait, "mirror back", func() bool { return len(mirrored(t, client, "db")) == 1 })
	if err := client.CoreV1().Endpoints("default").Delete(ctx, "db", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	apitest.WaitFor(t, wait, "mirror gone with the endpoints", func() bool { return len(mirrored(t, client, "db")) == 0 })
}

// TestSkipMirrorLabel: Endpoints labelled skip-mirror are not mirrored.
func TestSkipMirrorLabel(t *testing.T) {
	srv := apitest.Start(t, apitest.Options{})
	client := srv.Client
	c, err := New(Config{Client: client, Informers: ctrltest.Informers(t, client)})
	if err != nil {
		t.Fatal(err)
	}
	ctrltest.Run(t, c.Run)
	ctx := context.Background()
	for _, name := range []string{"skipped", "mirrored"} {
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
			Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80, Protocol: corev1.ProtocolTCP}}}}
		if _, err := client.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		ep := &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
			Subsets: []corev1.EndpointSubset{{Addresses: []corev1.EndpointAddress{{IP: "192.0.2.10"}}, Ports: []corev1.EndpointPort{{Port: 80, Protocol: corev1.ProtocolTCP}}}}}
		if name == "skipped" {
			ep.Labels = map[string]string{discoveryv1.LabelSkipMirror: "true"}
		}
		if _, err := client.CoreV1().Endpoints("default").Create(ctx, ep, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	apitest.WaitFor(t, wait, "the other one mirrored", func() bool { return len(mirrored(t, client, "mirrored")) == 1 })
	if n := len(mirrored(t, client, "skipped")); n != 0 {
		t.Errorf("skip-mirror endpoints got %d slices", n)
	}
}

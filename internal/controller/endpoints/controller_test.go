package endpoints

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"kite/internal/controller/internal/ctrltest"
	"kite/internal/testutil/apitest"
)

const wait = 20 * time.Second

// start runs an API server and the controller.
func start(t *testing.T) kubernetes.Interface {
	t.Helper()
	srv := apitest.Start(t, apitest.Options{})
	c, err := New(Config{Client: srv.Client, Informers: ctrltest.Informers(t, srv.Client)})
	if err != nil {
		t.Fatal(err)
	}
	ctrltest.Run(t, c.Run)
	return srv.Client
}

func kuardService(t *testing.T, client kubernetes.Interface, mod func(*corev1.Service)) *corev1.Service {
	t.Helper()
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "kuard", Namespace: "default", Labels: map[string]string{"run": "kuard"}},
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeClusterIP,
			Selector: map[string]string{"run": "kuard"},
			Ports:    []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080), Protocol: corev1.ProtocolTCP}},
		},
	}
	if mod != nil {
		mod(s)
	}
	s, err := client.CoreV1().Services("default").Create(context.Background(), s, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// kuardPods makes n ready kuard pods spread over two nodes.
func kuardPods(t *testing.T, client kubernetes.Interface, n int) map[string]*corev1.Pod {
	t.Helper()
	pods := map[string]*corev1.Pod{}
	for i := range n {
		name := fmt.Sprintf("kuard-%d", i)
		node := fmt.Sprintf("node-%d", i%2)
		ctrltest.Pod(t, client, ctrltest.PodSpec{Name: name, Node: node, Labels: map[string]string{"run": "kuard"},
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}}})
		pods[name] = ctrltest.SetRunning(t, client, "default", name, fmt.Sprintf("10.244.%d.%d", i%2, 10+i), true)
	}
	return pods
}

func getEndpoints(client kubernetes.Interface, name string) *corev1.Endpoints {
	ep, err := client.CoreV1().Endpoints("default").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		return nil
	}
	return ep
}

func countAddrs(ep *corev1.Endpoints) (ready, notReady int) {
	for _, s := range ep.Subsets {
		ready += len(s.Addresses)
		notReady += len(s.NotReadyAddresses)
	}
	return
}

// TestKuardEndpoints is S13: ten ready pods behind Service kuard make one
// subset of ten addresses on port 8080; a pod that stops being ready moves
// to notReadyAddresses; a terminating pod leaves.
func TestKuardEndpoints(t *testing.T) {
	client := start(t)
	ctrltest.Node(t, client, "node-0", "")
	ctrltest.Node(t, client, "node-1", "")
	// Every version of the Endpoints, to look for the trigger-time
	// annotation (see below).
	w, err := client.CoreV1().Endpoints("default").Watch(context.Background(), metav1.ListOptions{FieldSelector: "metadata.name=kuard"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	kuardService(t, client, nil)
	pods := kuardPods(t, client, 10)

	var ep *corev1.Endpoints
	apitest.WaitFor(t, wait, "ten ready addresses", func() bool {
		ep = getEndpoints(client, "kuard")
		r, n := 0, 0
		if ep != nil {
			r, n = countAddrs(ep)
		}
		return r == 10 && n == 0
	})
	if len(ep.Subsets) != 1 {
		t.Fatalf("want one subset, got %d", len(ep.Subsets))
	}
	s := ep.Subsets[0]
	if len(s.Ports) != 1 || s.Ports[0] != (corev1.EndpointPort{Port: 8080, Protocol: corev1.ProtocolTCP}) {
		t.Errorf("ports = %+v, want [{port: 8080, protocol: TCP}]", s.Ports)
	}
	for _, a := range s.Addresses {
		ref := a.TargetRef
		if ref == nil || ref.Kind != "Pod" || ref.Namespace != "default" || pods[ref.Name] == nil {
			t.Fatalf("address %s: bad targetRef %+v", a.IP, ref)
		}
		p := pods[ref.Name]
		if a.IP != p.Status.PodIP || a.NodeName == nil || *a.NodeName != p.Spec.NodeName || ref.UID != p.UID || ref.ResourceVersion == "" {
			t.Errorf("address %+v (targetRef %+v) does not match pod %s (ip %s, node %s, uid %s)", a, *ref, p.Name, p.Status.PodIP, p.Spec.NodeName, p.UID)
		}
	}
	// The annotation is on the writes a change of the Service or of a
	// pod's readiness caused, and cleared on others (a pod's other
	// changes move its targetRef's resourceVersion), as upstream: so
	// some version carried it, not necessarily the last.
	annotated := ctrltest.SomeVersion(w, wait, func(e *corev1.Endpoints) bool {
		_, ok := e.Annotations[corev1.EndpointsLastChangeTriggerTime]
		return ok
	})
	if !annotated {
		t.Errorf("no version of the Endpoints carried %s", corev1.EndpointsLastChangeTriggerTime)
	}
	if ep.Labels["run"] != "kuard" {
		t.Errorf("endpoints labels %v must carry the service's labels", ep.Labels)
	}
	if _, ok := ep.Labels[corev1.IsHeadlessService]; ok {
		t.Error("a service with a cluster IP must not be labelled headless")
	}

	// A pod whose health check fails moves to notReadyAddresses.
	ctrltest.SetRunning(t, client, "default", "kuard-3", pods["kuard-3"].Status.PodIP, false)
	apitest.WaitFor(t, wait, "kuard-3 not ready", func() bool {
		ep = getEndpoints(client, "kuard")
		r, n := countAddrs(ep)
		return r == 9 && n == 1 && ep.Subsets[0].NotReadyAddresses[0].TargetRef.Name == "kuard-3"
	})

	// A terminating pod (graceful deletion: it is on a node) leaves.
	if err := client.CoreV1().Pods("default").Delete(context.Background(), "kuard-4", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	apitest.WaitFor(t, wait, "kuard-4 gone from endpoints", func() bool {
		r, n := countAddrs(getEndpoints(client, "kuard"))
		return r == 8 && n == 1
	})
}

// TestEndpointsSkipNoopUpdates: a pod change no endpoint shows (an
// annotation) does not rewrite the Endpoints.
func TestEndpointsSkipNoopUpdates(t *testing.T) {
	client := start(t)
	ctrltest.Node(t, client, "node-0", "")
	ctrltest.Node(t, client, "node-1", "")
	kuardService(t, client, nil)
	pods := kuardPods(t, client, 2)
	var ep *corev1.Endpoints
	apitest.WaitFor(t, wait, "two addresses", func() bool {
		ep = getEndpoints(client, "kuard")
		return ep != nil && len(ep.Subsets) == 1 && len(ep.Subsets[0].Addresses) == 2
	})
	w, err := client.CoreV1().Endpoints("default").Watch(context.Background(), metav1.ListOptions{
		FieldSelector: "metadata.name=kuard", ResourceVersion: ep.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	p, _ := client.CoreV1().Pods("default").Get(context.Background(), "kuard-0", metav1.GetOptions{})
	p.Annotations = map[string]string{"note": "nothing an endpoint shows"}
	if _, err := client.CoreV1().Pods("default").Update(context.Background(), p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Then a real change, which must be the only write.
	ctrltest.SetRunning(t, client, "default", "kuard-1", pods["kuard-1"].Status.PodIP, false)
	timeout := time.After(wait)
	for {
		select {
		case ev := <-w.ResultChan():
			if ev.Type != watch.Modified {
				t.Fatalf("unexpected %s event", ev.Type)
			}
			got := ev.Object.(*corev1.Endpoints)
			if r, n := countAddrs(got); r != 1 || n != 1 {
				t.Fatalf("first write after the annotation has %d ready, %d not ready; want 1 and 1 (the annotation must not cause a write)", r, n)
			}
			return
		case <-timeout:
			t.Fatal("no endpoints update for the readiness change")
		}
	}
}

func TestHeadlessAndDeletion(t *testing.T) {
	client := start(t)
	ctrltest.Node(t, client, "node-0", "")
	ctrltest.Node(t, client, "node-1", "")
	kuardService(t, client, func(s *corev1.Service) { s.Spec.ClusterIP = corev1.ClusterIPNone })
	kuardPods(t, client, 2)
	apitest.WaitFor(t, wait, "headless endpoints", func() bool {
		ep := getEndpoints(client, "kuard")
		if ep == nil {
			return false
		}
		_, headless := ep.Labels[corev1.IsHeadlessService]
		r, _ := countAddrs(ep)
		return headless && r == 2
	})
	if err := client.CoreV1().Services("default").Delete(context.Background(), "kuard", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	apitest.WaitFor(t, wait, "endpoints deleted with the service", func() bool {
		_, err := client.CoreV1().Endpoints("default").Get(context.Background(), "kuard", metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
}

// TestSelectorlessServiceLeftAlone: Endpoints of a Service without a
// selector are the user's.
func TestSelectorlessServiceLeftAlone(t *testing.T) {
	client := start(t)
	ctx := context.Background()
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "external", Namespace: "default"},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80, Protocol: corev1.ProtocolTCP}}}}
	if _, err := client.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	user := &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: "external", Namespace: "default"},
		Subsets: []corev1.EndpointSubset{{Addresses: []corev1.EndpointAddress{{IP: "192.0.2.10"}}, Ports: []corev1.EndpointPort{{Port: 80, Protocol: corev1.ProtocolTCP}}}}}
	if _, err := client.CoreV1().Endpoints("default").Create(ctx, user, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// A selector Service created afterwards gets its Endpoints: once it
	// has, the controller has seen (and skipped) the selector-less one.
	kuardService(t, client, nil)
	apitest.WaitFor(t, wait, "kuard endpoints", func() bool { return getEndpoints(client, "kuard") != nil })
	ep := getEndpoints(client, "external")
	if ep == nil || len(ep.Subsets) != 1 || ep.Subsets[0].Addresses[0].IP != "192.0.2.10" {
		t.Fatalf("user endpoints changed: %+v", ep)
	}
}

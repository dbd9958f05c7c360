package endpointslice

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"kite/internal/controller/internal/ctrltest"
	"kite/internal/testutil/apitest"
)

const wait = 30 * time.Second

func start(t testing.TB, cfg Config) kubernetes.Interface {
	t.Helper()
	srv := apitest.Start(t, apitest.Options{})
	cfg.Client, cfg.Informers = srv.Client, ctrltest.Informers(t, srv.Client)
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctrltest.Run(t, c.Run)
	ctrltest.Node(t, srv.Client, "node-0", "zone-a")
	ctrltest.Node(t, srv.Client, "node-1", "")
	return srv.Client
}

func createService(t testing.TB, client kubernetes.Interface, targetPort intstr.IntOrString, mod func(*corev1.Service)) *corev1.Service {
	t.Helper()
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "kuard", Namespace: "default"},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"run": "kuard"},
			Ports:    []corev1.ServicePort{{Port: 80, TargetPort: targetPort, Protocol: corev1.ProtocolTCP}},
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

// createPods makes ready kuard pods first..first+n-1 over two nodes, with
// container port "http" = port.
func createPods(t testing.TB, client kubernetes.Interface, first, n int, port int32) {
	t.Helper()
	for i := first; i < first+n; i++ {
		name := fmt.Sprintf("kuard-%d", i)
		var ports []corev1.ContainerPort
		if port != 0 {
			ports = []corev1.ContainerPort{{Name: "http", ContainerPort: port, Protocol: corev1.ProtocolTCP}}
		}
		ctrltest.Pod(t, client, ctrltest.PodSpec{Name: name, Node: fmt.Sprintf("node-%d", i%2), Labels: map[string]string{"run": "kuard"}, Ports: ports})
		ctrltest.SetRunning(t, client, "default", name, podIP(i), true)
	}
}

func podIP(i int) string { return fmt.Sprintf("10.244.%d.%d", i/200, i%200+2) }

func listSlices(t testing.TB, client kubernetes.Interface, service string) []discoveryv1.EndpointSlice {
	t.Helper()
	l, err := client.DiscoveryV1().EndpointSlices("default").List(context.Background(), metav1.ListOptions{
		LabelSelector: discoveryv1.LabelServiceName + "=" + service})
	if err != nil {
		t.Fatal(err)
	}
	return l.Items
}

func endpointOf(s *discoveryv1.EndpointSlice, pod string) *discoveryv1.Endpoint {
	for i := range s.Endpoints {
		if s.Endpoints[i].TargetRef != nil && s.Endpoints[i].TargetRef.Name == pod {
			return &s.Endpoints[i]
		}
	}
	return nil
}

// TestKuardEndpointSlice is S13 in slices: ten ready pods make one slice of
// ten endpoints; readiness and termination show in the conditions, and the
// slice is updated in place.
func TestKuardEndpointSlice(t *testing.T) {
	client := start(t, Config{})
	// Every version of the slices, to look for the trigger-time
	// annotation (see below).
	w, err := client.DiscoveryV1().EndpointSlices("default").Watch(context.Background(), metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=kuard"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	svc := createService(t, client, intstr.FromInt32(8080), nil)
	createPods(t, client, 0, 10, 8080)

	var slice discoveryv1.EndpointSlice
	apitest.WaitFor(t, wait, "one slice of ten endpoints", func() bool {
		ss := listSlices(t, client, "kuard")
		if len(ss) == 1 && len(ss[0].Endpoints) == 10 {
			slice = ss[0]
			return true
		}
		return false
	})
	if !regexp.MustCompile(`^kuard-[a-z0-9]{5}$`).MatchString(slice.Name) {
		t.Errorf("slice name %q, want kuard-<5 random>", slice.Name)
	}
	if slice.AddressType != discoveryv1.AddressTypeIPv4 || slice.Labels[discoveryv1.LabelManagedBy] != ControllerName {
		t.Errorf("addressType %s, labels %v", slice.AddressType, slice.Labels)
	}
	if len(slice.OwnerReferences) != 1 || slice.OwnerReferences[0].UID != svc.UID {
		t.Errorf("owner references %+v", slice.OwnerReferences)
	}
	if len(slice.Ports) != 1 || *slice.Ports[0].Port != 8080 || *slice.Ports[0].Protocol != corev1.ProtocolTCP || *slice.Ports[0].Name != "" {
		t.Errorf("ports %+v", slice.Ports)
	}
	// The annotation is on the writes a change of the Service or of a
	// pod's readiness caused and cleared on others: some version of the
	// slice carried it, not necessarily the last.
	annotated := ctrltest.SomeVersion(w, wait, func(s *discoveryv1.EndpointSlice) bool {
		_, ok := s.Annotations[corev1.EndpointsLastChangeTriggerTime]
		return ok
	})
	if !annotated {
		t.Errorf("no version of the slice carried %s", corev1.EndpointsLastChangeTriggerTime)
	}
	var ips []string
	for i := range 10 {
		ep := endpointOf(&slice, fmt.Sprintf("kuard-%d", i))
		if ep == nil {
			t.Fatalf("kuard-%d missing", i)
		}
		ips = append(ips, ep.Addresses[0])
		c := ep.Conditions
		if !*c.Ready || !*c.Serving || *c.Terminating {
			t.Errorf("kuard-%d conditions %v/%v/%v", i, *c.Ready, *c.Serving, *c.Terminating)
		}
		node := fmt.Sprintf("node-%d", i%2)
		if ep.NodeName == nil || *ep.NodeName != node || ep.TargetRef.Kind != "Pod" || ep.TargetRef.UID == "" {
			t.Errorf("kuard-%d: nodeName %v targetRef %+v", i, ep.NodeName, ep.TargetRef)
		}
		if (node == "node-0") != (ep.Zone != nil && *ep.Zone == "zone-a") {
			t.Errorf("kuard-%d on %s: zone %v", i, node, ep.Zone)
		}
	}
	sort.Strings(ips)
	if len(ips) != 10 || ips[0] != "10.244.0.10" {
		t.Logf("addresses %v", ips)
	}

	// Not ready: ready and serving false, same slice.
	ctrltest.SetRunning(t, client, "default", "kuard-3", podIP(3), false)
	apitest.WaitFor(t, wait, "kuard-3 ready:false", func() bool {
		ss := listSlices(t, client, "kuard")
		ep := endpointOf(&ss[0], "kuard-3")
		return len(ss) == 1 && ep != nil && !*ep.Conditions.Ready && !*ep.Conditions.Serving
	})
	// Terminating: still serving (its probe passes), not ready, terminating.
	if err := client.CoreV1().Pods("default").Delete(context.Background(), "kuard-4", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	apitest.WaitFor(t, wait, "kuard-4 terminating:true", func() bool {
		ss := listSlices(t, client, "kuard")
		ep := endpointOf(&ss[0], "kuard-4")
		return len(ss) == 1 && ep != nil && *ep.Conditions.Terminating && *ep.Conditions.Serving && !*ep.Conditions.Ready
	})
	ss := listSlices(t, client, "kuard")
	if ss[0].UID != slice.UID || len(ss[0].Endpoints) != 10 {
		t.Errorf("slice was replaced or lost endpoints: %s → %s, %d endpoints", slice.UID, ss[0].UID, len(ss[0].Endpoints))
	}
}

// TestNamedTargetPort: a named targetPort is resolved in each pod; pods
// resolving it differently go to different slices, and pods without it to
// a slice without ports (as upstream).
func TestNamedTargetPort(t *testing.T) {
	client := start(t, Config{})
	createService(t, client, intstr.FromString("http"), nil)
	createPods(t, client, 0, 3, 8080)
	createPods(t, client, 3, 2, 9090)
	createPods(t, client, 5, 1, 0)
	apitest.WaitFor(t, wait, "slices per resolved port", func() bool {
		got := map[string]int{}
		for _, s := range listSlices(t, client, "kuard") {
			key := "none"
			if len(s.Ports) == 1 {
				key = fmt.Sprint(*s.Ports[0].Port)
			}
			got[key] += len(s.Endpoints)
		}
		return fmt.Sprint(got) == "map[8080:3 9090:2 none:1]"
	})
}

// TestManySlices: 250 pods make 3 slices (100 + 100 + 50).
func TestManySlices(t *testing.T) {
	client := start(t, Config{})
	createService(t, client, intstr.FromInt32(8080), nil)
	createPods(t, client, 0, 250, 8080)
	apitest.WaitFor(t, wait, "3 slices of 100, 100 and 50", func() bool {
		var sizes []int
		for _, s := range listSlices(t, client, "kuard") {
			sizes = append(sizes, len(s.Endpoints))
		}
		sort.Ints(sizes)
		return fmt.Sprint(sizes) == "[50 100 100]"
	})
}

// TestMaxEndpointsPerSliceFlag: the cap is configurable.
func TestMaxEndpointsPerSliceFlag(t *testing.T) {
	client := start(t, Config{MaxEndpointsPerSlice: 2})
	createService(t, client, intstr.FromInt32(8080), nil)
	createPods(t, client, 0, 5, 8080)
	apitest.WaitFor(t, wait, "3 slices of at most 2", func() bool {
		n, total := 0, 0
		for _, s := range listSlices(t, client, "kuard") {
			n++
			total += len(s.Endpoints)
			if len(s.Endpoints) > 2 {
				return false
			}
		}
		return n == 3 && total == 5
	})
}

func TestPlaceholderAndServiceDeletion(t *testing.T) {
	client := start(t, Config{})
	createService(t, client, intstr.FromInt32(8080), func(s *corev1.Service) { s.Spec.ClusterIP = corev1.ClusterIPNone })
	apitest.WaitFor(t, wait, "an empty placeholder slice", func() bool {
		ss := listSlices(t, client, "kuard")
		if len(ss) != 1 {
			return false
		}
		_, headless := ss[0].Labels[corev1.IsHeadlessService]
		return len(ss[0].Endpoints) == 0 && headless
	})
	createPods(t, client, 0, 2, 8080)
	apitest.WaitFor(t, wait, "the placeholder filled", func() bool {
		ss := listSlices(t, client, "kuard")
		return len(ss) == 1 && len(ss[0].Endpoints) == 2
	})
	if err := client.CoreV1().Services("default").Delete(context.Background(), "kuard", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	apitest.WaitFor(t, wait, "slices gone with the service", func() bool { return len(listSlices(t, client, "kuard")) == 0 })
}

// TestSelectorlessServiceHasNoManagedSlices: those are mirroring's.
func TestSelectorlessServiceHasNoManagedSlices(t *testing.T) {
	client := start(t, Config{})
	createService(t, client, intstr.FromInt32(8080), func(s *corev1.Service) { s.Name, s.Spec.Selector = "external", nil })
	createService(t, client, intstr.FromInt32(8080), nil)
	apitest.WaitFor(t, wait, "kuard's placeholder", func() bool { return len(listSlices(t, client, "kuard")) == 1 })
	if ss := listSlices(t, client, "external"); len(ss) != 0 {
		t.Errorf("selector-less service got %d slices", len(ss))
	}
}

package apiserver

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
)

func svc(name string, typ corev1.ServiceType) *corev1.Service {
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.ServiceSpec{
		Type: typ, Selector: map[string]string{"app": name},
		Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}},
	}}
}

func wantInvalid(t *testing.T, err error, substr string) {
	t.Helper()
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), substr) {
		t.Fatalf("want 422 Invalid containing %q, got %v", substr, err)
	}
}

func TestServiceAllocation(t *testing.T) {
	ts := startServer(t)
	ctx := context.Background()
	svcs := ts.client.CoreV1().Services("default")
	_, serviceNet, _ := net.ParseCIDR("10.96.0.0/16")

	a, err := svcs.Create(ctx, svc("a", corev1.ServiceTypeLoadBalancer), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ip := net.ParseIP(a.Spec.ClusterIP); ip == nil || !serviceNet.Contains(ip) || a.Spec.ClusterIPs[0] != a.Spec.ClusterIP {
		t.Fatalf("clusterIP %q not in %s", a.Spec.ClusterIP, serviceNet)
	}
	np := a.Spec.Ports[0].NodePort
	if np < 30000 || np > 32767 {
		t.Fatalf("nodePort %d out of range", np)
	}
	if a.Spec.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyCluster || a.Spec.SessionAffinity != corev1.ServiceAffinityNone ||
		a.Spec.IPFamilies[0] != corev1.IPv4Protocol || *a.Spec.IPFamilyPolicy != corev1.IPFamilyPolicySingleStack {
		t.Fatalf("defaults: %+v", a.Spec)
	}

	dup := svc("dup", corev1.ServiceTypeClusterIP)
	dup.Spec.ClusterIP = a.Spec.ClusterIP
	_, err = svcs.Create(ctx, dup, metav1.CreateOptions{})
	wantInvalid(t, err, "provided IP is already allocated")
	dup.Spec.ClusterIP = "10.97.0.5"
	_, err = svcs.Create(ctx, dup, metav1.CreateOptions{})
	wantInvalid(t, err, "provided IP is not in the valid range")
	dup = svc("dup", corev1.ServiceTypeNodePort)
	dup.Spec.Ports[0].NodePort = np
	_, err = svcs.Create(ctx, dup, metav1.CreateOptions{})
	wantInvalid(t, err, "provided port is already allocated")
	dup.Spec.Ports[0].NodePort = 80
	_, err = svcs.Create(ctx, dup, metav1.CreateOptions{})
	wantInvalid(t, err, "provided port is not in the valid range")
	// The failed creates reserved nothing: a fresh service can take a
	// port one of them asked for.
	ok := svc("ok", corev1.ServiceTypeNodePort)
	ok.Spec.Ports[0].NodePort = 30999
	if _, err := svcs.Create(ctx, ok, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	headless := svc("headless", corev1.ServiceTypeClusterIP)
	headless.Spec.ClusterIP = corev1.ClusterIPNone
	h, err := svcs.Create(ctx, headless, metav1.CreateOptions{})
	if err != nil || h.Spec.ClusterIP != "None" || h.Spec.ClusterIPs[0] != "None" {
		t.Fatalf("headless: %+v %v", h.Spec, err)
	}
	ext := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "ext"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "example.com"}}
	e, err := svcs.Create(ctx, ext, metav1.CreateOptions{})
	if err != nil || e.Spec.ClusterIP != "" {
		t.Fatalf("ExternalName: %+v %v", e.Spec, err)
	}

	// Deleting frees the address and port for others.
	if err := svcs.Delete(ctx, "a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	reuse := svc("reuse", corev1.ServiceTypeNodePort)
	reuse.Spec.ClusterIP, reuse.Spec.Ports[0].NodePort = a.Spec.ClusterIP, np
	if _, err := svcs.Create(ctx, reuse, metav1.CreateOptions{}); err != nil {
		t.Fatalf("address and port of a deleted service: %v", err)
	}
}

// The four type changes of the conformance tests, with what each
// allocates and frees.
func TestServiceTypeChanges(t *testing.T) {
	ts := startServer(t)
	ctx := context.Background()
	svcs := ts.client.CoreV1().Services("default")
	update := func(name string, mutate func(*corev1.Service)) *corev1.Service {
		t.Helper()
		s, err := svcs.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		mutate(s)
		s, err = svcs.Update(ctx, s, metav1.UpdateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	ext := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "s"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "example.com"}}
	if _, err := svcs.Create(ctx, ext, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// ExternalName → ClusterIP: an address is allocated.
	s := update("s", func(s *corev1.Service) {
		s.Spec.Type, s.Spec.ExternalName = corev1.ServiceTypeClusterIP, ""
		s.Spec.Ports = []corev1.ServicePort{{Port: 80}}
	})
	if s.Spec.ClusterIP == "" {
		t.Fatal("ExternalName → ClusterIP allocated no clusterIP")
	}
	ip := s.Spec.ClusterIP
	// ClusterIP → NodePort: a node port is allocated, the address kept.
	s = update("s", func(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeNodePort })
	if s.Spec.Ports[0].NodePort == 0 || s.Spec.ClusterIP != ip {
		t.Fatalf("ClusterIP → NodePort: %+v", s.Spec)
	}
	port := s.Spec.Ports[0].NodePort
	// NodePort → ClusterIP: the node port is freed.
	s = update("s", func(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeClusterIP })
	if s.Spec.Ports[0].NodePort != 0 || s.Spec.ExternalTrafficPolicy != "" {
		t.Fatalf("NodePort → ClusterIP kept %+v", s.Spec)
	}
	other := svc("other", corev1.ServiceTypeNodePort)
	other.Spec.Ports[0].NodePort = port
	if _, err := svcs.Create(ctx, other, metav1.CreateOptions{}); err != nil {
		t.Fatalf("node port freed by a type change: %v", err)
	}
	// ClusterIP → ExternalName: the address is freed.
	s = update("s", func(s *corev1.Service) {
		s.Spec.Type, s.Spec.ExternalName = corev1.ServiceTypeExternalName, "example.org"
	})
	if s.Spec.ClusterIP != "" {
		t.Fatalf("ClusterIP → ExternalName kept %q", s.Spec.ClusterIP)
	}
	third := svc("third", corev1.ServiceTypeClusterIP)
	third.Spec.ClusterIP = ip
	if _, err := svcs.Create(ctx, third, metav1.CreateOptions{}); err != nil {
		t.Fatalf("address freed by a type change: %v", err)
	}
	// An update that omits clusterIP keeps it; changing it is refused.
	s = update("third", func(s *corev1.Service) { s.Spec.ClusterIP, s.Spec.ClusterIPs = "", nil })
	if s.Spec.ClusterIP != ip {
		t.Fatalf("update without clusterIP lost it: %q", s.Spec.ClusterIP)
	}
	s.Spec.ClusterIP, s.Spec.ClusterIPs = "10.96.1.1", []string{"10.96.1.1"}
	_, err := svcs.Update(ctx, s, metav1.UpdateOptions{})
	wantInvalid(t, err, "spec.clusterIPs")
}

// Two servers on one etcd hand out distinct addresses and ports under
// concurrent creates.
func TestServiceAllocationTwoServers(t *testing.T) {
	a := startServer(t)
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b, err := New(ctx, Config{StateDir: dir, Listen: ln.Addr().String(),
		EtcdEndpoints: []string{"unix://" + a.dir + "/etcd/client.sock"}})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = b.Serve(ctx, ln) }()
	bts := &testServer{srv: b, dir: dir}
	bts.cfg = clientConfig(t, dir)
	bClient, err := kubernetes.NewForConfig(bts.cfg)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30e9, "second server", func() bool { _, err := bClient.Discovery().ServerVersion(); return err == nil })

	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := 0; i < 200; i++ {
		client := a.client
		if i%2 == 1 {
			client = bClient
		}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, err := client.CoreV1().Services("default").Create(context.Background(), svc(fmt.Sprintf("s%d", i), corev1.ServiceTypeNodePort), metav1.CreateOptions{})
			if err != nil {
				errs <- err
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	list, err := a.client.CoreV1().Services("default").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ips, ports := map[string]string{}, map[int32]string{}
	for _, s := range list.Items {
		if prev, dup := ips[s.Spec.ClusterIP]; dup {
			t.Fatalf("%s and %s share %s", prev, s.Name, s.Spec.ClusterIP)
		}
		ips[s.Spec.ClusterIP] = s.Name
		for _, p := range s.Spec.Ports {
			if p.NodePort == 0 {
				continue
			}
			if prev, dup := ports[p.NodePort]; dup {
				t.Fatalf("%s and %s share node port %d", prev, s.Name, p.NodePort)
			}
			ports[p.NodePort] = s.Name
		}
	}
	if len(ips) != 201 { // the 200, and kubernetes
		t.Fatalf("%d distinct addresses, want 201", len(ips))
	}
}

// The kubernetes Service lists every live API server; one that stops
// withdraws. The servers' addresses are extra addresses on this private
// namespace's loopback device.
func TestKubernetesServiceEndpoints(t *testing.T) {
	for _, a := range []string{"10.1.2.3/32", "10.1.2.4/32"} {
		if out, err := exec.Command("ip", "addr", "add", a, "dev", "lo").CombinedOutput(); err != nil {
			t.Fatalf("ip addr add %s: %v %s", a, err, out)
		}
	}
	ctx := context.Background()
	start := func(ip string, etcd []string) (string, func()) {
		ln, err := net.Listen("tcp", ip+":6443")
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		sctx, cancel := context.WithCancel(ctx)
		s, err := New(sctx, Config{StateDir: dir, Listen: ln.Addr().String(), AdvertiseAddress: ip, EtcdEndpoints: etcd})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- s.Serve(sctx, ln) }()
		stopped := false
		stop := func() {
			if !stopped {
				stopped = true
				cancel()
				<-done
			}
		}
		t.Cleanup(stop)
		return dir, stop
	}
	dirA, _ := start("10.1.2.3", nil)
	_, stopB := start("10.1.2.4", []string{"unix://" + dirA + "/etcd/client.sock"})
	client, err := kubernetes.NewForConfig(clientConfig(t, dirA))
	if err != nil {
		t.Fatal(err)
	}
	addresses := func() string {
		ep, err := client.CoreV1().Endpoints("default").Get(ctx, "kubernetes", metav1.GetOptions{})
		if err != nil || len(ep.Subsets) == 0 {
			return ""
		}
		var out []string
		for _, a := range ep.Subsets[0].Addresses {
			out = append(out, a.IP)
		}
		return strings.Join(out, ",") + fmt.Sprintf(":%d", ep.Subsets[0].Ports[0].Port)
	}
	waitFor(t, 30*time.Second, "both servers in the kubernetes endpoints", func() bool { return addresses() == "10.1.2.3,10.1.2.4:6443" })
	waitFor(t, 30*time.Second, "both servers in the kubernetes EndpointSlice", func() bool {
		slice, err := client.DiscoveryV1().EndpointSlices("default").Get(ctx, "kubernetes", metav1.GetOptions{})
		return err == nil && len(slice.Endpoints) == 2 && *slice.Ports[0].Port == 6443
	})
	stopB()
	waitFor(t, 30*time.Second, "the stopped server withdrawn", func() bool { return addresses() == "10.1.2.3:6443" })
}

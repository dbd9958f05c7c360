package lbipam

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/wait"

	"kite/internal/controller/internal/ctrltest"
	"kite/internal/testutil/apitest"
)

// TestAPIServer runs the controller against kite's own API server: the
// status subresource takes the ingress with ipMode VIP next to the
// clusterIP and nodePort the server allocated; a type change clears it;
// a full pool leaves an AllocationFailed event in the API.
func TestAPIServer(t *testing.T) {
	api := apitest.Start(t, apitest.Options{})
	client := api.Client
	c, err := New(Config{Client: client, Informers: ctrltest.Informers(t, client), Pool: "172.18.255.200"})
	if err != nil {
		t.Fatal(err)
	}
	ctrltest.Run(t, c.Run)
	ctx := context.Background()
	services := client.CoreV1().Services("default")
	create := func(name string) {
		s := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Selector: map[string]string{"run": "kuard"},
				Ports: []corev1.ServicePort{{Port: 80, Protocol: corev1.ProtocolTCP}}}}
		if _, err := services.Create(ctx, s, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	waitSvc := func(name, what string, cond func(*corev1.Service) bool) *corev1.Service {
		t.Helper()
		var s *corev1.Service
		err := wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, waitTime, true, func(ctx context.Context) (bool, error) {
			var err error
			s, err = services.Get(ctx, name, metav1.GetOptions{})
			return err == nil && cond(s), nil
		})
		if err != nil {
			t.Fatalf("service %s: %s: last seen %+v", name, what, s)
		}
		return s
	}

	create("kuard")
	s := waitSvc("kuard", "ingress 172.18.255.200 (VIP)", func(s *corev1.Service) bool {
		ip, vip := ingress(s)
		return ip == "172.18.255.200" && vip
	})
	if s.Spec.ClusterIP == "" || s.Spec.Ports[0].NodePort == 0 {
		t.Errorf("clusterIP %q, nodePort %d: want both allocated", s.Spec.ClusterIP, s.Spec.Ports[0].NodePort)
	}

	create("third")
	sel := fields.Set{"involvedObject.name": "third", "reason": EventAllocationFailed}.AsSelector().String()
	err = wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, waitTime, true, func(ctx context.Context) (bool, error) {
		evs, err := client.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: sel})
		return err == nil && len(evs.Items) > 0 && evs.Items[0].Type == corev1.EventTypeWarning, nil
	})
	if err != nil {
		t.Fatal("no AllocationFailed event for service third")
	}

	s = waitSvc("kuard", "fresh copy", func(*corev1.Service) bool { return true })
	s.Spec.Type = corev1.ServiceTypeClusterIP
	s.Spec.Ports[0].NodePort = 0
	if _, err := services.Update(ctx, s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitSvc("kuard", "ingress cleared", func(s *corev1.Service) bool { return len(s.Status.LoadBalancer.Ingress) == 0 })
	waitSvc("third", "the freed address", func(s *corev1.Service) bool {
		ip, _ := ingress(s)
		return ip == "172.18.255.200"
	})
}

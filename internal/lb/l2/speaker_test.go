package l2

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
)

// TestRenew: the heartbeat Lease is made with its label, holder, duration
// and the Node as owner, then renewed in place.
func TestRenew(t *testing.T) {
	ctx := context.Background()
	client := fake.NewClientset()
	s, err := New(Config{NodeName: "n1", NodeIP: "10.0.0.2"}, client)
	if err != nil {
		t.Fatal(err)
	}
	leases := client.CoordinationV1().Leases(LeaseNamespace)
	owner := &metav1.OwnerReference{APIVersion: "v1", Kind: "Node", Name: "n1", UID: types.UID("u1")}
	l, err := s.renew(ctx, leases, LeasePrefix+"n1", nil, owner)
	if err != nil {
		t.Fatal(err)
	}
	if l.Name != "kite-l2-n1" || l.Labels[LeaseLabel] != "n1" || *l.Spec.HolderIdentity != "n1" || *l.Spec.LeaseDurationSeconds != 2 ||
		len(l.OwnerReferences) != 1 || l.OwnerReferences[0].UID != "u1" {
		t.Errorf("lease %+v", l)
	}
	first := l.Spec.RenewTime.Time
	if l, err = s.renew(ctx, leases, LeasePrefix+"n1", l, owner); err != nil {
		t.Fatal(err)
	}
	if l.Spec.RenewTime.Before(&metav1.MicroTime{Time: first}) {
		t.Errorf("renewTime %s before %s", l.Spec.RenewTime, first)
	}
	// A lost copy (nil) reads the Lease again rather than creating one.
	if _, err := s.renew(ctx, leases, LeasePrefix+"n1", nil, owner); err != nil {
		t.Errorf("renew without a copy: %v", err)
	}
	if list, _ := leases.List(ctx, metav1.ListOptions{}); len(list.Items) != 1 {
		t.Errorf("%d leases, want 1", len(list.Items))
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []Config{{NodeIP: "10.0.0.2"}, {NodeName: "n1"}, {NodeName: "n1", NodeIP: "x"}, {NodeName: "n1", Interface: "eth0", LeaseDuration: 100 * time.Millisecond}} {
		if _, err := New(c, fake.NewClientset()); err == nil {
			t.Errorf("New(%+v) accepted", c)
		}
	}
	if _, err := New(Config{NodeName: "n1", Interface: "eth0"}, fake.NewClientset()); err != nil {
		t.Errorf("an interface without node IP: %v", err)
	}
}

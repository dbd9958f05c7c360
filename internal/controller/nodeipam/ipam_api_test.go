package nodeipam

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kite/internal/testutil/apitest"
)

// TestAPIDistinctSubnets: nodes created at once each get their own /24 of
// the default cluster CIDR.
func TestAPIDistinctSubnets(t *testing.T) {
	api := apitest.Start(t, apitest.Options{})
	startController(t, api.Client, Config{})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			createNode(t, api.Client, fmt.Sprintf("kite-worker%d", i), "")
		}()
	}
	wg.Wait()
	cluster := netip.MustParsePrefix("10.244.0.0/16")
	seen := map[string]string{}
	for i := range 8 {
		name := fmt.Sprintf("kite-worker%d", i)
		cidr := waitCIDR(t, api.Client, name)
		p := netip.MustParsePrefix(cidr)
		if p.Bits() != 24 || !cluster.Contains(p.Addr()) {
			t.Errorf("%s got %s, want a /24 of %s", name, cidr, cluster)
		}
		if other, dup := seen[cidr]; dup {
			t.Errorf("%s and %s both got %s", name, other, cidr)
		}
		seen[cidr] = name
	}
}

// TestAPIRestart: a new controller rebuilds the used set from the Node
// objects before it allocates: existing CIDRs (its predecessor's, and one
// set by hand) are kept and never handed out again.
func TestAPIRestart(t *testing.T) {
	api := apitest.Start(t, apitest.Options{})
	stop := startController(t, api.Client, Config{})
	createNode(t, api.Client, "a", "")
	createNode(t, api.Client, "b", "")
	a, b := waitCIDR(t, api.Client, "a"), waitCIDR(t, api.Client, "b")
	stop()

	createNode(t, api.Client, "manual", "10.244.2.0/24")
	createNode(t, api.Client, "c", "")
	startController(t, api.Client, Config{})
	c := waitCIDR(t, api.Client, "c")
	for name, want := range map[string]string{"a": a, "b": b, "manual": "10.244.2.0/24"} {
		if got := waitCIDR(t, api.Client, name); got != want {
			t.Errorf("%s: %s after restart, had %s", name, got, want)
		}
	}
	if c == a || c == b || c == "10.244.2.0/24" {
		t.Errorf("c got %s, already taken (a %s, b %s, manual 10.244.2.0/24)", c, a, b)
	}
	if c != "10.244.3.0/24" {
		t.Errorf("c got %s, want the lowest free 10.244.3.0/24", c)
	}
}

// TestAPIFullRangeAndRelease: with room for two nodes a third gets
// CIDRNotAvailable, and the subnet of a deleted node goes to it.
func TestAPIFullRangeAndRelease(t *testing.T) {
	api := apitest.Start(t, apitest.Options{})
	startController(t, api.Client, Config{ClusterCIDR: "10.244.0.0/23"})
	createNode(t, api.Client, "a", "")
	createNode(t, api.Client, "b", "")
	a := waitCIDR(t, api.Client, "a")
	waitCIDR(t, api.Client, "b")
	createNode(t, api.Client, "c", "")
	if msg := waitNodeEvent(t, api.Client, "c", EventCIDRNotAvailable); msg != "Node c status is now: CIDRNotAvailable" {
		t.Errorf("CIDRNotAvailable message %q", msg)
	}
	if err := api.Client.CoreV1().Nodes().Delete(context.Background(), "a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := waitCIDR(t, api.Client, "c"); got != a {
		t.Errorf("c got %s, want a's released %s", got, a)
	}
}

// TestAPIBadClaims: a node asking for a CIDR outside the range, or one
// another node holds, gets an event and keeps what it has; the subnets
// handed out next avoid the taken one.
func TestAPIBadClaims(t *testing.T) {
	api := apitest.Start(t, apitest.Options{})
	startController(t, api.Client, Config{NodeMaskSizeIPv4: 25})
	// Creation times have one-second resolution; within one second the
	// name decides who holds a duplicate, so "holder" < "later".
	createNode(t, api.Client, "holder", "10.244.0.0/25")
	createNode(t, api.Client, "outside", "10.0.0.0/24")
	msg := waitNodeEvent(t, api.Client, "outside", EventCIDRAssignmentFailed)
	if msg != "podCIDR 10.0.0.0/24 is outside the cluster CIDR 10.244.0.0/16" {
		t.Errorf("outside: event %q", msg)
	}
	createNode(t, api.Client, "later", "10.244.0.0/25")
	msg = waitNodeEvent(t, api.Client, "later", EventCIDRAssignmentFailed)
	if msg != "podCIDR 10.244.0.0/25 is already used by node holder" {
		t.Errorf("later: event %q", msg)
	}
	for name, want := range map[string]string{"outside": "10.0.0.0/24", "later": "10.244.0.0/25", "holder": "10.244.0.0/25"} {
		if got := waitCIDR(t, api.Client, name); got != want {
			t.Errorf("%s changed to %s", name, got)
		}
	}
	createNode(t, api.Client, "next", "")
	if got := waitCIDR(t, api.Client, "next"); got != "10.244.0.128/25" {
		t.Errorf("next got %s, want 10.244.0.128/25 (configured /25 mask)", got)
	}
}

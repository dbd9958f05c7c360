package lb

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"sigs.k8s.io/knftables"
)

// fakeAddrs records the ingress addresses as the interface would hold them.
type fakeAddrs struct {
	mu    sync.Mutex
	addrs []netip.Addr
}

func (f *fakeAddrs) List() ([]netip.Addr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.addrs), nil
}

func (f *fakeAddrs) Add(a netip.Addr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.addrs = append(f.addrs, a)
	slices.SortFunc(f.addrs, netip.Addr.Compare)
	return nil
}

func (f *fakeAddrs) Del(a netip.Addr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.addrs = slices.DeleteFunc(f.addrs, func(b netip.Addr) bool { return a == b })
	return nil
}

func (f *fakeAddrs) String() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var s []string
	for _, a := range f.addrs {
		s = append(s, a.String())
	}
	return strings.Join(s, ",")
}

// fakeNFT is a knftables Fake safe to read while the LB writes it.
type fakeNFT struct {
	mu sync.Mutex
	*knftables.Fake
}

func (f *fakeNFT) Run(ctx context.Context, tx *knftables.Transaction) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.Fake.Run(ctx, tx)
}

func (f *fakeNFT) dump() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.Fake.Dump()
}

func TestRunFollowsServicesNodesAndHealth(t *testing.T) {
	cs := fake.NewClientset(
		node("n1", "10.77.0.2", true), node("n2", "10.77.0.3", true), node("n3", "10.77.0.4", false))
	nft := &fakeNFT{Fake: knftables.NewFake(knftables.IPv4Family, DefaultTable)}
	addrs := &fakeAddrs{}
	p := &scriptedProbe{fail: map[Target]bool{}, runs: map[Target]int{}}
	l, err := newLB(Config{Interface: "eth0", NFT: nft, Addrs: addrs, SkipSysctls: true,
		HealthInterval: 10 * time.Millisecond}, cs, p.probe)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	hasRule := func(s string) func() bool { return func() bool { return strings.Contains(nft.dump(), s) } }
	services := cs.CoreV1().Services("default")

	if _, err := services.Create(ctx, lbService("web", "10.77.0.200"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Not Ready n3 is left out.
	waitFor(t, 5*time.Second, "web to two nodes", hasRule("numgen random mod 2 map { 0 : 10.77.0.2 . 30080, 1 : 10.77.0.3 . 30080 }"))
	waitFor(t, 5*time.Second, "web's address", func() bool { return addrs.String() == "10.77.0.200" })

	// n2's NodePort stops answering: out. It answers again: back.
	p.set(Target{IP: netip.MustParseAddr("10.77.0.3"), Port: 30080}, true)
	waitFor(t, 5*time.Second, "n2 out", hasRule("svc-default/web/tcp/80 meta l4proto tcp dnat to 10.77.0.2:30080"))
	p.set(Target{IP: netip.MustParseAddr("10.77.0.3"), Port: 30080}, false)
	waitFor(t, 5*time.Second, "n2 back", hasRule("numgen random mod 2"))

	// n3 becomes Ready.
	n3, _ := cs.CoreV1().Nodes().Get(ctx, "n3", metav1.GetOptions{})
	n3.Status.Conditions[0].Status = corev1.ConditionTrue
	if _, err := cs.CoreV1().Nodes().UpdateStatus(ctx, n3, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "n3 in", hasRule("numgen random mod 3"))

	// externalTrafficPolicy Local: the health check node port decides;
	// only n1 has endpoints.
	loc := lbService("local", "10.77.0.201", local(31999), ports(corev1.ServicePort{Port: 8080, NodePort: 30090}))
	for _, ip := range []string{"10.77.0.3", "10.77.0.4"} {
		p.set(Target{IP: netip.MustParseAddr(ip), Port: 31999, HTTP: true}, true)
	}
	if _, err := services.Create(ctx, loc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "local to n1 only", hasRule("svc-default/local/tcp/8080 meta l4proto tcp dnat to 10.77.0.2:30090"))
	waitFor(t, 5*time.Second, "both addresses", func() bool { return addrs.String() == "10.77.0.200,10.77.0.201" })

	// Deleted: rules, address and health checks go.
	if err := services.Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "web gone", func() bool { return !strings.Contains(nft.dump(), "svc-default/web") })
	waitFor(t, 5*time.Second, "web's address gone", func() bool { return addrs.String() == "10.77.0.201" })
	if h := l.checker.health(Target{IP: netip.MustParseAddr("10.77.0.2"), Port: 30080}); h != Unknown {
		t.Errorf("web's NodePort is still checked (health %d)", h)
	}

	// Type changed away from LoadBalancer: same as gone.
	loc, _ = services.Get(ctx, "local", metav1.GetOptions{})
	loc.Spec.Type = corev1.ServiceTypeNodePort
	if _, err := services.Update(ctx, loc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "no addresses", func() bool { return addrs.String() == "" })
	waitFor(t, 5*time.Second, "no Service chains", func() bool { return !strings.Contains(nft.dump(), "svc-") })
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "interface is required"},
		{Config{Interface: "a-very-long-if"}, "longer than 12 characters"},
		{Config{Interface: "eth0", HealthInterval: time.Second}, "health interval"},
		{Config{Interface: "eth0", HealthTimeout: time.Minute}, "health timeout"},
		{Config{Interface: "eth0", Fall: -1}, "fall"},
		{Config{Interface: "eth0", Pool: []netip.Prefix{netip.MustParsePrefix("fd00::/120")}}, "only IPv4"},
		{Config{Interface: "eth0"}, ""},
	} {
		err := tc.cfg.Validate()
		if tc.want == "" {
			if err != nil {
				t.Errorf("%+v: %v", tc.cfg, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want %q", tc.cfg, err, tc.want)
		}
	}
	if _, err := New(Config{Interface: "eth0"}, nil); err == nil {
		t.Error("New without a client succeeded")
	}
}

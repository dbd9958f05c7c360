package lb

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"
)

// scriptedProbe answers each target's probes from a switch the test flips.
type scriptedProbe struct {
	mu   sync.Mutex
	fail map[Target]bool
	runs map[Target]int
}

func (p *scriptedProbe) probe(_ context.Context, t Target) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.runs[t]++
	if p.fail[t] {
		return errors.New("scripted failure")
	}
	return nil
}

func (p *scriptedProbe) set(t Target, fail bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fail[t] = fail
}

func (p *scriptedProbe) count(t Target) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.runs[t]
}

func TestCheckerRecord(t *testing.T) {
	// record alone: the first result decides; later, fall failures or
	// rise successes in a row.
	tg := Target{IP: netip.MustParseAddr("10.77.0.2"), Port: 30080}
	changes := 0
	c := newChecker(Config{HealthInterval: time.Hour, HealthTimeout: time.Second, Fall: 2, Rise: 3}, nil, func() { changes++ })
	c.targets[tg] = &targetState{stop: func() {}}
	fail, ok := errors.New("refused"), error(nil)
	ctx := context.Background()
	for i, step := range []struct {
		result error
		want   Health
	}{
		{ok, Up},
		{fail, Up}, {ok, Up}, {fail, Up}, {fail, Down},
		{ok, Down}, {ok, Down}, {fail, Down}, {ok, Down}, {ok, Down}, {ok, Up},
	} {
		c.record(ctx, tg, step.result)
		if got := c.health(tg); got != step.want {
			t.Fatalf("step %d: health %d, want %d", i, got, step.want)
		}
	}
	if changes != 3 {
		t.Errorf("changed called %d times, want 3", changes)
	}
	// A new target (Unknown counts as up) goes out after fall failures in
	// a row, not at its first: its NodePort may be programmed a moment
	// after the first check.
	other := Target{IP: netip.MustParseAddr("10.77.0.3"), Port: 30080}
	c.targets[other] = &targetState{stop: func() {}}
	if c.health(other) != Unknown {
		t.Fatal("a new target is not Unknown")
	}
	c.record(ctx, other, fail)
	if c.health(other) != Unknown {
		t.Errorf("one failure of a new target: health %d, want still Unknown", c.health(other))
	}
	c.record(ctx, other, fail)
	if c.health(other) != Down {
		t.Error("fall failures in a row did not take the new target out")
	}
}

func TestCheckerProbesUntilRemoved(t *testing.T) {
	a := Target{IP: netip.MustParseAddr("10.77.0.2"), Port: 30080}
	b := Target{IP: netip.MustParseAddr("10.77.0.3"), Port: 30080}
	p := &scriptedProbe{fail: map[Target]bool{b: true}, runs: map[Target]int{}}
	changed := make(chan struct{}, 10)
	c := newChecker(Config{HealthInterval: 10 * time.Millisecond, HealthTimeout: time.Second, Fall: 2, Rise: 2}, p.probe,
		func() { changed <- struct{}{} })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	defer c.stopAll()
	c.set(ctx, []Target{a, b})
	waitFor(t, 5*time.Second, "a up and b down", func() bool { return c.health(a) == Up && c.health(b) == Down })
	p.set(b, false)
	waitFor(t, 5*time.Second, "b up", func() bool { return c.health(b) == Up })
	c.set(ctx, []Target{a})
	if c.health(b) != Unknown {
		t.Error("a removed target still has a health")
	}
	// b's prober has stopped: its count stops growing while a's goes on.
	n := p.count(b)
	m := p.count(a)
	waitFor(t, 5*time.Second, "a few more probes of a", func() bool { return p.count(a) >= m+3 })
	if p.count(b) > n+1 { // one probe may have been under way
		t.Errorf("b probed %d times after removal", p.count(b)-n)
	}
}

func TestProbe(t *testing.T) {
	// Runs inside this test's own network namespace (MainInNetns): the
	// servers listen on its loopback only.
	status := http.StatusOK
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		w.WriteHeader(status)
	}))
	defer srv.Close()
	ap := netip.MustParseAddrPort(srv.Listener.Addr().String())
	tcpTarget := Target{IP: ap.Addr(), Port: int32(ap.Port())}
	httpTarget := Target{IP: ap.Addr(), Port: int32(ap.Port()), HTTP: true}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := probe(ctx, tcpTarget); err != nil {
		t.Errorf("TCP probe of a listening port: %v", err)
	}
	if err := probe(ctx, httpTarget); err != nil {
		t.Errorf("HTTP probe answered 200: %v", err)
	}
	mu.Lock()
	status = http.StatusServiceUnavailable // kube-proxy: no local endpoints
	mu.Unlock()
	if err := probe(ctx, httpTarget); err == nil {
		t.Error("HTTP probe answered 503 succeeded")
	}
	// A closed port.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, portStr, _ := net.SplitHostPort(ln.Addr().String())
	ln.Close()
	port, _ := strconv.Atoi(portStr)
	if err := probe(ctx, Target{IP: netip.MustParseAddr("127.0.0.1"), Port: int32(port)}); err == nil {
		t.Error("TCP probe of a closed port succeeded")
	}
}

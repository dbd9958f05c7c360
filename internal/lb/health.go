package lb

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"k8s.io/klog/v2"
)

// probeFunc checks one target once; ctx carries the timeout.
type probeFunc func(ctx context.Context, t Target) error

// probe is the real check: a TCP connect, or an HTTP GET expecting 200.
func probe(ctx context.Context, t Target) error {
	addr := net.JoinHostPort(t.IP.String(), fmt.Sprint(t.Port))
	if !t.HTTP {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return conn.Close()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/", nil)
	if err != nil {
		return err
	}
	// No keep-alive: each check is a fresh connection, as a node that
	// went away must fail the next check, not reuse an old socket.
	client := http.Client{Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: status %d", t, resp.StatusCode)
	}
	return nil
}

// targetState is one target's record and the cancel of its prober.
type targetState struct {
	health      Health
	fails, oks  int
	stop        context.CancelFunc
	lastFailure string
}

// checker probes each target every interval, one probe at a time per
// target, and calls changed when a target goes up or down.
type checker struct {
	interval, timeout time.Duration
	fall, rise        int
	probe             probeFunc
	changed           func()

	mu      sync.Mutex
	targets map[Target]*targetState
}

func newChecker(cfg Config, p probeFunc, changed func()) *checker {
	return &checker{interval: cfg.HealthInterval, timeout: cfg.HealthTimeout, fall: cfg.Fall, rise: cfg.Rise,
		probe: p, changed: changed, targets: map[Target]*targetState{}}
}

// health is the target's state; an unchecked target is Unknown.
func (c *checker) health(t Target) Health {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.targets[t]; ok {
		return s.health
	}
	return Unknown
}

// set starts probing new targets and stops probing the ones not listed.
func (c *checker) set(ctx context.Context, targets []Target) {
	c.mu.Lock()
	defer c.mu.Unlock()
	keep := map[Target]bool{}
	for _, t := range targets {
		keep[t] = true
		if _, ok := c.targets[t]; ok {
			continue
		}
		tctx, stop := context.WithCancel(ctx)
		c.targets[t] = &targetState{stop: stop}
		go c.loop(tctx, t)
	}
	for t, s := range c.targets {
		if !keep[t] {
			s.stop()
			delete(c.targets, t)
		}
	}
}

// stopAll ends every prober.
func (c *checker) stopAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for t, s := range c.targets {
		s.stop()
		delete(c.targets, t)
	}
}

// loop probes t until ctx ends: a probe, then the rest of the interval
// (none if the probe took longer).
func (c *checker) loop(ctx context.Context, t Target) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		start := time.Now()
		pctx, cancel := context.WithTimeout(ctx, c.timeout)
		err := c.probe(pctx, t)
		cancel()
		if ctx.Err() != nil {
			return
		}
		c.record(ctx, t, err)
		timer.Reset(max(0, c.interval-time.Since(start)))
	}
}

// record counts a result. A new target is up at its first success but
// down only after fall failures in a row, like one that was up: it was
// added because its node is Ready, and the first check often runs before
// the node's proxy has programmed a NodePort made the same moment. Later
// changes need fall failures or rise successes in a row.
func (c *checker) record(ctx context.Context, t Target, err error) {
	c.mu.Lock()
	s, ok := c.targets[t]
	if !ok {
		c.mu.Unlock()
		return
	}
	before := s.health
	if err == nil {
		s.oks, s.fails = s.oks+1, 0
		if s.health == Unknown || (s.health == Down && s.oks >= c.rise) {
			s.health = Up
		}
	} else {
		s.fails, s.oks = s.fails+1, 0
		s.lastFailure = err.Error()
		if (s.health == Unknown || s.health == Up) && s.fails >= c.fall {
			s.health = Down
		}
	}
	after := s.health
	c.mu.Unlock()
	if before == after {
		return
	}
	log := klog.FromContext(ctx)
	if after == Down {
		log.Info("node target down", "target", t.String(), "err", err)
	} else {
		log.Info("node target up", "target", t.String())
	}
	c.changed()
}

package kerneltest

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"syscall"
	"testing"
	"time"

	"kite/internal/proxy"
)

// dataplane is a fresh Dataplane over a kernel without rules.
func dataplane(t *testing.T, mode string) *proxy.Dataplane {
	t.Helper()
	topology(t)
	resetKernel(t)
	dp, err := proxy.NewDataplane(config(mode))
	if err != nil {
		t.Fatal(err)
	}
	return dp
}

func apply(t *testing.T, dp *proxy.Dataplane, m *proxy.Model) {
	t.Helper()
	if _, err := dp.Apply(context.Background(), m, false); err != nil {
		t.Fatal(err)
	}
}

// spread makes n requests and counts answers by server; every answer
// must have come from one of want with the source wantSrc.
func spread(t *testing.T, n int, from, addr, wantSrc string, want ...string) map[string]int {
	t.Helper()
	counts := map[string]int{}
	for range n {
		a, err := request(from, addr)
		if err != nil {
			t.Fatalf("request from %s to %s: %v", from, addr, err)
		}
		if a.source != wantSrc {
			t.Fatalf("from %s to %s: %s saw source %s, want %s", from, addr, a.server, a.source, wantSrc)
		}
		counts[a.server]++
	}
	for server := range counts {
		ok := false
		for _, w := range want {
			ok = ok || w == server
		}
		if !ok {
			t.Fatalf("from %s to %s: answered by %s, want one of %v", from, addr, server, want)
		}
	}
	return counts
}

func forModes(t *testing.T, f func(t *testing.T, mode string)) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) { f(t, mode) })
	}
}

// A pod reaching a ClusterIP lands on every endpoint, its own source IP
// intact; a client outside the pod network is masqueraded.
func TestClusterIP(t *testing.T) {
	forModes(t, func(t *testing.T, mode string) {
		dp := dataplane(t, mode)
		apply(t, dp, model(svc("kuard", "10.96.0.20"), endpoints("kuard", "pod-b", "pod-c")))
		counts := spread(t, 40, "pod-a", "10.96.0.20:80", pods["pod-a"], "pod-b", "pod-c")
		if len(counts) != 2 {
			t.Errorf("40 connections reached only %v, want both endpoints", counts)
		}
		spread(t, 5, "client", "10.96.0.20:80", bridgeIP, "pod-b", "pod-c")
		spread(t, 5, "", "10.96.0.20:80", bridgeIP, "pod-b", "pod-c")

		c, err := udpConn("pod-a", "10.96.0.20:53")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if a, err := askUDP(c); err != nil || a.source != pods["pod-a"] {
			t.Fatalf("UDP to the ClusterIP: %+v, %v", a, err)
		}
	})
}

// A Service without endpoints refuses at once: TCP and UDP alike get
// "connection refused", never a timeout.
func TestNoEndpointsRejects(t *testing.T) {
	forModes(t, func(t *testing.T, mode string) {
		dp := dataplane(t, mode)
		apply(t, dp, model(svc("empty", "10.96.0.50", withNodePort(30500)), endpoints("empty")))
		for _, from := range []string{"pod-a", "", "client"} {
			addr := "10.96.0.50:80"
			if from == "client" {
				addr = nodeIP + ":30500"
			}
			_, err := dialTCP(from, addr)
			if !errors.Is(err, syscall.ECONNREFUSED) {
				t.Errorf("TCP from %q to %s: %v, want connection refused", from, addr, err)
			}
		}
		c, err := udpConn("pod-a", "10.96.0.50:53")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := askUDP(c); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("UDP to a Service without endpoints: %v, want connection refused", err)
		}
	})
}

// NodePort answers on the node's IP from outside (masqueraded: policy
// Cluster) and on localhost inside the node.
func TestNodePort(t *testing.T) {
	forModes(t, func(t *testing.T, mode string) {
		dp := dataplane(t, mode)
		apply(t, dp, model(svc("web", "10.96.0.30", withNodePort(30361)), endpoints("web", "pod-b", "pod-c")))
		spread(t, 5, "client", nodeIP+":30361", bridgeIP, "pod-b", "pod-c")
		spread(t, 5, "", "127.0.0.1:30361", bridgeIP, "pod-b", "pod-c")
		spread(t, 5, "", nodeIP+":30361", bridgeIP, "pod-b", "pod-c")
		spread(t, 5, "pod-a", nodeIP+":30361", bridgeIP, "pod-b", "pod-c")
	})
}

// A pod reaching its own Service and landing on itself is masqueraded, so
// the reply comes back through the node.
func TestHairpin(t *testing.T) {
	forModes(t, func(t *testing.T, mode string) {
		dp := dataplane(t, mode)
		apply(t, dp, model(svc("self", "10.96.0.60"), endpoints("self", "pod-b")))
		spread(t, 3, "pod-b", "10.96.0.60:80", bridgeIP, "pod-b")
	})
}

// externalTrafficPolicy Local keeps the client's IP and serves only local
// endpoints; the health-check port says how many.
func TestExternalLocal(t *testing.T) {
	forModes(t, func(t *testing.T, mode string) {
		dp := dataplane(t, mode)
		apply(t, dp, model(svc("lb", "10.96.0.40", withLoadBalancer("192.168.60.40", 32000)), endpoints("lb", "pod-b")))
		spread(t, 3, "client", "192.168.60.40:80", clientIP, "pod-b")
		// From a pod, an external address still works (short-circuited).
		spread(t, 3, "pod-a", "192.168.60.40:80", pods["pod-a"], "pod-b")
	})
}

// The Proxier's health-check server (one per healthCheckNodePort) is
// tested with the Proxier; here its answer format.
func checkHealth(t *testing.T, url string, wantCode, wantLocal int) {
	t.Helper()
	client := &http.Client{Timeout: ioTimeout}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := client.Get(url)
		var body struct {
			LocalEndpoints int `json:"localEndpoints"`
		}
		if err == nil {
			data, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			err = json.Unmarshal(data, &body)
			if err == nil && resp.StatusCode == wantCode && body.LocalEndpoints == wantLocal {
				return
			}
			if err == nil {
				err = errors.New(resp.Status + " " + string(data))
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %v; want %d with localEndpoints %d", url, err, wantCode, wantLocal)
		}
		time.Sleep(20 * time.Millisecond) // polling a condition, with a deadline
	}
}

// One endpoint removed stops getting new connections at once; a restarted
// Dataplane adopts the table without flushing it, and an established
// connection keeps working across both.
func TestIncrementalAndRestart(t *testing.T) {
	forModes(t, func(t *testing.T, mode string) {
		dp := dataplane(t, mode)
		apply(t, dp, model(svc("kuard", "10.96.0.20"), endpoints("kuard", "pod-b", "pod-c")))
		// An established connection, to whichever endpoint.
		long, err := dialTCP("pod-a", "10.96.0.20:80")
		if err != nil {
			t.Fatal(err)
		}
		defer long.Close()
		first, err := ask(long)
		if err != nil {
			t.Fatal(err)
		}
		keep := first.server
		drop := map[string]string{"pod-b": "pod-c", "pod-c": "pod-b"}[keep]

		handle := tableHandle(t, mode)
		apply(t, dp, model(svc("kuard", "10.96.0.20"), endpoints("kuard", keep)))
		spread(t, 20, "pod-a", "10.96.0.20:80", pods["pod-a"], keep)
		_ = drop

		// Restart: a new Dataplane reads the kernel and rewrites in place.
		dp2, err := proxy.NewDataplane(config(mode))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := dp2.Apply(context.Background(), model(svc("kuard", "10.96.0.20"), endpoints("kuard", keep)), true); err != nil {
			t.Fatal(err)
		}
		if got := tableHandle(t, mode); got != handle {
			t.Errorf("table handle %q after restart, was %q: the table was recreated", got, handle)
		}
		if a, err := ask(long); err != nil || a.server != keep {
			t.Fatalf("established connection after restart: %+v, %v", a, err)
		}
		spread(t, 5, "pod-a", "10.96.0.20:80", pods["pod-a"], keep)
	})
}

// tableHandle identifies the proxy's nftables table (recreating it would
// change it); for iptables, the KUBE-SERVICES chain's handle in the nat
// table (iptables-nft keeps its rules in nftables too).
func tableHandle(t *testing.T, mode string) string {
	t.Helper()
	args := []string{"-a", "list", "table", "ip", "kite-proxy"}
	if mode == proxy.ModeIPTables {
		args = []string{"-a", "list", "chain", "ip", "nat", "KUBE-SERVICES"}
	}
	out, err := exec.Command("nft", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("nft %v: %v: %s", args, err, out)
	}
	m := regexp.MustCompile(`# handle (\d+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no handle in:\n%s", out)
	}
	return string(m[1])
}

// A UDP "connection" to a Service follows its conntrack entry; when its
// endpoint goes away the entry is deleted and the next datagram from the
// same socket reaches the new endpoint.
func TestUDPConntrackCleanup(t *testing.T) {
	forModes(t, func(t *testing.T, mode string) {
		dp := dataplane(t, mode)
		apply(t, dp, model(svc("dns", "10.96.0.10"), endpoints("dns", "pod-b")))
		c, err := udpConn("pod-a", "10.96.0.10:53")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if a, err := askUDP(c); err != nil || a.server != "pod-b" {
			t.Fatalf("first datagram: %+v, %v", a, err)
		}
		apply(t, dp, model(svc("dns", "10.96.0.10"), endpoints("dns", "pod-c")))
		if a, err := askUDP(c); err != nil || a.server != "pod-c" {
			t.Fatalf("after pod-b left: %+v, %v (want pod-c: the stale entry must be gone)", a, err)
		}
		// Scale to zero: refused, not sent to pod-c through an old entry.
		apply(t, dp, model(svc("dns", "10.96.0.10"), endpoints("dns")))
		if a, err := askUDP(c); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("after scaling to zero: %+v, %v; want connection refused", a, err)
		}
	})
}

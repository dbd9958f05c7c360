package kerneltest

import (
	"context"
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"kite/internal/proxy"
)

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond) // polling a condition, with a deadline
	}
}

// The Proxier end to end over a fake API: rules follow the objects, the
// health-check port answers the local endpoint count, metrics are
// registered.
func TestProxier(t *testing.T) {
	forModes(t, func(t *testing.T, mode string) {
		topology(t)
		resetKernel(t)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		lb := svc("lb", "10.96.0.40", withLoadBalancer("192.168.60.40", 32000))
		client := fake.NewClientset(lb, endpoints("lb", "pod-b", "pod-c"))
		reg := prometheus.NewRegistry()
		cfg := config(mode)
		cfg.Metrics = reg
		p, err := proxy.New(cfg, client)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- p.Run(ctx) }()

		eventually(t, "LB IP served, client IP kept", func() error {
			a, err := request("client", "192.168.60.40:80")
			if err == nil && a.source != clientIP {
				err = errors.New("source " + a.source)
			}
			return err
		})
		checkHealth(t, "http://"+nodeIP+":32000/", 200, 2)

		// One endpoint left: the health check follows; then none.
		slices := client.DiscoveryV1().EndpointSlices("default")
		if _, err := slices.Update(ctx, endpoints("lb", "pod-b"), metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		checkHealth(t, "http://"+nodeIP+":32000/", 200, 1)
		if _, err := slices.Update(ctx, endpoints("lb"), metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		checkHealth(t, "http://"+nodeIP+":32000/", 503, 0)
		eventually(t, "no endpoints: refused", func() error {
			_, err := dialTCP("pod-a", "10.96.0.40:80")
			if errors.Is(err, syscall.ECONNREFUSED) {
				return nil
			}
			return errors.New("not refused yet")
		})

		// Deleting the Service removes its rules: the ClusterIP is no
		// longer refused by us (the packet is routed to the client
		// namespace, which has no listener there and no route back into it).
		if err := client.CoreV1().Services("default").Delete(ctx, "lb", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "service deleted: rules gone", func() error {
			if p.LastSync().IsZero() {
				return errors.New("never synced")
			}
			for _, sp := range []string{"10.96.0.40"} {
				_, err := dialTCPTimeout("pod-a", sp+":80", 200*time.Millisecond)
				if errors.Is(err, syscall.ECONNREFUSED) {
					return errors.New("still refused")
				}
			}
			return nil
		})

		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		var partial uint64
		for _, mf := range mfs {
			names = append(names, mf.GetName())
			if mf.GetName() != "kite_proxy_sync_duration_seconds" {
				continue
			}
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "full" && l.GetValue() == "false" {
						partial += m.GetHistogram().GetSampleCount()
					}
				}
			}
		}
		// The changes above were applied by partial syncs (only the
		// changed Service looked at), and the checks above saw their rules.
		if partial == 0 {
			t.Errorf("no partial sync recorded: every change was a full sync")
		}
		for _, want := range []string{"kite_proxy_sync_duration_seconds", "kite_proxy_rules", "kite_proxy_last_sync_timestamp_seconds"} {
			if !strings.Contains(strings.Join(names, " "), want) {
				t.Errorf("metric %s missing from %v", want, names)
			}
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run: %v", err)
		}
	})
}

package endpointslice

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"kite/internal/controller/internal/ctrltest"
	"kite/internal/testutil/apitest"
)

// BenchmarkReadyToSlice measures the time from a pod's Ready change (just
// before the status write) to a watcher seeing the EndpointSlice carry it:
// API write, pod watch, controller sync, slice write, slice watch. It
// reports p50 and p99 in milliseconds over 200 Ready flips per iteration.
//
//	go test -run '^$' -bench ReadyToSlice ./internal/controller/endpointslice
func BenchmarkReadyToSlice(b *testing.B) {
	client := start(b, Config{})
	createService(b, client, intstr.FromInt32(8080), nil)
	createPods(b, client, 0, 10, 8080)

	// The watcher: signals when kuard-0's readiness in a slice changes.
	seen := make(chan bool, 16)
	f := informers.NewSharedInformerFactory(client, 0)
	last := -1
	var mu sync.Mutex
	onSlice := func(obj any) {
		s := obj.(*discoveryv1.EndpointSlice)
		if ep := endpointOf(s, "kuard-0"); ep != nil {
			mu.Lock()
			ready := 0
			if *ep.Conditions.Ready {
				ready = 1
			}
			if ready != last {
				last = ready
				seen <- ready == 1
			}
			mu.Unlock()
		}
	}
	if _, err := f.Discovery().V1().EndpointSlices().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: onSlice, UpdateFunc: func(_, cur any) { onSlice(cur) },
	}); err != nil {
		b.Fatal(err)
	}
	f.Start(b.Context().Done())
	b.Cleanup(f.Shutdown)
	waitSeen := func(want bool) {
		timeout := time.After(10 * time.Second)
		for {
			select {
			case got := <-seen:
				if got == want {
					return
				}
			case <-timeout:
				b.Fatalf("slice never showed kuard-0 ready=%v", want)
			}
		}
	}
	waitSeen(true)

	// A fixed number of flips per iteration, so that `-benchtime 1x` (as
	// make bench runs it) still gives a p99 over many samples.
	const flips = 200
	ctx := context.Background()
	latencies := make([]time.Duration, 0, b.N*flips)
	ready := true
	b.ResetTimer()
	for range b.N * flips {
		ready = !ready
		t0 := time.Now()
		if _, err := ctrltest.SetRunningCtx(ctx, client, "default", "kuard-0", podIP(0), ready); err != nil {
			b.Fatal(err)
		}
		waitSeen(ready)
		latencies = append(latencies, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(latencies)
	pct := func(p float64) float64 {
		return float64(latencies[min(len(latencies)-1, int(float64(len(latencies))*p))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkReconcile1000Services measures a full reconcile: 1,000 Services
// of 10 ready pods each exist, no slices do; the time until a controller
// that starts from nothing has written every Service's slice with its ten
// endpoints.
//
//	go test -run '^$' -bench Reconcile1000 -benchtime 1x -timeout 20m ./internal/controller/endpointslice
func BenchmarkReconcile1000Services(b *testing.B) {
	const services, podsPer = 1000, 10
	srv := apitest.Start(b, apitest.Options{})
	client := srv.Client
	ctrltest.Node(b, client, "node-0", "zone-a")
	ctrltest.Node(b, client, "node-1", "")
	setupStart := time.Now()
	parallel(b, services, func(i int) error {
		name := fmt.Sprintf("svc-%04d", i)
		_, err := client.CoreV1().Services("default").Create(context.Background(), &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
			Spec: corev1.ServiceSpec{Selector: map[string]string{"app": name},
				Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080), Protocol: corev1.ProtocolTCP}}},
		}, metav1.CreateOptions{})
		return err
	})
	parallel(b, services*podsPer, func(i int) error {
		name := fmt.Sprintf("pod-%05d", i)
		_, err := client.CoreV1().Pods("default").Create(context.Background(), &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: map[string]string{"app": fmt.Sprintf("svc-%04d", i/podsPer)}},
			Spec:       corev1.PodSpec{NodeName: fmt.Sprintf("node-%d", i%2), Containers: []corev1.Container{{Name: "app", Image: "kuard"}}},
		}, metav1.CreateOptions{})
		if err != nil {
			return err
		}
		_, err = ctrltest.SetRunningCtx(context.Background(), client, "default", name, fmt.Sprintf("10.%d.%d.%d", 100+i/65536, i/256%256, i%256), true)
		return err
	})
	b.Logf("setup: %d services, %d pods in %v", services, services*podsPer, time.Since(setupStart).Round(time.Millisecond))

	for range b.N {
		b.StopTimer()
		if err := client.DiscoveryV1().EndpointSlices("default").DeleteCollection(context.Background(), metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
			b.Fatal(err)
		}
		done := watchComplete(b, client, services, podsPer)
		ctx, cancel := context.WithCancel(context.Background())
		f := informers.NewSharedInformerFactory(client, 0)
		c, err := New(Config{Client: client, Informers: f})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		t0 := time.Now()
		go func() { _ = c.Run(ctx) }()
		select {
		case <-done:
		case <-time.After(5 * time.Minute):
			b.Fatal("reconcile did not finish within 5 minutes")
		}
		b.ReportMetric(time.Since(t0).Seconds(), "reconcile-s")
		b.StopTimer()
		cancel()
		f.Shutdown()
	}
	b.ReportMetric(0, "ns/op")
}

// watchComplete closes the returned channel once every one of n services
// has a slice holding podsPer ready endpoints.
func watchComplete(b *testing.B, client kubernetes.Interface, n, podsPer int) <-chan struct{} {
	done := make(chan struct{})
	f := informers.NewSharedInformerFactory(client, 0)
	var mu sync.Mutex
	complete := map[string]bool{}
	var closed atomic.Bool
	check := func(obj any) {
		s := obj.(*discoveryv1.EndpointSlice)
		readyCount := 0
		for _, ep := range s.Endpoints {
			if *ep.Conditions.Ready {
				readyCount++
			}
		}
		mu.Lock()
		defer mu.Unlock()
		if readyCount == podsPer {
			complete[s.Labels[discoveryv1.LabelServiceName]] = true
		}
		if len(complete) == n && closed.CompareAndSwap(false, true) {
			close(done)
		}
	}
	if _, err := f.Discovery().V1().EndpointSlices().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: check, UpdateFunc: func(_, cur any) { check(cur) },
	}); err != nil {
		b.Fatal(err)
	}
	stop := make(chan struct{})
	f.Start(stop)
	f.WaitForCacheSync(stop)
	b.Cleanup(func() { close(stop); f.Shutdown() })
	return done
}

// parallel runs fn(0..n-1) on 8 goroutines, failing on the first error.
func parallel(b *testing.B, n int, fn func(int) error) {
	b.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := fn(i); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
}

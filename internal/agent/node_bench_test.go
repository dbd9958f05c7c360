package agent

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"kite/internal/testutil/apitest"
)

// BenchmarkPodCreateToReady measures, on one node, the time from a pod's
// creation to its Ready condition (busybox image already local, no
// probes), one pod after another, and reports p50 and p99 over 50 pods.
//
//	go test ./internal/agent/ -run XXX -bench PodCreateToReady -benchtime 1x
func BenchmarkPodCreateToReady(b *testing.B) {
	api := apitest.Start(b, apitest.Options{})
	node := newTestNode(b, api)
	ctx := context.Background()
	pods := api.Client.CoreV1().Pods("default")
	// Warm up: built-in images, bridge.
	node.createPod("warm", "sleep 1000")
	node.waitPod("warm", "Ready", podReady)
	const n = 50
	b.ResetTimer()
	for range b.N {
		var lat []time.Duration
		for i := range n {
			name := fmt.Sprintf("p%d", i)
			w, err := pods.Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + name})
			if err != nil {
				b.Fatal(err)
			}
			start := time.Now()
			node.createPod(name, "sleep 1000")
			for ev := range w.ResultChan() {
				if p, ok := ev.Object.(*corev1.Pod); ok && ev.Type != watch.Deleted && podReady(p) {
					break
				}
			}
			lat = append(lat, time.Since(start))
			w.Stop()
		}
		slices.Sort(lat)
		b.ReportMetric(float64(lat[n/2].Milliseconds()), "p50-ms")
		b.ReportMetric(float64(lat[n*99/100].Milliseconds()), "p99-ms")
		b.StopTimer()
		for i := range n {
			pods.Delete(ctx, fmt.Sprintf("p%d", i), metav1.DeleteOptions{})
		}
		b.StartTimer()
	}
}

package lb

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"kite/internal/testutil"
)

// BenchmarkForwarding compares, side by side in one run, a request (TCP
// connect, read the node's name, close) through the LB's ingress address
// with one straight to a node's NodePort, from the client namespace of
// the kernel test's topology. It reports each one's time per request and
// the ratio of their rates (lb/direct; the goal is ≥ 0.9), and the time
// from the Service's creation to the first answer through the LB.
//
//	go test -run '^$' -bench Forwarding ./internal/lb/
func BenchmarkForwarding(b *testing.B) {
	if !testutil.InNetns() {
		b.Skip("needs the private namespace of testutil.MainInNetns")
	}
	// The benchmark function runs more than once (b.N = 1 first); the
	// namespaces, servers and LB are made once, on the first run.
	benchOnce.Do(func() { benchSetup(b) })
	if benchErr != "" {
		b.Fatal(benchErr)
	}
	c := benchClient
	direct := nodeIPs["n1"] + ":30080"
	var tLB, tDirect time.Duration
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		if _, err := c.get(direct); err != nil {
			b.Fatal(err)
		}
		mid := time.Now()
		if _, err := c.get(ingressIP + ":80"); err != nil {
			b.Fatal(err)
		}
		tDirect += mid.Sub(start)
		tLB += time.Since(mid)
	}
	b.StopTimer()
	b.ReportMetric(float64(tDirect.Nanoseconds())/float64(b.N), "direct-ns/req")
	b.ReportMetric(float64(tLB.Nanoseconds())/float64(b.N), "lb-ns/req")
	b.ReportMetric(float64(tDirect)/float64(tLB), "lb/direct-rate")
	b.ReportMetric(float64(benchFirstAnswer.Microseconds()), "µs-to-first-answer")
}

// The benchmark's fixture, made once per test process.
var (
	benchOnce        sync.Once
	benchErr         string
	benchClient      client
	benchFirstAnswer time.Duration
)

// benchSetup builds the topology, starts the node servers and an LB, and
// creates the Service; they live until the process ends (its namespace
// with them).
func benchSetup(b *testing.B) {
	defer func() {
		if b.Failed() {
			benchErr = "setup failed in an earlier run"
		}
	}()
	topology(b)
	for n := range nodeIPs {
		l, err := listenIn(n)
		if err != nil {
			b.Fatal(err)
		}
		go answer(l, n)
	}
	cs := fake.NewClientset(k8sNode("n1", nodeIPs["n1"]), k8sNode("n2", nodeIPs["n2"]), k8sNode("n3", nodeIPs["n3"]))
	l, err := New(Config{Interface: "eth0"}, cs)
	if err != nil {
		b.Fatal(err)
	}
	go l.Run(context.Background())
	n, err := ns.GetNS("/run/netns/client")
	if err != nil {
		b.Fatal(err)
	}
	c := client{ns: n}
	created := time.Now()
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer,
			Ports: []corev1.ServicePort{{Port: 80, Protocol: corev1.ProtocolTCP, NodePort: nodePort}}},
		Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: ingressIP}}}}}
	if _, err := cs.CoreV1().Services("default").Create(context.Background(), svc, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	// The address appears after the rules: wait for it, then for a first
	// answer (an earlier attempt would wait for ARP).
	waitFor(b, 10*time.Second, "the ingress address", func() bool { return hasAddr(b, ingressIP) })
	waitFor(b, 10*time.Second, "a first answer", func() bool {
		_, err := c.get(ingressIP + ":80")
		return err == nil
	})
	benchFirstAnswer = time.Since(created)
	benchClient = c
}

func hasAddr(t testing.TB, ip string) bool {
	return len(run(t, "ip", "-4", "-o", "addr", "show", "to", ip+"/32")) > 0
}

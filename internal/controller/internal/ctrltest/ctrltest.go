// Package ctrltest helps the controllers' tests play the parts of the
// cluster that do not exist there: it creates nodes, and pods already bound
// to them, and sets pod status (IP, phase, Ready) as an agent would.
// Tests run against a real API server (kite/internal/testutil/apitest).
package ctrltest

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
)

// Conventions: pod IPs are 10.244.<node>.<n>, nodes are "node-<i>". No
// test sends traffic to them; they are only data.

// Node creates a Ready node, with a zone label if zone is not empty.
func Node(t testing.TB, client kubernetes.Interface, name, zone string) *corev1.Node {
	t.Helper()
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/hostname": name}}}
	if zone != "" {
		n.Labels[corev1.LabelTopologyZone] = zone
	}
	n, err := client.CoreV1().Nodes().Create(context.Background(), n, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create node %s: %v", name, err)
	}
	return n
}

// PodSpec describes a test pod.
type PodSpec struct {
	Namespace, Name, Node string
	Labels                map[string]string
	// Ports are container ports, by name (may be empty) → number.
	Ports []corev1.ContainerPort
	// Hostname and Subdomain as in the pod spec.
	Hostname, Subdomain string
	OwnerReferences     []metav1.OwnerReference
	Finalizers          []string
}

// Pod creates a pod bound to its node (no status yet).
func Pod(t testing.TB, client kubernetes.Interface, s PodSpec) *corev1.Pod {
	t.Helper()
	ns := s.Namespace
	if ns == "" {
		ns = "default"
	}
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: s.Name, Labels: s.Labels,
			OwnerReferences: s.OwnerReferences, Finalizers: s.Finalizers},
		Spec: corev1.PodSpec{
			NodeName: s.Node, Hostname: s.Hostname, Subdomain: s.Subdomain,
			Containers: []corev1.Container{{Name: "app", Image: "gcr.io/kuar-demo/kuard-amd64:1", Ports: s.Ports}},
		},
	}
	p, err := client.CoreV1().Pods(ns).Create(context.Background(), p, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create pod %s/%s: %v", ns, s.Name, err)
	}
	return p
}

// SetRunning marks a pod Running with ip, Ready or not, as the node's agent
// would; it retries on conflicts.
func SetRunning(t testing.TB, client kubernetes.Interface, namespace, name, ip string, ready bool) *corev1.Pod {
	t.Helper()
	p, err := setRunning(context.Background(), client, namespace, name, ip, ready)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func setRunning(ctx context.Context, client kubernetes.Interface, namespace, name, ip string, ready bool) (*corev1.Pod, error) {
	var lastErr error
	for range 10 {
		p, err := client.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, fmt.Errorf("get pod %s/%s: %w", namespace, name, err)
		}
		status := corev1.ConditionFalse
		if ready {
			status = corev1.ConditionTrue
		}
		now := metav1.NewTime(time.Now())
		p.Status.Phase = corev1.PodRunning
		p.Status.PodIP = ip
		p.Status.PodIPs = []corev1.PodIP{{IP: ip}}
		p.Status.HostIP = "192.168.0.1"
		cond := corev1.PodCondition{Type: corev1.PodReady, Status: status, LastTransitionTime: now}
		replaced := false
		for i := range p.Status.Conditions {
			if p.Status.Conditions[i].Type == corev1.PodReady {
				if p.Status.Conditions[i].Status == status {
					cond.LastTransitionTime = p.Status.Conditions[i].LastTransitionTime
				}
				p.Status.Conditions[i] = cond
				replaced = true
			}
		}
		if !replaced {
			p.Status.Conditions = append(p.Status.Conditions, cond)
		}
		p, err = client.CoreV1().Pods(namespace).UpdateStatus(ctx, p, metav1.UpdateOptions{})
		if err == nil {
			return p, nil
		}
		lastErr = err
	}
	return nil, fmt.Errorf("set status of pod %s/%s: %w", namespace, name, lastErr)
}

// SetRunningCtx is SetRunning for benchmarks that handle errors themselves.
func SetRunningCtx(ctx context.Context, client kubernetes.Interface, namespace, name, ip string, ready bool) (*corev1.Pod, error) {
	return setRunning(ctx, client, namespace, name, ip, ready)
}

// Informers returns a shared informer factory whose informers stop when the
// test ends. Start it after registering the controllers (their Run starts
// it too).
func Informers(t testing.TB, client kubernetes.Interface) informers.SharedInformerFactory {
	f := informers.NewSharedInformerFactory(client, 0)
	t.Cleanup(f.Shutdown)
	return f
}

// Run runs a controller's Run in the background until the test ends, and
// fails the test if Run returns an error before that.
func Run(t testing.TB, run func(context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil && ctx.Err() == nil {
				t.Errorf("controller: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("controller did not stop within 30s")
		}
	})
}

// SomeVersion reports whether some object of type T that w delivers
// within d satisfies cond: for a property some version of an object had,
// not necessarily the last. It returns false when d passes or w closes.
func SomeVersion[T runtime.Object](w watch.Interface, d time.Duration, cond func(T) bool) bool {
	deadline := time.After(d)
	for {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				return false
			}
			if obj, ok := ev.Object.(T); ok && cond(obj) {
				return true
			}
		case <-deadline:
			return false
		}
	}
}

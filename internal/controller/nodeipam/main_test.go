package nodeipam

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"

	"kite/internal/testutil"
	"kite/internal/testutil/apitest"
)

func TestMain(m *testing.M) { testutil.MainInNetns(m) }

const waitTime = 20 * time.Second

// startController runs a node IPAM controller with its own informers
// against client until the returned stop is called (or the test ends).
func startController(t *testing.T, client kubernetes.Interface, cfg Config) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	factory := informers.NewSharedInformerFactory(client, 0)
	broadcaster := record.NewBroadcaster()
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
	cfg.Client, cfg.Informers = client, factory
	cfg.Recorder = broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "cidrAllocator"})
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	factory.Start(ctx.Done())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil && ctx.Err() == nil {
			t.Errorf("Run: %v", err)
		}
		factory.Shutdown()
		broadcaster.Shutdown()
	}
	t.Cleanup(stop)
	return stop
}

func createNode(t *testing.T, client kubernetes.Interface, name string, podCIDR string) {
	t.Helper()
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if podCIDR != "" {
		n.Spec.PodCIDR = podCIDR
		n.Spec.PodCIDRs = []string{podCIDR}
	}
	if _, err := client.CoreV1().Nodes().Create(context.Background(), n, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// waitCIDR waits for the node to have a pod CIDR and returns it, checking
// that podCIDR and podCIDRs agree.
func waitCIDR(t *testing.T, client kubernetes.Interface, name string) string {
	t.Helper()
	var cidr string
	apitest.WaitFor(t, waitTime, "podCIDR of "+name, func() bool {
		n, err := client.CoreV1().Nodes().Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if n.Spec.PodCIDR == "" {
			return false
		}
		if len(n.Spec.PodCIDRs) != 1 || n.Spec.PodCIDRs[0] != n.Spec.PodCIDR {
			t.Fatalf("node %s: podCIDR %q, podCIDRs %q", name, n.Spec.PodCIDR, n.Spec.PodCIDRs)
		}
		cidr = n.Spec.PodCIDR
		return true
	})
	return cidr
}

// waitNodeEvent waits for an event about the node with the reason and
// returns its message.
func waitNodeEvent(t *testing.T, client kubernetes.Interface, node, reason string) string {
	t.Helper()
	var msg string
	sel := fields.Set{"involvedObject.name": node, "involvedObject.kind": "Node", "reason": reason}.AsSelector().String()
	apitest.WaitFor(t, waitTime, reason+" event for node "+node, func() bool {
		list, err := client.CoreV1().Events("").List(context.Background(), metav1.ListOptions{FieldSelector: sel})
		if err != nil {
			t.Fatal(err)
		}
		if len(list.Items) == 0 {
			return false
		}
		ev := list.Items[0]
		if ev.Type != corev1.EventTypeWarning {
			t.Errorf("%s event type %s, want Warning", reason, ev.Type)
		}
		msg = ev.Message
		return true
	})
	return msg
}

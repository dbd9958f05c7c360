package scheduler

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"

	"kite/internal/testutil"
	"kite/internal/testutil/apitest"
)

func TestMain(m *testing.M) { testutil.MainInNetns(m) }

// wait is how long the API tests wait for the scheduler to act.
const waitTime = 20 * time.Second

// harness is a real API server with the scheduler running against it.
type harness struct {
	t      *testing.T
	ctx    context.Context
	client kubernetes.Interface
}

// startScheduler starts an API server and a scheduler, both stopped when
// the test ends.
func startScheduler(t *testing.T, cfg Config) *harness {
	t.Helper()
	api := apitest.Start(t, apitest.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	factory := informers.NewSharedInformerFactory(api.Client, 0)
	broadcaster := record.NewBroadcaster()
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: api.Client.CoreV1().Events("")})
	cfg.Client, cfg.Informers = api.Client, factory
	cfg.Recorder = broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "default-scheduler"})
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	factory.Start(ctx.Done())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && ctx.Err() == nil {
			t.Errorf("Run: %v", err)
		}
		factory.Shutdown()
		broadcaster.Shutdown()
	})
	return &harness{t: t, ctx: ctx, client: api.Client}
}

// createNode creates n and then writes its status, as an agent does.
func (h *harness) createNode(n *corev1.Node) {
	h.t.Helper()
	status := n.Status
	created, err := h.client.CoreV1().Nodes().Create(h.ctx, n, metav1.CreateOptions{})
	if err != nil {
		h.t.Fatal(err)
	}
	created.Status = status
	if _, err := h.client.CoreV1().Nodes().UpdateStatus(h.ctx, created, metav1.UpdateOptions{}); err != nil {
		h.t.Fatal(err)
	}
}

// setReady sets the node's Ready condition.
func (h *harness) setReady(name string, status corev1.ConditionStatus) {
	h.t.Helper()
	n, err := h.client.CoreV1().Nodes().Get(h.ctx, name, metav1.GetOptions{})
	if err != nil {
		h.t.Fatal(err)
	}
	for i := range n.Status.Conditions {
		if n.Status.Conditions[i].Type == corev1.NodeReady {
			n.Status.Conditions[i].Status = status
		}
	}
	if _, err := h.client.CoreV1().Nodes().UpdateStatus(h.ctx, n, metav1.UpdateOptions{}); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) createPod(p *corev1.Pod) *corev1.Pod {
	h.t.Helper()
	p = p.DeepCopy()
	p.UID = ""
	out, err := h.client.CoreV1().Pods(p.Namespace).Create(h.ctx, p, metav1.CreateOptions{})
	if err != nil {
		h.t.Fatal(err)
	}
	return out
}

func (h *harness) getPod(name string) *corev1.Pod {
	h.t.Helper()
	p, err := h.client.CoreV1().Pods("default").Get(h.ctx, name, metav1.GetOptions{})
	if err != nil {
		h.t.Fatal(err)
	}
	return p
}

// waitBound waits for the pod to be bound and returns its node.
func (h *harness) waitBound(name string) string {
	h.t.Helper()
	var node string
	apitest.WaitFor(h.t, waitTime, "pod "+name+" bound", func() bool {
		node = h.getPod(name).Spec.NodeName
		return node != ""
	})
	return node
}

// waitUnschedulable waits for PodScheduled=False/Unschedulable on the pod
// and returns its message.
func (h *harness) waitUnschedulable(name string) string {
	h.t.Helper()
	var msg string
	apitest.WaitFor(h.t, waitTime, "pod "+name+" Unschedulable", func() bool {
		c := podCondition(h.getPod(name), corev1.PodScheduled)
		if c == nil || c.Status != corev1.ConditionFalse || c.Reason != corev1.PodReasonUnschedulable {
			return false
		}
		msg = c.Message
		return true
	})
	return msg
}

// events lists the events about a pod with the given reason.
func (h *harness) events(pod, reason string) []corev1.Event {
	h.t.Helper()
	sel := fields.Set{"involvedObject.name": pod, "reason": reason}.AsSelector().String()
	list, err := h.client.CoreV1().Events("default").List(h.ctx, metav1.ListOptions{FieldSelector: sel})
	if err != nil {
		h.t.Fatal(err)
	}
	return list.Items
}

// waitEvent waits for an event about pod with reason and returns it.
func (h *harness) waitEvent(pod, reason string) corev1.Event {
	h.t.Helper()
	var ev corev1.Event
	apitest.WaitFor(h.t, waitTime, reason+" event for "+pod, func() bool {
		evs := h.events(pod, reason)
		if len(evs) == 0 {
			return false
		}
		ev = evs[len(evs)-1]
		return true
	})
	return ev
}

// waitFor polls cond until it holds, failing with what and last() after
// the deadline.
func waitFor(h *harness, what string, cond func() bool, last func() string) {
	h.t.Helper()
	err := wait.PollUntilContextTimeout(h.ctx, 20*time.Millisecond, waitTime, true, func(context.Context) (bool, error) { return cond(), nil })
	if err != nil {
		h.t.Fatalf("timed out waiting for %s; last seen: %s", what, last())
	}
}

package nodelifecycle

import (
	"context"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/retry"

	"kite/internal/testutil"
	"kite/internal/testutil/apitest"
)

func TestMain(m *testing.M) { testutil.MainInNetns(m) }

const waitTime = 20 * time.Second

// Short periods for the API tests.
const (
	testGrace      = time.Second
	testMonitor    = 100 * time.Millisecond
	testToleration = 2 // seconds
	renewEvery     = 100 * time.Millisecond
)

// harness is a real API server with the controller running against it;
// the test plays the nodes' agents.
type harness struct {
	t      *testing.T
	ctx    context.Context
	client kubernetes.Interface
}

func startController(t *testing.T) *harness {
	t.Helper()
	api := apitest.Start(t, apitest.Options{DefaultTolerationSeconds: testToleration})
	h := &harness{t: t, ctx: t.Context(), client: api.Client}
	h.runController()
	return h
}

// runController starts a controller with its own informers; it stops when
// the returned function is called or the test ends.
func (h *harness) runController() (stop func()) {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	factory := informers.NewSharedInformerFactory(h.client, 0)
	broadcaster := record.NewBroadcaster()
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: h.client.CoreV1().Events("")})
	c, err := New(Config{
		Client: h.client, Informers: factory,
		Recorder:    broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "node-controller"}),
		GracePeriod: testGrace, MonitorPeriod: testMonitor,
		NotReadyTolerationSeconds: testToleration, UnreachableTolerationSeconds: testToleration,
	})
	if err != nil {
		h.t.Fatal(err)
	}
	factory.Start(ctx.Done())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil && ctx.Err() == nil {
				h.t.Errorf("Run: %v", err)
			}
			factory.Shutdown()
			broadcaster.Shutdown()
		})
	}
	h.t.Cleanup(stop)
	return stop
}

// agent plays a node's agent: it registers the node, posts Ready, and
// renews the node's Lease until stopped.
type agent struct {
	h    *harness
	node string
	stop chan struct{}
	done chan struct{}
}

// startAgent registers the node (if new), posts status Ready, and starts
// renewing its Lease.
func (h *harness) startAgent(node string) *agent {
	h.t.Helper()
	_, err := h.client.CoreV1().Nodes().Create(h.ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		h.t.Fatal(err)
	}
	h.postStatus(node, corev1.ConditionTrue)
	a := &agent{h: h, node: node, stop: make(chan struct{}), done: make(chan struct{})}
	a.renew()
	go a.loop()
	h.t.Cleanup(a.Stop)
	return a
}

func (a *agent) loop() {
	defer close(a.done)
	t := time.NewTicker(renewEvery)
	defer t.Stop()
	for {
		select {
		case <-a.stop:
			return
		case <-t.C:
			a.renew()
		}
	}
}

// renew creates or renews the node's Lease.
func (a *agent) renew() {
	leases := a.h.client.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	now := metav1.NewMicroTime(time.Now())
	l, err := leases.Get(context.Background(), a.node, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = leases.Create(context.Background(), &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: a.node, Namespace: corev1.NamespaceNodeLease},
			Spec:       coordinationv1.LeaseSpec{HolderIdentity: &a.node, LeaseDurationSeconds: ptr(int32(40)), RenewTime: &now},
		}, metav1.CreateOptions{})
	} else if err == nil {
		l.Spec.RenewTime = &now
		_, err = leases.Update(context.Background(), l, metav1.UpdateOptions{})
	}
	if err != nil && a.h.ctx.Err() == nil {
		a.h.t.Errorf("renew lease %s: %v", a.node, err)
	}
}

// Stop stops renewing (idempotent).
func (a *agent) Stop() {
	select {
	case <-a.stop:
	default:
		close(a.stop)
	}
	<-a.done
}

// postStatus posts the node's conditions as an agent does: Ready as
// given, no pressure, heartbeat now.
func (h *harness) postStatus(node string, ready corev1.ConditionStatus) {
	h.t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		n, err := h.client.CoreV1().Nodes().Get(h.ctx, node, metav1.GetOptions{})
		if err != nil {
			return err
		}
		now := metav1.Now()
		cond := func(t corev1.NodeConditionType, s corev1.ConditionStatus, reason string) corev1.NodeCondition {
			return corev1.NodeCondition{Type: t, Status: s, Reason: reason, LastHeartbeatTime: now, LastTransitionTime: now}
		}
		readyReason := "KubeletReady"
		if ready != corev1.ConditionTrue {
			readyReason = "KubeletNotReady"
		}
		n.Status.Conditions = []corev1.NodeCondition{
			cond(corev1.NodeMemoryPressure, corev1.ConditionFalse, "KubeletHasSufficientMemory"),
			cond(corev1.NodeDiskPressure, corev1.ConditionFalse, "KubeletHasNoDiskPressure"),
			cond(corev1.NodePIDPressure, corev1.ConditionFalse, "KubeletHasSufficientPID"),
			cond(corev1.NodeReady, ready, readyReason),
		}
		n.Status.Allocatable = corev1.ResourceList{corev1.ResourcePods: resource.MustParse("110")}
		_, err = h.client.CoreV1().Nodes().UpdateStatus(h.ctx, n, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		h.t.Fatal(err)
	}
}

// runPod creates a Running, Ready pod bound to node, as the scheduler and
// the agent would have made it.
func (h *harness) runPod(name, node string, tolerations ...corev1.Toleration) {
	h.t.Helper()
	p, err := h.client.CoreV1().Pods("default").Create(h.ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: corev1.PodSpec{NodeName: node, Tolerations: tolerations,
			Containers: []corev1.Container{{Name: "kuard", Image: "gcr.io/kuar-demo/kuard-amd64:1"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		h.t.Fatal(err)
	}
	now := metav1.Now()
	p.Status.Phase = corev1.PodRunning
	p.Status.PodIP = "10.244.1.10"
	for _, t := range []corev1.PodConditionType{corev1.PodScheduled, corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady} {
		p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{Type: t, Status: corev1.ConditionTrue, LastTransitionTime: now})
	}
	if _, err := h.client.CoreV1().Pods("default").UpdateStatus(h.ctx, p, metav1.UpdateOptions{}); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) node(name string) *corev1.Node {
	h.t.Helper()
	n, err := h.client.CoreV1().Nodes().Get(h.ctx, name, metav1.GetOptions{})
	if err != nil {
		h.t.Fatal(err)
	}
	return n
}

// pod returns the pod, or nil if it is gone.
func (h *harness) pod(name string) *corev1.Pod {
	h.t.Helper()
	p, err := h.client.CoreV1().Pods("default").Get(h.ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		h.t.Fatal(err)
	}
	return p
}

// podCondition is the status of the pod's condition of type t, "" if
// none.
func podCondition(p *corev1.Pod, t corev1.PodConditionType) corev1.ConditionStatus {
	for _, c := range p.Status.Conditions {
		if c.Type == t {
			return c.Status
		}
	}
	return ""
}

// evicted reports whether the pod is gone or being deleted.
func (h *harness) evicted(name string) bool {
	p := h.pod(name)
	return p == nil || p.DeletionTimestamp != nil
}

// hasTaint returns the node's taint with key and effect, or nil.
func hasTaint(n *corev1.Node, key string, effect corev1.TaintEffect) *corev1.Taint {
	for i := range n.Spec.Taints {
		if n.Spec.Taints[i].Key == key && n.Spec.Taints[i].Effect == effect {
			return &n.Spec.Taints[i]
		}
	}
	return nil
}

// waitEvent waits for an event about the named object with the reason.
func (h *harness) waitEvent(name, reason string) corev1.Event {
	h.t.Helper()
	var ev corev1.Event
	sel := fields.Set{"involvedObject.name": name, "reason": reason}.AsSelector().String()
	apitest.WaitFor(h.t, waitTime, reason+" event for "+name, func() bool {
		list, err := h.client.CoreV1().Events("").List(h.ctx, metav1.ListOptions{FieldSelector: sel})
		if err != nil {
			h.t.Fatal(err)
		}
		if len(list.Items) == 0 {
			return false
		}
		ev = list.Items[0]
		return true
	})
	return ev
}

// consistently checks cond every 20 ms for d, failing the test if it ever
// does not hold.
func consistently(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for time.Now().Before(deadline) {
		if !cond() {
			t.Fatalf("%s stopped holding", what)
		}
		<-tick.C
	}
}

func ptr[T any](v T) *T { return &v }

package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/retry"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"
)

// There is no kite agent in this tier: the test plays the nodes. A
// fakeNode is what a kubelet shows the control plane, and nothing more:
//   - the Node's status (addresses, capacity, allocatable, Ready=True),
//     posted once through the status subresource;
//   - heartbeats: its Lease in kube-node-lease renewed every
//     leaseRenewInterval, as the kubelet does;
//   - once startPods is called, the pods bound to it: reported Running with
//     an address from the node's spec.podCIDR (which node IPAM gave it) and
//     Ready unless the test made a pod fail its readiness probe
//     (setReady); a terminating pod is deleted at once, as the kubelet does
//     when its containers have stopped.
//
// stop silences the node as a crashed machine would: no more heartbeats,
// no more pod updates.

const (
	// leaseRenewInterval is how often a fakeNode renews its Lease (the
	// kubelet: every 10 s for a 40 s lease; faster here so short grace
	// periods in tests never race it).
	leaseRenewInterval = time.Second
	// leaseDurationSeconds is the kubelet's default.
	leaseDurationSeconds = 40
	// nodeLeaseNamespace holds the nodes' heartbeat Leases.
	nodeLeaseNamespace = "kube-node-lease"
)

// adminClient returns a client-go clientset with the server's admin
// kubeconfig, unthrottled (the test's fake kubelets write a lot at once).
func adminClient(t *testing.T, s *server) kubernetes.Interface {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", s.kubeconfig())
	if err != nil {
		t.Fatalf("load %s: %v", s.kubeconfig(), err)
	}
	cfg.QPS, cfg.Burst = -1, 0
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatalf("client for %s: %v", s.addr, err)
	}
	return c
}

// fakeNode plays one node's kubelet. Its goroutines end when the test
// does (or at stop), before the server is stopped.
type fakeNode struct {
	name   string
	ip     string // InternalIP, in 192.0.2.0/24: data only
	client kubernetes.Interface

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	factory informers.SharedInformerFactory
	pods    cache.SharedIndexInformer
	queue   workqueue.TypedRateLimitingInterface[string]

	mu       sync.Mutex
	running  bool         // startPods was called
	podCIDR  netip.Prefix // set by startPods
	next     netip.Addr   // next pod address to hand out
	ips      map[types.UID]netip.Addr
	notReady map[string]bool // namespace/name of pods failing their readiness probe
	lastErr  error           // last failed write, for failure messages
}

// startFakeNode registers status and heartbeats for the Node name, which
// must exist, and starts watching the pods bound to it. The Node becomes
// Ready at once.
func startFakeNode(t *testing.T, client kubernetes.Interface, name, ip string) *fakeNode {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	f := &fakeNode{
		name: name, ip: ip, client: client, ctx: ctx, cancel: cancel,
		queue:    workqueue.NewTypedRateLimitingQueue(workqueue.NewTypedItemExponentialFailureRateLimiter[string](10*time.Millisecond, time.Second)),
		ips:      map[types.UID]netip.Addr{},
		notReady: map[string]bool{},
	}
	t.Cleanup(f.stop)
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error { return f.postStatus(ctx) }); err != nil {
		t.Fatalf("node %s: post status: %v", name, err)
	}
	if err := f.renewLease(ctx); err != nil {
		t.Fatalf("node %s: create lease: %v", name, err)
	}

	// The kubelet watches only its own pods.
	f.factory = informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.FieldSelector = "spec.nodeName=" + name
	}))
	f.pods = f.factory.Core().V1().Pods().Informer()
	enqueue := func(obj any) {
		if key, err := cache.MetaNamespaceKeyFunc(obj); err == nil {
			f.queue.Add(key)
		}
	}
	f.pods.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj any) { enqueue(obj) },
	})
	f.factory.Start(ctx.Done())
	f.wg.Add(2)
	go func() { defer f.wg.Done(); f.heartbeat() }()
	go func() { defer f.wg.Done(); f.work() }()
	if !cache.WaitForCacheSync(ctx.Done(), f.pods.HasSynced) {
		t.Fatalf("node %s: pod cache did not sync", name)
	}
	return f
}

// stop silences the node: heartbeats and pod updates end. Idempotent.
func (f *fakeNode) stop() {
	f.cancel()
	f.queue.ShutDown()
	f.wg.Wait()
	f.factory.Shutdown()
}

// postStatus reports the node Ready, with its addresses and resources, as
// the kubelet's status update does.
func (f *fakeNode) postStatus(ctx context.Context) error {
	node, err := f.client.CoreV1().Nodes().Get(ctx, f.name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	now := metav1.Now()
	resources := corev1.ResourceList{
		corev1.ResourcePods:             resource.MustParse("110"),
		corev1.ResourceCPU:              resource.MustParse("2"),
		corev1.ResourceMemory:           resource.MustParse("4Gi"),
		corev1.ResourceEphemeralStorage: resource.MustParse("20Gi"),
	}
	cond := func(typ corev1.NodeConditionType, status corev1.ConditionStatus, reason, msg string) corev1.NodeCondition {
		return corev1.NodeCondition{Type: typ, Status: status, Reason: reason, Message: msg, LastHeartbeatTime: now, LastTransitionTime: now}
	}
	node.Status = corev1.NodeStatus{
		Capacity:    resources,
		Allocatable: resources,
		Phase:       node.Status.Phase,
		Conditions: []corev1.NodeCondition{
			cond(corev1.NodeMemoryPressure, corev1.ConditionFalse, "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
			cond(corev1.NodeDiskPressure, corev1.ConditionFalse, "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
			cond(corev1.NodePIDPressure, corev1.ConditionFalse, "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
			cond(corev1.NodeReady, corev1.ConditionTrue, "KubeletReady", "kubelet is posting ready status"),
		},
		Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: f.ip}, {Type: corev1.NodeHostName, Address: f.name}},
		NodeInfo: corev1.NodeSystemInfo{
			KubeletVersion: "v1.37.2", ContainerRuntimeVersion: "runc://1.1.5", OSImage: "Debian GNU/Linux 12 (bookworm)",
			KernelVersion: "6.18.0", OperatingSystem: "linux", Architecture: "amd64",
		},
	}
	_, err = f.client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{})
	return err
}

// heartbeat renews the node's Lease until the node stops.
func (f *fakeNode) heartbeat() {
	tick := time.NewTicker(leaseRenewInterval)
	defer tick.Stop()
	for {
		select {
		case <-f.ctx.Done():
			return
		case <-tick.C:
		}
		if err := f.renewLease(f.ctx); err != nil {
			f.noteErr(fmt.Errorf("renew lease: %w", err))
		}
	}
}

// renewLease creates or renews kube-node-lease/<node>, owned by the Node
// as the kubelet's is.
func (f *fakeNode) renewLease(ctx context.Context) error {
	leases := f.client.CoordinationV1().Leases(nodeLeaseNamespace)
	now := metav1.NewMicroTime(time.Now())
	lease, err := leases.Get(ctx, f.name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		node, err := f.client.CoreV1().Nodes().Get(ctx, f.name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		_, err = leases.Create(ctx, &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: f.name, OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID,
			}}},
			Spec: coordinationv1.LeaseSpec{
				HolderIdentity:       ptr.To(f.name),
				LeaseDurationSeconds: ptr.To[int32](leaseDurationSeconds),
				RenewTime:            &now,
			},
		}, metav1.CreateOptions{})
		return err
	}
	if err != nil {
		return err
	}
	lease.Spec.RenewTime = &now
	_, err = leases.Update(ctx, lease, metav1.UpdateOptions{})
	return err
}

// startPods makes the node run its pods from now on, with addresses from
// its spec.podCIDR, which must have been allocated.
func (f *fakeNode) startPods(t *testing.T) {
	t.Helper()
	node, err := f.client.CoreV1().Nodes().Get(f.ctx, f.name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("node %s: %v", f.name, err)
	}
	cidr, err := netip.ParsePrefix(node.Spec.PodCIDR)
	if err != nil {
		t.Fatalf("node %s has no usable spec.podCIDR %q: %v", f.name, node.Spec.PodCIDR, err)
	}
	f.mu.Lock()
	f.running, f.podCIDR = true, cidr
	// .1 is the bridge's gateway, as with kite's CNI and host-local.
	f.next = cidr.Addr().Next().Next()
	f.mu.Unlock()
	for _, key := range f.pods.GetStore().ListKeys() {
		f.queue.Add(key)
	}
}

// setReady makes the pod's readiness probe pass or fail from now on.
func (f *fakeNode) setReady(namespace, name string, ready bool) {
	key := namespace + "/" + name
	f.mu.Lock()
	if ready {
		delete(f.notReady, key)
	} else {
		f.notReady[key] = true
	}
	f.mu.Unlock()
	f.queue.Add(key)
}

func (f *fakeNode) noteErr(err error) {
	if f.ctx.Err() != nil {
		return
	}
	f.mu.Lock()
	f.lastErr = err
	f.mu.Unlock()
}

// work syncs one pod at a time until the node stops.
func (f *fakeNode) work() {
	for {
		key, quit := f.queue.Get()
		if quit {
			return
		}
		if err := f.syncPod(key); err != nil {
			f.noteErr(fmt.Errorf("pod %s: %w", key, err))
			f.queue.AddRateLimited(key)
		} else {
			f.queue.Forget(key)
		}
		f.queue.Done(key)
	}
}

// syncPod is the kubelet's pod worker, reduced to status: a terminating
// pod is deleted for good; a live one is reported Running, with its
// address, and Ready as its probe says.
func (f *fakeNode) syncPod(key string) error {
	f.mu.Lock()
	running := f.running
	f.mu.Unlock()
	if !running || f.ctx.Err() != nil {
		return nil
	}
	obj, exists, err := f.pods.GetStore().GetByKey(key)
	if err != nil || !exists {
		return err
	}
	pod := obj.(*corev1.Pod)
	pods := f.client.CoreV1().Pods(pod.Namespace)
	if pod.DeletionTimestamp != nil {
		err := pods.Delete(f.ctx, pod.Name, metav1.DeleteOptions{
			GracePeriodSeconds: ptr.To[int64](0),
			Preconditions:      &metav1.Preconditions{UID: &pod.UID},
		})
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			return nil
		}
		return err
	}
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return nil
	}
	want, changed, err := f.podStatus(pod)
	if err != nil || !changed {
		return err
	}
	updated := pod.DeepCopy()
	updated.Status = want
	_, err = pods.UpdateStatus(f.ctx, updated, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// podStatus returns the status the kubelet would report for pod, and
// whether it differs from what is stored.
func (f *fakeNode) podStatus(pod *corev1.Pod) (corev1.PodStatus, bool, error) {
	f.mu.Lock()
	ready := !f.notReady[pod.Namespace+"/"+pod.Name]
	ip, ok := f.ips[pod.UID]
	if !ok {
		if !f.podCIDR.Contains(f.next) {
			f.mu.Unlock()
			return corev1.PodStatus{}, false, errors.New("node " + f.name + ": pod CIDR " + f.podCIDR.String() + " is full")
		}
		ip, f.next = f.next, f.next.Next()
		f.ips[pod.UID] = ip
	}
	f.mu.Unlock()

	st := *pod.Status.DeepCopy()
	changed := st.Phase != corev1.PodRunning || st.PodIP != ip.String()
	now := metav1.Now()
	if st.StartTime == nil {
		st.StartTime = &now
	}
	st.Phase = corev1.PodRunning
	st.HostIP, st.HostIPs = f.ip, []corev1.HostIP{{IP: f.ip}}
	st.PodIP, st.PodIPs = ip.String(), []corev1.PodIP{{IP: ip.String()}}
	status := func(b bool) corev1.ConditionStatus {
		if b {
			return corev1.ConditionTrue
		}
		return corev1.ConditionFalse
	}
	for _, c := range []struct {
		typ    corev1.PodConditionType
		status corev1.ConditionStatus
	}{
		{corev1.PodReadyToStartContainers, corev1.ConditionTrue},
		{corev1.PodInitialized, corev1.ConditionTrue},
		{corev1.PodReady, status(ready)},
		{corev1.ContainersReady, status(ready)},
		{corev1.PodScheduled, corev1.ConditionTrue},
	} {
		changed = setPodCondition(&st, c.typ, c.status, now, pod) || changed
	}
	var containers []corev1.ContainerStatus
	for _, c := range pod.Spec.Containers {
		id := sha256.Sum256([]byte(string(pod.UID) + "/" + c.Name))
		started := st.StartTime
		containers = append(containers, corev1.ContainerStatus{
			Name: c.Name, Image: c.Image, ImageID: c.Image, ContainerID: "containerd://" + hex.EncodeToString(id[:]),
			Ready: ready, Started: ptr.To(true),
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: *started}},
		})
	}
	if len(containers) != len(st.ContainerStatuses) {
		changed = true
	} else {
		for i := range containers {
			if containers[i].Ready != st.ContainerStatuses[i].Ready || containers[i].Name != st.ContainerStatuses[i].Name {
				changed = true
			}
		}
	}
	st.ContainerStatuses = containers
	return st, changed, nil
}

// setPodCondition sets a condition's status, keeping its transition time
// if unchanged; it reports whether anything changed. Ready and
// ContainersReady False carry the kubelet's reason and message.
func setPodCondition(st *corev1.PodStatus, typ corev1.PodConditionType, status corev1.ConditionStatus, now metav1.Time, pod *corev1.Pod) bool {
	want := corev1.PodCondition{Type: typ, Status: status, LastTransitionTime: now}
	if status == corev1.ConditionFalse && (typ == corev1.PodReady || typ == corev1.ContainersReady) {
		var names []string
		for _, c := range pod.Spec.Containers {
			names = append(names, c.Name)
		}
		want.Reason, want.Message = "ContainersNotReady", fmt.Sprintf("containers with unready status: %v", names)
	}
	for i := range st.Conditions {
		c := &st.Conditions[i]
		if c.Type != typ {
			continue
		}
		if c.Status == status {
			return false
		}
		*c = want
		return true
	}
	st.Conditions = append(st.Conditions, want)
	return true
}

// err returns the last write that failed, if any (for failure messages).
func (f *fakeNode) err() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastErr
}

// cluster is a kite server with two nodes the test plays, a kubectl in a
// namespace of its own and a client-go client for what kubectl cannot
// see at once (every intermediate state of a rollout).
type cluster struct {
	s      *server
	k      *kubectl
	client kubernetes.Interface
	nodes  map[string]*fakeNode
}

// testNodes are the nodes a cluster registers (testdata/kubelet-nodes.yaml).
var testNodes = []struct{ name, ip string }{{"node-a", "192.0.2.11"}, {"node-b", "192.0.2.12"}}

// startCluster starts kite server with flags, creates namespace ns,
// registers the two nodes with kubectl apply and starts playing them. It
// returns once both are Ready and node IPAM has given them pod CIDRs; their
// pods are not run until startPods.
func startCluster(t *testing.T, v kubectlVersion, ns string, flags ...string) *cluster {
	t.Helper()
	s := startServer(t, flags...)
	c := &cluster{s: s, k: newKubectl(t, v, s, ns), client: adminClient(t, s), nodes: map[string]*fakeNode{}}
	wantLines(t, c.k.run(t, "create", "namespace", ns), "namespace/"+ns+" created")
	wantLines(t, c.k.run(t, "apply", "-f", "testdata/kubelet-nodes.yaml"), "node/node-a created", "node/node-b created")
	for _, n := range testNodes {
		c.nodes[n.name] = startFakeNode(t, c.client, n.name, n.ip)
	}
	waitFor(t, 20*time.Second, "nodes with pod CIDRs", func() error {
		for _, n := range testNodes {
			node, err := c.client.CoreV1().Nodes().Get(context.Background(), n.name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if node.Spec.PodCIDR == "" {
				return fmt.Errorf("node %s has no spec.podCIDR", n.name)
			}
		}
		return nil
	})
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range testNodes {
				if err := c.nodes[n.name].err(); err != nil {
					t.Logf("fake node %s: last error: %v", n.name, err)
				}
			}
		}
	})
	return c
}

// startPods makes every node run its pods.
func (c *cluster) startPods(t *testing.T) {
	t.Helper()
	for _, n := range testNodes {
		c.nodes[n.name].startPods(t)
	}
}

// pods lists the pods of the cluster's namespace matching selector;
// terminating ones only with terminating.
func (c *cluster) pods(t *testing.T, selector string, terminating bool) []corev1.Pod {
	t.Helper()
	list, err := c.client.CoreV1().Pods(c.k.ns).List(context.Background(), metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		t.Fatalf("list pods %s: %v", selector, err)
	}
	var out []corev1.Pod
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil || terminating {
			out = append(out, p)
		}
	}
	return out
}

// podReady reports the pod's Ready condition.
func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

package agent

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"

	"kite/internal/runtime"
)

// podManager runs the pods bound to the node: one worker per pod (by
// UID), woken by the pod informer, by the relister when the runtime's
// containers change, by probes, and by its own timer (back-off). The
// runtime's sandboxes and containers are the truth; what the manager
// keeps in memory is a cache of the last listing.
type podManager struct {
	cfg         Config
	client      kubernetes.Interface
	rt          runtime.Interface
	images      Images
	net         PodNetwork
	recorder    record.EventRecorder
	allocatable corev1.ResourceList
	now         func() time.Time

	// Set by run; read by workers.
	ctx         context.Context
	podIndexer  cache.Indexer
	svcLister   corelisters.ServiceLister
	ready       chan struct{} // closed once the runtime was listed (adoption)
	relistEvery time.Duration
	// gc collects unused images (nil: not on this store).
	gc *imageGC

	mu         sync.Mutex
	workers    map[types.UID]*podWorker
	sandboxes  map[types.UID]runtime.Sandbox
	containers map[types.UID][]runtime.ContainerStatus
	signature  map[types.UID]string
	wg         sync.WaitGroup
}

const uidIndex = "uid"

func newPodManager(cfg Config, client kubernetes.Interface, rt runtime.Interface, images Images, net PodNetwork,
	recorder record.EventRecorder, allocatable corev1.ResourceList) *podManager {
	return &podManager{
		cfg: cfg, client: client, rt: rt, images: images, net: net, recorder: recorder, allocatable: allocatable,
		now: time.Now, ready: make(chan struct{}), relistEvery: time.Second,
		workers: map[types.UID]*podWorker{}, sandboxes: map[types.UID]runtime.Sandbox{},
		containers: map[types.UID][]runtime.ContainerStatus{}, signature: map[types.UID]string{},
	}
}

// run watches the node's pods and the cluster's Services, adopts what
// the runtime holds, and relists the runtime every relistEvery until ctx
// ends. Pods keep running when it returns: their processes belong to the
// runtime's shims, and the next agent adopts them.
func (m *podManager) run(ctx context.Context) error {
	log := klog.FromContext(ctx).WithName("pods")
	m.ctx = klog.NewContext(ctx, log)
	byNode := informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", m.cfg.NodeName).String()
	})
	podFactory := informers.NewSharedInformerFactoryWithOptions(m.client, 0, byNode)
	podInformer := podFactory.Core().V1().Pods().Informer()
	if err := podInformer.AddIndexers(cache.Indexers{uidIndex: func(obj any) ([]string, error) {
		return []string{string(obj.(*corev1.Pod).UID)}, nil
	}}); err != nil {
		return err
	}
	m.podIndexer = podInformer.GetIndexer()
	if _, err := podInformer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { m.wake(obj) },
		UpdateFunc: func(_, obj any) { m.wake(obj) },
		DeleteFunc: func(obj any) { m.wake(obj) },
	}); err != nil {
		return err
	}
	svcFactory := informers.NewSharedInformerFactory(m.client, 0)
	svcInformer := svcFactory.Core().V1().Services()
	m.svcLister = svcInformer.Lister() // registers the informer with the factory
	podFactory.Start(ctx.Done())
	svcFactory.Start(ctx.Done())
	defer func() {
		m.wg.Wait()
		podFactory.Shutdown()
		svcFactory.Shutdown()
	}()
	if !cache.WaitForCacheSync(ctx.Done(), podInformer.HasSynced, svcInformer.Informer().HasSynced) {
		return nil
	}
	if m.gc != nil {
		m.every(ctx, m.cfg.ImageGCPeriod, func() {
			if _, err := m.gc.collect(m.ctx); err != nil && ctx.Err() == nil {
				log.Error(err, "image garbage collection")
			}
		})
	}
	m.every(ctx, m.cfg.LogMonitorPeriod, func() { m.rotateLogs(m.ctx) })
	t := time.NewTicker(m.relistEvery)
	defer t.Stop()
	for {
		if err := m.relist(ctx); err != nil {
			if ctx.Err() == nil {
				log.Error(err, "list the runtime's sandboxes and containers")
			}
		} else {
			select {
			case <-m.ready:
			default:
				log.V(1).Info("runtime listed, pod workers start", "sandboxes", len(m.sandboxes))
				close(m.ready)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// wake starts or wakes the worker of an informer object's pod.
func (m *podManager) wake(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	if pod, ok := obj.(*corev1.Pod); ok {
		m.worker(pod.UID).wake()
	}
}

// worker returns the pod's worker, starting it if need be.
func (m *podManager) worker(uid types.UID) *podWorker {
	m.mu.Lock()
	defer m.mu.Unlock()
	if w, ok := m.workers[uid]; ok {
		return w
	}
	w := newPodWorker(m, uid)
	m.workers[uid] = w
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		w.run(m.ctx)
	}()
	return w
}

// retire forgets a worker whose pod is gone and cleaned up.
func (m *podManager) retire(w *podWorker) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.workers[w.uid] == w {
		delete(m.workers, w.uid)
	}
}

// pod is the informer's pod with this UID, nil when there is none. The
// object is shared: never modify it.
func (m *podManager) pod(uid types.UID) *corev1.Pod {
	objs, err := m.podIndexer.ByIndex(uidIndex, string(uid))
	if err != nil || len(objs) == 0 {
		return nil
	}
	return objs[0].(*corev1.Pod)
}

// relist lists the runtime, wakes the workers whose containers changed,
// and starts workers for sandboxes and containers whose pod is gone
// (deleted while the agent was down), which clean them up.
func (m *podManager) relist(ctx context.Context) error {
	sbs, err := m.rt.ListSandboxes(ctx)
	if err != nil {
		return err
	}
	cs, err := m.rt.ListContainers(ctx)
	if err != nil {
		return err
	}
	sandboxes := map[types.UID]runtime.Sandbox{}
	for _, sb := range sbs {
		if uid := sb.Labels[labelPodUID]; uid != "" {
			sandboxes[types.UID(uid)] = sb
		}
	}
	containers := map[types.UID][]runtime.ContainerStatus{}
	for _, c := range cs {
		if uid := c.Labels[labelPodUID]; uid != "" {
			containers[types.UID(uid)] = append(containers[types.UID(uid)], c)
		}
	}
	var wake, orphans []types.UID
	m.mu.Lock()
	m.sandboxes, m.containers = sandboxes, containers
	seen := map[types.UID]bool{}
	for uid := range sandboxes {
		seen[uid] = true
	}
	for uid, list := range containers {
		seen[uid] = true
		if sig := signature(list); sig != m.signature[uid] {
			m.signature[uid] = sig
			wake = append(wake, uid)
		}
	}
	for uid := range m.signature {
		if _, ok := containers[uid]; !ok {
			delete(m.signature, uid)
			wake = append(wake, uid)
		}
	}
	for uid := range seen {
		if _, ok := m.workers[uid]; !ok && m.pod(uid) == nil {
			orphans = append(orphans, uid)
		}
	}
	for _, uid := range wake {
		if w, ok := m.workers[uid]; ok {
			w.wake()
		}
	}
	m.mu.Unlock()
	for _, uid := range orphans {
		klog.FromContext(ctx).V(1).Info("cleaning up a pod that no longer exists", "podUID", uid)
		m.worker(uid).wake()
	}
	return nil
}

// signature summarises a pod's containers: what a worker must react to.
func signature(list []runtime.ContainerStatus) string {
	parts := make([]string, 0, len(list))
	for _, c := range list {
		parts = append(parts, fmt.Sprintf("%s:%s:%d", c.ID, c.State, c.ExitCode))
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

// listed returns the last listing's sandbox and container IDs of a pod.
func (m *podManager) listed(uid types.UID) (*runtime.Sandbox, []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var sb *runtime.Sandbox
	if s, ok := m.sandboxes[uid]; ok {
		sb = &s
	}
	var ids []string
	for _, c := range m.containers[uid] {
		ids = append(ids, c.ID)
	}
	return sb, ids
}

// clusterDNS is the kube-dns Service's cluster IP, "" when there is none.
func (m *podManager) clusterDNS() string {
	svc, err := m.svcLister.Services(metav1.NamespaceSystem).Get("kube-dns")
	if err != nil || svc.Spec.ClusterIP == corev1.ClusterIPNone {
		return ""
	}
	return svc.Spec.ClusterIP
}

// nodeResolvConf is the node's resolver configuration.
func (m *podManager) nodeResolvConf() resolvConf {
	data, _ := os.ReadFile(m.cfg.ResolvConf)
	return parseResolvConf(data)
}

// The manager is the env builders' source: Services from the informer,
// ConfigMaps and Secrets read when a container starts.
func (m *podManager) services() ([]*corev1.Service, error) {
	return m.svcLister.List(labels.Everything())
}

func (m *podManager) configMap(ns, name string) (*corev1.ConfigMap, error) {
	return m.client.CoreV1().ConfigMaps(ns).Get(m.ctx, name, metav1.GetOptions{})
}

func (m *podManager) secret(ns, name string) (*corev1.Secret, error) {
	return m.client.CoreV1().Secrets(ns).Get(m.ctx, name, metav1.GetOptions{})
}

// event records an event on a pod.
func (m *podManager) event(pod *corev1.Pod, typ, reason, format string, args ...any) {
	if pod != nil && m.recorder != nil {
		m.recorder.Eventf(pod, typ, reason, format, args...)
	}
}

// every runs f every period until ctx ends, in a goroutine m.wg counts.
func (m *podManager) every(ctx context.Context, period time.Duration, f func()) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				f()
			}
		}
	}()
}

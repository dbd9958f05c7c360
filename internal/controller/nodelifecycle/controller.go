// Package nodelifecycle watches node heartbeats and acts when a node goes
// quiet or reports itself not ready, as upstream's node lifecycle and
// taint eviction controllers do.
//
// A node's heartbeat is its Lease in kube-node-lease (spec.renewTime) or
// its Ready condition's lastHeartbeatTime; the controller notes, on its own
// clock, when it last saw either change (health.go). A node silent for
// GracePeriod gets every agent condition Unknown ("Kubelet stopped posting
// node status."). The node's taints follow its conditions (taints.go):
// NoSchedule for not-ready, unreachable, pressure and cordon, and NoExecute
// not-ready/unreachable with timeAdded, unless no node at all is Ready
// (then the fault is more likely ours, and nothing is evicted). Pods on an
// unreachable node are marked Ready=False at once, so endpoints drop them,
// and every pod on a node with NoExecute taints is deleted when its
// tolerations run out (eviction.go) — a pod without its own toleration for
// not-ready/unreachable gets the admission default, 300 s.
//
// Everything but the heartbeat times is read from the caches on each sync,
// so a restarted controller converges to the same state; after a restart
// every node gets a fresh grace period, as upstream.
package nodelifecycle

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	coordinationinformers "k8s.io/client-go/informers/coordination/v1"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
)

// Controller keeps node conditions and taints in step with heartbeats and
// evicts pods from failed nodes.
type Controller struct {
	cfg      Config
	defaults defaultTolerations
	nodes    coreinformers.NodeInformer
	pods     coreinformers.PodInformer
	leases   coordinationinformers.LeaseInformer
	queue    workqueue.TypedRateLimitingInterface[string]

	mu sync.Mutex
	// health holds, per node, when its heartbeat last changed.
	health map[string]*nodeHealth
	// taintSeen holds when a NoExecute taint without timeAdded was first
	// seen, per node and taint key.
	taintSeen map[string]map[string]time.Time
	// evicting holds pods deleted whose deletion the cache may not show
	// yet, so they are not deleted (and announced) twice.
	evicting map[types.UID]time.Time
}

// New returns a controller with its informer handlers registered; start
// the informer factory, then Run.
func New(cfg Config) (*Controller, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Controller{
		cfg:      cfg,
		defaults: defaultTolerations{notReady: cfg.NotReadyTolerationSeconds, unreachable: cfg.UnreachableTolerationSeconds},
		nodes:    cfg.Informers.Core().V1().Nodes(),
		pods:     cfg.Informers.Core().V1().Pods(),
		leases:   cfg.Informers.Coordination().V1().Leases(),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[string](20*time.Millisecond, 10*time.Second),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "nodelifecycle"}),
		health:    map[string]*nodeHealth{},
		taintSeen: map[string]map[string]time.Time{},
		evicting:  map[types.UID]time.Time{},
	}
	if err := c.addHandlers(); err != nil {
		return nil, fmt.Errorf("nodelifecycle: %w", err)
	}
	return c, nil
}

func (c *Controller) addHandlers() error {
	enqueueNode := func(obj interface{}) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			c.queue.Add(key)
		}
	}
	if _, err := c.nodes.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueueNode,
		UpdateFunc: func(_, obj interface{}) { enqueueNode(obj) },
		DeleteFunc: enqueueNode,
	}); err != nil {
		return err
	}
	leaseChanged := func(obj interface{}) {
		if l, ok := obj.(metaObject); ok && l.GetNamespace() == corev1.NamespaceNodeLease {
			c.queue.Add(l.GetName())
		}
	}
	if _, err := c.leases.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    leaseChanged,
		UpdateFunc: func(_, obj interface{}) { leaseChanged(obj) },
	}); err != nil {
		return err
	}
	podChanged := func(obj interface{}) {
		if pod, ok := obj.(*corev1.Pod); ok && pod.Spec.NodeName != "" && c.nodeNeedsCare(pod.Spec.NodeName) {
			c.queue.Add(pod.Spec.NodeName)
		}
	}
	_, err := c.pods.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    podChanged,
		UpdateFunc: func(_, obj interface{}) { podChanged(obj) },
	})
	return err
}

// metaObject is what the lease handler needs of an object.
type metaObject interface {
	GetNamespace() string
	GetName() string
}

// nodeNeedsCare reports whether a pod change on the node matters here: the
// node is not Ready or has NoExecute taints.
func (c *Controller) nodeNeedsCare(name string) bool {
	node, err := c.nodes.Lister().Get(name)
	if err != nil {
		return false
	}
	if readyStatus(node) != corev1.ConditionTrue {
		return true
	}
	for _, t := range node.Spec.Taints {
		if t.Effect == corev1.TaintEffectNoExecute {
			return true
		}
	}
	return false
}

// Run watches nodes until ctx ends: one worker, plus a look at every node
// each MonitorPeriod.
func (c *Controller) Run(ctx context.Context) error {
	defer c.queue.ShutDown()
	log := klog.FromContext(ctx).WithName("nodelifecycle")
	ctx = klog.NewContext(ctx, log)
	if !cache.WaitForNamedCacheSync("nodelifecycle", ctx.Done(),
		c.nodes.Informer().HasSynced, c.pods.Informer().HasSynced, c.leases.Informer().HasSynced) {
		return ctx.Err()
	}
	go func() {
		<-ctx.Done()
		c.queue.ShutDown()
	}()
	go c.monitor(ctx)
	log.Info("watching node heartbeats", "gracePeriod", c.cfg.GracePeriod)
	for {
		name, quit := c.queue.Get()
		if quit {
			return nil
		}
		err := c.sync(ctx, name)
		switch {
		case err == nil:
			c.queue.Forget(name)
		case ctx.Err() != nil:
		default:
			log.V(2).Info("node sync failed, retrying", "node", name, "err", err)
			c.queue.AddRateLimited(name)
		}
		c.queue.Done(name)
	}
}

// monitor queues every node each MonitorPeriod, so cluster-wide changes
// (all nodes down, or back) reach every node.
func (c *Controller) monitor(ctx context.Context) {
	t := time.NewTicker(c.cfg.MonitorPeriod)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			nodes, _ := c.nodes.Lister().List(labels.Everything())
			for _, n := range nodes {
				c.queue.Add(n.Name)
			}
		}
	}
}

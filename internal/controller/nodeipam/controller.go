// Package nodeipam gives every Node a pod subnet (spec.podCIDR and
// spec.podCIDRs) from the cluster CIDR, as upstream's range allocator
// does: a /24 of 10.244.0.0/16 by default, one per IP family when the
// cluster is dual-stack.
//
// Level-triggered: which subnets are taken is read from the Node objects
// on every sync (claims.go), never remembered, so a restarted controller
// keeps every CIDR a node already has and never hands one out twice, and a
// deleted node's subnet is free again. The lowest free subnet goes to the
// next node (upstream continues round-robin from the last one handed out
// instead). A node whose podCIDR lies outside the range, or duplicates an
// older node's, keeps it and gets a CIDRAssignmentFailed event; when the
// range is full a node gets CIDRNotAvailable and waits for a node to go.
package nodeipam

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
)

// Event reasons, as upstream's.
const (
	EventCIDRNotAvailable     = "CIDRNotAvailable"
	EventCIDRAssignmentFailed = "CIDRAssignmentFailed"
)

// pendingCIDRs are CIDRs written to the node with this UID.
type pendingCIDRs struct {
	uid   types.UID
	cidrs []netip.Prefix
}

// Controller allocates node pod CIDRs.
type Controller struct {
	cfg      Config
	ranges   []subnetRange
	reserved [][]int // per range, subnet indexes overlapping the service CIDR
	nodes    coreinformers.NodeInformer
	queue    workqueue.TypedRateLimitingInterface[string]

	mu sync.Mutex
	// pending holds CIDRs written to nodes that the cache does not show
	// yet, so they are not handed out again meanwhile.
	pending map[string]pendingCIDRs
	// reported holds the last problem reported for a node, so an event is
	// emitted once per problem, not once per sync.
	reported map[string]string
}

// New returns a controller with its informer handlers registered; start
// the informer factory, then Run.
func New(cfg Config) (*Controller, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ranges, _ := cfg.ranges()
	services, _ := parseCIDRs(cfg.ServiceCIDR)
	c := &Controller{
		cfg:    cfg,
		ranges: ranges,
		nodes:  cfg.Informers.Core().V1().Nodes(),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[string](50*time.Millisecond, 30*time.Second),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "nodeipam"}),
		pending:  map[string]pendingCIDRs{},
		reported: map[string]string{},
	}
	for _, r := range ranges {
		var idx []int
		for _, s := range services {
			idx = append(idx, r.overlapping(s)...)
		}
		c.reserved = append(c.reserved, idx)
	}
	_, err := c.nodes.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: c.enqueue,
		UpdateFunc: func(old, obj interface{}) {
			// Status heartbeats are most updates; only CIDRs matter here.
			o, n := old.(*corev1.Node), obj.(*corev1.Node)
			if len(nodeCIDRs(n)) == 0 || !slices.Equal(nodeCIDRs(o), nodeCIDRs(n)) {
				c.enqueue(obj)
			}
		},
		DeleteFunc: func(obj interface{}) {
			// The node's subnet is free: nodes waiting for one may have it.
			c.enqueueAll()
			c.enqueue(obj)
		},
	})
	if err != nil {
		return nil, fmt.Errorf("nodeipam: %w", err)
	}
	return c, nil
}

func (c *Controller) enqueue(obj interface{}) {
	if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
		c.queue.Add(key)
	}
}

func (c *Controller) enqueueAll() {
	nodes, _ := c.nodes.Lister().List(labels.Everything())
	for _, n := range nodes {
		c.queue.Add(n.Name)
	}
}

// Run allocates until ctx ends. One worker: each allocation sees the
// previous ones.
func (c *Controller) Run(ctx context.Context) error {
	defer c.queue.ShutDown()
	log := klog.FromContext(ctx).WithName("nodeipam")
	ctx = klog.NewContext(ctx, log)
	if !cache.WaitForNamedCacheSync("nodeipam", ctx.Done(), c.nodes.Informer().HasSynced) {
		return ctx.Err()
	}
	go func() {
		<-ctx.Done()
		c.queue.ShutDown()
	}()
	log.Info("allocating node pod CIDRs", "clusterCIDR", c.cfg.ClusterCIDR)
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
			log.Info("allocation failed, retrying", "node", name, "err", err)
			c.queue.AddRateLimited(name)
		}
		c.queue.Done(name)
	}
}

// sync makes sure the node has its subnets, or says why it cannot.
func (c *Controller) sync(ctx context.Context, name string) error {
	node, err := c.nodes.Lister().Get(name)
	if apierrors.IsNotFound(err) {
		c.forget(name)
		return nil
	}
	if err != nil {
		return err
	}
	all, err := c.nodes.Lister().List(labels.Everything())
	if err != nil {
		return err
	}
	cl := assess(c.ranges, all)
	if len(nodeCIDRs(node)) > 0 {
		c.clearPending(name)
		if msg := cl.problems[name]; msg != "" {
			c.report(node, EventCIDRAssignmentFailed, msg)
		} else {
			c.clearReported(name)
		}
		return nil
	}
	if c.isPending(node) {
		return nil // written; the cache will show it
	}
	cidrs, ok := c.pick(name, cl)
	if !ok {
		c.report(node, EventCIDRNotAvailable, fmt.Sprintf("Node %s status is now: %s", name, EventCIDRNotAvailable))
		return nil // retried when a node is deleted
	}
	if err := c.patch(ctx, node, cidrs); err != nil {
		return fmt.Errorf("set podCIDRs %v on node %s: %w", cidrs, name, err)
	}
	c.setPending(node, cidrs)
	c.clearReported(name)
	klog.FromContext(ctx).Info("set node pod CIDRs", "node", name, "podCIDRs", cidrs)
	return nil
}

// pick chooses node's subnets, counting what is written but not cached
// yet as taken.
func (c *Controller) pick(node string, cl claims) ([]netip.Prefix, bool) {
	c.mu.Lock()
	var inFlight []netip.Prefix
	for other, pend := range c.pending {
		if other != node {
			inFlight = append(inFlight, pend.cidrs...)
		}
	}
	c.mu.Unlock()
	return choose(c.ranges, cl, c.reserved, inFlight)
}

// patch writes spec.podCIDR and spec.podCIDRs, as upstream does. The API
// server refuses to change CIDRs a node already has, so a lost race ends
// in an error and a retry, never in a second CIDR.
func (c *Controller) patch(ctx context.Context, node *corev1.Node, cidrs []netip.Prefix) error {
	strs := make([]string, len(cidrs))
	for i, p := range cidrs {
		strs[i] = p.String()
	}
	data, err := json.Marshal(map[string]interface{}{
		"spec": map[string]interface{}{"podCIDR": strs[0], "podCIDRs": strs},
	})
	if err != nil {
		return err
	}
	_, err = c.cfg.Client.CoreV1().Nodes().Patch(ctx, node.Name, types.StrategicMergePatchType, data, metav1.PatchOptions{})
	return err
}

// report emits a warning event on the node, once per distinct message.
func (c *Controller) report(node *corev1.Node, reason, msg string) {
	c.mu.Lock()
	if c.reported[node.Name] == msg {
		c.mu.Unlock()
		return
	}
	c.reported[node.Name] = msg
	c.mu.Unlock()
	c.cfg.Recorder.Event(node, corev1.EventTypeWarning, reason, msg)
}

func (c *Controller) clearReported(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.reported, name)
}

func (c *Controller) setPending(node *corev1.Node, cidrs []netip.Prefix) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pending[node.Name] = pendingCIDRs{uid: node.UID, cidrs: cidrs}
}

func (c *Controller) clearPending(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.pending, name)
}

// isPending reports whether CIDRs were written to this node (this UID: a
// node deleted and created again under its name starts afresh).
func (c *Controller) isPending(node *corev1.Node) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	pend, ok := c.pending[node.Name]
	if ok && pend.uid != node.UID {
		delete(c.pending, node.Name)
		return false
	}
	return ok
}

func (c *Controller) forget(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.pending, name)
	delete(c.reported, name)
}

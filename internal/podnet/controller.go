package podnet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
)

// syncKey is the only queue item: every trigger asks for one whole sync.
const syncKey = "sync"

// Controller keeps one node's routes to the other nodes' pods.
type Controller struct {
	cfg     Config
	nodes   coreinformers.NodeInformer
	factory informers.SharedInformerFactory // ours, when cfg.Nodes is nil
	queue   workqueue.TypedRateLimitingInterface[string]
	dp      dataplane

	ready     chan struct{} // closed after the first programming sync
	readyOnce sync.Once

	mu       sync.Mutex
	status   Status
	reported map[string]problem // last problem reported per node
}

// Status is what the controller has done so far; for health reports and
// tests.
type Status struct {
	// Syncs counts completed syncs (successful or not); Changes counts
	// kernel changes made over all of them.
	Syncs, Changes int
	// LastError is the last sync's error, nil if it succeeded.
	LastError error
	// Problems holds, per node, why its pods are not reachable from here.
	Problems map[string]string
	// MTU is the VXLAN device's (VXLAN mode, once made): pods' MTU must
	// not exceed it. 0 in host-gw mode (no encapsulation).
	MTU int
}

// New prepares a controller and registers its informer handlers. With a
// caller-supplied Nodes informer, start its factory after New.
func New(cfg Config) (*Controller, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Controller{
		cfg:   cfg,
		nodes: cfg.Nodes,
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[string](100*time.Millisecond, 30*time.Second),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "podnet"}),
		dp:       kernel{dev: cfg.VXLANDevice},
		ready:    make(chan struct{}),
		reported: map[string]problem{},
	}
	if c.nodes == nil {
		c.factory = informers.NewSharedInformerFactory(cfg.Client, 0)
		c.nodes = c.factory.Core().V1().Nodes()
	}
	_, err := c.nodes.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { c.queue.Add(syncKey) },
		UpdateFunc: func(old, cur any) {
			// Most updates are status heartbeats; only what routes are
			// made of matters.
			o, n := old.(*corev1.Node), cur.(*corev1.Node)
			if !routingEqual(o, n) {
				c.queue.Add(syncKey)
			}
		},
		DeleteFunc: func(any) { c.queue.Add(syncKey) },
	})
	if err != nil {
		return nil, fmt.Errorf("podnet: %w", err)
	}
	return c, nil
}

// routingEqual reports whether two versions of a node give the same
// routes.
func routingEqual(a, b *corev1.Node) bool {
	ac, aok := podCIDR(a)
	bc, bok := podCIDR(b)
	return ac == bc && aok == bok && internalIP(a) == internalIP(b) &&
		a.Annotations[AnnotationVXLANMAC] == b.Annotations[AnnotationVXLANMAC] &&
		a.Annotations[AnnotationVXLANIP] == b.Annotations[AnnotationVXLANIP]
}

// Run keeps the routes until ctx ends, syncing on every relevant node
// change and every ResyncPeriod (repairing drift in the kernel). Routes
// stay when it returns: pods keep their network while the agent restarts,
// and the next Run adopts them.
func (c *Controller) Run(ctx context.Context) error {
	defer c.queue.ShutDown()
	log := klog.FromContext(ctx).WithName("podnet").WithValues("node", c.cfg.NodeName, "mode", c.cfg.Mode)
	ctx = klog.NewContext(ctx, log)
	if c.factory != nil {
		c.factory.Start(ctx.Done())
		defer c.factory.Shutdown()
	}
	if !cache.WaitForNamedCacheSync("podnet", ctx.Done(), c.nodes.Informer().HasSynced) {
		return ctx.Err()
	}
	go func() {
		t := time.NewTicker(c.cfg.ResyncPeriod)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				c.queue.ShutDown()
				return
			case <-t.C:
				c.queue.Add(syncKey)
			}
		}
	}()
	log.Info("keeping pod routes to other nodes")
	c.queue.Add(syncKey)
	for {
		key, quit := c.queue.Get()
		if quit {
			return nil
		}
		err := c.sync(ctx)
		switch {
		case err == nil:
			c.queue.Forget(key)
		case ctx.Err() != nil:
		default:
			log.Error(err, "pod routes: sync failed, retrying")
			c.queue.AddRateLimited(key)
		}
		c.queue.Done(key)
	}
}

// Ready is closed once a sync has programmed the kernel: in VXLAN mode the
// device is up and Status().MTU is known (the MTU pods should get); routes
// to the nodes known then were made or their problems reported.
func (c *Controller) Ready() <-chan struct{} { return c.ready }

// Status returns a copy of the controller's status.
func (c *Controller) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.status
	s.Problems = maps.Clone(s.Problems)
	return s
}

// sync computes the plan from the node cache, makes the kernel match it,
// publishes this node's VTEP and reports nodes that cannot be reached.
func (c *Controller) sync(ctx context.Context) (err error) {
	log := klog.FromContext(ctx)
	var res result
	programmed := false
	defer func() {
		c.record(res, err)
		if programmed {
			c.readyOnce.Do(func() { close(c.ready) })
		}
	}()

	self, err := c.nodes.Lister().Get(c.cfg.NodeName)
	if apierrors.IsNotFound(err) {
		log.V(2).Info("own Node not registered yet")
		return nil
	}
	if err != nil {
		return err
	}
	all, err := c.nodes.Lister().List(labels.Everything())
	if err != nil {
		return err
	}
	plan, err := Desired(self, all, c.cfg.Mode)
	if err != nil {
		return err
	}
	spec := vxlanSpec{Name: c.cfg.VXLANDevice, ID: c.cfg.VXLANID, Port: c.cfg.VXLANPort,
		Local: plan.Local.IP, Addr: plan.Local.VTEPAddr, MTU: c.cfg.MTU}
	var kerr error
	werr := c.inNetNS(func() error {
		res, kerr = reconcile(c.dp, plan, spec)
		return nil
	})
	for _, ch := range res.Changes {
		log.Info("pod routes: " + ch)
	}
	programmed = werr == nil && (plan.Mode != ModeVXLAN || res.VTEP.MTU != 0)
	c.report(ctx, all, res.Problems)
	if werr != nil {
		return fmt.Errorf("network namespace %s: %w", c.cfg.NetNS, werr)
	}
	if res.VTEP.MAC != "" {
		if err := c.publish(ctx, self, plan.Local, res.VTEP.MAC); err != nil {
			kerr = errors.Join(kerr, err)
		}
	}
	return kerr
}

// inNetNS runs f in the configured network namespace, on a locked thread
// that pkg/ns discards if it cannot switch back.
func (c *Controller) inNetNS(f func() error) error {
	if c.cfg.NetNS == "" {
		return f()
	}
	return ns.WithNetNSPath(c.cfg.NetNS, func(ns.NetNS) error { return f() })
}

// publish writes this node's VTEP MAC and IP as annotations, for the
// other nodes' FDB and neighbour entries, when they differ.
func (c *Controller) publish(ctx context.Context, self *corev1.Node, local Local, mac string) error {
	want := map[string]string{AnnotationVXLANMAC: mac, AnnotationVXLANIP: local.IP.String()}
	if self.Annotations[AnnotationVXLANMAC] == want[AnnotationVXLANMAC] && self.Annotations[AnnotationVXLANIP] == want[AnnotationVXLANIP] {
		return nil
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": want}})
	if err != nil {
		return err
	}
	if _, err := c.cfg.Client.CoreV1().Nodes().Patch(ctx, self.Name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("publish VTEP of node %s: %w", self.Name, err)
	}
	klog.FromContext(ctx).Info("pod routes: published VTEP", "mac", mac, "ip", local.IP)
	return nil
}

// report logs each node's problem once per distinct message, and emits a
// warning event on that node for problems that need an operator. A
// problem that went away is logged as resolved.
func (c *Controller) report(ctx context.Context, nodes []*corev1.Node, problems map[string]problem) {
	log := klog.FromContext(ctx)
	byName := map[string]*corev1.Node{}
	for _, n := range nodes {
		byName[n.Name] = n
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, name := range slices.Sorted(maps.Keys(c.reported)) {
		if _, still := problems[name]; !still {
			delete(c.reported, name)
			if _, exists := byName[name]; exists {
				log.Info("pod routes: node reachable again", "peer", name)
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(problems)) {
		p := problems[name]
		if c.reported[name] == p {
			continue
		}
		c.reported[name] = p
		if p.Reason == "" {
			log.Info("pod routes: node skipped", "peer", name, "reason", p.Message)
			continue
		}
		log.Error(errors.New(p.Message), "pod routes: node's pods unreachable", "peer", name, "reason", p.Reason)
		if n := byName[name]; n != nil && c.cfg.Recorder != nil {
			c.cfg.Recorder.Eventf(n, corev1.EventTypeWarning, p.Reason, "%s (seen from node %s)", p.Message, c.cfg.NodeName)
		}
	}
}

func (c *Controller) record(res result, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.status.Syncs++
	c.status.Changes += len(res.Changes)
	c.status.LastError = err
	if res.VTEP.MTU != 0 {
		c.status.MTU = res.VTEP.MTU
	}
	c.status.Problems = map[string]string{}
	for name, p := range res.Problems {
		c.status.Problems[name] = p.Message
	}
}

// Cleanup removes everything podnet made in the configured namespace:
// every route of RouteProtocol and the VXLAN device (with its neighbour and
// FDB entries). For uninstalling a node; Run does not call it, since
// routes must outlive an agent restart. Only cfg's VXLANDevice and NetNS
// are used.
func Cleanup(cfg Config) error {
	cfg = cfg.withDefaults()
	c := &Controller{cfg: cfg}
	return c.inNetNS(func() error {
		_, err := reconcile(kernel{dev: cfg.VXLANDevice}, Plan{Mode: ModeHostGW}, vxlanSpec{Name: cfg.VXLANDevice})
		return err
	})
}

// Package lbipam gives LoadBalancer Services their ingress IP: for every
// Service of type LoadBalancer whose spec.loadBalancerClass is unset or is
// ours (kite.dev/lb), it writes status.loadBalancer.ingress = [{ip, ipMode:
// VIP}] from a configured pool, through the services/status subresource.
// kite lb (internal/lb) then owns those addresses and forwards them to the
// nodes; the node proxies handle them as VIPs.
//
// The Allocator (allocator.go) is pure and holds the truth of this
// process: which Service holds which address. It is rebuilt from the
// Services' status before anything is allocated, so a restarted
// controller never hands an address out twice, and then kept in step by
// the syncs, one at a time. An address is freed when its Service is
// deleted, changes type, or asks for another; Services waiting for an
// address are retried then. Services of other classes are never touched.
package lbipam

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"

	"kite/internal/controller/internal/ctrlutil"
)

// Controller allocates LoadBalancer ingress IPs.
type Controller struct {
	cfg      Config
	services corelisters.ServiceLister
	synced   cache.InformerSynced
	queue    workqueue.TypedRateLimitingInterface[string]
	recorder record.EventRecorder
	stopRec  func()

	mu    sync.Mutex
	alloc *Allocator
	// waiting are Services left pending; they are retried when an address
	// is released.
	waiting map[string]bool
	// reported is the last warning per Service, so that a Service left
	// pending gets one event per reason, not one per sync.
	reported map[string]string
}

// New checks cfg and registers the controller's Service handlers; Run
// starts the informers.
func New(cfg Config) (*Controller, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", Name, err)
	}
	cfg.setDefaults()
	pool, _ := ParsePool(cfg.Pool)
	inf := cfg.Informers.Core().V1().Services()
	c := &Controller{
		cfg:      cfg,
		services: inf.Lister(),
		synced:   inf.Informer().HasSynced,
		queue:    ctrlutil.NewQueue[string]("lbipam", 5*time.Millisecond, 30*time.Second),
		alloc:    NewAllocator(pool),
		waiting:  map[string]bool{},
		reported: map[string]string{},
	}
	c.recorder, c.stopRec = ctrlutil.Recorder(cfg.Recorder, cfg.Client, Name)
	enqueue := func(obj any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			c.queue.Add(key)
		}
	}
	if _, err := inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: enqueue, UpdateFunc: func(_, cur any) { enqueue(cur) }, DeleteFunc: enqueue,
	}); err != nil {
		return nil, fmt.Errorf("%s: %w", Name, err)
	}
	return c, nil
}

// Run waits for the Service cache, rebuilds the allocations from the
// Services' status, then syncs Services until ctx ends. One worker: each
// allocation sees the previous ones.
func (c *Controller) Run(ctx context.Context) error {
	log := klog.FromContext(ctx).WithName(Name)
	ctx = klog.NewContext(ctx, log)
	defer c.stopRec()
	c.cfg.Informers.Start(ctx.Done())
	if !cache.WaitForNamedCacheSync(Name, ctx.Done(), c.synced) {
		c.queue.ShutDown()
		return ctx.Err()
	}
	if err := c.rebuild(ctx); err != nil {
		c.queue.ShutDown()
		return err
	}
	log.Info("allocating LoadBalancer IPs", "pool", c.cfg.Pool, "class", c.cfg.Class)
	ctrlutil.Work(ctx, c.queue, 1, c.sync)
	return nil
}

// rebuild records the addresses the Services' status already shows,
// oldest Service first: if two claim one address (which only a foreign
// write could cause), the older keeps it and the other gets a new one.
func (c *Controller) rebuild(ctx context.Context) error {
	all, err := c.services.List(labels.Everything())
	if err != nil {
		return fmt.Errorf("%s: list services: %w", Name, err)
	}
	slices.SortFunc(all, func(a, b *corev1.Service) int {
		return cmp.Or(a.CreationTimestamp.Compare(b.CreationTimestamp.Time),
			cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, svc := range all {
		ip := statusIP(svc)
		if !c.ours(svc) || svc.Spec.Type != corev1.ServiceTypeLoadBalancer || !ip.IsValid() {
			continue
		}
		req, _ := c.request(svc) // a bad request is reported by its sync
		if err := c.alloc.Assign(req, ip); err != nil {
			klog.FromContext(ctx).Info("status address not kept", "service", req.Service, "ip", ip, "reason", err.Error())
		}
	}
	return nil
}

// ours reports whether the Service's class is served here.
func (c *Controller) ours(svc *corev1.Service) bool {
	return svc.Spec.LoadBalancerClass == nil || *svc.Spec.LoadBalancerClass == c.cfg.Class
}

// sync gives one Service its address, frees it, or says why not.
func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	svc, err := c.services.Services(ns).Get(name)
	if apierrors.IsNotFound(err) {
		c.release(key)
		return nil
	}
	if err != nil {
		return err
	}
	if !c.ours(svc) {
		c.release(key) // in case its class changed; its status is not ours
		return nil
	}
	if svc.Spec.Type != corev1.ServiceTypeLoadBalancer {
		c.release(key)
		if len(svc.Status.LoadBalancer.Ingress) == 0 {
			return nil
		}
		klog.FromContext(ctx).Info("released LoadBalancer IP: no longer a LoadBalancer", "service", key)
		return c.writeStatus(ctx, svc, netip.Addr{})
	}
	req, reqErr := c.request(svc)
	var ip netip.Addr
	if reqErr == nil {
		ip, reqErr = c.allocate(req, statusIP(svc))
	}
	if reqErr != nil {
		// Pending: whatever it held is not its any more.
		c.setWaiting(key, true)
		c.report(svc, fmt.Sprintf("Failed to allocate IP for %q: %v", key, reqErr))
		if len(svc.Status.LoadBalancer.Ingress) > 0 {
			return c.writeStatus(ctx, svc, netip.Addr{})
		}
		return nil
	}
	c.setWaiting(key, false)
	if statusIP(svc) == ip && len(svc.Status.LoadBalancer.Ingress) == 1 && hasVIPMode(svc) {
		return nil
	}
	if err := c.writeStatus(ctx, svc, ip); err != nil {
		return err
	}
	c.clearReported(key)
	klog.FromContext(ctx).Info("allocated LoadBalancer IP", "service", key, "ip", ip)
	c.recorder.Eventf(svc, corev1.EventTypeNormal, EventIPAllocated, "Assigned IP %s", ip)
	return nil
}

// request is what the Service asks for.
func (c *Controller) request(svc *corev1.Service) (Request, error) {
	req := Request{
		Service:    svc.Namespace + "/" + svc.Name,
		Family:     4,
		SharingKey: svc.Annotations[AnnotationAllowSharedIP],
	}
	if len(svc.Spec.IPFamilies) > 0 && svc.Spec.IPFamilies[0] == corev1.IPv6Protocol {
		req.Family = 6
	}
	for _, p := range svc.Spec.Ports {
		req.Ports = append(req.Ports, PortProto{Port: p.Port, Protocol: string(cmp.Or(p.Protocol, corev1.ProtocolTCP))})
	}
	want, from := svc.Spec.LoadBalancerIP, "spec.loadBalancerIP"
	if a, ok := svc.Annotations[AnnotationIP]; ok {
		want, from = a, "annotation "+AnnotationIP
	}
	if want = strings.TrimSpace(want); want != "" {
		ip, err := netip.ParseAddr(want)
		if err != nil {
			return req, fmt.Errorf("%s %q is not an IP address", from, want)
		}
		req.IP = ip.Unmap()
	}
	return req, nil
}

// allocate runs the allocator; if the Service gave up an address on the
// way (it asks for another, or lost its own), the waiting ones retry.
func (c *Controller) allocate(req Request, current netip.Addr) (netip.Addr, error) {
	c.mu.Lock()
	before, held := c.alloc.IPOf(req.Service)
	ip, err := c.alloc.Allocate(req, current)
	var retry []string
	if held && (err != nil || ip != before) {
		for k := range c.waiting {
			if k != req.Service {
				retry = append(retry, k)
			}
		}
	}
	c.mu.Unlock()
	for _, k := range retry {
		c.queue.Add(k)
	}
	return ip, err
}

// release frees the Service's address and retries the Services waiting
// for one.
func (c *Controller) release(key string) {
	c.mu.Lock()
	_, held := c.alloc.IPOf(key)
	c.alloc.Release(key)
	delete(c.waiting, key)
	delete(c.reported, key)
	var retry []string
	if held {
		for k := range c.waiting {
			retry = append(retry, k)
		}
	}
	c.mu.Unlock()
	for _, k := range retry {
		c.queue.Add(k)
	}
}

// writeStatus sets the ingress to ip (none if ip is invalid).
func (c *Controller) writeStatus(ctx context.Context, svc *corev1.Service, ip netip.Addr) error {
	svc = svc.DeepCopy()
	svc.Status.LoadBalancer = corev1.LoadBalancerStatus{}
	if ip.IsValid() {
		vip := corev1.LoadBalancerIPModeVIP
		svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: ip.String(), IPMode: &vip}}
	}
	if _, err := c.cfg.Client.CoreV1().Services(svc.Namespace).UpdateStatus(ctx, svc, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("update status of service %s/%s: %w", svc.Namespace, svc.Name, err)
	}
	return nil
}

// statusIP is the first ingress IP of the Service's status, if any.
func statusIP(svc *corev1.Service) netip.Addr {
	for _, in := range svc.Status.LoadBalancer.Ingress {
		if ip, err := netip.ParseAddr(in.IP); err == nil {
			return ip.Unmap()
		}
	}
	return netip.Addr{}
}

func hasVIPMode(svc *corev1.Service) bool {
	m := svc.Status.LoadBalancer.Ingress[0].IPMode
	return m != nil && *m == corev1.LoadBalancerIPModeVIP
}

func (c *Controller) setWaiting(key string, w bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if w {
		c.waiting[key] = true
	} else {
		delete(c.waiting, key)
	}
}

// report emits a warning on the Service, once per distinct message.
func (c *Controller) report(svc *corev1.Service, msg string) {
	key := svc.Namespace + "/" + svc.Name
	c.mu.Lock()
	if c.reported[key] == msg {
		c.mu.Unlock()
		return
	}
	c.reported[key] = msg
	c.mu.Unlock()
	c.recorder.Event(svc, corev1.EventTypeWarning, EventAllocationFailed, msg)
}

func (c *Controller) clearReported(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.reported, key)
}

// Package l2 is kite's L2 mode for LoadBalancer Services, for clusters
// of machines on one Ethernet segment without a kite lb in front of them:
// on every node a speaker elects, for each ingress address, one node
// among those alive, and the elected node answers ARP for the address on
// its underlay interface; its Service proxy, which already DNATs
// LoadBalancer addresses, takes the traffic. When the elected node dies,
// the others elect another, which announces the move with gratuitous
// ARPs. See README.md for the contract and the fail-over time.
package l2

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"

	"kite/internal/controller/lbipam"
)

// Names other components and users see.
const (
	// Name is the speaker's log name.
	Name = "lb-l2-speaker"
	// LeaseNamespace holds one heartbeat Lease per speaker, named
	// LeasePrefix + node name and labelled LeaseLabel=<node>.
	LeaseNamespace = metav1.NamespaceSystem
	LeasePrefix    = "kite-l2-"
	LeaseLabel     = "lb.kite.dev/l2-speaker"
	// DefaultClass is the spec.loadBalancerClass served (and none): the
	// one lbipam allocates for.
	DefaultClass = lbipam.DefaultClass
)

// Defaults of Config.
const (
	DefaultLeaseDuration = 2 * time.Second
	// garpRepeats gratuitous ARPs go out, one per renew interval, when a
	// node takes an address: one could be lost.
	garpRepeats = 3
)

// Config wires a speaker.
type Config struct {
	// NodeName is this node's Node name. Required.
	NodeName string
	// NodeIP finds the interface to answer on (the one holding it) when
	// Interface is empty.
	NodeIP string
	// Interface is the underlay link to answer ARP on.
	Interface string
	// LeaseDuration is how long a speaker's heartbeat counts without a
	// renewal (default 2 s); it is renewed every LeaseDuration/4. Every
	// speaker of a cluster must use the same.
	LeaseDuration time.Duration
	// Class is the spec.loadBalancerClass served besides none.
	Class string
}

// Validate reports a Config that cannot work.
func (c *Config) Validate() error {
	var errs []error
	if c.NodeName == "" {
		errs = append(errs, errors.New("node name is required"))
	}
	if c.Interface == "" {
		if _, err := netip.ParseAddr(c.NodeIP); err != nil {
			errs = append(errs, fmt.Errorf("an interface or a node IP is required: %w", err))
		}
	}
	if c.LeaseDuration < 0 || c.LeaseDuration > 0 && c.LeaseDuration < 400*time.Millisecond {
		errs = append(errs, fmt.Errorf("lease duration %s: want at least 400ms", c.LeaseDuration))
	}
	return errors.Join(errs...)
}

// Speaker announces the LoadBalancer addresses elected to its node.
type Speaker struct {
	cfg    Config
	client kubernetes.Interface

	mu     sync.Mutex
	beats  Heartbeats
	lastOK time.Time // last successful renewal of our own Lease
	// owned: addresses answered for, with their gratuitous ARPs.
	owned map[netip.Addr]*announcement
}

// New checks cfg; Run does the work.
func New(cfg Config, client kubernetes.Interface) (*Speaker, error) {
	if cfg.LeaseDuration == 0 {
		cfg.LeaseDuration = DefaultLeaseDuration
	}
	if cfg.Class == "" {
		cfg.Class = DefaultClass
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", Name, err)
	}
	return &Speaker{cfg: cfg, client: client, owned: map[netip.Addr]*announcement{}}, nil
}

// announcement: the gratuitous ARPs still due for an address taken, and
// when the last went out.
type announcement struct {
	left int
	last time.Time
}

// Run renews this node's heartbeat, watches Nodes, Services,
// EndpointSlices and the speakers' Leases, and answers ARP for the
// addresses elected to this node until ctx ends.
func (s *Speaker) Run(ctx context.Context) (err error) {
	log := klog.FromContext(ctx).WithName(Name)
	ctx = klog.NewContext(ctx, log)
	iface, err := findInterface(s.cfg.Interface, s.cfg.NodeIP)
	if err != nil {
		return fmt.Errorf("%s: %w", Name, err)
	}
	resp, err := newResponder(iface)
	if err != nil {
		return fmt.Errorf("%s: %w", Name, err)
	}
	// A responder that fails ends Run with its error: a speaker that
	// cannot answer must not keep its heartbeat (and so its addresses).
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var serveErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		if serveErr = resp.serve(stop); serveErr != nil {
			cancel()
		}
	}()
	defer func() {
		cancel()
		close(stop)
		wg.Wait()
		if serveErr != nil && err == nil {
			err = fmt.Errorf("%s: %w", Name, serveErr)
		}
	}()

	factory := informers.NewSharedInformerFactory(s.client, 0)
	leases := informers.NewSharedInformerFactoryWithOptions(s.client, 0, informers.WithNamespace(LeaseNamespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = LeaseLabel }))
	svcs := factory.Core().V1().Services()
	epSlices := factory.Discovery().V1().EndpointSlices()
	nodes := factory.Core().V1().Nodes()
	leaseInf := leases.Coordination().V1().Leases()

	kick := make(chan struct{}, 1)
	trigger := func() {
		select {
		case kick <- struct{}{}:
		default:
		}
	}
	onAny := cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { trigger() }, UpdateFunc: func(_, _ any) { trigger() }, DeleteFunc: func(any) { trigger() },
	}
	for _, inf := range []cache.SharedIndexInformer{svcs.Informer(), epSlices.Informer(), nodes.Informer()} {
		if _, err := inf.AddEventHandler(onAny); err != nil {
			return err
		}
	}
	observe := func(obj any) {
		if l, ok := obj.(*coordinationv1.Lease); ok && l.Spec.RenewTime != nil {
			s.mu.Lock()
			s.beats.Observe(l.Labels[LeaseLabel], l.Spec.RenewTime.Time, time.Now())
			s.mu.Unlock()
		}
		trigger()
	}
	if _, err := leaseInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: observe, UpdateFunc: func(_, cur any) { observe(cur) },
		DeleteFunc: func(obj any) {
			if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = tomb.Obj
			}
			if l, ok := obj.(*coordinationv1.Lease); ok {
				s.mu.Lock()
				s.beats.Forget(l.Labels[LeaseLabel])
				s.mu.Unlock()
			}
			trigger()
		},
	}); err != nil {
		return err
	}
	factory.Start(ctx.Done())
	leases.Start(ctx.Done())
	defer factory.Shutdown()
	defer leases.Shutdown()

	wg.Add(1)
	go func() { defer wg.Done(); s.heartbeat(ctx) }()

	if !cache.WaitForNamedCacheSync(Name, ctx.Done(), svcs.Informer().HasSynced, epSlices.Informer().HasSynced,
		nodes.Informer().HasSynced, leaseInf.Informer().HasSynced) {
		return nil
	}
	log.Info("answering ARP for LoadBalancer addresses elected to this node", "node", s.cfg.NodeName,
		"interface", iface.Name, "mac", iface.HardwareAddr.String(), "leaseDuration", s.cfg.LeaseDuration)
	// Besides events, re-elect every renew interval: a Lease going stale
	// is the absence of an event.
	tick := time.NewTicker(s.renewInterval())
	defer tick.Stop()
	for {
		s.reconcile(ctx, resp, svcs.Lister().List, epSlices.Lister().List, nodes.Lister().List)
		select {
		case <-ctx.Done():
			return nil
		case <-kick:
		case <-tick.C:
		}
	}
}

func (s *Speaker) renewInterval() time.Duration { return s.cfg.LeaseDuration / 4 }

// reconcile elects, installs the addresses this node owns in the
// responder, and sends the gratuitous ARPs still due.
func (s *Speaker) reconcile(ctx context.Context, resp *responder,
	listServices func(labels.Selector) ([]*corev1.Service, error),
	listSlices func(labels.Selector) ([]*discoveryv1.EndpointSlice, error),
	listNodes func(labels.Selector) ([]*corev1.Node, error)) {
	log := klog.FromContext(ctx)
	all, _ := listServices(labels.Everything())
	eps, _ := listSlices(labels.Everything())
	nodes, _ := listNodes(labels.Everything())
	now := time.Now()

	s.mu.Lock()
	defer s.mu.Unlock()
	var live []string
	for _, n := range nodes {
		if !nodeUsable(n) {
			continue
		}
		fresh := s.beats.Fresh(n.Name, now, s.cfg.LeaseDuration)
		if n.Name == s.cfg.NodeName {
			// Our own heartbeat counts only if we could write it: a node
			// cut off from the API stops answering, as the others will
			// have moved its addresses by then.
			fresh = now.Sub(s.lastOK) < s.cfg.LeaseDuration
		}
		if fresh {
			live = append(live, n.Name)
		}
	}
	want := Assign(services(all, eps, s.cfg.Class), live)
	owned := map[netip.Addr]bool{}
	for ip, node := range want {
		if node == s.cfg.NodeName {
			owned[ip] = true
		}
	}
	resp.owned.Store(&owned)
	for ip := range s.owned {
		if !owned[ip] {
			delete(s.owned, ip)
			log.Info("no longer answering for LoadBalancer address", "ip", ip, "owner", want[ip])
		}
	}
	for ip := range owned {
		if _, had := s.owned[ip]; !had {
			s.owned[ip] = &announcement{left: garpRepeats}
			log.Info("answering for LoadBalancer address", "ip", ip, "live", live)
		}
	}
	// Gratuitous ARPs at least a renew interval apart: events may call
	// reconcile far more often.
	for _, ip := range slices.SortedFunc(maps.Keys(s.owned), netip.Addr.Compare) {
		a := s.owned[ip]
		if a.left == 0 || now.Sub(a.last) < s.renewInterval() {
			continue
		}
		if err := resp.announce(ip); err != nil {
			log.Error(err, "gratuitous ARP", "ip", ip)
			continue
		}
		a.left--
		a.last = now
	}
}

// nodeUsable: Ready, and not excluded from load balancers (the label
// that keeps kite lb from forwarding to a node keeps it from announcing).
func nodeUsable(n *corev1.Node) bool {
	if _, excluded := n.Labels[corev1.LabelNodeExcludeBalancers]; excluded {
		return false
	}
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// services turns the served LoadBalancer Services and their
// EndpointSlices into the election's input. Pure.
func services(all []*corev1.Service, eps []*discoveryv1.EndpointSlice, class string) []Service {
	ready := map[string]map[string]bool{} // namespace/service → nodes with a ready endpoint
	for _, es := range eps {
		svc := es.Labels[discoveryv1.LabelServiceName]
		if svc == "" {
			continue
		}
		key := es.Namespace + "/" + svc
		for _, ep := range es.Endpoints {
			if ep.NodeName == nil || !ptr.Deref(ep.Conditions.Ready, true) {
				continue
			}
			if ready[key] == nil {
				ready[key] = map[string]bool{}
			}
			ready[key][*ep.NodeName] = true
		}
	}
	var out []Service
	for _, svc := range all {
		if svc.Spec.Type != corev1.ServiceTypeLoadBalancer ||
			svc.Spec.LoadBalancerClass != nil && *svc.Spec.LoadBalancerClass != class {
			continue
		}
		key := svc.Namespace + "/" + svc.Name
		s := Service{Key: key, Local: svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal, EndpointNodes: ready[key]}
		for _, in := range svc.Status.LoadBalancer.Ingress {
			if ip, err := netip.ParseAddr(in.IP); err == nil && ip.Unmap().Is4() {
				s.IPs = append(s.IPs, ip.Unmap())
			}
		}
		if len(s.IPs) > 0 {
			out = append(out, s)
		}
	}
	return out
}

// heartbeat keeps this speaker's Lease renewed every LeaseDuration/4
// until ctx ends.
func (s *Speaker) heartbeat(ctx context.Context) {
	log := klog.FromContext(ctx)
	leases := s.client.CoordinationV1().Leases(LeaseNamespace)
	name := LeasePrefix + s.cfg.NodeName
	var cur *coordinationv1.Lease
	failing := false
	t := time.NewTicker(s.renewInterval())
	defer t.Stop()
	var owner *metav1.OwnerReference
	for {
		rctx, cancel := context.WithTimeout(ctx, s.cfg.LeaseDuration/2)
		if owner == nil {
			// The Node owns the Lease, so the garbage collector deletes
			// it with the Node. Until the Node exists, no owner.
			if n, err := s.client.CoreV1().Nodes().Get(rctx, s.cfg.NodeName, metav1.GetOptions{}); err == nil {
				owner = &metav1.OwnerReference{APIVersion: "v1", Kind: "Node", Name: n.Name, UID: n.UID}
				cur = nil
			}
		}
		l, err := s.renew(rctx, leases, name, cur, owner)
		cancel()
		switch {
		case err == nil:
			cur = l
			s.mu.Lock()
			s.lastOK = time.Now()
			s.mu.Unlock()
			if failing {
				log.Info("heartbeat renewed again")
				failing = false
			}
		case ctx.Err() == nil:
			cur = nil // read it again next time
			if !failing {
				log.Error(err, "renew heartbeat lease", "lease", LeaseNamespace+"/"+name)
				failing = true
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// leaseClient is what heartbeat needs of the Leases API.
type leaseClient interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions) (*coordinationv1.Lease, error)
	Create(ctx context.Context, l *coordinationv1.Lease, opts metav1.CreateOptions) (*coordinationv1.Lease, error)
	Update(ctx context.Context, l *coordinationv1.Lease, opts metav1.UpdateOptions) (*coordinationv1.Lease, error)
}

// renew writes the Lease with renewTime now: an update of cur when known,
// else of what the API has, else a new one.
func (s *Speaker) renew(ctx context.Context, leases leaseClient, name string, cur *coordinationv1.Lease, owner *metav1.OwnerReference) (*coordinationv1.Lease, error) {
	if cur == nil {
		l, err := leases.Get(ctx, name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			l = &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: LeaseNamespace}}
			s.fill(l, owner)
			return leases.Create(ctx, l, metav1.CreateOptions{})
		case err != nil:
			return nil, err
		}
		cur = l
	}
	l := cur.DeepCopy()
	s.fill(l, owner)
	return leases.Update(ctx, l, metav1.UpdateOptions{})
}

func (s *Speaker) fill(l *coordinationv1.Lease, owner *metav1.OwnerReference) {
	if owner != nil && len(l.OwnerReferences) == 0 {
		l.OwnerReferences = []metav1.OwnerReference{*owner}
	}
	if l.Labels == nil {
		l.Labels = map[string]string{}
	}
	l.Labels[LeaseLabel] = s.cfg.NodeName
	l.Spec.HolderIdentity = ptr.To(s.cfg.NodeName)
	l.Spec.LeaseDurationSeconds = ptr.To(int32(max(1, (s.cfg.LeaseDuration+time.Second-1)/time.Second)))
	l.Spec.RenewTime = &metav1.MicroTime{Time: time.Now()}
}

// findInterface is the named link, or the one holding ip.
func findInterface(name, ip string) (*net.Interface, error) {
	if name != "" {
		iface, err := net.InterfaceByName(name)
		if err != nil {
			return nil, fmt.Errorf("interface %s: %w", name, err)
		}
		return iface, nil
	}
	want, err := netip.ParseAddr(ip)
	if err != nil {
		return nil, fmt.Errorf("node IP %q: %w", ip, err)
	}
	ifaces, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	for i := range ifaces {
		addrs, err := ifaces[i].Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Unmap() == want.Unmap() {
				return &ifaces[i], nil
			}
		}
	}
	return nil, fmt.Errorf("no interface holds the node IP %s", ip)
}

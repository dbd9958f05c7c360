// Package lb is `kite lb`, the cloud load balancer of the seed's S19: it
// owns the ingress addresses of LoadBalancer Services (as given by the
// lbipam controller in their status) and forwards each Service port to
// the NodePort of every Ready node that passes its health check, in the
// kernel, with nftables: DNAT to one node at random, masquerade to the
// LB's own underlay address so that replies come back through it.
//
// In the lab it runs in a network namespace of its own on the underlay,
// like a cloud load balancer in front of instances (README.md: the
// contract). Desired (model.go) computes the whole state from Services,
// Nodes and health; plan (nft.go) turns it into one nftables transaction
// of what changed; the addresses are reconciled on the interface after
// the rules, so an address answers only once its rules are in place.
package lb

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	"sigs.k8s.io/knftables"
)

// Name is the component's log name.
const Name = "kite-lb"

// Retry bounds after a failed sync.
const (
	retryMin = 100 * time.Millisecond
	retryMax = 5 * time.Second
)

// LB is one load balancer.
type LB struct {
	cfg      Config
	factory  informers.SharedInformerFactory
	services corelisters.ServiceLister
	nodes    corelisters.NodeLister
	synced   []cache.InformerSynced
	nft      *nftSyncer
	addrs    AddrManager
	checker  *checker
	trigger  chan struct{}
}

// New checks cfg and sets up informers on Services and Nodes; Run starts
// them. The default nftables interface runs `nft` in the caller's network
// namespace, which is the one kite lb serves.
func New(cfg Config, client kubernetes.Interface) (*LB, error) {
	return newLB(cfg, client, probe)
}

func newLB(cfg Config, client kubernetes.Interface, p probeFunc) (*LB, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", Name, err)
	}
	if client == nil {
		return nil, fmt.Errorf("%s: a Kubernetes client is required", Name)
	}
	cfg.setDefaults()
	if cfg.NFT == nil {
		nft, err := knftables.New(knftables.IPv4Family, cfg.Table)
		if err != nil {
			return nil, fmt.Errorf("%s: nftables table %s: %w", Name, cfg.Table, err)
		}
		cfg.NFT = nft
	}
	if cfg.Addrs == nil {
		cfg.Addrs = netlinkAddrs{iface: cfg.Interface}
	}
	factory := informers.NewSharedInformerFactory(client, 0)
	svcInf, nodeInf := factory.Core().V1().Services(), factory.Core().V1().Nodes()
	l := &LB{
		cfg:      cfg,
		factory:  factory,
		services: svcInf.Lister(),
		nodes:    nodeInf.Lister(),
		synced:   []cache.InformerSynced{svcInf.Informer().HasSynced, nodeInf.Informer().HasSynced},
		nft:      &nftSyncer{nft: cfg.NFT},
		addrs:    cfg.Addrs,
		trigger:  make(chan struct{}, 1),
	}
	l.checker = newChecker(cfg, p, l.poke)
	// Every change is a reason to recompute everything: the state is
	// small, and the transaction carries only the difference.
	h := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { l.poke() },
		UpdateFunc: func(_, _ any) { l.poke() },
		DeleteFunc: func(any) { l.poke() },
	}
	for _, inf := range []cache.SharedIndexInformer{svcInf.Informer(), nodeInf.Informer()} {
		if _, err := inf.AddEventHandler(h); err != nil {
			return nil, fmt.Errorf("%s: %w", Name, err)
		}
	}
	return l, nil
}

// poke asks for a sync; several pokes before it runs make one.
func (l *LB) poke() {
	select {
	case l.trigger <- struct{}{}:
	default:
	}
}

// Run sets the sysctls forwarding needs, waits for the caches, and keeps
// the kernel in step until ctx ends. It leaves the table and addresses in
// place when it returns: a restarted kite lb adopts them, and traffic
// flows meanwhile.
func (l *LB) Run(ctx context.Context) error {
	log := klog.FromContext(ctx).WithName(Name)
	ctx = klog.NewContext(ctx, log)
	if !l.cfg.SkipSysctls {
		if err := setSysctls(l.cfg.Interface); err != nil {
			return fmt.Errorf("%s: %w", Name, err)
		}
	}
	l.factory.Start(ctx.Done())
	defer l.factory.Shutdown()
	if !cache.WaitForNamedCacheSync(Name, ctx.Done(), l.synced...) {
		return nil // stopped before the caches synced
	}
	defer l.checker.stopAll()
	log.Info("serving LoadBalancer Services", "interface", l.cfg.Interface, "table", l.cfg.Table, "class", l.cfg.Class,
		"healthInterval", l.cfg.HealthInterval, "healthTimeout", l.cfg.HealthTimeout)
	l.poke()
	retry := time.NewTimer(0)
	<-retry.C
	backoff := retryMin
	for {
		select {
		case <-ctx.Done():
			retry.Stop()
			return nil
		case <-l.trigger:
		case <-retry.C:
		}
		if err := l.sync(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			log.Error(err, "sync failed, will retry", "after", backoff)
			retry.Reset(backoff)
			backoff = min(2*backoff, retryMax)
			continue
		}
		backoff = retryMin
	}
}

// sync computes the whole state and applies it: rules, then addresses.
func (l *LB) sync(ctx context.Context) error {
	start := time.Now()
	svcs, err := l.services.List(labels.Everything())
	if err != nil {
		return err
	}
	nodeObjs, err := l.nodes.List(labels.Everything())
	if err != nil {
		return err
	}
	st, targets := Desired(svcs, ReadyNodes(nodeObjs), l.cfg.Class, l.cfg.Pool, l.checker.health)
	l.checker.set(ctx, targets)
	if err := l.nft.sync(ctx, st); err != nil {
		return err
	}
	if err := l.syncAddrs(st.Addrs); err != nil {
		return err
	}
	klog.FromContext(ctx).V(2).Info("synced", "frontends", len(st.Frontends), "addresses", len(st.Addrs),
		"healthChecks", len(targets), "took", time.Since(start))
	return nil
}

// syncAddrs makes the interface carry exactly the ingress addresses (of
// those kite lb manages).
func (l *LB) syncAddrs(want []netip.Addr) error {
	have, err := l.addrs.List()
	if err != nil {
		return err
	}
	var errs []error
	for _, a := range want {
		if !slices.Contains(have, a) {
			errs = append(errs, l.addrs.Add(a))
		}
	}
	for _, a := range have {
		if !slices.Contains(want, a) {
			errs = append(errs, l.addrs.Del(a))
		}
	}
	return errors.Join(errs...)
}

// setSysctls turns on forwarding (a new network namespace has it off)
// and turns off ICMP redirects: traffic enters and leaves on the same
// interface, and a redirect would tell clients to bypass the LB.
func setSysctls(iface string) error {
	for path, val := range map[string]string{
		"net/ipv4/ip_forward":                                   "1",
		"net/ipv4/conf/all/send_redirects":                      "0",
		filepath.Join("net/ipv4/conf", iface, "send_redirects"): "0",
	} {
		if err := os.WriteFile(filepath.Join("/proc/sys", path), []byte(val), 0o644); err != nil {
			return fmt.Errorf("sysctl %s=%s: %w", path, val, err)
		}
	}
	return nil
}

// Cleanup removes what kite lb made: its table and the labelled
// addresses on the interface. For `kite down` on machines where the LB
// does not live in a namespace of its own.
func Cleanup(ctx context.Context, cfg Config) error {
	cfg.setDefaults()
	nft := cfg.NFT
	if nft == nil {
		var err error
		if nft, err = knftables.New(knftables.IPv4Family, cfg.Table); err != nil {
			return fmt.Errorf("%s: nftables table %s: %w", Name, cfg.Table, err)
		}
	}
	var errs []error
	tx := nft.NewTransaction()
	tx.Delete(&knftables.Table{})
	if err := nft.Run(ctx, tx); err != nil && !knftables.IsNotFound(err) {
		errs = append(errs, fmt.Errorf("delete table %s: %w", cfg.Table, err))
	}
	addrs := cfg.Addrs
	if addrs == nil {
		addrs = netlinkAddrs{iface: cfg.Interface}
	}
	have, err := addrs.List()
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, a := range have {
		errs = append(errs, addrs.Del(a))
	}
	return errors.Join(errs...)
}

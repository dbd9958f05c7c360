// Package agent is `kite agent`: one node of a cluster. It registers the
// Node and keeps its heartbeat, writes the node's CNI configuration once
// the node has a pod CIDR, sets up the node's own networking (forwarding,
// bridged traffic through netfilter, masquerade of pod traffic leaving the
// cluster), and runs the pods bound to the node.
package agent

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"

	"kite/internal/podnet"
	"kite/internal/proxy"

	"kite/internal/runtime"
)

// Agent runs one node.
type Agent struct {
	cfg    Config
	client kubernetes.Interface
	info   nodeInfo
	node   *corev1.Node // last seen
	events record.EventBroadcaster
	pods   *podManager
	server *server // nil when Config.Port < 0
	// metrics are served at the agent server's /metrics.
	metrics *prometheus.Registry
	// proxyDone reports the end of the Service proxy's Run.
	proxyDone chan error
}

// startProxy runs the node's Service proxy: Services and EndpointSlices
// into the kernel's rules.
func (a *Agent) startProxy(ctx context.Context) error {
	nodeIP, err := netip.ParseAddr(a.cfg.NodeIP)
	if err != nil {
		return fmt.Errorf("service proxy: node IP %q: %w", a.cfg.NodeIP, err)
	}
	cidr, err := netip.ParsePrefix(a.cfg.ClusterCIDR)
	if err != nil {
		return fmt.Errorf("service proxy: cluster CIDR %q: %w", a.cfg.ClusterCIDR, err)
	}
	p, err := proxy.New(proxy.Config{NodeName: a.cfg.NodeName, NodeIPs: []netip.Addr{nodeIP}, ClusterCIDR: cidr, Mode: a.cfg.ProxyMode,
		Metrics: a.metrics}, a.client)
	if err != nil {
		return fmt.Errorf("service proxy: %w", err)
	}
	a.proxyDone = make(chan error, 1)
	go func() { a.proxyDone <- p.Run(ctx) }()
	return nil
}

// New prepares an agent.
func New(cfg Config) (*Agent, error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	rc, err := RESTConfig(cfg)
	if err != nil {
		return nil, err
	}
	rc.UserAgent = "kite-agent/" + cfg.NodeName
	// kubelet's defaults (kubeAPIQPS, kubeAPIBurst): client-go's 5/10
	// would hold every pod start behind its status and events writes.
	rc.QPS, rc.Burst = 50, 100
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, err
	}
	a := &Agent{cfg: cfg, client: client, info: readNodeInfo(), metrics: prometheus.NewRegistry()}
	if err := a.podDefaults(); err != nil {
		return nil, err
	}
	var recorder record.EventRecorder
	a.events, recorder = newRecorder(cfg.NodeName)
	a.pods = newPodManager(a.cfg, client, a.cfg.Runtime, a.cfg.Images, a.cfg.Network, recorder, a.desiredNode(true).Status.Allocatable)
	if si, ok := a.cfg.Images.(*storeImages); ok {
		if st, ok := si.store.(imageGCStore); ok {
			a.pods.gc = newImageGC(a.cfg, st, a.cfg.Runtime)
		}
	}
	if cfg.Port > 0 {
		if a.server, err = newServer(a.cfg, rc, a.pods, a.metrics); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// podDefaults fills in the real runtime, image store and pod network
// where the config has none.
func (a *Agent) podDefaults() error {
	c := &a.cfg
	if c.Runtime == nil {
		rt, err := runtime.New(runtime.Config{Root: filepath.Join(c.StateDir, "runtime"), RunDir: c.RunDir,
			CgroupParent: c.CgroupParent})
		if err != nil {
			return err
		}
		c.Runtime = rt
	}
	if c.Images == nil {
		images, err := defaultImages(c.ImageStore)
		if err != nil {
			return err
		}
		c.Images = images
	}
	if c.Network == nil {
		c.Network = newCNINetwork(c.CNIConfDir, c.CNIBinDir, filepath.Join(c.StateDir, "cni-cache"))
	}
	return nil
}

// RESTConfig is the client configuration of cfg's API server: from
// Kubeconfig when set, else Server, Token and CAFile.
func RESTConfig(cfg Config) (*rest.Config, error) {
	if cfg.Kubeconfig != "" {
		rc, err := clientcmd.BuildConfigFromFlags("", cfg.Kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("kubeconfig %s: %w", cfg.Kubeconfig, err)
		}
		return rc, nil
	}
	return &rest.Config{Host: cfg.Server, BearerToken: cfg.Token, TLSClientConfig: rest.TLSClientConfig{CAFile: cfg.CAFile}}, nil
}

// Run keeps the node registered and healthy and runs its pods until ctx
// ends. The pods keep running after it returns; the next Run adopts them.
func (a *Agent) Run(ctx context.Context) error {
	log := klog.FromContext(ctx).WithValues("node", a.cfg.NodeName)
	startEvents(a.events, a.client)
	defer a.events.Shutdown()
	pods := make(chan error, 1)
	go func() { pods <- a.pods.run(klog.NewContext(ctx, log)) }()
	defer func() {
		if err := <-pods; err != nil {
			log.Error(err, "pods")
		}
	}()
	if a.server != nil {
		served := make(chan error, 1)
		go func() {
			// Pods are looked up through the pod manager's informer.
			select {
			case <-a.pods.ready:
			case <-ctx.Done():
				served <- nil
				return
			}
			served <- a.server.run(klog.NewContext(ctx, log), net.JoinHostPort(a.cfg.NodeIP, strconv.Itoa(a.cfg.Port)))
		}()
		defer func() {
			if err := <-served; err != nil {
				log.Error(err, "agent server")
			}
		}()
	}
	if a.cfg.ManageNetwork {
		pn, err := podnet.New(podnet.Config{Client: a.client, NodeName: a.cfg.NodeName, Mode: a.cfg.PodNetworkMode})
		if err != nil {
			return fmt.Errorf("pod network: %w", err)
		}
		routes := make(chan error, 1)
		go func() { routes <- pn.Run(klog.NewContext(ctx, log)) }()
		defer func() {
			if err := <-routes; err != nil {
				log.Error(err, "pod network routes")
			}
		}()
		if a.cfg.ProxyMode != ProxyNone {
			if err := a.startProxy(klog.NewContext(ctx, log)); err != nil {
				return err
			}
			defer func() {
				if err := <-a.proxyDone; err != nil {
					log.Error(err, "service proxy")
				}
			}()
		}
	}
	renew := a.cfg.LeaseDuration / 4
	lease := time.NewTicker(renew)
	defer lease.Stop()
	status := time.NewTicker(10 * time.Second)
	defer status.Stop()
	lastReport := time.Time{}
	for {
		networkReady, err := a.syncNetwork(ctx)
		if err != nil && ctx.Err() == nil {
			log.Error(err, "node network")
		}
		force := time.Since(lastReport) > a.cfg.StatusFrequency
		if node, err := a.syncNode(ctx, networkReady, force); err != nil {
			if ctx.Err() == nil {
				log.Error(err, "node status")
			}
		} else {
			a.node = node
			if force {
				lastReport = time.Now()
			}
		}
		if err := a.renewLease(ctx); err != nil && ctx.Err() == nil {
			log.Error(err, "renew node lease")
		}
		// Until the node's network is ready, look again soon.
		wait := status.C
		if !networkReady {
			wait = time.After(200 * time.Millisecond)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-lease.C:
		case <-wait:
		}
	}
}

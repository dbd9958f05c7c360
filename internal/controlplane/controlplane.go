// Package controlplane is `kite server`: the API server, and the control
// loops (controllers, scheduler) that run against it through a loopback
// client. Every server serves the API; one at a time, chosen by a Lease,
// runs the loops.
package controlplane

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"

	"kite/internal/apiserver"
	"kite/internal/controller/lbipam"
)

// Config configures the control plane.
type Config struct {
	API apiserver.Config
	// LeaderElection: several servers on one etcd run the loops in one
	// of them at a time. Off, this server always runs them.
	LeaderElection bool
	LeaseDuration  time.Duration
	RenewDeadline  time.Duration
	RetryPeriod    time.Duration
	// Controllers options.
	NodeMonitorGracePeriod time.Duration
	PodEvictionTimeout     time.Duration
	NodeCIDRMaskSize       int
	// LBPool is the LoadBalancer address pool (lbipam.ParsePool); empty:
	// LoadBalancer Services stay pending, as upstream without a cloud.
	LBPool string
	// ClusterDNS deploys the DNS add-on (dnsaddon.go) in ClusterDomain.
	ClusterDNS    bool
	ClusterDomain string
}

// Defaults fills unset fields.
func (c *Config) Defaults() {
	if c.API.DefaultTolerationSeconds == 0 && c.PodEvictionTimeout > 0 {
		c.API.DefaultTolerationSeconds = int64(c.PodEvictionTimeout / time.Second)
	}
	c.API.Defaults()
	if c.LeaseDuration == 0 {
		c.LeaseDuration = 15 * time.Second
	}
	if c.RenewDeadline == 0 {
		c.RenewDeadline = 10 * time.Second
	}
	if c.RetryPeriod == 0 {
		c.RetryPeriod = 2 * time.Second
	}
	if c.NodeMonitorGracePeriod == 0 {
		c.NodeMonitorGracePeriod = 40 * time.Second
	}
	if c.PodEvictionTimeout == 0 {
		c.PodEvictionTimeout = 300 * time.Second
	}
	if c.ClusterDomain == "" {
		c.ClusterDomain = "cluster.local"
	}
	if c.NodeCIDRMaskSize == 0 {
		c.NodeCIDRMaskSize = 24
	}
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if err := c.API.Validate(); err != nil {
		return err
	}
	if c.RenewDeadline >= c.LeaseDuration {
		return fmt.Errorf("leader election: renew deadline %v must be shorter than the lease duration %v", c.RenewDeadline, c.LeaseDuration)
	}
	if c.LBPool != "" {
		if _, err := lbipam.ParsePool(c.LBPool); err != nil {
			return fmt.Errorf("--lb-pool: %w", err)
		}
	}
	return nil
}

// ControlPlane is a configured, not yet serving, control plane.
type ControlPlane struct {
	cfg Config
	api *apiserver.Server
	id  string // leader election identity
}

// New prepares the API server (PKI, storage).
func New(ctx context.Context, cfg Config) (*ControlPlane, error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	api, err := apiserver.New(ctx, cfg.API)
	if err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	return &ControlPlane{cfg: cfg, api: api, id: host + "_" + string(uuid.NewUUID())}, nil
}

// Identity is this server's name in leader election.
func (c *ControlPlane) Identity() string { return c.id }

// AdminKubeconfig is the path of the admin kubeconfig.
func (c *ControlPlane) AdminKubeconfig() string { return c.api.AdminKubeconfig }

// Run serves the API and runs the control loops until ctx ends. The loops
// stop first (releasing their lease), then the API server.
func (c *ControlPlane) Run(ctx context.Context) error {
	apiCtx, stopAPI := context.WithCancel(context.WithoutCancel(ctx))
	defer stopAPI()
	apiErr := make(chan error, 1)
	go func() { apiErr <- c.api.Run(apiCtx) }()
	stop := func() error {
		stopAPI()
		return <-apiErr
	}

	loopback, err := clientcmd.BuildConfigFromFlags("", c.api.AdminKubeconfig)
	if err != nil {
		return errors.Join(err, stop())
	}
	loopback.QPS, loopback.Burst = 200, 400
	// The loops use deprecated APIs on purpose (v1 Endpoints): no warnings
	// in the server's log.
	loopback.WarningHandler = rest.NoWarnings{}
	client, err := kubernetes.NewForConfig(rest.AddUserAgent(loopback, "kite-controller-manager"))
	if err != nil {
		return errors.Join(err, stop())
	}
	if err := waitReady(ctx, client, apiErr); err != nil {
		if ctx.Err() != nil {
			return stop()
		}
		return errors.Join(err, stop())
	}
	loopCtx, stopLoops := context.WithCancel(ctx)
	defer stopLoops()
	loops := make(chan error, 1)
	go func() { loops <- c.runLoops(loopCtx, loopback, client) }()
	select {
	case err := <-apiErr:
		stopLoops()
		<-loops
		return err
	case err := <-loops:
		if ctx.Err() == nil && err != nil {
			return errors.Join(err, stop())
		}
		return stop()
	}
}

// runLoops runs the controllers, under leader election when configured.
func (c *ControlPlane) runLoops(ctx context.Context, loopback *rest.Config, client kubernetes.Interface) error {
	if !c.cfg.LeaderElection {
		return c.runControllers(ctx, loopback, client)
	}
	id := c.id
	lock, err := resourcelock.New(resourcelock.LeasesResourceLock, "kube-system", "kite-controller-manager",
		client.CoreV1(), client.CoordinationV1(), resourcelock.ResourceLockConfig{Identity: id})
	if err != nil {
		return err
	}
	log := klog.FromContext(ctx)
	var runErr error
	// Losing the lease stops the loops; the server then competes again.
	for ctx.Err() == nil {
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock: lock, LeaseDuration: c.cfg.LeaseDuration, RenewDeadline: c.cfg.RenewDeadline, RetryPeriod: c.cfg.RetryPeriod,
			ReleaseOnCancel: true, Name: "kite-controller-manager",
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(lctx context.Context) {
					log.Info("leading: starting controllers", "identity", id)
					runErr = c.runControllers(lctx, loopback, client)
				},
				OnStoppedLeading: func() { log.Info("stopped leading", "identity", id) },
			},
		})
		if err != nil {
			return err
		}
		le.Run(ctx)
		if runErr != nil && ctx.Err() == nil {
			return runErr
		}
	}
	return nil
}

// controllerContext is what every loop is built from.
type controllerContext struct {
	cfg         *Config
	client      kubernetes.Interface
	dynamic     dynamic.Interface
	metadata    metadata.Interface
	informers   informers.SharedInformerFactory
	broadcaster record.EventBroadcaster
}

func (cc *controllerContext) recorder(component string) record.EventRecorder {
	return cc.broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: component})
}

// runner is a built control loop.
type runner interface {
	Run(ctx context.Context) error
}

// runControllers builds every loop and runs them until ctx ends.
func (c *ControlPlane) runControllers(ctx context.Context, loopback *rest.Config, client kubernetes.Interface) error {
	dyn, err := dynamic.NewForConfig(loopback)
	if err != nil {
		return err
	}
	meta, err := metadata.NewForConfig(loopback)
	if err != nil {
		return err
	}
	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
	defer broadcaster.Shutdown()
	cc := &controllerContext{cfg: &c.cfg, client: client, dynamic: dyn, metadata: meta,
		informers: informers.NewSharedInformerFactory(client, 0), broadcaster: broadcaster}
	var runners []namedRunner
	for _, l := range loops {
		r, err := l.build(cc)
		if err != nil {
			return fmt.Errorf("%s: %w", l.name, err)
		}
		if r == nil {
			continue // not configured
		}
		runners = append(runners, namedRunner{l.name, r})
	}
	cc.informers.Start(ctx.Done())
	defer cc.informers.Shutdown()
	errs := make(chan error, len(runners))
	var wg sync.WaitGroup
	for _, r := range runners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.Run(ctx); err != nil && ctx.Err() == nil {
				errs <- fmt.Errorf("%s: %w", r.name, err)
			}
		}()
	}
	select {
	case <-ctx.Done():
		wg.Wait()
		return nil
	case err := <-errs:
		return err
	}
}

type namedRunner struct {
	name string
	runner
}

// waitReady waits for the API server to answer through the loopback
// client.
func waitReady(ctx context.Context, client kubernetes.Interface, apiErr <-chan error) error {
	log := klog.FromContext(ctx)
	deadline := time.Now().Add(time.Minute)
	for {
		_, err := client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("API server not ready within a minute: %w", err)
		}
		select {
		case err := <-apiErr:
			if err == nil {
				err = errors.New("API server stopped")
			}
			return err
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
			log.V(4).Info("waiting for the API server", "err", err)
		}
	}
}

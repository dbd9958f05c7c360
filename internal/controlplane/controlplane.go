// Package controlplane is `kite server`: the API server, and the control
// loops that run against it through a loopback client.
package controlplane

import (
	"context"
	"errors"
	"fmt"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	"kite/internal/apiserver"
	"kite/internal/controller/namespace"
)

// Config configures the control plane.
type Config struct {
	API apiserver.Config
}

// ControlPlane is a configured, not yet serving, control plane.
type ControlPlane struct {
	cfg Config
	api *apiserver.Server
}

// New prepares the API server (PKI, storage).
func New(ctx context.Context, cfg Config) (*ControlPlane, error) {
	api, err := apiserver.New(ctx, cfg.API)
	if err != nil {
		return nil, err
	}
	return &ControlPlane{cfg: cfg, api: api}, nil
}

// AdminKubeconfig is the path of the admin kubeconfig.
func (c *ControlPlane) AdminKubeconfig() string { return c.api.AdminKubeconfig }

// Run serves the API and runs the controllers until ctx ends.
func (c *ControlPlane) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	apiErr := make(chan error, 1)
	go func() { apiErr <- c.api.Run(ctx) }()

	loopback, err := clientcmd.BuildConfigFromFlags("", c.api.AdminKubeconfig)
	if err != nil {
		return err
	}
	loopback.QPS, loopback.Burst = 200, 400
	client, err := kubernetes.NewForConfig(rest.AddUserAgent(loopback, "kite-controllers"))
	if err != nil {
		return err
	}
	if err := waitReady(ctx, client, apiErr); err != nil {
		if ctx.Err() != nil {
			// Stopped while starting: let the API server shut down.
			return <-apiErr
		}
		return err
	}
	dyn, err := dynamic.NewForConfig(loopback)
	if err != nil {
		return err
	}
	factory := informers.NewSharedInformerFactory(client, 0)
	nsc, err := namespace.New(namespace.Config{Client: client, Dynamic: dyn, Namespaces: factory.Core().V1().Namespaces()})
	if err != nil {
		return err
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	ctlErr := make(chan error, 1)
	go func() { ctlErr <- nsc.Run(ctx) }()
	select {
	case err := <-apiErr:
		return err
	case err := <-ctlErr:
		if ctx.Err() == nil && err != nil {
			return fmt.Errorf("namespace controller: %w", err)
		}
		return <-apiErr
	}
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

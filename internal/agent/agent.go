// Package agent is `kite agent`: one node of a cluster. It registers the
// Node and keeps its heartbeat, writes the node's CNI configuration once
// the node has a pod CIDR, sets up the node's own networking (forwarding,
// bridged traffic through netfilter, masquerade of pod traffic leaving the
// cluster), and runs the pods bound to the node.
package agent

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
)

// Agent runs one node.
type Agent struct {
	cfg    Config
	client kubernetes.Interface
	info   nodeInfo
	node   *corev1.Node // last seen
}

// New prepares an agent.
func New(cfg Config) (*Agent, error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	rc, err := restConfig(cfg)
	if err != nil {
		return nil, err
	}
	rc.UserAgent = "kite-agent/" + cfg.NodeName
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, err
	}
	return &Agent{cfg: cfg, client: client, info: readNodeInfo()}, nil
}

func restConfig(cfg Config) (*rest.Config, error) {
	if cfg.Kubeconfig != "" {
		rc, err := clientcmd.BuildConfigFromFlags("", cfg.Kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("kubeconfig %s: %w", cfg.Kubeconfig, err)
		}
		return rc, nil
	}
	return &rest.Config{Host: cfg.Server, BearerToken: cfg.Token, TLSClientConfig: rest.TLSClientConfig{CAFile: cfg.CAFile}}, nil
}

// Run keeps the node registered and healthy until ctx ends.
func (a *Agent) Run(ctx context.Context) error {
	log := klog.FromContext(ctx).WithValues("node", a.cfg.NodeName)
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
			wait = time.After(time.Second)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-lease.C:
		case <-wait:
		}
	}
}

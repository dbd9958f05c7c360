package main

import (
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"kite/internal/dns"
)

// newDNSCommand runs kite's cluster DNS (as the kite-dns pods do).
func newDNSCommand() *cobra.Command {
	cfg := dns.DefaultConfig()
	var kubeconfig string
	cmd := &cobra.Command{
		Use:   "dns",
		Short: "Serve cluster DNS (kube-dns) from the cluster's Services and EndpointSlices",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cfg.Validate(); err != nil {
				return err
			}
			rc, err := restConfig(kubeconfig)
			if err != nil {
				return err
			}
			rc.UserAgent = "kite-dns"
			client, err := kubernetes.NewForConfig(rc)
			if err != nil {
				return err
			}
			srv, err := dns.New(cfg, client)
			if err != nil {
				return err
			}
			return srv.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig to reach the API server (default: the pod's service account)")
	f.StringVar(&cfg.Zone, "cluster-domain", cfg.Zone, "the cluster's DNS domain, answered authoritatively")
	f.StringVar(&cfg.Listen, "listen", cfg.Listen, "DNS address, UDP and TCP")
	f.StringVar(&cfg.MetricsListen, "metrics-listen", cfg.MetricsListen, "Prometheus /metrics address (empty: none)")
	f.StringVar(&cfg.HealthListen, "health-listen", cfg.HealthListen, "liveness /health address (empty: none)")
	f.StringVar(&cfg.ReadyListen, "ready-listen", cfg.ReadyListen, "readiness /ready address (empty: none)")
	f.StringVar(&cfg.ResolvConf, "resolv-conf", cfg.ResolvConf, "resolv.conf naming the upstream resolvers for names outside the cluster")
	f.StringSliceVar(&cfg.Upstreams, "upstream", nil, "upstream resolvers (host[:port]), instead of --resolv-conf")
	f.DurationVar(&cfg.TTL, "ttl", cfg.TTL, "TTL of the cluster's records")
	f.DurationVar(&cfg.Lameduck, "lameduck", cfg.Lameduck, "on stop, keep answering this long with /ready failing")
	return cmd
}

// restConfig is the client configuration of --kubeconfig, or of the pod's
// service account when it is empty.
func restConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig != "" {
		rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("kubeconfig %s: %w", kubeconfig, err)
		}
		return rc, nil
	}
	rc, err := rest.InClusterConfig()
	if err != nil {
		return nil, fmt.Errorf("not in a pod with a service account (%w): give --kubeconfig", err)
	}
	return rc, nil
}

package main

import (
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"

	"kite/internal/controller/lbipam"
	"kite/internal/lb"
)

// newLBCommand runs kite's external load balancer for LoadBalancer
// Services (S19), in its own network namespace on the nodes' network.
func newLBCommand() *cobra.Command {
	var cfg lb.Config
	var kubeconfig, pool string
	cmd := &cobra.Command{
		Use:   "lb",
		Short: "Forward LoadBalancer Services' ingress IPs to the nodes' NodePorts (run in the load balancer's own network namespace)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if kubeconfig == "" {
				return fmt.Errorf("--kubeconfig is required")
			}
			if pool != "" {
				p, err := lbipam.ParsePool(pool)
				if err != nil {
					return fmt.Errorf("--pool: %w", err)
				}
				cfg.Pool = p.Prefixes()
			}
			rc, err := restConfig(kubeconfig)
			if err != nil {
				return err
			}
			rc.UserAgent = "kite-lb"
			client, err := kubernetes.NewForConfig(rc)
			if err != nil {
				return err
			}
			l, err := lb.New(cfg, client)
			if err != nil {
				return err
			}
			return l.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig to reach the API server")
	f.StringVar(&cfg.Interface, "interface", "eth0", "the link on the nodes' network: ingress addresses are added to it")
	f.StringVar(&pool, "pool", "", "the LoadBalancer pool (as kite server --lb-pool): its unserved addresses are refused")
	f.StringVar(&cfg.Class, "load-balancer-class", "", "spec.loadBalancerClass served besides none (default kite.dev/lb)")
	return cmd
}

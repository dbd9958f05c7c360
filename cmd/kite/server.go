package main

import (
	"github.com/spf13/cobra"

	"kite/internal/apiserver"
	"kite/internal/controlplane"
)

func newServerCommand() *cobra.Command {
	var cfg apiserver.Config
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the API server (with an embedded etcd unless --etcd-endpoints is given)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg.Defaults()
			if err := cfg.Validate(); err != nil {
				return err
			}
			cp, err := controlplane.New(cmd.Context(), controlplane.Config{API: cfg})
			if err != nil {
				return err
			}
			cmd.PrintErrf("kite server: admin kubeconfig at %s\n", cp.AdminKubeconfig())
			return cp.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.StateDir, "state-dir", "/var/lib/kite/server", "directory for the CA, certificates, kubeconfig and embedded etcd data")
	f.StringVar(&cfg.Listen, "listen", "0.0.0.0:6443", "HTTPS address to serve on")
	f.StringVar(&cfg.AdvertiseAddress, "advertise-address", "", "IP address other nodes and clients reach this server at")
	f.StringSliceVar(&cfg.EtcdEndpoints, "etcd-endpoints", nil, "external etcd endpoints (default: run an embedded etcd in the state dir)")
	f.StringVar(&cfg.EtcdListenClient, "etcd-listen-client", "", "with embedded etcd, also serve etcd's client API at this URL (e.g. http://10.0.0.1:2379) for other kite servers")
	f.StringVar(&cfg.ServiceCIDR, "service-cidr", "10.96.0.0/16", "CIDR of Service cluster IPs")
	f.StringVar(&cfg.ClusterCIDR, "cluster-cidr", "10.244.0.0/16", "CIDR of pod IPs, split into per-node pod CIDRs")
	return cmd
}

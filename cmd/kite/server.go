package main

import (
	"time"

	"github.com/spf13/cobra"

	"kite/internal/controlplane"
)

func newServerCommand() *cobra.Command {
	var cp controlplane.Config
	cfg := &cp.API
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the API server (with an embedded etcd unless --etcd-endpoints is given)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cp.Defaults()
			if err := cp.Validate(); err != nil {
				return err
			}
			server, err := controlplane.New(cmd.Context(), cp)
			if err != nil {
				return err
			}
			cmd.PrintErrf("kite server: admin kubeconfig at %s\n", server.AdminKubeconfig())
			return server.Run(cmd.Context())
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
	f.BoolVar(&cp.LeaderElection, "leader-elect", true, "with several servers on one etcd, run the controllers in one of them at a time")
	f.DurationVar(&cp.NodeMonitorGracePeriod, "node-monitor-grace-period", 40*time.Second, "a node silent this long becomes NotReady (Unknown)")
	f.DurationVar(&cp.PodEvictionTimeout, "pod-eviction-timeout", 300*time.Second, "how long pods stay on an unreachable node before eviction, unless they tolerate otherwise")
	f.IntVar(&cp.NodeCIDRMaskSize, "node-cidr-mask-size", 24, "prefix length of each node's pod CIDR")
	f.BoolVar(&cp.ClusterDNS, "cluster-dns", false, "deploy cluster DNS: Deployment kite-dns and Service kube-dns at the tenth address of --service-cidr in kube-system")
	f.StringVar(&cp.ClusterDomain, "cluster-domain", "cluster.local", "the cluster's DNS domain")
	f.StringVar(&cp.LBPool, "lb-pool", "", "LoadBalancer addresses to allocate: CIDRs, first-last ranges or addresses, comma-separated (empty: LoadBalancer Services stay pending)")
	return cmd
}

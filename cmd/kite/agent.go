package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/resource"

	"kite/internal/agent"
)

func newAgentCommand() *cobra.Command {
	var cfg agent.Config
	logMaxSize := "10Mi"
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run one node: register it, keep its network, run its pods",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q, err := resource.ParseQuantity(logMaxSize)
			if err != nil || q.Value() <= 0 {
				return fmt.Errorf("--container-log-max-size %q: want a positive quantity such as 10Mi", logMaxSize)
			}
			cfg.ContainerLogMaxSize = q.Value()
			a, err := agent.New(cfg)
			if err != nil {
				return err
			}
			return a.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Kubeconfig, "kubeconfig", "", "kubeconfig to reach the API server")
	f.StringVar(&cfg.Server, "server", "", "API server URL (with --token)")
	f.StringVar(&cfg.Token, "token", "", "bootstrap token (with --server)")
	f.StringVar(&cfg.CAFile, "certificate-authority", "", "CA file of the API server (with --server)")
	f.StringVar(&cfg.NodeName, "node-name", "", "name of this node")
	f.StringVar(&cfg.NodeIP, "node-ip", "", "IP address of this node")
	f.StringToStringVar(&cfg.Labels, "node-labels", nil, "labels to add to the Node")
	f.StringVar(&cfg.StateDir, "state-dir", "/var/lib/kite/agent", "directory for the agent's state")
	f.StringVar(&cfg.CNIConfDir, "cni-conf-dir", "/etc/cni/net.d", "where the node's CNI configuration is written")
	f.StringVar(&cfg.CNIBinDir, "cni-bin-dir", "/opt/cni/bin", "where CNI plugins are found")
	f.StringVar(&cfg.ClusterCIDR, "cluster-cidr", "10.244.0.0/16", "the cluster's pod network (traffic leaving it is masqueraded)")
	f.BoolVar(&cfg.ManageNetwork, "manage-network", true, "set the node's forwarding sysctls and masquerade rules")
	f.StringVar(&cfg.PodNetworkMode, "pod-network", "host-gw", "how pods reach other nodes: host-gw (nodes on one L2 segment) or vxlan")
	f.StringVar(&cfg.RunDir, "run-dir", "/run/kite", "runtime state that does not survive a reboot (namespace pins, runc state)")
	f.StringVar(&cfg.ImageStore, "image-store", "/var/lib/kite/images", "the machine's image store (shared by every node of a lab)")
	f.StringVar(&cfg.ClusterDomain, "cluster-domain", "cluster.local", "the cluster's DNS domain")
	f.StringVar(&cfg.ResolvConf, "resolv-conf", "/etc/resolv.conf", "resolver configuration for pods with dnsPolicy Default")
	f.DurationVar(&cfg.LeaseDuration, "node-lease-duration", 40*time.Second, "duration of the node's heartbeat Lease")
	f.StringVar(&cfg.CgroupParent, "cgroup-parent", "", "cgroup under which the node's containers get theirs (default /kite/<node-name>)")
	f.IntVar(&cfg.Port, "port", agent.DefaultPort, "HTTPS port of the agent's log, exec, attach and port-forward server on --node-ip (negative: none)")
	f.StringVar(&cfg.ProxyMode, "proxy-mode", "nftables", "how the node's Service proxy programs the kernel: nftables, iptables or none (needs --manage-network)")
	f.StringVar(&logMaxSize, "container-log-max-size", logMaxSize, "size at which a container's log is rotated (kubelet's containerLogMaxSize)")
	f.IntVar(&cfg.ContainerLogMaxFiles, "container-log-max-files", agent.DefaultContainerLogMaxFiles, "most log files kept per container, the current one included (at least 2)")
	f.IntVar(&cfg.ImageGCHighThreshold, "image-gc-high-threshold", agent.DefaultImageGCHighThreshold, "percent usage of the image store's file system above which unused images are removed (100: never)")
	f.IntVar(&cfg.ImageGCLowThreshold, "image-gc-low-threshold", agent.DefaultImageGCLowThreshold, "percent usage image garbage collection brings the image store's file system down to")
	f.DurationVar(&cfg.ImageMinimumGCAge, "minimum-image-ttl-duration", 2*time.Minute, "an image used more recently than this is never removed by image garbage collection")
	return cmd
}

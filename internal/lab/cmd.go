package lab

import (
	"syscall"

	"github.com/spf13/cobra"
)

// The cobra commands of the lab, for cmd/kite to register:
//
//	root.AddCommand(lab.NewUpCommand(), lab.NewDownCommand(), lab.NewNodeCommand())
//
// Registering them also links this package into the kite binary, which
// makes it able to serve as the lab's helper (helper.go).

// NewUpCommand is `kite up`.
func NewUpCommand() *cobra.Command {
	var cfg Config
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Start a lab cluster on this machine: nodes are namespaces on an underlay bridge",
		Long: `Start a lab cluster on this machine. Each node is a network namespace on an
underlay bridge in your own namespace, with its own mount namespace; the
control-plane node runs kite server, every node runs kite agent, all kept
running by a supervisor in the background. The admin context is merged into
your kubeconfig and made current. Running it again for a cluster that is
down brings it back with the same addresses and data.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg.Out = cmd.OutOrStdout()
			return Up(cmd.Context(), cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Name, "name", DefaultName, "name of the cluster (at most 10 characters)")
	f.IntVar(&cfg.Nodes, "nodes", 0, "number of nodes, control plane included (default 3)")
	f.StringVar(&cfg.StateDir, "state-dir", "", "the cluster's state directory (default /var/lib/kite/lab/<name>)")
	f.StringVar(&cfg.PodCIDR, "pod-cidr", "", "pod (cluster) CIDR, a /24 per node (default "+DefaultPodCIDR+")")
	f.StringVar(&cfg.PodNetwork, "pod-network", "host-gw", "how pods reach other nodes: host-gw (nodes on one L2 segment) or vxlan")
	f.BoolVar(&cfg.RoutePods, "route-pods", false, "route the pod CIDRs from this machine via the nodes (curl a pod IP from your shell)")
	f.StringVar(&cfg.ProxyMode, "proxy-mode", "nftables", "how each node's Service proxy programs the kernel: nftables, iptables (the seed's layout) or none")
	f.StringVar(&cfg.ServiceCIDR, "service-cidr", "", "Service CIDR (default "+DefaultServiceCIDR+")")
	f.StringVar(&cfg.Underlay, "underlay", "", "the nodes' /24: .1 is this machine, .2 … the nodes (default: the first free 172.30.N.0/24)")
	f.StringVar(&cfg.LBPool, "lb-pool", "", "LoadBalancer addresses: CIDRs, first-last ranges or addresses, comma-separated, on the underlay (default .200-.249 of it)")
	f.StringVar(&cfg.LBMode, "lb-mode", "", "how LoadBalancer addresses are reached: lb (kite lb forwards them to the NodePorts) or l2 (an elected node answers ARP for each) (default lb)")
	f.DurationVar(&cfg.Wait, "wait", DefaultWait, "wait this long for the API and every node to be Ready (0: do not wait)")
	return cmd
}

// NewDownCommand is `kite down`.
func NewDownCommand() *cobra.Command {
	var cfg Config
	cmd := &cobra.Command{
		Use:   "down",
		Short: "Stop a lab cluster and remove everything it made on this machine",
		Long: `Stop a lab cluster: its processes, namespaces, links, mounts and kubeconfig
context go, and nothing else. Its data (etcd, certificates, node directories,
logs) stays in the state directory for the next kite up, unless --purge.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg.Out = cmd.OutOrStdout()
			return Down(cmd.Context(), cfg)
		},
	}
	f := cmd.Flags()
	clusterFlags(cmd, &cfg, DefaultName, "name of the cluster")
	f.BoolVar(&cfg.Purge, "purge", false, "remove the state directory too (etcd data, certificates, logs)")
	return cmd
}

// NewStatusCommand is `kite status`.
func NewStatusCommand() *cobra.Command {
	var cfg Config
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show a lab cluster: networks, nodes (IP, pod CIDR, Ready) and its processes",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return Status(cmd.Context(), cfg, cmd.OutOrStdout())
		},
	}
	clusterFlags(cmd, &cfg, DefaultName, "name of the cluster")
	return cmd
}

// NewNodeCommand is `kite node`, holding `kite node shell`, `add` and
// `rm`.
func NewNodeCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "node", Short: "Work with the nodes of a lab cluster"}
	cmd.AddCommand(NewNodeShellCommand(), NewNodeAddCommand(), NewNodeRmCommand())
	return cmd
}

// NewNodeAddCommand is `kite node add [NAME]`.
func NewNodeAddCommand() *cobra.Command {
	var cfg Config
	cmd := &cobra.Command{
		Use:   "add [NAME]",
		Short: "Add a worker node to a running lab cluster (default name: the next <name>-worker<N>)",
		Long: `Add a worker node to a running lab cluster: a network namespace on the
underlay with the next free address, its own mount namespace, and a kite agent
kept running by the cluster's supervisor. Waits until the Node is Ready. The
node stays part of the cluster across kite down and kite up, until kite node rm.`,
		Example: `  kite node add
  kite node add kite-gpu`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg.Out = cmd.OutOrStdout()
			name := ""
			if len(args) == 1 {
				name = args[0]
			}
			return AddNode(cmd.Context(), cfg, name)
		},
	}
	f := cmd.Flags()
	clusterFlags(cmd, &cfg, DefaultName, "name of the cluster")
	f.DurationVar(&cfg.Wait, "wait", DefaultWait, "wait this long for the Node to be Ready (0: do not wait)")
	return cmd
}

// NewNodeRmCommand is `kite node rm NODE`.
func NewNodeRmCommand() *cobra.Command {
	var cfg Config
	cmd := &cobra.Command{
		Use:   "rm NODE",
		Short: "Remove a worker node from a running lab cluster",
		Long: `Remove a worker node from a running lab cluster: cordon it, delete its pods
(their controllers recreate them on other nodes), stop its agent, delete its
Node, and remove its namespaces, veth, mounts, cgroups and files. The
control-plane node cannot be removed.`,
		Example: `  kite node rm kite-worker2`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg.Out = cmd.OutOrStdout()
			return RemoveNode(cmd.Context(), cfg, args[0])
		},
	}
	clusterFlags(cmd, &cfg, DefaultName, "name of the cluster")
	return cmd
}

// NewNodeShellCommand is `kite node shell NODE [-- CMD...]`.
func NewNodeShellCommand() *cobra.Command {
	var cfg Config
	cmd := &cobra.Command{
		Use:   "shell NODE [-- COMMAND [ARG...]]",
		Short: "Run a shell, or a command, inside a lab node (its network, mount and UTS namespaces)",
		Example: `  kite node shell kite-worker
  kite node shell kite-control-plane -- kubectl get pods -o wide
  kite node shell kite-worker -- ip route`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := NodeCommand(cfg, args[0], args[1:])
			if err != nil {
				return err
			}
			// Become the command: its exit status, terminal and signals
			// are the user's.
			return syscall.Exec(c.Path, c.Args, c.Env)
		},
	}
	clusterFlags(cmd, &cfg, "", "name of the cluster (default: from the node's name)")
	return cmd
}

// clusterFlags are the flags every command on an existing cluster takes:
// which cluster, and where its state is.
func clusterFlags(cmd *cobra.Command, cfg *Config, name, nameUsage string) {
	cmd.Flags().StringVar(&cfg.Name, "name", name, nameUsage)
	cmd.Flags().StringVar(&cfg.StateDir, "state-dir", "", "the cluster's state directory (default /var/lib/kite/lab/<name>)")
}

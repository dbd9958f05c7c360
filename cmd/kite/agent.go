package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/client-go/kubernetes"

	"kite/internal/agent"
	"kite/internal/lb/l2"
)

func newAgentCommand() *cobra.Command {
	var cfg agent.Config
	var lbMode string
	var speaker l2.Config
	logMaxSize := resource.NewQuantity(agent.DefaultContainerLogMaxSize, resource.BinarySI).String()
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run one node: register it, keep its network, run its pods",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if lbMode != "none" && lbMode != "l2" {
				return fmt.Errorf("--lb-mode %q: want none or l2", lbMode)
			}
			q, err := resource.ParseQuantity(logMaxSize)
			if err != nil || q.Value() <= 0 {
				return fmt.Errorf("--container-log-max-size %q: want a positive quantity such as 10Mi", logMaxSize)
			}
			cfg.ContainerLogMaxSize = q.Value()
			a, err := agent.New(cfg)
			if err != nil {
				return err
			}
			if lbMode == "none" {
				return a.Run(cmd.Context())
			}
			speaker.NodeName, speaker.NodeIP = cfg.NodeName, cfg.NodeIP
			s, err := newSpeaker(cfg, speaker)
			if err != nil {
				return err
			}
			return runBoth(cmd.Context(), a.Run, s.Run)
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
	f.StringVar(&lbMode, "lb-mode", "none", "LoadBalancer addresses: none (a load balancer in front of the nodes, e.g. kite lb, owns them) or l2 (answer ARP for the addresses elected to this node)")
	f.StringVar(&speaker.Interface, "lb-interface", "", "with --lb-mode l2: the link to answer ARP on (default: the one holding --node-ip)")
	f.DurationVar(&speaker.LeaseDuration, "lb-lease-duration", l2.DefaultLeaseDuration, "with --lb-mode l2: how long a node's L2 heartbeat lasts (the fail-over time); the same on every node")
	f.StringVar(&logMaxSize, "container-log-max-size", logMaxSize, "size at which a container's log is rotated (kubelet's containerLogMaxSize)")
	f.IntVar(&cfg.ContainerLogMaxFiles, "container-log-max-files", agent.DefaultContainerLogMaxFiles, "most log files kept per container, the current one included (at least 2)")
	f.IntVar(&cfg.ImageGCHighThreshold, "image-gc-high-threshold", agent.DefaultImageGCHighThreshold, "percent usage of the image store's file system above which unused images are removed (100: never)")
	f.IntVar(&cfg.ImageGCLowThreshold, "image-gc-low-threshold", agent.DefaultImageGCLowThreshold, "percent usage image garbage collection brings the image store's file system down to")
	f.DurationVar(&cfg.ImageMinimumGCAge, "minimum-image-ttl-duration", agent.DefaultImageMinimumGCAge, "an image used more recently than this is never removed by image garbage collection")
	return cmd
}

// newSpeaker is the L2 speaker of --lb-mode l2, with a client of its own.
func newSpeaker(cfg agent.Config, sc l2.Config) (*l2.Speaker, error) {
	rc, err := agent.RESTConfig(cfg)
	if err != nil {
		return nil, err
	}
	rc.UserAgent = "kite-agent-l2"
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, err
	}
	return l2.New(sc, client)
}

// runBoth runs a and b until ctx ends or one of them returns; then the
// other is stopped too, and their errors are joined.
func runBoth(ctx context.Context, a, b func(context.Context) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, run := range []func(context.Context) error{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer cancel()
			errs[i] = run(ctx)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

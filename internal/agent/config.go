package agent

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"kite/internal/image"
	"kite/internal/proxy"
	"kite/internal/runtime"
)

// ProxyNone turns the node's Service proxy off.
const ProxyNone = "none"

// Config configures one node's agent.
type Config struct {
	// Kubeconfig to reach the API server (the lab writes one per node).
	Kubeconfig string
	// Or: Server URL, a bearer Token and the CA file.
	Server, Token, CAFile string

	NodeName string
	NodeIP   string
	// Labels added to the Node at registration (e.g. a control-plane
	// role).
	Labels map[string]string
	// StateDir holds the agent's own state (pods, logs).
	StateDir string
	// CNIConfDir and CNIBinDir are where the node's CNI config is written
	// and plugins are found.
	CNIConfDir, CNIBinDir string
	// CNIBridge is the bridge pods join (default cni0).
	CNIBridge string
	// ClusterCIDR is the pod network of the whole cluster: traffic from
	// pods to anywhere else is masqueraded.
	ClusterCIDR string
	// LeaseDuration and heartbeat: the agent renews its Lease every
	// LeaseDuration/4.
	LeaseDuration time.Duration
	// StatusFrequency is how often the Node status is posted even when
	// nothing changed.
	StatusFrequency time.Duration
	// ManageNetwork sets the node's sysctls and masquerade rules, and
	// routes to the other nodes' pod CIDRs (internal/podnet).
	ManageNetwork bool
	// PodNetworkMode is how pods reach other nodes: "host-gw" (nodes on
	// one L2 segment, the default) or "vxlan".
	PodNetworkMode string
	// ProxyMode is how the node's Service proxy (internal/proxy) programs
	// the kernel: "nftables" (default), "iptables", or "none". The proxy
	// runs only when ManageNetwork is set.
	ProxyMode string

	// Port is the agent's HTTPS port for logs, exec, attach and
	// port-forward, on NodeIP (default DefaultPort, kubelet's 10250;
	// negative: no server, for tests).
	Port int

	// CgroupParent is the cgroup (in every hierarchy) under which the
	// node's containers get theirs (default /kite/<node-name>); the lab
	// makes it unique per cluster, as several labs may share node names.
	CgroupParent string

	// RunDir holds the pods' state that does not outlive a reboot: pinned
	// namespaces and runc's state (default /run/kite).
	RunDir string
	// ClusterDomain is the cluster's DNS domain (default cluster.local).
	ClusterDomain string
	// ImageStore is the machine's image store, shared by the agents of a
	// lab (default /var/lib/kite/images).
	ImageStore string
	// ResolvConf is the node's resolver configuration, which pods with
	// dnsPolicy Default inherit (default /etc/resolv.conf).
	ResolvConf string

	// ContainerLogMaxSize (bytes) and ContainerLogMaxFiles (at least 2)
	// rotate the containers' logs, checked every LogMonitorPeriod
	// (defaults: kubelet's 10 MiB and 5 files, every 10 s).
	ContainerLogMaxSize  int64
	ContainerLogMaxFiles int
	LogMonitorPeriod     time.Duration

	// Image garbage collection (imagegc.go): above ImageGCHighThreshold
	// percent usage of the image store's file system, unused images are
	// removed down to ImageGCLowThreshold percent, checked every
	// ImageGCPeriod; images used within ImageMinimumGCAge stay (defaults:
	// kubelet's 85, 80, 5 min, 2 min; a high threshold of 100 turns it off).
	ImageGCHighThreshold, ImageGCLowThreshold int
	ImageGCPeriod, ImageMinimumGCAge          time.Duration

	// Runtime, Images and Network are what pods are made of. Nil means
	// the real ones: runc (runtime.New over StateDir/runtime and RunDir,
	// cgroups under /kite/<node>), the image store at ImageStore, and libcni
	// with the node's CNI configuration (CNIConfDir, plugins from
	// CNIBinDir and /usr/lib/cni). Tests inject their own.
	Runtime runtime.Interface
	Images  Images
	Network PodNetwork

	// hooks let the package's tests observe the pod workers; nil
	// otherwise.
	hooks *testHooks
}

// testHooks are called as pod workers make progress: synced after each
// completed sync of a pod, probed after each completed probe attempt of
// one of its containers.
type testHooks struct {
	synced, probed func(uid types.UID)
}

// Defaults fills unset fields.
func (c *Config) Defaults() {
	if c.CNIConfDir == "" {
		c.CNIConfDir = "/etc/cni/net.d"
	}
	if c.CNIBinDir == "" {
		c.CNIBinDir = "/opt/cni/bin"
	}
	if c.PodNetworkMode == "" {
		c.PodNetworkMode = "host-gw"
	}
	if c.CNIBridge == "" {
		c.CNIBridge = "cni0"
	}
	if c.ClusterCIDR == "" {
		c.ClusterCIDR = "10.244.0.0/16"
	}
	if c.StateDir == "" {
		c.StateDir = "/var/lib/kite/agent"
	}
	if c.LeaseDuration == 0 {
		c.LeaseDuration = 40 * time.Second
	}
	if c.RunDir == "" {
		c.RunDir = "/run/kite"
	}
	if c.ClusterDomain == "" {
		c.ClusterDomain = "cluster.local"
	}
	if c.ImageStore == "" {
		c.ImageStore = image.DefaultRoot
	}
	if c.ResolvConf == "" {
		c.ResolvConf = "/etc/resolv.conf"
	}
	if c.ProxyMode == "" {
		c.ProxyMode = proxy.ModeNFTables
	}
	if c.CgroupParent == "" {
		c.CgroupParent = "/kite/" + c.NodeName
	}
	if c.Port == 0 {
		c.Port = DefaultPort
	}
	if c.ContainerLogMaxSize == 0 {
		c.ContainerLogMaxSize = DefaultContainerLogMaxSize
	}
	if c.ContainerLogMaxFiles == 0 {
		c.ContainerLogMaxFiles = DefaultContainerLogMaxFiles
	}
	if c.LogMonitorPeriod == 0 {
		c.LogMonitorPeriod = defaultLogMonitorPeriod
	}
	if c.ImageGCHighThreshold == 0 {
		c.ImageGCHighThreshold = DefaultImageGCHighThreshold
	}
	if c.ImageGCLowThreshold == 0 {
		c.ImageGCLowThreshold = DefaultImageGCLowThreshold
	}
	if c.ImageGCPeriod == 0 {
		c.ImageGCPeriod = defaultImageGCPeriod
	}
	if c.ImageMinimumGCAge == 0 {
		c.ImageMinimumGCAge = DefaultImageMinimumGCAge
	}
	if c.StatusFrequency == 0 {
		c.StatusFrequency = 5 * time.Minute
	}
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.Kubeconfig == "" && (c.Server == "" || c.Token == "") {
		return errors.New("give --kubeconfig, or --server and --token")
	}
	if c.NodeName == "" {
		return errors.New("--node-name is required")
	}
	if net.ParseIP(c.NodeIP) == nil {
		return fmt.Errorf("--node-ip %q is not an IP address", c.NodeIP)
	}
	switch c.ProxyMode {
	case proxy.ModeNFTables, proxy.ModeIPTables, ProxyNone:
	default:
		return fmt.Errorf("--proxy-mode %q: want %s, %s or %s", c.ProxyMode, proxy.ModeNFTables, proxy.ModeIPTables, ProxyNone)
	}
	if _, _, err := net.ParseCIDR(c.ClusterCIDR); err != nil {
		return fmt.Errorf("--cluster-cidr %q: %w", c.ClusterCIDR, err)
	}
	if c.ContainerLogMaxSize < 0 || c.ContainerLogMaxFiles < 2 {
		return fmt.Errorf("--container-log-max-size %d must be positive and --container-log-max-files %d at least 2", c.ContainerLogMaxSize, c.ContainerLogMaxFiles)
	}
	if c.ImageGCLowThreshold < 0 || c.ImageGCHighThreshold > 100 || c.ImageGCLowThreshold > c.ImageGCHighThreshold {
		return fmt.Errorf("--image-gc-low-threshold %d and --image-gc-high-threshold %d: want 0 ≤ low ≤ high ≤ 100", c.ImageGCLowThreshold, c.ImageGCHighThreshold)
	}
	if !filepath.IsAbs(c.StateDir) || !filepath.IsAbs(c.CNIConfDir) || !filepath.IsAbs(c.CNIBinDir) || !filepath.IsAbs(c.RunDir) {
		return errors.New("--state-dir, --run-dir, --cni-conf-dir and --cni-bin-dir must be absolute paths")
	}
	return nil
}

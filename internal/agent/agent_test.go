package agent

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kite/internal/testutil"
	"kite/internal/testutil/apitest"
)

func TestMain(m *testing.M) { testutil.MainInNetns(m) }

func nodeReady(n *corev1.Node) corev1.ConditionStatus {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status
		}
	}
	return ""
}

// The agent registers its Node, heartbeats, and becomes Ready once the
// node has a pod CIDR and its CNI config is written; it sets up the
// node's forwarding and masquerade.
func TestNodeRegistrationAndNetwork(t *testing.T) {
	api := apitest.Start(t, apitest.Options{})
	dir := t.TempDir()
	cfg := Config{Kubeconfig: filepath.Join(api.StateDir, "admin.kubeconfig"), NodeName: "kite-worker", NodeIP: "10.9.0.2", Port: -1,
		StateDir: filepath.Join(dir, "state"), RunDir: filepath.Join(dir, "run"), ImageStore: filepath.Join(dir, "images"),
		CNIConfDir: filepath.Join(dir, "net.d"), CNIBinDir: filepath.Join(dir, "bin"),
		LeaseDuration: 4 * time.Second, ManageNetwork: true, Labels: map[string]string{"node-role.kubernetes.io/worker": ""}}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() { cancel(); <-done }()

	nodes := api.Client.CoreV1().Nodes()
	var node *corev1.Node
	apitest.WaitFor(t, 30*time.Second, "node registered NotReady", func() bool {
		node, err = nodes.Get(ctx, "kite-worker", metav1.GetOptions{})
		return err == nil && nodeReady(node) == corev1.ConditionFalse
	})
	if got := node.Status.Allocatable.Pods().Value(); got != 110 {
		t.Errorf("allocatable pods %d, want 110", got)
	}
	if !strings.HasPrefix(node.Status.NodeInfo.ContainerRuntimeVersion, "runc://") || !strings.HasPrefix(node.Status.NodeInfo.KubeletVersion, "kite/") {
		t.Errorf("nodeInfo: %+v", node.Status.NodeInfo)
	}
	if node.Status.Addresses[0].Address != "10.9.0.2" || node.Labels["node-role.kubernetes.io/worker"] != "" || node.Labels[corev1.LabelHostname] != "kite-worker" {
		t.Errorf("addresses %v labels %v", node.Status.Addresses, node.Labels)
	}
	apitest.WaitFor(t, 30*time.Second, "node lease", func() bool {
		l, err := api.Client.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, "kite-worker", metav1.GetOptions{})
		return err == nil && l.Spec.RenewTime != nil && *l.Spec.HolderIdentity == "kite-worker"
	})

	node.Spec.PodCIDR, node.Spec.PodCIDRs = "10.244.3.0/24", []string{"10.244.3.0/24"}
	if _, err := nodes.Update(ctx, node, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	apitest.WaitFor(t, 30*time.Second, "node Ready", func() bool {
		node, err = nodes.Get(ctx, "kite-worker", metav1.GetOptions{})
		return err == nil && nodeReady(node) == corev1.ConditionTrue
	})
	conf, err := os.ReadFile(filepath.Join(cfg.CNIConfDir, ConflistName))
	if err != nil || !strings.Contains(string(conf), `"subnet": "10.244.3.0/24"`) || !strings.Contains(string(conf), `"portmap"`) {
		t.Fatalf("conflist: %s %v", conf, err)
	}
	if b, _ := os.ReadFile("/proc/sys/net/ipv4/ip_forward"); strings.TrimSpace(string(b)) != "1" {
		t.Error("ip_forward not on")
	}
	out, err := exec.Command("nft", "list", "table", "ip", nftTable).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "ip saddr 10.244.0.0/16 ip daddr != @no-masquerade fib daddr type != local masquerade") ||
		!strings.Contains(string(out), "10.9.0.2") {
		t.Fatalf("masquerade table: %s %v", out, err)
	}
}

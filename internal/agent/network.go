package agent

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/knftables"

	"kite/internal/cni"
)

// ConflistName is the node's CNI configuration file.
const ConflistName = "10-kite.conflist"

// syncNetwork makes the node's network match its Node: the CNI conflist for
// its pod CIDR, and (when managed) forwarding and masquerade. It reports
// whether pods can get addresses.
func (a *Agent) syncNetwork(ctx context.Context) (bool, error) {
	node, err := a.client.CoreV1().Nodes().Get(ctx, a.cfg.NodeName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if a.cfg.ManageNetwork {
		if err := nodeSysctls(); err != nil {
			return false, err
		}
		if err := a.syncMasquerade(ctx); err != nil {
			return false, err
		}
	}
	if node.Spec.PodCIDR == "" {
		return a.userConflist(), nil
	}
	return true, a.writeConflist(node.Spec.PodCIDR)
}

// userConflist: a node given another CNI configuration (say the
// reference bridge + host-local) is ready without kite writing one.
func (a *Agent) userConflist() bool {
	entries, err := os.ReadDir(a.cfg.CNIConfDir)
	if err != nil {
		return false
	}
	for _, e := range entries {
		if e.Name() != ConflistName && (strings.HasSuffix(e.Name(), ".conflist") || strings.HasSuffix(e.Name(), ".conf")) {
			return true
		}
	}
	return false
}

// writeConflist writes the kite plugin's conflist for podCIDR, chained
// with portmap for hostPort, if it differs from what is there.
func (a *Agent) writeConflist(podCIDR string) error {
	mtu := 0 // the plugin's default
	if a.cfg.PodNetworkMode == "vxlan" {
		mtu = 1450 // room for the VXLAN header on a 1500-byte underlay
	}
	data, err := cni.ListConfig{Bridge: a.cfg.CNIBridge, Subnet: podCIDR, PortMap: true, MTU: mtu,
		DataDir: filepath.Join(a.cfg.StateDir, "ipam")}.JSON()
	if err != nil {
		return fmt.Errorf("CNI config for %s: %w", podCIDR, err)
	}
	path := filepath.Join(a.cfg.CNIConfDir, ConflistName)
	if cur, err := os.ReadFile(path); err == nil && bytes.Equal(cur, data) {
		return nil
	}
	if err := os.MkdirAll(a.cfg.CNIConfDir, 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// nodeSysctls: pods' traffic is forwarded, and bridged traffic passes
// netfilter so Service translation is undone on replies that never leave
// the bridge (see NOTES-linux: br_netfilter).
func nodeSysctls() error {
	for path, want := range map[string]string{
		"/proc/sys/net/ipv4/ip_forward":                 "1",
		"/proc/sys/net/bridge/bridge-nf-call-iptables":  "1",
		"/proc/sys/net/bridge/bridge-nf-call-ip6tables": "1",
	} {
		cur, err := os.ReadFile(path)
		if os.IsNotExist(err) && strings.Contains(path, "/bridge/") {
			continue // br_netfilter absent: nothing bridged to see
		}
		if err != nil {
			return err
		}
		if strings.TrimSpace(string(cur)) != want {
			if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
				return fmt.Errorf("sysctl %s=%s: %w", path, want, err)
			}
		}
	}
	return nil
}

// Masquerade: traffic from pods to anywhere outside the cluster's pod
// network and the nodes leaves with the node's address; pod-to-pod and
// pod-to-node traffic keeps the pod's (S6: the server sees the client pod).
const (
	nftTable     = "kite-agent"
	nftNoMasqSet = "no-masquerade"
	nftPostChain = "postrouting"
)

func (a *Agent) syncMasquerade(ctx context.Context) error {
	nft, err := knftables.New(knftables.IPv4Family, nftTable)
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	nodes, err := a.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	tx := nft.NewTransaction()
	tx.Add(&knftables.Table{Comment: knftables.PtrTo("kite agent: masquerade of pod traffic leaving the cluster")})
	tx.Add(&knftables.Set{Name: nftNoMasqSet, Type: "ipv4_addr", Flags: []knftables.SetFlag{knftables.IntervalFlag}})
	tx.Flush(&knftables.Set{Name: nftNoMasqSet})
	tx.Add(&knftables.Element{Set: nftNoMasqSet, Key: []string{a.cfg.ClusterCIDR}})
	for _, n := range nodes.Items {
		for _, addr := range n.Status.Addresses {
			if addr.Type == "InternalIP" && !strings.Contains(addr.Address, ":") {
				tx.Add(&knftables.Element{Set: nftNoMasqSet, Key: []string{addr.Address}})
			}
		}
	}
	tx.Add(&knftables.Chain{Name: nftPostChain, Type: knftables.PtrTo(knftables.NATType),
		Hook: knftables.PtrTo(knftables.PostroutingHook), Priority: knftables.PtrTo(knftables.SNATPriority)})
	tx.Flush(&knftables.Chain{Name: nftPostChain})
	tx.Add(&knftables.Rule{Chain: nftPostChain, Rule: knftables.Concat(
		"ip saddr", a.cfg.ClusterCIDR, "ip daddr != @"+nftNoMasqSet, "fib daddr type != local", "masquerade")})
	if err := nft.Run(ctx, tx); err != nil {
		return fmt.Errorf("nftables %s: %w", nftTable, err)
	}
	return nil
}

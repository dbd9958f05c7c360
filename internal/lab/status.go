package lab

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kite/internal/version"
)

// statusTimeout bounds asking the API server about the nodes.
const statusTimeout = 3 * time.Second

// Status prints a lab cluster: its networks, each node's address, pod CIDR
// and readiness (from the API when it answers), and the processes kept by
// the supervisor with whether they run.
func Status(ctx context.Context, cfg Config, out io.Writer) error {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	cl, err := loadCluster(cfg.StateDir)
	if IsNoCluster(err) {
		return fmt.Errorf("no lab cluster %q recorded in %s: start one with `kite up%s`", cfg.Name, cfg.StateDir, nameFlag(cfg.Name))
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "Cluster %q (kite %s), state in %s\n", cl.Name, version.Version, cl.StateDir)
	fmt.Fprintf(out, "  API server   %s (context %q)\n", cl.APIServer(), cl.Context)
	fmt.Fprintf(out, "  underlay     %s on bridge %s, this machine %s\n", cl.Underlay, cl.Bridge, cl.Gateway)
	fmt.Fprintf(out, "  pods         %s (%s), services %s, proxy %s\n", cl.PodCIDR, cl.PodNetwork, cl.ServiceCIDR, cmp.Or(cl.ProxyMode, "nftables"))
	if cl.LB != nil {
		fmt.Fprintf(out, "  LoadBalancer %s, kite lb at %s\n", cl.LBPool, cl.LB.IP)
	} else if cl.LBMode == LBModeL2 {
		fmt.Fprintf(out, "  LoadBalancer %s, L2: announced by an elected node each\n", cl.LBPool)
	}

	podCIDRs, ready, apiErr := nodeFacts(ctx, cl)
	fmt.Fprintln(out)
	tw := tabwriter.NewWriter(out, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tIP\tPOD CIDR\tREADY\tPROCESSES")
	for _, n := range cl.Nodes {
		procs := ""
		roles := []string{"agent"}
		if n.ControlPlane {
			roles = []string{"server", "agent"}
		}
		for _, role := range roles {
			procs += fmt.Sprintf("%s %s  ", role, procState(cl, n.Name, role))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", n.Name, n.IP, cmp.Or(podCIDRs[n.Name], "-"), cmp.Or(ready[n.Name], "-"), procs)
	}
	if cl.LB != nil {
		fmt.Fprintf(tw, "%s\t%s\t-\t-\tlb %s\n", cl.LB.Name, cl.LB.IP, procState(cl, cl.LB.Name, "lb"))
	}
	tw.Flush()
	sup := "not running (`kite up` starts it)"
	if r, ok := cl.supervisor(); ok {
		sup = fmt.Sprintf("running (pid %d)", r.PID)
	}
	fmt.Fprintf(out, "\nsupervisor %s; logs in %s\n", sup, cl.logDir())
	if apiErr != nil {
		fmt.Fprintf(out, "API server not answering: %v\n", apiErr)
	}
	return nil
}

// nodeFacts asks the API server for each node's pod CIDR and Ready
// condition.
func nodeFacts(ctx context.Context, cl *Cluster) (podCIDRs, ready map[string]string, err error) {
	podCIDRs, ready = map[string]string{}, map[string]string{}
	client, err := hostClient(cl, statusTimeout)
	if err != nil {
		return podCIDRs, ready, err
	}
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return podCIDRs, ready, err
	}
	for _, n := range nodes.Items {
		podCIDRs[n.Name] = n.Spec.PodCIDR
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady {
				ready[n.Name] = string(c.Status)
			}
		}
	}
	return podCIDRs, ready, nil
}

// procState says whether a supervised process runs.
func procState(cl *Cluster, node, role string) string {
	if r, ok := cl.running(node, role); ok {
		return fmt.Sprintf("pid %d", r.PID)
	}
	return "stopped"
}

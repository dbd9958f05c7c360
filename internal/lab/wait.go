package lab

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// kubeconfigTimeout bounds the wait for the server's credentials even
// with --wait 0: the user's kubeconfig needs them.
const kubeconfigTimeout = 30 * time.Second

// waitUsable waits for the admin kubeconfig and merges it into the
// user's, then (unless wait is 0) for /readyz and for every Node to be
// Ready, and prints what to try next.
func waitUsable(ctx context.Context, cl *Cluster, wait time.Duration, p *progress) error {
	deadline := p.start.Add(max(wait, kubeconfigTimeout))
	if err := poll(ctx, cl, deadline, 5*time.Millisecond, func() (bool, error) {
		return exists(cl.hostKubeconfig()), nil
	}); err != nil {
		return fmt.Errorf("waiting for the server's admin kubeconfig: %w", err)
	}
	if err := mergeUserKubeconfig(cl); err != nil {
		return err
	}
	p.step(fmt.Sprintf("kubeconfig context %q (current) in %s", cl.Context, cl.Kubeconfig))
	if wait == 0 {
		fmt.Fprintf(p.w, "Cluster %q is starting; `kubectl get nodes` shows its nodes as they become Ready.\n", cl.Name)
		return nil
	}
	deadline = p.start.Add(wait)
	client, err := hostClient(cl, 2*time.Second)
	if err != nil {
		return err
	}
	if err := poll(ctx, cl, deadline, 10*time.Millisecond, func() (bool, error) {
		body, err := client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		return err == nil && strings.TrimSpace(string(body)) == "ok", nil
	}); err != nil {
		return fmt.Errorf("waiting for the API server at %s (/readyz): %w; its log: %s", cl.APIServer(), err, cl.logFile(cl.ControlPlane().Name, "server"))
	}
	p.step(fmt.Sprintf("API server %s ready", cl.APIServer()))
	var status string
	if err := poll(ctx, cl, deadline, 50*time.Millisecond, func() (bool, error) {
		nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			status = err.Error()
			return false, nil
		}
		leases, err := client.CoordinationV1().Leases(corev1.NamespaceNodeLease).List(ctx, metav1.ListOptions{})
		if err != nil {
			status = err.Error()
			return false, nil
		}
		var ok bool
		ok, status = nodesReady(cl, nodes.Items, leases.Items, p.start)
		return ok, nil
	}); err != nil {
		return fmt.Errorf("waiting for the nodes: %w: %s; logs in %s", err, status, cl.logDir())
	}
	p.step(fmt.Sprintf("%d node(s) Ready", len(cl.Nodes)))
	// The system pods: cluster DNS, once its Deployment exists (the
	// server creates it as soon as it leads).
	if err := poll(ctx, cl, deadline, 50*time.Millisecond, func() (bool, error) {
		d, err := client.AppsV1().Deployments(metav1.NamespaceSystem).Get(ctx, dnsDeployment, metav1.GetOptions{})
		if err != nil {
			status = err.Error()
			return false, nil
		}
		status = fmt.Sprintf("%d of %d kite-dns pods available", d.Status.AvailableReplicas, ptr.Deref(d.Spec.Replicas, 1))
		return d.Status.AvailableReplicas > 0, nil
	}); err != nil {
		return fmt.Errorf("waiting for cluster DNS: %w: %s; `kubectl -n kube-system get pods` says why", err, status)
	}
	p.step("cluster DNS (kube-system/kite-dns) available")
	fmt.Fprintf(p.w, `Cluster %q is up in %s. Try:
  kubectl get nodes -o wide
  kite node shell %s                     # a shell on a node (kubectl, ip, nft work there)
  kite down%s                                  # stop and remove it (--purge: its data too)
`, cl.Name, roundDur(time.Since(p.start)), cl.Nodes[len(cl.Nodes)-1].Name, nameFlag(cl.Name))
	return nil
}

// dnsDeployment is the cluster DNS add-on `kite server --cluster-dns`
// makes.
const dnsDeployment = "kite-dns"

// nodesReady reports whether every node of the cluster is registered and
// Ready, and if not, which are not. A cluster brought back keeps its Nodes
// in etcd, Ready as they were: a node counts only once its agent has
// renewed its Lease (microsecond times, unlike the condition's) since
// `kite up` started.
func nodesReady(cl *Cluster, nodes []corev1.Node, leases []coordinationv1.Lease, since time.Time) (bool, string) {
	fresh := map[string]bool{}
	for _, l := range leases {
		if l.Spec.RenewTime != nil && !l.Spec.RenewTime.Time.Before(since) {
			fresh[l.Name] = true
		}
	}
	ready := map[string]bool{}
	for _, n := range nodes {
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue && fresh[n.Name] {
				ready[n.Name] = true
			}
		}
	}
	var missing []string
	for _, n := range cl.Nodes {
		if !ready[n.Name] {
			missing = append(missing, n.Name)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		return false, fmt.Sprintf("%d of %d nodes Ready (not yet: %s)", len(cl.Nodes)-len(missing), len(cl.Nodes), strings.Join(missing, ", "))
	}
	return true, ""
}

// errTimeout is returned by poll when the deadline passes.
var errTimeout = errors.New("timed out")

// poll calls cond every interval until it is true, ctx ends, the deadline
// passes or the supervisor is found dead.
func poll(ctx context.Context, cl *Cluster, deadline time.Time, interval time.Duration, cond func() (bool, error)) error {
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if _, alive := cl.supervisor(); !alive {
			return fmt.Errorf("the supervisor exited: see %s", cl.logDir()+"/supervisor.log")
		}
		if time.Now().After(deadline) {
			return errTimeout
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (the cluster keeps starting; `kite down%s` removes it)", ctx.Err(), nameFlag(cl.Name))
		case <-time.After(interval):
		}
	}
}

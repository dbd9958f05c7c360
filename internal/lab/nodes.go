package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"

	"kite/internal/controller/lbipam"
)

// `kite node add` and `kite node rm` grow and shrink a running lab. The
// cluster record (cluster.json) is the truth about which nodes exist: add
// records the node before making anything of it, rm forgets it only once
// its processes have stopped, so `kite down` can always undo either half
// way; and `kite down` + `kite up` bring the cluster back with the nodes
// it had. The supervisor learns of a change by SIGHUP: it reads the record
// again and starts or stops agents until one runs per recorded node.

// Timeouts of node rm: how long its pods get to terminate on the node
// before they are deleted without grace, and how long the supervisor gets
// to stop the node's agent.
const (
	drainTimeout     = 60 * time.Second
	agentStopTimeout = stopGrace + 5*time.Second
)

var nodeNameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// planNode chooses the name, address and veth of a node to add: the given
// name (a DNS label no node or kite lb of the cluster has) or the next
// free <name>-worker<N>; the lowest underlay address no node has, below
// the LoadBalancer side of the underlay (.200 up) and outside the
// cluster's LoadBalancer pool; the lowest veth index no namespace uses.
// Pure.
func (cl *Cluster) planNode(name string) (Node, error) {
	used := map[string]bool{}
	ips := map[string]bool{cl.Gateway: true}
	veths := map[string]bool{}
	for _, n := range cl.netNamespaces() {
		used[n.Name], ips[n.IP], veths[n.Veth] = true, true, true
	}
	if name == "" {
		for i := 1; ; i++ {
			if name = nodeName(cl.Name, i); !used[name] {
				break
			}
		}
	}
	if !nodeNameRE.MatchString(name) {
		return Node{}, fmt.Errorf("node name %q: want a DNS label (at most 63 lower-case letters, digits or '-')", name)
	}
	if used[name] {
		return Node{}, fmt.Errorf("cluster %q already has a node %q", cl.Name, name)
	}
	u := netip.MustParsePrefix(cl.Underlay)
	// Below the LoadBalancer side of the /24 (kite lb's address, the
	// default pool), and outside the cluster's pool wherever --lb-pool
	// put it.
	pool, err := lbipam.ParsePool(cl.LBPool)
	if err != nil {
		return Node{}, fmt.Errorf("cluster %q: its LoadBalancer pool %q: %w", cl.Name, cl.LBPool, err)
	}
	limit := underlayAddr(u, lbPoolFirst)
	var ip netip.Addr
	for a := u.Addr().Next(); a.Less(limit) && u.Contains(a); a = a.Next() {
		if !ips[a.String()] && !pool.Contains(a) {
			ip = a
			break
		}
	}
	if !ip.IsValid() {
		return Node{}, fmt.Errorf("cluster %q has no free node address left on its underlay %s", cl.Name, cl.Underlay)
	}
	i := 0
	for veths[vethName(cl.Name, i)] || i == lbVethIndex {
		i++
	}
	return Node{Name: name, IP: ip.String(), Veth: vethName(cl.Name, i)}, nil
}

// removableNode checks that name is a node rm may remove. Pure.
func (cl *Cluster) removableNode(name string) (Node, error) {
	n, ok := cl.Node(name)
	switch {
	case !ok:
		var names []string
		for _, n := range cl.Nodes {
			names = append(names, n.Name)
		}
		return n, fmt.Errorf("cluster %q has no node %q (its nodes: %s)", cl.Name, name, strings.Join(names, ", "))
	case n.ControlPlane:
		return n, fmt.Errorf("%s is the control-plane node of cluster %q and cannot be removed (`kite down%s` stops the whole cluster)", name, cl.Name, nameFlag(cl.Name))
	}
	return n, nil
}

// withoutNode is the node list without the named one.
func withoutNode(nodes []Node, name string) []Node {
	var out []Node
	for _, n := range nodes {
		if n.Name != name {
			out = append(out, n)
		}
	}
	return out
}

// hostNodeBatch makes one node's network namespace and veth, the host
// side a port of the bridge (the part of hostUpBatch for one node).
func hostNodeBatch(cl *Cluster, n Node) string {
	return fmt.Sprintf("netns add %s\nlink add %s type veth peer name %s netns %s\nlink set %s master %s up\n",
		n.Name, n.Veth, nodeIface, n.Name, n.Veth, cl.Bridge)
}

// hostNodeDownBatch deletes what exists of one node's veth and network
// namespace (run with -force).
func hostNodeDownBatch(n Node, links, netns map[string]bool) string {
	var b strings.Builder
	if links[n.Veth] {
		fmt.Fprintf(&b, "link del %s\n", n.Veth)
	}
	if netns[n.Name] {
		fmt.Fprintf(&b, "netns del %s\n", n.Name)
	}
	return b.String()
}

// runningCluster loads the cluster of cfg for node add/rm, which need it
// up, and takes its lock (released by the returned func).
func runningCluster(cfg Config) (*Cluster, Config, func(), error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, cfg, nil, err
	}
	if err := validateName(cfg.Name); err != nil {
		return nil, cfg, nil, err
	}
	if os.Geteuid() != 0 {
		return nil, cfg, nil, &PrereqError{Command: "kite node", Problems: []string{"it must run as root: run it with sudo"}}
	}
	cl, err := loadCluster(cfg.StateDir)
	if IsNoCluster(err) {
		return nil, cfg, nil, fmt.Errorf("no lab cluster %q recorded in %s: start one with `kite up%s`", cfg.Name, cfg.StateDir, nameFlag(cfg.Name))
	}
	if err != nil {
		return nil, cfg, nil, err
	}
	if cl.Name != cfg.Name {
		return nil, cfg, nil, fmt.Errorf("%s holds cluster %q, not %q: give --name %s", cl.StateDir, cl.Name, cfg.Name, cl.Name)
	}
	unlock, err := lock(cl.StateDir)
	if err != nil {
		return nil, cfg, nil, err
	}
	if _, ok := cl.supervisor(); !ok {
		unlock()
		return nil, cfg, nil, fmt.Errorf("cluster %q is not running: `kite up%s` first", cl.Name, nameFlag(cl.Name))
	}
	return cl, cfg, unlock, nil
}

// AddNode adds a worker node to a running lab cluster: named name, or
// the next <name>-worker<N> when name is empty. It makes the node's
// namespaces and file system as `kite up` does, has the supervisor start
// its agent, and waits up to cfg.Wait (0: does not wait) for the Node to
// be Ready. Bad input changes nothing; a failure while making the node
// removes what was made of it.
func AddNode(ctx context.Context, cfg Config, name string) error {
	p := newProgress(cfg.Out)
	cl, cfg, unlock, err := runningCluster(cfg)
	if err != nil {
		return err
	}
	defer unlock()
	p.w = cfg.Out
	n, err := cl.planNode(name)
	if err != nil {
		return err
	}
	if exists(cl.netnsPin(n.Name)) {
		return fmt.Errorf("a network namespace %s exists already (another cluster's node?): choose another name", n.Name)
	}
	if _, err := netlinkLinkExists(n.Veth); err == nil {
		return fmt.Errorf("a link %s exists already, not made by cluster %q", n.Veth, cl.Name)
	}
	fmt.Fprintf(p.w, "Adding node %s (%s) to cluster %q\n", n.Name, n.IP, cl.Name)
	if err := makeNode(ctx, cl, n, p); err != nil {
		return err
	}
	if cfg.Wait == 0 {
		fmt.Fprintf(p.w, "Node %s is starting; `kubectl get nodes` shows it once it is Ready.\n", n.Name)
		return nil
	}
	client, err := hostClient(cl, 10*time.Second)
	if err != nil {
		return err
	}
	var status string
	one := &Cluster{Nodes: []Node{n}}
	if err := poll(ctx, cl, p.start.Add(cfg.Wait), 50*time.Millisecond, func() (bool, error) {
		node, err := client.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
		if err != nil {
			status = err.Error()
			return false, nil
		}
		lease, err := client.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, n.Name, metav1.GetOptions{})
		if err != nil {
			status = err.Error()
			return false, nil
		}
		var ok bool
		ok, status = nodesReady(one, []corev1.Node{*node}, []coordinationv1.Lease{*lease}, p.start)
		return ok, nil
	}); err != nil {
		return fmt.Errorf("node %s is made but not Ready after %s (%w: %s); its agent's log: %s; `kite node rm %s%s` removes it",
			n.Name, cfg.Wait, err, status, cl.logFile(n.Name, "agent"), n.Name, nameFlag(cl.Name))
	}
	p.step(fmt.Sprintf("node %s Ready", n.Name))
	fmt.Fprintf(p.w, "Node %s added to cluster %q in %s. Try:\n  kubectl get nodes -o wide\n  kite node shell %s\n  kite node rm %s%s\n",
		n.Name, cl.Name, roundDur(time.Since(p.start)), n.Name, n.Name, nameFlag(cl.Name))
	return nil
}

// makeNode records n in the cluster, makes its network, file system and
// mount namespace, gives it the admin kubeconfig and has the supervisor
// start its agent. On failure it removes what it made.
func makeNode(ctx context.Context, cl *Cluster, n Node, p *progress) (err error) {
	cl.Nodes = append(cl.Nodes, n)
	if err := cl.save(); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, forgetNode(context.WithoutCancel(ctx), cl, n))
		}
	}()
	if err := makeFiles(cl); err != nil {
		return err
	}
	if err := runCmd(ctx, hostNodeBatch(cl, n), "ip", "-batch", "-"); err != nil {
		return fmt.Errorf("node %s: network namespace and veth: %w", n.Name, err)
	}
	if err := runCmd(ctx, nodeUpBatch(cl, n), "ip", "-n", n.Name, "-batch", "-"); err != nil {
		return fmt.Errorf("node %s: network: %w", n.Name, err)
	}
	if err := makeMountNamespace(ctx, cl, n); err != nil {
		return err
	}
	p.step(fmt.Sprintf("node %s %s: network, mount and UTS namespaces", n.Name, n.IP))
	data, err := os.ReadFile(cl.hostKubeconfig())
	if err != nil {
		return fmt.Errorf("the cluster's admin kubeconfig: %w", err)
	}
	if err := writeKubeconfigs(cl, data, []Node{n}, false); err != nil {
		return err
	}
	if err := reloadSupervisor(cl); err != nil {
		return err
	}
	var r procRecord
	if err := poll(ctx, cl, time.Now().Add(agentStopTimeout), 10*time.Millisecond, func() (bool, error) {
		var ok bool
		r, ok = cl.running(n.Name, "agent")
		return ok, nil
	}); err != nil {
		return fmt.Errorf("node %s: the supervisor did not start its agent: %w; see %s", n.Name, err, filepath.Join(cl.logDir(), "supervisor.log"))
	}
	p.step(fmt.Sprintf("kite agent on %s (pid %d, log %s)", n.Name, r.PID, cl.logFile(n.Name, "agent")))
	return nil
}

// RemoveNode removes a worker node from a running lab cluster: cordons
// it, deletes its pods (their controllers recreate them elsewhere), stops
// its agent, deletes its Node, and removes everything the lab made for it
// — processes, namespaces, veth, mounts, cgroups, its directory, logs and
// records. The other nodes' agents drop their routes to its pod CIDR
// when its Node goes.
func RemoveNode(ctx context.Context, cfg Config, name string) error {
	start := time.Now()
	cl, cfg, unlock, err := runningCluster(cfg)
	if err != nil {
		return err
	}
	defer unlock()
	n, err := cl.removableNode(name)
	if err != nil {
		return err
	}
	out := cfg.Out
	note := func(format string, args ...any) { fmt.Fprintf(out, " ✓ "+format+"\n", args...) }
	fmt.Fprintf(out, "Removing node %s (%s) from cluster %q\n", n.Name, n.IP, cl.Name)
	client, err := hostClient(cl, 10*time.Second)
	if err != nil {
		return err
	}
	nodes := client.CoreV1().Nodes()
	_, err = nodes.Patch(ctx, n.Name, types.MergePatchType, []byte(`{"spec":{"unschedulable":true}}`), metav1.PatchOptions{})
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return fmt.Errorf("cordoning node %s: %w", n.Name, err)
	default:
		note("cordoned %s", n.Name)
		deleted, err := drainNode(ctx, client, n.Name, out)
		if err != nil {
			return err
		}
		note("deleted its %d pod(s)", deleted)
	}
	if err := forgetNode(ctx, cl, n); err != nil {
		return err
	}
	note("stopped its agent, removed its namespaces, veth %s, mounts, cgroups and files", n.Veth)
	if err := nodes.Delete(ctx, n.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting Node %s: %w", n.Name, err)
	}
	err = client.CoordinationV1().Leases(corev1.NamespaceNodeLease).Delete(ctx, n.Name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting the Lease of node %s: %w", n.Name, err)
	}
	note("deleted Node %s", n.Name)
	fmt.Fprintf(out, "Node %s removed from cluster %q (%s).\n", n.Name, cl.Name, roundDur(time.Since(start)))
	return nil
}

// drainNode deletes every pod bound to the node and waits for them to go:
// the node's agent stops them within their grace period. What is left
// after drainTimeout is deleted without grace (the agent will be gone, and
// the lab removes what runs in the node).
func drainNode(ctx context.Context, client kubernetes.Interface, node string, out io.Writer) (int, error) {
	pods := client.CoreV1().Pods(metav1.NamespaceAll)
	sel := metav1.ListOptions{FieldSelector: "spec.nodeName=" + node}
	list, err := pods.List(ctx, sel)
	if err != nil {
		return 0, fmt.Errorf("listing the pods of node %s: %w", node, err)
	}
	for _, pod := range list.Items {
		err := client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return 0, fmt.Errorf("deleting pod %s/%s: %w", pod.Namespace, pod.Name, err)
		}
	}
	deadline := time.Now().Add(drainTimeout)
	for {
		left, err := pods.List(ctx, sel)
		if err != nil {
			return 0, fmt.Errorf("listing the pods of node %s: %w", node, err)
		}
		if len(left.Items) == 0 {
			return len(list.Items), nil
		}
		if time.Now().After(deadline) {
			fmt.Fprintf(out, " ! %d pod(s) still terminating after %s: deleting them without grace\n", len(left.Items), drainTimeout)
			for _, pod := range left.Items {
				err := client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})
				if err != nil && !apierrors.IsNotFound(err) {
					return 0, fmt.Errorf("deleting pod %s/%s: %w", pod.Namespace, pod.Name, err)
				}
			}
			return len(list.Items), nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// forgetNode takes n out of the cluster record, has the supervisor stop
// its agent, and removes everything made for the node on the host. It
// goes on past failures and reports them all.
func forgetNode(ctx context.Context, cl *Cluster, n Node) error {
	cl.Nodes = withoutNode(cl.Nodes, n.Name)
	if err := cl.save(); err != nil {
		return err
	}
	var errs []error
	record := cl.childRecord(n.Name, "agent")
	if err := reloadSupervisor(cl); err != nil {
		errs = append(errs, err)
	} else {
		deadline := time.Now().Add(agentStopTimeout)
		for exists(record) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}
	// Whatever is left in the node (its agent, should the supervisor not
	// have stopped it; container shims and containers) goes.
	nss := map[nsID]bool{}
	for _, p := range []string{cl.mntPin(n.Name), cl.netnsPin(n.Name)} {
		if id, ok := nsOf(p); ok && isNSFS(p) {
			nss[id] = true
		}
	}
	var victims []procRecord
	if r, ok := cl.running(n.Name, "agent"); ok {
		victims = append(victims, r)
	}
	if err := killAll(append(victims, processesIn(nss)...), 5*time.Second); err != nil {
		errs = append(errs, err)
	}
	for _, p := range []string{cl.mntPin(n.Name), cl.utsPin(n.Name)} {
		errs = append(errs, unmountAndRemove(p))
	}
	errs = append(errs, removeNodeCgroups(cl, n.Name))
	links := map[string]bool{}
	if _, err := netlinkLinkExists(n.Veth); err == nil {
		links[n.Veth] = true
	}
	if batch := hostNodeDownBatch(n, links, map[string]bool{n.Name: exists(cl.netnsPin(n.Name))}); batch != "" {
		errs = append(errs, runCmd(ctx, batch, "ip", "-force", "-batch", "-"))
	}
	for _, p := range []string{cl.nodeDir(n.Name), record, cl.logFile(n.Name, "agent")} {
		errs = append(errs, os.RemoveAll(p))
	}
	return errors.Join(errs...)
}

// removeNodeCgroups removes one node's cgroups in every hierarchy.
func removeNodeCgroups(cl *Cluster, node string) error {
	mounts, err := readMountinfo("self")
	if err != nil {
		return err
	}
	var errs []error
	for _, m := range mounts {
		if m.FSType == "cgroup" || m.FSType == "cgroup2" {
			errs = append(errs, removeCgroupTree(filepath.Join(m.Point, cl.cgroupParent(node))))
		}
	}
	return errors.Join(errs...)
}

// reloadSupervisor tells the running supervisor to read the cluster
// record again.
func reloadSupervisor(cl *Cluster) error {
	r, ok := cl.supervisor()
	if !ok {
		return fmt.Errorf("the supervisor of cluster %q is not running: see %s", cl.Name, filepath.Join(cl.logDir(), "supervisor.log"))
	}
	if err := syscall.Kill(r.PID, syscall.SIGHUP); err != nil {
		return fmt.Errorf("signalling the supervisor (pid %d): %w", r.PID, err)
	}
	return nil
}

// hostClient is a client of the cluster's API with the host's admin
// kubeconfig, each request bounded by timeout (0: unbounded).
func hostClient(cl *Cluster, timeout time.Duration) (kubernetes.Interface, error) {
	rc, err := clientcmd.BuildConfigFromFlags("", cl.hostKubeconfig())
	if err != nil {
		return nil, fmt.Errorf("the cluster's admin kubeconfig: %w", err)
	}
	rc.Timeout = timeout
	return kubernetes.NewForConfig(rc)
}

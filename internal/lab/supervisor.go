package lab

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	"kite/internal/pki"
)

// Restart back-off of a supervised process: it doubles from minBackoff to
// maxBackoff, and starts again from minBackoff once a process has run for
// resetAfter.
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 10 * time.Second
	resetAfter = 30 * time.Second
	// stopGrace is how long a child has to exit after SIGTERM.
	stopGrace = 10 * time.Second
)

// child is one process the supervisor keeps running inside a node.
type child struct {
	node, role string // role: "server" or "agent"
	args       []string
}

// supervise is the supervisor process (helper.go): it runs `kite server`
// on the control-plane node and `kite agent` on every node, each inside its
// node's namespaces, restarting any that exits, until SIGTERM or SIGINT;
// then it stops them all. On SIGHUP it reads the cluster record again and
// starts or stops agents to match its nodes (`kite node add/rm`). `kite up` starts it in its own session and
// leaves it running.
func supervise(stateDir string) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	// SIGHUP: `kite node add/rm` changed the cluster record.
	reload := make(chan os.Signal, 1)
	signal.Notify(reload, syscall.SIGHUP)
	defer signal.Stop(reload)
	log := klog.Background().WithName("lab-supervisor")
	ctx = klog.NewContext(ctx, log)
	cl, err := loadCluster(stateDir)
	if err != nil {
		return err
	}
	self, err := newProcRecord(os.Getpid(), "supervisor")
	if err != nil {
		return err
	}
	if err := writeProcRecord(cl.supervisorRecord(), self); err != nil {
		return err
	}
	log.Info("supervising", "cluster", cl.Name, "nodes", len(cl.Nodes))

	s := &supervisor{cl: cl, nodes: cl.Nodes, agents: map[string]context.CancelFunc{}}
	s.run(ctx, serverChild(cl))
	// Agents need the admin kubeconfig, which exists once the server has
	// made its PKI.
	kubeconfigReady := make(chan struct{})
	s.wg.Add(1)
	go func() { defer s.wg.Done(); syncKubeconfigs(ctx, cl, s.currentNodes, kubeconfigReady) }()
	select {
	case <-kubeconfigReady:
		s.syncAgents(ctx)
		if cl.LB != nil {
			s.run(ctx, lbChild(cl))
		}
		if cl.RoutePods {
			s.wg.Add(1)
			go func() { defer s.wg.Done(); syncPodRoutes(ctx, cl) }()
		}
	case <-ctx.Done():
	}
	for ctx.Err() == nil {
		select {
		case <-reload:
			fresh, err := loadCluster(stateDir)
			if err != nil {
				log.Error(err, "reading the cluster record again")
				continue
			}
			s.setNodes(fresh.Nodes)
			s.syncAgents(ctx)
		case <-ctx.Done():
		}
	}
	s.wg.Wait()
	log.Info("stopped")
	_ = removeIfExists(cl.supervisorRecord())
	return nil
}

// supervisor keeps the cluster's processes running: the server, kite lb,
// and one agent per node of the record as last read.
type supervisor struct {
	cl *Cluster
	wg sync.WaitGroup

	mu    sync.Mutex
	nodes []Node // the nodes of the record, as last read

	// agents stops each running agent's child, by node (used by the
	// supervise goroutine only).
	agents map[string]context.CancelFunc
}

func (s *supervisor) run(ctx context.Context, c child) {
	s.wg.Add(1)
	go func() { defer s.wg.Done(); runChild(ctx, s.cl, c) }()
}

func (s *supervisor) currentNodes() []Node {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nodes
}

func (s *supervisor) setNodes(nodes []Node) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nodes = nodes
}

// syncAgents starts an agent for every node that has none and stops the
// agents of nodes no longer recorded.
func (s *supervisor) syncAgents(ctx context.Context) {
	log := klog.FromContext(ctx)
	want := map[string]bool{}
	for _, n := range s.currentNodes() {
		want[n.Name] = true
		if _, ok := s.agents[n.Name]; ok {
			continue
		}
		actx, cancel := context.WithCancel(ctx)
		s.agents[n.Name] = cancel
		s.run(actx, agentChild(s.cl, n))
		log.Info("started the agent", "node", n.Name)
	}
	for name, cancel := range s.agents {
		if !want[name] {
			cancel()
			delete(s.agents, name)
			log.Info("stopping the agent of a removed node", "node", name)
		}
	}
}

// nodeExec is the command line running argv inside node n: its network,
// mount and UTS namespaces, entered by nsenter before the program starts
// (a Go program cannot enter a mount namespace itself). Entering the
// mount namespace leaves the process at the node's root directory.
func nodeExec(cl *Cluster, n Node, argv ...string) []string {
	return append(append(nsenterArgs(cl, n), "--"), argv...)
}

// nsenterArgs enters node n's namespaces; nsenter opens every namespace
// file (host paths) before it enters any.
func nsenterArgs(cl *Cluster, n Node) []string {
	return []string{"nsenter", "--net=" + cl.netnsPin(n.Name), "--mount=" + cl.mntPin(n.Name), "--uts=" + cl.utsPin(n.Name)}
}

func serverChild(cl *Cluster) child {
	cp := cl.ControlPlane()
	args := []string{cl.Binary, "server",
		"--state-dir", serverStateDir,
		"--listen", fmt.Sprintf("%s:%d", cp.IP, APIPort),
		"--advertise-address", cp.IP,
		"--service-cidr", cl.ServiceCIDR,
		"--cluster-cidr", cl.PodCIDR}
	if cl.LBPool != "" {
		args = append(args, "--lb-pool", cl.LBPool)
	}
	args = append(args, "--cluster-dns")
	return child{node: cp.Name, role: "server", args: nodeExec(cl, cp, args...)}
}

// lbChild is `kite lb` in its own network namespace on the underlay (the
// host's file system otherwise), with the host's admin kubeconfig.
func lbChild(cl *Cluster) child {
	args := []string{"nsenter", "--net=" + cl.netnsPin(cl.LB.Name), "--", cl.Binary, "lb",
		"--kubeconfig", cl.hostKubeconfig(),
		"--interface", nodeIface,
		"--pool", cl.LBPool}
	return child{node: cl.LB.Name, role: "lb", args: args}
}

func agentChild(cl *Cluster, n Node) child {
	args := []string{cl.Binary, "agent",
		"--kubeconfig", nodeKubeconfig,
		"--node-name", n.Name,
		"--node-ip", n.IP,
		"--state-dir", agentStateDir,
		"--cluster-cidr", cl.PodCIDR,
		"--cgroup-parent", cl.cgroupParent(n.Name)}
	if cl.PodNetwork != "" {
		args = append(args, "--pod-network", cl.PodNetwork)
	}
	if cl.ProxyMode != "" {
		args = append(args, "--proxy-mode", cl.ProxyMode)
	}
	if cl.LBMode == LBModeL2 {
		args = append(args, "--lb-mode", LBModeL2)
	}
	if n.ControlPlane {
		args = append(args, "--node-labels", controlPlaneRole+"=")
	}
	return child{node: n.Name, role: "agent", args: nodeExec(cl, n, args...)}
}

// childEnv is the environment of node processes: the user's, with the
// node's HOME and PATH and without a kubeconfig of the host's.
func childEnv() []string {
	var env []string
	path := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "PATH":
			path = v
		case "HOME", "KUBECONFIG", "NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID":
		default:
			env = append(env, kv)
		}
	}
	return append(env, "HOME=/root", "PATH="+nodeBinDir+":"+path)
}

// runChild keeps c running until ctx ends, with back-off between restarts.
// Its output is appended to <state-dir>/logs/<node>-<role>.log and its PID
// recorded in <state-dir>/run/<node>-<role>.json.
func runChild(ctx context.Context, cl *Cluster, c child) {
	log := klog.FromContext(ctx).WithValues("node", c.node, "role", c.role)
	backoff := minBackoff
	record := cl.childRecord(c.node, c.role)
	defer func() { _ = removeIfExists(record) }()
	for ctx.Err() == nil {
		started := time.Now()
		err := runOnce(ctx, cl, c, record)
		if ctx.Err() != nil {
			return
		}
		if time.Since(started) >= resetAfter {
			backoff = minBackoff
		}
		log.Info("exited; restarting", "err", fmt.Sprint(err), "ran", time.Since(started).Round(time.Millisecond), "after", backoff)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

func runOnce(ctx context.Context, cl *Cluster, c child, record string) error {
	out, err := os.OpenFile(cl.logFile(c.node, c.role), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer out.Close()
	fmt.Fprintf(out, "=== %s kite-lab: starting %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(c.args, " "))
	cmd := exec.Command(c.args[0], c.args[1:]...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = childEnv()
	cmd.Dir = "/"
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	if r, err := newProcRecord(cmd.Process.Pid, c.node+" "+c.role); err == nil {
		_ = writeProcRecord(record, r)
	}
	select {
	case err := <-done:
		fmt.Fprintf(out, "=== %s kite-lab: exited: %v\n", time.Now().Format(time.RFC3339Nano), err)
		return err
	case <-ctx.Done():
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-done:
			return err
		case <-time.After(stopGrace):
			_ = cmd.Process.Kill()
			return <-done
		}
	}
}

// syncKubeconfigs writes the cluster's admin kubeconfig — the server's,
// with the API at the control-plane node's address and the cluster's
// context name — for the host (to merge into the user's) and into every
// node (/etc/kubernetes/admin.conf and /root/.kube/config, S7). It closes
// ready after the first write, then keeps the copies current in case the
// server's credentials change.
func syncKubeconfigs(ctx context.Context, cl *Cluster, nodes func() []Node, ready chan<- struct{}) {
	log := klog.FromContext(ctx)
	interval := 20 * time.Millisecond
	var last []byte
	var lastNodes string
	for {
		data, err := labKubeconfig(cl)
		ns := nodes()
		var names []string
		for _, n := range ns {
			names = append(names, n.Name)
		}
		switch {
		case err == nil && (!bytes.Equal(data, last) || strings.Join(names, " ") != lastNodes):
			if err := writeKubeconfigs(cl, data, ns, true); err != nil {
				log.Error(err, "writing kubeconfigs")
				break
			}
			if last == nil {
				close(ready)
				interval = 2 * time.Second
			}
			last, lastNodes = data, strings.Join(names, " ")
		case err != nil && !os.IsNotExist(err):
			log.Error(err, "reading the server's kubeconfig")
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
	}
}

// labKubeconfig derives the cluster's kubeconfig from the one `kite
// server` wrote.
func labKubeconfig(cl *Cluster) ([]byte, error) {
	src, err := clientcmd.LoadFromFile(cl.serverKubeconfig())
	if err != nil {
		return nil, err
	}
	kctx, ok := src.Contexts[src.CurrentContext]
	if !ok {
		return nil, fmt.Errorf("%s: no current context", cl.serverKubeconfig())
	}
	cluster, user := src.Clusters[kctx.Cluster], src.AuthInfos[kctx.AuthInfo]
	if cluster == nil || user == nil {
		return nil, fmt.Errorf("%s: incomplete context %q", cl.serverKubeconfig(), src.CurrentContext)
	}
	cfg, err := pki.Kubeconfig(pki.KubeconfigOptions{
		Server: cl.APIServer(), CAData: cluster.CertificateAuthorityData,
		ClientCertData: user.ClientCertificateData, ClientKeyData: user.ClientKeyData, Token: user.Token,
		ClusterName: cl.Context, UserName: cl.Context, ContextName: cl.Context,
	})
	if err != nil {
		return nil, err
	}
	return clientcmd.Write(*cfg)
}

// writeKubeconfigs writes the admin kubeconfig into the given nodes, and
// for the host if host is set.
func writeKubeconfigs(cl *Cluster, data []byte, nodes []Node, host bool) error {
	var paths []string
	if host {
		paths = append(paths, cl.hostKubeconfig())
	}
	for _, n := range nodes {
		paths = append(paths, cl.nodeHostPath(n.Name, nodeKubeconfig), cl.nodeHostPath(n.Name, "/root/.kube/config"))
	}
	for _, p := range paths {
		if err := writeFileAtomic(p, data, 0o600); err != nil {
			return err
		}
	}
	return nil
}

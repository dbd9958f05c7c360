package lab

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// NodeCommand returns the command running args (or, with none, a login
// shell) inside a lab node — its network, mount and UTS namespaces — as
// root in /root, with the node's admin kubeconfig in $KUBECONFIG and
// kite and kubectl first on $PATH: the seed's "ssh to the node" (S7); its
// prompt shows the node's name, its hostname. The
// cluster is cfg.Name's, or, when that is empty, the one the node's name
// belongs to (kite-worker → kite).
func NodeCommand(cfg Config, node string, args []string) (*exec.Cmd, error) {
	if cfg.Name == "" {
		cfg.Name = clusterOfNode(node)
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	cl, err := loadCluster(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	n, ok := cl.Node(node)
	if !ok {
		var names []string
		for _, n := range cl.Nodes {
			names = append(names, n.Name)
		}
		return nil, fmt.Errorf("cluster %q has no node %q (its nodes: %s)", cl.Name, node, strings.Join(names, ", "))
	}
	if !isNSFS(cl.mntPin(n.Name)) || !exists(cl.netnsPin(n.Name)) {
		return nil, fmt.Errorf("node %s is not up: `kite up%s` first", n.Name, nameFlag(cl.Name))
	}
	if len(args) == 0 {
		shell := "/bin/sh"
		if _, err := os.Stat("/bin/bash"); err == nil {
			shell = "/bin/bash"
		}
		// Not a login shell: /etc/profile would reset PATH.
		args = []string{shell}
	}
	argv := append(append(nsenterArgs(cl, n), "--wd=/root", "--"), args...)
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(path, argv[1:]...)
	cmd.Env = append(childEnv(), "KUBECONFIG="+nodeKubeconfig)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	return cmd, nil
}

// clusterOfNode is the cluster a node's name says it belongs to:
// <cluster>-control-plane, <cluster>-worker, <cluster>-worker<N>.
func clusterOfNode(node string) string {
	if c, ok := strings.CutSuffix(node, "-control-plane"); ok {
		return c
	}
	if i := strings.LastIndex(node, "-worker"); i > 0 && strings.Trim(node[i+len("-worker"):], "0123456789") == "" {
		return node[:i]
	}
	return DefaultName
}

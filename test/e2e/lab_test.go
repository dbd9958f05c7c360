package e2e

// A lab cluster (`kite up`) for the tests that need real nodes: real pods,
// the agents' streaming servers, the pod network.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// lab is a running `kite up` cluster inside the test's namespace.
type lab struct {
	bin, state, home, kubeconfig string
	// record, when set, is told every node shell command and its output.
	record func(cmd, out string)
}

var netnsOnce sync.Once

// privateNetnsDir gives the test's mount namespace a /run/netns of its
// own, so the namespaces it names never show on the machine.
func privateNetnsDir(t *testing.T) {
	t.Helper()
	netnsOnce.Do(func() {
		if err := os.MkdirAll("/run/netns", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mount("tmpfs", "/run/netns", "tmpfs", 0, "mode=0755"); err != nil {
			t.Fatalf("mount /run/netns: %v", err)
		}
	})
}

// startLab runs `kite up` with n nodes (and flags) and tears it down with
// the test.
// /run/netns gets a tmpfs private to the test's mount namespace, so the
// lab's namespace pins never show on the machine.
func startLab(t *testing.T, nodes int, flags ...string) *lab {
	t.Helper()
	privateNetnsDir(t)
	home := t.TempDir()
	l := &lab{bin: kiteBin(t), state: filepath.Join(t.TempDir(), "lab"), home: home,
		kubeconfig: filepath.Join(home, ".kube", "config")}
	t.Cleanup(func() {
		if t.Failed() {
			for _, f := range []string{"kite-control-plane-server.log", "kite-control-plane-agent.log", "kite-worker-agent.log"} {
				t.Logf("last lines of %s:\n%s", f, tail(filepath.Join(l.state, "logs", f), 30))
			}
		}
		out, err := l.kite(context.Background(), "down", "--state-dir", l.state, "--purge")
		if err != nil {
			t.Errorf("kite down: %v\n%s", err, out)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args := append([]string{"up", "--state-dir", l.state, "--nodes", strconv.Itoa(nodes), "--wait", "60s"}, flags...)
	if out, err := l.kite(ctx, args...); err != nil {
		t.Fatalf("kite up: %v\n%s", err, out)
	}
	return l
}

func (l *lab) kite(ctx context.Context, args ...string) (string, error) {
	c := exec.CommandContext(ctx, l.bin, args...)
	c.Env = append(os.Environ(), "HOME="+l.home, "KUBECONFIG=")
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, &out
	err := c.Run()
	return out.String(), err
}

// kubectl is one kubectl version against the lab, in namespace ns.
func (l *lab) kubectl(t *testing.T, v kubectlVersion, ns string) *kubectl {
	return kubectlFor(t, v, l.kubeconfig, ns)
}

// nodeShell runs a shell command on a lab node (`kite node shell`).
func (l *lab) nodeShell(t *testing.T, node, script string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := l.kite(ctx, "node", "shell", node, "--state-dir", l.state, "--", "sh", "-c", script)
	if err != nil && ctx.Err() != nil {
		t.Fatalf("node shell %s: %v", node, err)
	}
	if l.record != nil {
		l.record(fmt.Sprintf("kite node shell %s -- %s", node, script), out)
	}
	return out
}

// readAgentPID is the PID of node's kite agent, from the lab's process
// record; an error while the record is missing or names no process.
func readAgentPID(l *lab, node string) (int, error) {
	data, err := os.ReadFile(filepath.Join(l.state, "run", node+"-agent.json"))
	if err != nil {
		return 0, err
	}
	var rec struct {
		PID int `json:"pid"`
	}
	if err := json.Unmarshal(data, &rec); err != nil || rec.PID == 0 {
		return 0, fmt.Errorf("agent record %s: %v", data, err)
	}
	return rec.PID, nil
}

// agentPID is readAgentPID for a lab whose agent must be running.
func agentPID(t *testing.T, l *lab, node string) int {
	t.Helper()
	pid, err := readAgentPID(l, node)
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// nodeVeth is the host side of node's link to the underlay bridge, from
// the lab's record.
func nodeVeth(t *testing.T, l *lab, node string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(l.state, "cluster.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rec struct {
		Nodes []struct{ Name, Veth string }
	}
	if err := json.Unmarshal(data, &rec); err != nil {
		t.Fatal(err)
	}
	for _, n := range rec.Nodes {
		if n.Name == node {
			return n.Veth
		}
	}
	t.Fatalf("no node %s in %s", node, data)
	return ""
}

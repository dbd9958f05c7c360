package lab

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// TestCommands checks the cobra wiring: flags reach the Config, and errors
// come back as Up, Down and NodeCommand give them.
func TestCommands(t *testing.T) {
	labHost(t)
	state := filepath.Join(t.TempDir(), "none")
	run := func(args ...string) (string, error) {
		root := &cobra.Command{Use: "kite", SilenceUsage: true}
		root.AddCommand(NewUpCommand(), NewDownCommand(), NewNodeCommand())
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&out)
		root.SetArgs(args)
		err := root.ExecuteContext(context.Background())
		return out.String(), err
	}
	if _, err := run("up", "--name", "Bad_Name"); err == nil || !strings.Contains(err.Error(), "cluster name") {
		t.Errorf("kite up --name Bad_Name: %v", err)
	}
	if _, err := run("up", "--name", "x", "--state-dir", state, "--nodes", "300"); err == nil || !strings.Contains(err.Error(), "--nodes 300") {
		t.Errorf("kite up --nodes 300: %v", err)
	}
	if out, err := run("down", "--name", "none", "--state-dir", state); err != nil || !strings.Contains(out, "nothing to do") {
		t.Errorf("kite down of nothing: %v %q", err, out)
	}
	if _, err := run("node", "shell", "none-worker", "--state-dir", state, "--", "true"); err == nil || !IsNoCluster(err) {
		t.Errorf("kite node shell of no cluster: %v", err)
	}
	for _, args := range [][]string{{"node", "add"}, {"node", "rm", "none-worker"}} {
		if _, err := run(append(args, "--name", "none", "--state-dir", state)...); err == nil || !strings.Contains(err.Error(), `no lab cluster "none"`) {
			t.Errorf("kite %s of no cluster: %v", strings.Join(args, " "), err)
		}
	}
	help, _ := run("up", "--help")
	for _, flag := range []string{"--name", "--nodes", "--state-dir", "--pod-cidr", "--service-cidr", "--underlay", "--wait", "(default 3)", "(default 1m0s)"} {
		if !strings.Contains(help, flag) {
			t.Errorf("kite up --help lacks %q:\n%s", flag, help)
		}
	}
}

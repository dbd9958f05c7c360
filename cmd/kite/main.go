// Command kite is Kubernetes service networking in one binary. Each
// subcommand is a thin shell over a package: flags into a Config, Validate,
// New, Run.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"

	"kite/internal/cni"
	"kite/internal/kuard"
	"kite/internal/lab"
)

func main() {
	// Names kite is installed under elsewhere dispatch here.
	switch filepath.Base(os.Args[0]) {
	case "kubectl":
		runKubectl(os.Args[1:])
		return
	case "kuard":
		// The demo image runs kite as /kuard.
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		if err := runKuard(ctx, kuard.Config{}); err != nil {
			fmt.Fprintln(os.Stderr, "kuard:", err)
			os.Exit(1)
		}
		return
	case "kite":
		if cniInvocation(os.Args[0]) {
			cni.Main()
			return
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRootCommand().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "kite",
		Short:         "Kubernetes service networking in one binary",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newVersionCommand(), newServerCommand(), newKubectlCommand(), newCNICommand(), newAgentCommand(), newKuardCommand(), newDNSCommand(), newLBCommand(), newImageCommand(),
		lab.NewUpCommand(), lab.NewDownCommand(), lab.NewStatusCommand(), lab.NewNodeCommand())
	return root
}

// cniInvocation tells a CNI runtime's call of /opt/cni/bin/kite from a
// user's `kite`: the runtime sets CNI_COMMAND, and a plugin directory
// (.../cni/bin, .../lib/cni) means a plugin even when run by hand (which
// must then fail as the CNI spec says, S10).
func cniInvocation(argv0 string) bool {
	if os.Getenv("CNI_COMMAND") != "" {
		return true
	}
	dir := filepath.Dir(argv0)
	return filepath.Base(dir) == "bin" && filepath.Base(filepath.Dir(dir)) == "cni" || filepath.Base(dir) == "cni"
}

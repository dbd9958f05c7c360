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
)

func main() {
	// Names kite is installed under elsewhere dispatch here (e.g. kubectl).
	switch filepath.Base(os.Args[0]) {
	case "kubectl":
		runKubectl(os.Args[1:])
		return
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
	root.AddCommand(newVersionCommand(), newServerCommand(), newKubectlCommand())
	return root
}

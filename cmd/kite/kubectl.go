package main

import (
	"os"

	"github.com/spf13/cobra"
	kubectlcmd "k8s.io/kubectl/pkg/cmd"
)

// newKubectlCommand wraps the real kubectl, compiled in. kubectl parses
// os.Args itself, so the wrapper hands it everything after "kubectl".
func newKubectlCommand() *cobra.Command {
	return &cobra.Command{
		Use:                "kubectl [args...]",
		Short:              "Run kubectl (compiled into kite)",
		DisableFlagParsing: true,
		Run: func(cmd *cobra.Command, args []string) {
			runKubectl(args)
		},
	}
}

func runKubectl(args []string) {
	os.Args = append([]string{"kubectl"}, args...)
	command := kubectlcmd.NewDefaultKubectlCommand()
	if err := command.Execute(); err != nil {
		os.Exit(1)
	}
	os.Exit(0)
}

package main

import (
	"fmt"
	"runtime"

	"github.com/spf13/cobra"

	"kite/internal/version"
)

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print kite's version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintf(cmd.OutOrStdout(), "kite %s (Kubernetes API %s, %s, %s/%s)\n",
				version.Version, version.Kubernetes, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		},
	}
}

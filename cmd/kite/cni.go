package main

import (
	"github.com/spf13/cobra"

	"kite/internal/cni"
)

// newCNICommand runs the kite CNI plugin (as /opt/cni/bin/kite does).
func newCNICommand() *cobra.Command {
	return &cobra.Command{
		Use:                "cni",
		Short:              "Run the kite CNI plugin (CNI_COMMAND and the network config on stdin, as the CNI spec says)",
		DisableFlagParsing: true,
		Run:                func(*cobra.Command, []string) { cni.Main() },
	}
}

package main

import (
	"context"

	"github.com/spf13/cobra"

	"kite/internal/kuard"
)

// newKuardCommand runs kite's kuard-compatible demo app (as /kuard does in
// the demo image).
func newKuardCommand() *cobra.Command {
	var cfg kuard.Config
	cmd := &cobra.Command{
		Use:   "kuard",
		Short: "Run kite's kuard-compatible demo app (/env/api, /healthy, /ready, /dns/api)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runKuard(cmd.Context(), cfg)
		},
	}
	cmd.Flags().StringVar(&cfg.Listen, "listen", ":8080", "address to serve on")
	return cmd
}

func runKuard(ctx context.Context, cfg kuard.Config) error {
	s, err := kuard.New(cfg)
	if err != nil {
		return err
	}
	return s.Run(ctx)
}

package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"kite/internal/image"
)

func newImageCommand() *cobra.Command {
	var root string
	open := func() (*image.Store, error) { return image.Open(image.Config{Root: root}) }
	cmd := &cobra.Command{Use: "image", Short: "Manage the machine's image store (shared by every node of a lab)"}
	cmd.PersistentFlags().StringVar(&root, "root", "/var/lib/kite/images", "image store directory")
	cmd.AddCommand(&cobra.Command{
		Use: "ls", Short: "List images", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := open()
			if err != nil {
				return err
			}
			if err := s.EnsureBuiltins(cmd.Context()); err != nil {
				return err
			}
			imgs, err := s.List()
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 3, ' ', 0)
			fmt.Fprintln(w, "NAME\tID\tSIZE\tNOTE")
			for _, img := range imgs {
				for _, n := range img.Names {
					fmt.Fprintf(w, "%s\t%.19s\t%d\t%s\n", n, img.ID, img.Size, img.Description)
				}
			}
			return w.Flush()
		},
	}, &cobra.Command{
		Use: "load FILE", Short: "Load a docker-archive or OCI archive", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := open()
			if err != nil {
				return err
			}
			names, err := s.Load(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			for _, n := range names {
				fmt.Fprintf(cmd.OutOrStdout(), "loaded %s\n", n)
			}
			return nil
		},
	}, &cobra.Command{
		Use: "rm NAME", Short: "Remove an image name", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := open()
			if err != nil {
				return err
			}
			removed, err := s.Remove(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			for _, r := range removed {
				fmt.Fprintf(cmd.OutOrStdout(), "removed %s\n", r)
			}
			return nil
		},
	})
	return cmd
}

package main

import (
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

func newImageCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "image",
		Short: "Manage the images in this node's containerd: import, pull, ls",
		Args:  argsUsage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageError{fmt.Errorf("image needs a subcommand")}
		},
	}
	cmd.AddCommand(newImageImportCmd(g), newImagePullCmd(g), newImageLsCmd(g))
	return cmd
}

func newImageImportCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "import FILE",
		Short: "Import an image archive (OCI or Docker, as docker save writes it) into this node",
		Long: `Import an image archive into this node's containerd ("-" reads stdin).
Each node runs what its own containerd holds: import the image on every node
that may run it.`,
		Args: argsUsage(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			var r io.Reader = cmd.InOrStdin()
			if args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					return fmt.Errorf("open image archive: %w", err)
				}
				defer f.Close()
				r = f
			}
			imgs, err := g.client().ImportImage(cmd.Context(), r)
			if err != nil {
				return err
			}
			for _, im := range imgs {
				fmt.Fprintf(g.stdout, "%s %s\n", im.Name, im.Digest)
			}
			return nil
		},
	}
}

func newImageLsCmd(g *globals) *cobra.Command {
	var format formatFlag
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List the images in this node's containerd",
		Args:    argsUsage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := format.validate(); err != nil {
				return err
			}
			ctx, cancel := withTimeout(cmd)
			defer cancel()
			imgs, err := g.client().ListImages(ctx)
			if err != nil {
				return err
			}
			if format.value == "json" {
				return writeJSON(g.stdout, imgs)
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tDIGEST\tSIZE")
			for _, im := range imgs {
				fmt.Fprintf(tw, "%s\t%s\t%d\n", im.Name, im.Digest, im.Size)
			}
			return tw.Flush()
		},
	}
	format.register(cmd)
	return cmd
}

func newImagePullCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "pull REF",
		Short: "Pull an image from its registry into this node",
		Long: `Pull an image into this node's containerd. Registries are reached over
HTTPS, or plain HTTP for those the agent was given with --insecure-registry;
credentials come from the agent's --registry-auth file. Nodes also pull by
themselves the images of the replicas they are given.`,
		Args: argsUsage(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			fmt.Fprintf(g.stderr, "pulling %s…\n", args[0])
			im, err := g.client().PullImage(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "%s %s\n", im.Name, im.Digest)
			return nil
		},
	}
}

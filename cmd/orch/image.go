package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/orchproject/orch/agent/api"
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
		Example: `  orch image import busybox.tar
  docker save web:2 | orch image import -`,
		Long: `Import an image archive into this node's containerd ("-" reads stdin).
Each node runs what its own containerd holds: import the image on every node
that may run it.`,
		Args: argsUsage(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := openInput(args[0], cmd.InOrStdin())
			if err != nil {
				return fmt.Errorf("open image archive: %w", err)
			}
			defer r.Close()
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
	format := newFormatFlag(api.Image{}, "table", "json")
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List the images in this node's containerd",
		Example: `  orch image ls
  orch image ls --format '{{.Name}}@{{.Digest}}'`,
		Args: argsUsage(cobra.NoArgs),
		RunE: listRunE(g, format, func(ctx context.Context, c *api.Client, _ []string) ([]api.Image, error) {
			return c.ListImages(ctx)
		}, printImages),
	}
	format.register(cmd)
	return cmd
}

func printImages(w io.Writer, imgs []api.Image) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "NAME\tDIGEST\tSIZE")
	for _, im := range imgs {
		fmt.Fprintf(tw, "%s\t%s\t%d\n", im.Name, im.Digest, im.Size)
	}
	return tw.Flush()
}

func newImagePullCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "pull REF",
		Short:   "Pull an image from its registry into this node",
		Example: "  orch image pull registry.example:5000/web:2",
		Long: `Pull an image into this node's containerd. Registries are reached over
HTTPS, or plain HTTP for those the agent was given with --insecure-registry;
credentials come from the agent's --registry-auth file. Nodes also pull by
themselves the images of the replicas they are given.`,
		Args: argsUsage(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			var bar func(api.PullProgress)
			if isTerminal(g.stderr) {
				bar = func(p api.PullProgress) { fmt.Fprintf(g.stderr, "\r%s", progressBar(p.Done, p.Total, 30)) }
			}
			im, err := g.client().PullImage(cmd.Context(), args[0], bar)
			if bar != nil {
				fmt.Fprint(g.stderr, "\r\033[K") // clear the bar's line
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "%s %s\n", im.Name, im.Digest)
			return nil
		},
	}
}

// progressBar draws "[=====>    ]  12.3/45.6 MB" in width cells.
func progressBar(done, total int64, width int) string {
	if total <= 0 {
		return fmt.Sprintf("%6.1f MB", float64(done)/1e6)
	}
	n := min(int(int64(width)*done/total), width)
	bar := strings.Repeat("=", n)
	if n < width {
		bar += ">" + strings.Repeat(" ", width-n-1)
	}
	return fmt.Sprintf("[%s] %6.1f/%.1f MB", bar, float64(done)/1e6, float64(total)/1e6)
}

package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

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

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
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

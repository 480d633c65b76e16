package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/orchproject/orch/agent/api"
)

// formatFlag is the --format flag every listing takes.
type formatFlag struct{ value string }

func (f *formatFlag) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.value, "format", "table", "output format: table or json")
}

func (f *formatFlag) validate() error {
	switch f.value {
	case "table", "json":
		return nil
	}
	return usageError{fmt.Errorf("--format %q: want table or json", f.value)}
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newMembersCmd(g *globals) *cobra.Command {
	var format formatFlag
	cmd := &cobra.Command{
		Use:   "members",
		Short: "List the cluster's members as this agent sees them",
		Long: `List the cluster's members as this agent sees them: name, gossip address,
status (alive, leaving, left, failed), labels and age (time since the node's
data dir was created). Members that are not orch agents are marked "(foreign)":
they are shown but never given work.`,
		Args: argsUsage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := format.validate(); err != nil {
				return err
			}
			ctx, cancel := withTimeout(cmd)
			defer cancel()
			ms, err := g.client().Members(ctx)
			if err != nil {
				return err
			}
			if format.value == "json" {
				return writeJSON(g.stdout, ms)
			}
			return printMembers(g.stdout, ms, time.Now())
		},
	}
	format.register(cmd)
	return cmd
}

func printMembers(w io.Writer, ms []api.Member, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tADDRESS\tSTATUS\tSUBNET\tLABELS\tAGE")
	for _, m := range ms {
		name := m.Name
		if m.Self {
			name += " *"
		}
		if !m.Orch {
			name += " (foreign)"
		}
		age := "-"
		if m.Created != nil {
			age = humanDuration(now.Sub(*m.Created))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", name, m.Address, m.Status, orDash(m.Subnet), formatLabels(m.Labels), age)
	}
	return tw.Flush()
}

func formatLabels(l map[string]string) string {
	if len(l) == 0 {
		return "-"
	}
	parts := make([]string, 0, len(l))
	for _, k := range slices.Sorted(maps.Keys(l)) {
		parts = append(parts, k+"="+l[k])
	}
	return strings.Join(parts, ",")
}

// humanDuration prints an age the way docker and kubectl do: 45s, 3m, 5h, 2d.
func humanDuration(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/orchproject/orch/agent/api"
)

func newMembersCmd(g *globals) *cobra.Command {
	format := newFormatFlag(api.Member{}, "table", "json")
	cmd := &cobra.Command{
		Use:   "members",
		Short: "List the cluster's members as this agent sees them",
		Long: `List the cluster's members as this agent sees them: name, gossip address,
status (alive, leaving, left, failed), labels and age (time since the node's
data dir was created). Members that are not orch agents are marked "(foreign)":
they are shown but never given work.`,
		Example: `  orch members
  orch members --format json
  orch members --format '{{.Name}} {{.Status}} {{.Labels.zone}}'`,
		Args: argsUsage(cobra.NoArgs),
		RunE: listRunE(g, format, func(ctx context.Context, c *api.Client, _ []string) ([]api.Member, error) {
			return c.Members(ctx)
		}, func(w io.Writer, ms []api.Member) error {
			return printMembers(w, ms, time.Now())
		}),
	}
	format.register(cmd)
	return cmd
}

func printMembers(w io.Writer, ms []api.Member, now time.Time) error {
	tw := newTable(w)
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

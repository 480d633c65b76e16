package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/orchproject/orch/agent/api"
)

func newStatusCmd(g *globals) *cobra.Command {
	format := newFormatFlag(api.Info{}, "table", "json")
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show this node: cluster, members, subnet, replicas and DNS counters",
		Long: `Show the node the CLI talks to: its name, cluster and gossip address, the
members it knows by status, its overlay subnet, the slots it holds by state,
and its DNS server's listeners and counters (queries by type, answers by
response code, forwarded, cache hits, truncated, malformed, dropped).`,
		Example: `  orch status
  orch status --format json
  orch status --format '{{.Name}} {{.Subnet}} {{.Members.alive}}'`,
		Args: argsUsage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := format.validate(); err != nil {
				return err
			}
			ctx, cancel := withTimeout(cmd)
			defer cancel()
			info, err := g.client().Info(ctx)
			if err != nil {
				return err
			}
			return format.print(g.stdout, info, []any{info}, func(w io.Writer) error {
				printStatus(w, info)
				return nil
			})
		},
	}
	format.register(cmd)
	return cmd
}

func printStatus(w io.Writer, in api.Info) {
	fmt.Fprintf(w, "node:      %s (%s)\n", in.Name, in.ID)
	fmt.Fprintf(w, "version:   %s\n", in.Version)
	fmt.Fprintf(w, "cluster:   %s\n", orDash(in.Cluster))
	fmt.Fprintf(w, "gossip:    %s\n", orDash(in.GossipAddr))
	fmt.Fprintf(w, "members:   %s\n", counts(in.Members))
	fmt.Fprintf(w, "subnet:    %s\n", orDash(in.Subnet))
	fmt.Fprintf(w, "replicas:  %s\n", counts(in.Replicas))
	if d := in.DNS; d != nil {
		fmt.Fprintf(w, "dns:       %s on %s\n", d.Domain, orDash(strings.Join(d.Listeners, ", ")))
		fmt.Fprintf(w, "  queries:   %s\n", counts(d.Queries))
		fmt.Fprintf(w, "  responses: %s\n", counts(d.Responses))
		fmt.Fprintf(w, "  forwarded %d, cache hits %d, forward failures %d, truncated %d, malformed %d, dropped %d\n",
			d.Forwarded, d.CacheHits, d.ForwardFailures, d.Truncated, d.Malformed, d.Dropped)
	} else {
		fmt.Fprintln(w, "dns:       off")
	}
}

// counts prints "k1 n1, k2 n2" sorted by key, leaving out zeros; "-" when
// nothing is left.
func counts[V int | uint64](m map[string]V) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if m[k] != 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
		}
	}
	return orDash(strings.Join(parts, ", "))
}

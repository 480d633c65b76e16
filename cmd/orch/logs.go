package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/orchproject/orch/agent/api"
)

func newLogsCmd(g *globals) *cobra.Command {
	var (
		slot   int
		tail   int
		follow bool
	)
	cmd := &cobra.Command{
		Use:   "logs SERVICE",
		Short: "Print the output of a service's replicas that run on this node",
		Long: `Print the stdout and stderr of a service's containers that run on the node
of the agent you ask (see "orch service ps" for where each replica runs).
Each line is prefixed with service.slot/container.`,
		Args: argsUsage(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := api.LogsRequest{Service: args[0], Tail: tail, Follow: follow}
			if cmd.Flags().Changed("slot") {
				if slot < 0 {
					return usageError{errors.New("--slot must be >= 0")}
				}
				req.Slot = &slot
			}
			err := g.client().Logs(cmd.Context(), req, func(l api.LogLine) error {
				_, err := fmt.Fprintf(g.stdout, "%s | %s\n", l.Source, l.Line)
				return err
			})
			if err != nil && cmd.Context().Err() != nil {
				return nil
			}
			return err
		},
	}
	cmd.Flags().IntVar(&slot, "slot", 0, "only this replica slot")
	cmd.Flags().IntVar(&tail, "tail", -1, "only the last N lines of each container (-1: all)")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new lines")
	return cmd
}

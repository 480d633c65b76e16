package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/orchproject/orch/agent/api"
)

// callTimeout bounds a short request to the agent. Join may wait for a
// remote handshake and gossip, leave for serf's broadcast.
const callTimeout = 30 * time.Second

func newTokenCmd(g *globals) *cobra.Command {
	var rotate bool
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Print the cluster's join token",
		Long: `Print the cluster's join token. Give it to "orch agent --token T --join ADDR"
or "orch join --token T ADDR" on a new node. The token pins the cluster's
identity and holds the join secret; it is not the gossip key. Keep it secret.

--rotate makes a new join secret for the whole cluster (every member adopts
it through the replicated state within seconds) and prints the new token;
the old token no longer admits nodes. Members are not disturbed.`,
		Args: argsUsage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := withTimeout(cmd)
			defer cancel()
			get := g.client().Token
			if rotate {
				get = g.client().RotateToken
			}
			t, err := get(ctx)
			if err != nil {
				return err
			}
			fmt.Fprintln(g.stdout, t)
			return nil
		},
	}
	cmd.Flags().BoolVar(&rotate, "rotate", false, "make a new join token for the cluster; the old one stops working")
	return cmd
}

func newJoinCmd(g *globals) *cobra.Command {
	var token string
	cmd := &cobra.Command{
		Use:   "join [--token TOKEN] ADDR...",
		Short: "Make the running agent join a cluster through one of its members",
		Long: `Make the running agent join a cluster through one of its members
(HOST or HOST:PORT of the gossip port). An agent that is still alone in a
cluster of its own needs the other cluster's --token and adopts it; an agent
that has peers can only be pointed at more members of its own cluster.`,
		Args: argsUsage(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := withTimeout(cmd)
			defer cancel()
			resp, err := g.client().Join(ctx, api.JoinRequest{Token: token, Addresses: args})
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "joined: contacted %d member(s)\n", resp.Contacted)
			return nil
		},
	}
	cmd.Flags().StringVar(&token, "token", "", "join token of the cluster (from \"orch token\" on a member)")
	return cmd
}

func newLeaveCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "leave",
		Short: "Leave the cluster gracefully and stop the agent",
		Args:  argsUsage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := withTimeout(cmd)
			defer cancel()
			if err := g.client().Leave(ctx); err != nil {
				return err
			}
			fmt.Fprintln(g.stdout, "left the cluster; the agent is stopping")
			return nil
		},
	}
}

// withTimeout gives a short call a deadline; ^C still cancels it.
func withTimeout(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	return context.WithTimeout(cmd.Context(), callTimeout)
}

package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/orchproject/orch/agent/api"
)

func newEventsCmd(g *globals) *cobra.Command {
	var (
		filters []string
		since   time.Duration
		after   uint64
	)
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Stream the agent's events as newline-delimited JSON",
		Long: `Stream the agent's events, one JSON object per line, until interrupted:
  {"time":"…","seq":12,"type":"member","action":"failed","node":"n1","subject":"n3","attributes":{…}}

time is RFC 3339 in UTC with nanoseconds; seq grows by one per event on this
agent (it restarts at 1 when the agent restarts), so a client that reconnects
can resume with --after SEQ. --since replays retained events younger than the
duration (the agent keeps the last 4096). A reader too slow for the stream gets
{"type":"stream","action":"lagged",…} with the count of events it missed.

Filters (repeatable): type=, action=, subject=, node=. The same key repeated
matches any of its values; different keys must all match.`,
		Example: `  orch events --filter type=member --filter action=failed
  orch events --since 10m
  orch events --after 41`,
		Args: argsUsage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if since > 0 && after > 0 {
				return usageError{errors.New("use either --since or --after, not both")}
			}
			enc := json.NewEncoder(g.stdout)
			err := g.client().Events(cmd.Context(), api.EventsRequest{Filters: filters, After: after, Since: since}, func(ev api.Event) error {
				return enc.Encode(ev)
			})
			if err != nil && cmd.Context().Err() != nil {
				return nil // interrupted: not an error
			}
			if err != nil {
				return err
			}
			if cmd.Context().Err() == nil {
				return fmt.Errorf("the agent closed the event stream (it is shutting down)")
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&filters, "filter", nil, "KEY=VALUE with KEY one of type, action, subject, node (repeatable)")
	cmd.Flags().DurationVar(&since, "since", 0, "replay retained events younger than this (e.g. 10m) before streaming")
	cmd.Flags().Uint64Var(&after, "after", 0, "replay retained events with seq greater than this before streaming")
	return cmd
}

package main

import "context"

// driver is what the benchmark needs from one implementation: how to run
// agent k of a cluster and how to ask it about members. A driver belongs to
// one cluster. Its methods are safe for concurrent use.
type driver interface {
	// impl and profile label the results.
	impl() string
	profile() string
	// argv is the command line of agent k (1-based). Agent 1 founds the
	// cluster; the others join agent 1 and are started only after
	// ready(ctx, 1) has returned.
	argv(k int) []string
	// ready asks agent k once whether it answers on its API; the caller
	// retries.
	ready(ctx context.Context, k int) error
	// members returns agent k's member list: name → status (alive,
	// leaving, left, failed).
	members(ctx context.Context, k int) (map[string]string, error)
	// watch records agent k's member events into rec until ctx ends,
	// reconnecting if the stream breaks. Drivers without an event stream
	// return at once.
	watch(ctx context.Context, k int, rec *recorder)
	// stampSource is the recorder source of the precise failure times.
	stampSource() string
	// close releases connections; the agents are stopped by the cluster.
	close()
}

// Command state is the engine of scripts/bench/state, the replicated-state
// benchmark of orch: how fast a write spreads, and how fast a new node
// receives everything. Run it through that script: it checks for root,
// builds orch and this program, and removes what a crashed run left
// behind. docs/benchmarks.md holds the latest results and the command that
// made them.
//
// # Propagation
//
// For each cluster size N (--sizes) it builds a netns lab of N hosts with
// scripts/lab, forms a cluster of N agents with the fast profile (h1
// founds, the others join it; it waits until every agent lists N alive;
// a size whose cluster does not form within --form-timeout is measured
// with --fallback-profile, lan, instead, and the report says so: on 2
// CPUs a fast cluster of 50 collapses while forming, see
// docs/benchmarks.md),
// subscribes to every agent's event stream (type=service) and makes one
// warm-up write, which proves the streams are live. Then, --runs times
// for each of two spec kinds, it creates a new service on an agent chosen
// by a seeded random generator:
//
//   - small: a ~330-byte canonical spec, whose store delta (~520 bytes)
//     fits in a gossip packet and rides a serf user event;
//   - large: a spec with ~8 KiB of environment, whose delta (~11.6 KiB
//     with base64) does not, and is pushed over a TLS stream to every
//     live member in turn.
//
// t0 is taken when the create call returns (the write is then in the
// writer's store and handed to gossip). An agent has the write when its
// event stream reports "service created" for that version: the agent's
// reconcile loop publishes it on its first pass after the store changed,
// stamped with the agent's wall clock. All agents run on this machine, so
// their clocks and t0 are the same CLOCK_REALTIME. The run's visibility
// time is the latest agent's stamp − t0; the table shows its median, 90th
// percentile and max over the runs, the first agent's median, and the
// median over every (run, agent) delay. After each run every agent is
// asked for the service (GetService) to confirm it serves that version.
// Runs are --gap apart so that the claim each create causes has settled.
//
// # Full sync
//
// A cluster of --sync-size agents (5) is given S services for each count
// of --services in turn (1,000, then 9,000 more for 10,000), created by
// --writers concurrent API clients spread over the agents. The spec is the
// acceptance test's (internal/e2e TestReplicatedState): busybox, replicas
// 0 (--bulk-replicas), so no task claims. POST /v1/apply is used rather
// than POST /v1/services because the latter answers with a view of the
// service computed from a snapshot that decodes every stored spec, which
// makes creating S services quadratic (--bulk-api create to compare).
// Once every agent lists S services, it waits until the cluster is at
// rest: a burst of writes overflows serf's user-event buffer (512 events),
// and thousands of deltas keep circulating in the broadcast queues for
// minutes, each logged by its receivers as "serf: received old event
// o.st"; the benchmark waits (up to --drain-timeout) until no member has
// logged one for 5 s, and reports when that was. Once state.json has also
// stopped changing, it records state.json's size, and every agent's CPU
// over --idle and its RSS at the end of that window, then, --sync-runs
// times, starts a fresh agent (new host, new name, empty data dir) that
// joins h1, and records from the agent's process start:
//
//   - API up: /v1/info answers;
//   - done: the first ListServices poll (every --sync-poll after the
//     previous answer) that returns all S; its send time is used, since
//     the agent takes its snapshot just after receiving it;
//   - sync logged: the joiner runs at debug level and logs each store
//     sync it starts, with the entries received and the time taken; the
//     time its first such line with entries was read. Syncs the members
//     start with the joiner on seeing it join are not logged by the
//     joiner, so this may come after done.
//
// The table reports done from the process start and from the API
// answering (the acceptance test's 5 s bound counts from the node being
// ready), with the median and max over the joiners, and the joiner's RSS.
// Each joiner leaves gracefully afterwards and its data dir is removed.
//
// # Fair measurements on a shared machine
//
// Before each phase, with its own lab down, it waits (up to --wait-idle)
// until no other benchmark or lab is running (processes of scripts/bench/,
// network namespaces without this benchmark's prefix), and notes in the
// report anything that started during a phase. The harness runs at nice
// -10 (set by scripts/bench/state) and starts the agents back at nice 0.
//
// After each phase it collects the WARN and ERROR lines of the agents'
// logs up to the end of the phase (not what the teardown causes), grouped
// by message, into the report. A full-sync phase that fails (say, an agent
// killed from outside) is run once more, and the report says so.
//
// # Diagnosis
//
// --member-log-level debug makes the members log the syncs they start.
// --perf-joins D records a system-wide CPU profile (perf record -a -g,
// stamped with CLOCK_REALTIME) for D from each joiner's start, into the
// work directory, and prints the joiner's start time, so that the samples
// can be cut to the interval from its start to done.
//
// # Cleanup
//
// Agents run in their own process groups, so a Ctrl-C reaches only this
// program, which then kills them and tears the lab down (scripts/lab down
// kills anything left inside its namespaces). scripts/bench/state does the
// same on exit, and at start removes the lab of a crashed run (its prefix
// only).
//
// # Micro-benchmarks
//
// bench_test.go holds go test benchmarks that explain the full-sync
// figures without a lab: decoding the stored specs (what every API call
// and reconcile pass does per service), and an in-process gossip cluster
// on loopback where a fresh node joins and syncs S entries.
//
// # Imports
//
// Besides the standard library: agent/api (orch's client), x/sync/errgroup
// and x/sys/unix (process priority), all already required by orch; the
// micro-benchmarks also use agent/spec and gossip.
package main

// Command start is the engine of scripts/bench/start: how long orch takes
// from `orch service create` to a running replica, against `ctr run` of
// the same image on the same containerd in the same run, and the agent's
// memory with 0, 10 and 100 local replicas. Run it through that script: it
// checks for root, builds orch, this program and the busybox image
// (internal/testimage, through its TestWriteImage), and
// removes what a crashed run left behind. docs/benchmarks.md holds the
// latest results and the command that made them.
//
// # Setup
//
// One node, loopback only: a private containerd (its own config, root,
// state and socket under --work/ctd, CRI and NRI disabled, as
// internal/testenv does for tests) and one agent `orch agent --name n1
// --bind 127.0.0.1:17946 --profile fast --containerd SOCK --overlay none
// --dns none` (loopback only, like the ctr containers). The image is
// imported twice: with `orch image import` (containerd namespace orch)
// and with `ctr images import` (namespace orchbench-start, where the ctr
// containers run).
//
// # Latency (--runs times, orch and ctr alternating which goes first)
//
//   - orch: the clock starts before exec of `orch service create --name
//     bstart-N --replicas 1 IMAGE sh -c 'exec sleep 100000'` and stops
//     when the agent's API (agent/api, ServiceTasks, polled every
//     --poll) reports the slot running on the current version. The time
//     the CLI returned is kept too. Then `orch service rm` and a wait
//     until containerd lists no container in namespace orch (the process
//     ignores SIGTERM as PID 1, so each removal takes the agent's 10 s
//     stop timeout; this is outside the timed part).
//   - ctr: the clock starts before exec of `ctr run -d IMAGE ID sh -c
//     'exec sleep 100000'` and stops when `ctr tasks ls` shows ID RUNNING
//     (polled every --poll). Then kill -9, task and container removed.
//
// The ratio is orch/ctr of the medians (and of the maxima).
//
// # Memory
//
// VmRSS of the agent (median of 5 samples 1 s apart, after --settle) with
// no replica, then with one service scaled to 10 and then to 100 running
// replicas; the time each scale-up took until every slot was running
// (polled every 250 ms), and for context the RSS of containerd and of all
// its shims. Every phase records how busy the machine's CPUs were.
//
// # Cleanup
//
// On exit, SIGINT or SIGTERM (and with --reap alone, which the script runs
// before and after): stop the agent and containerd, SIGKILL every process
// whose command line names the work directory and every shim whose
// -address is under it with all their descendants, `runc delete --force`
// each bundle left in containerd's state, remove their shim sockets,
// unmount everything below the work directory, rmdir the cgroups of the
// namespaces orch and orchbench-start when empty, and remove the work
// directory except logs/.
package main

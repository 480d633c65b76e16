// Command membership is the engine of scripts/bench/membership, the
// failure-detection benchmark of orch against stock serf agents. Run it
// through that script: it checks for root, builds orch and this program,
// and removes what a crashed run left behind. docs/benchmarks.md holds the
// latest results and the command that made them.
//
// # What it measures
//
// For each cluster size N, it builds a netns lab of N hosts with
// scripts/lab (plus permanent ARP entries: see [benchkit.Lab.PinNeighbours]) and,
// for each implementation and profile (orch lan, orch fast, serf lan), runs
// the same experiment --runs times, each time on a freshly formed cluster:
//
//  1. Start agent 1, which founds the cluster, then agents 2..N, which join
//     it, --join-stagger apart; wait until every agent lists N alive
//     members. orch agents run membership only (--containerd none).
//  2. Let the cluster settle (--settle). On the first run only, sample
//     every agent's idle CPU (utime+stime over --idle, as % of one core)
//     and resident set size (VmRSS at the end of that window).
//  3. SIGKILL one agent other than the first, chosen by a seeded random
//     generator, and record for every survivor when it marked the victim
//     failed. The run's detection time is the latest of those: the time
//     until every survivor knows.
//
// A cluster that does not form within --form-timeout is reported, and its
// remaining runs are skipped. Every run also records how busy the whole
// machine was ("host %"), to flag runs disturbed by other work.
//
// Each survivor's detection time is taken two ways:
//
//   - stamp: the moment the agent's serf library declared the member
//     failed. For orch it is the time field of the "member failed" event
//     on the agent's event stream (stamped by the agent). Stock serf
//     agents coalesce member events for 1-3 s before handlers and RPC
//     streams see them, so for serf it is the moment the benchmark read
//     the agent's "serf: EventMemberFailed" log line from its stdout pipe,
//     which serf writes when it emits the event, before coalescing. Both
//     mark the same point in serf's code. orch's log line is recorded too
//     ("log" in the CSV) as a cross-check of the two methods. The harness
//     runs at nice -10 and the agents at 0, so reading a pipe is not
//     delayed while the agents keep the CPUs busy.
//   - poll: the first answer listing the victim as failed when the
//     survivor's member list is polled every --poll, through the API socket
//     for orch and through serf's msgpack RPC for serf (the serf CLI costs
//     about 7 ms of CPU per call, too much at 10 polls per second times 50
//     agents on a small machine). Polling starts at the kill, so idle
//     figures are not disturbed by it.
//
// With --soak DURATION it instead forms one cluster (--soak-size, default
// 20, --soak-profile, default fast), leaves it idle for DURATION and counts
// member events other than joins (failed, leave) on every agent: false
// failures. It also counts memberlist's "Suspect X has failed" log lines,
// the near-misses that did not become failures.
//
// # Cleanup
//
// Agents run in their own process groups, so a Ctrl-C reaches only this
// program, which then kills them and tears the lab down (scripts/lab down
// kills anything left inside its namespaces). scripts/bench/membership
// does the same on exit, and at start removes the lab of a crashed run
// (its prefix only).
//
// # Imports
//
// Besides the standard library: agent/api (orch's client), go-msgpack
// (serf's RPC encoding; already required by serf) and x/sys/unix (setns,
// to dial serf's RPC port inside a host's namespace; getpriority).
package main

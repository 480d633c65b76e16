// Package benchkit is what the benchmark programs under scripts/bench
// share: driving the netns lab (scripts/lab), starting and stopping the
// processes under test, a private containerd, reading /proc, removing
// what a crashed run left behind, waiting for a quiet machine, small
// statistics, CSV files and the command-line plumbing of a main package.
//
// It exists because the benchmarks are programs, not tests: the
// repository's own helpers for the same jobs (internal/lab,
// internal/testenv, internal/testimage) take a testing.TB and fail or skip
// a test, which a benchmark does not have. What can be reused without one
// is (internal/netnsthread; the busybox image through
// internal/testimage's TestWriteImage, which the scripts run).
//
// # Contents
//
//   - [Lab]: scripts/lab up, down, isolate and heal, host addresses and
//     namespaces, permanent neighbour entries between the hosts.
//   - [StartDaemon]: a process started in a lab host (nsenter, nice), its
//     own process group, SIGKILLed if the benchmark dies, with its output
//     in a log file and optionally seen line by line; [Agent] is an `orch
//     agent` command line.
//   - [WriteContainerdConfig], [WaitContainerd]: a private containerd.
//   - /proc: [ListProcs], [KillTrees], [ProcCPU], [ProcMem], [ReadHostCPU],
//     [MemAvailable], [PidsInNetns], [HarnessNice].
//   - [Reap]: processes, shims, containers, mounts and files of a crashed
//     run.
//   - [OtherLoad], [WaitIdle]: other benchmarks, tests and labs.
//   - [Median], [Quantile], [Percentile], [Mean], [Max]; [AppendCSV],
//     [WriteCSV]; [Header], [Machine]: the first lines of a report.
//   - [Main], [UsageError], [LabFlags], [ParseInts], [Logf]: a main
//     package's plumbing.
//
// # Imports and concurrency
//
// benchkit imports the standard library and golang.org/x/sys/unix only,
// and no orch package: each benchmark keeps its own dependencies (agent/api,
// netplane, dnsdisc, gonum). Functions are safe for concurrent use; a
// [Daemon]'s methods too. A [Lab] is used by one goroutine.
package benchkit

// Command dns is the engine of scripts/bench/dns: how many queries a
// second orch's DNS server (package dnsdisc) answers, at what CPU cost and
// latency, against dnsmasq serving the same names on the same machine in
// the same run. Run it through that script: it checks for root, installs
// dnsperf and dnsmasq-base, builds this program and removes what a crashed
// run left behind.
//
// # Setup
//
// One machine, loopback only. The data: 100 services svc-000 … svc-099,
// service i with i%3+1 replicas at 10.1.i.(slot+1), asked as
// svc-NNN.svc.orch A (the query file has one line per service; dnsperf
// cycles through it). Each answer has 1 to 3 A records (65 to 97 bytes).
//
//   - orch: this program with --serve runs a dnsdisc.Server (default
//     config: TTL 5 s, no upstreams, GOMAXPROCS = the machine's CPUs)
//     with a snapshot of the 100 services, listening on 127.0.0.1 on a free
//     port, as the agent would run it.
//   - dnsmasq: dnsmasq --no-daemon --conf-file=/dev/null --no-resolv
//     --no-hosts --addn-hosts=HOSTS --port=PORT --listen-address=127.0.0.1
//     --bind-interfaces --cache-size=10000 --local-ttl=5 --user=nobody,
//     HOSTS holding one line per replica address, so that it answers each
//     name with all its replicas, as orch does (both rotate the order).
//
// Before measuring, every name is asked of both servers (with Go's
// resolver) and the address sets must be the same. Then each server gets
// an unrecorded --warmup run of dnsperf.
//
// # Throughput
//
// --rounds rounds; in each, `dnsperf -s 127.0.0.1 -p PORT -d QUERIES -l
// DURATION -c CLIENTS -q OUTSTANDING -t 2` runs against each server in
// turn, orch first in odd rounds, dnsmasq first in even ones. dnsperf is
// closed-loop: it keeps OUTSTANDING queries in flight and sends the next
// as answers come. Recorded per run: dnsperf's queries per second,
// average latency and its standard deviation, lost queries; the server's
// CPU time (utime + stime from /proc/PID/stat) over the run's wall time
// ("cores") and per answered query; dnsperf's CPU (its rusage); the
// machine's busy CPU (/proc/stat), so that other load shows. The ratio is
// orch/dnsmasq of the median queries per second.
//
// On a 2-CPU machine the server and dnsperf share the CPUs, so neither
// server gets a core to itself and throughput depends on how much CPU
// each server needs per query, leaving the rest to dnsperf. That is why
// CPU per query is reported next to throughput: it does not depend on
// who else runs.
//
// # Latency
//
// dnsperf reports only mean and standard deviation. A Go probe (load.go)
// sends --probe-rate queries a second (1,000) on its own socket, open
// loop, and records each answer's latency, from before its send to after
// its receive. Per round and server, it runs once at rest (--rest-duration)
// and once under each fixed load of --loads: dnsperf with -Q LOAD runs for
// --latency-duration and the probe runs over its middle (a second off
// each end). Values up to 1 in --loads are fractions of dnsmasq's median
// throughput measured above, so both servers get the same offered load.
// Reported: the probe's p50, p90, p99, p99.9 and max, lost probe queries,
// and dnsperf's own figures at that load.
//
// # A quiet machine
//
// Before it starts the servers and before each round, it waits (up to
// --wait-idle) until no other benchmark runs (processes naming
// scripts/bench) and the machine's CPUs are busy for at most --idle-cores
// cores over 3 s; if it gives up, the report starts with a warning. The
// host busy columns show any load that came later.
//
// # Cleanup
//
// On exit, SIGINT or SIGTERM (and with --reap alone, which the script runs
// before and after): both servers are stopped, every process whose command
// line names the work directory is killed, and the work directory is
// removed except logs/, which holds both servers' output.
package main

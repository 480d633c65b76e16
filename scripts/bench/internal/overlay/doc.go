// Command overlay is the engine of scripts/bench/overlay: what orch's VXLAN
// overlay (package netplane) costs against the plain underlay, in
// throughput and in latency, measured in the same run on the same lab.
// Run it through that script: it checks for root, installs iperf3 if it
// is missing, builds this program and removes what a crashed run left
// behind. docs/benchmarks.md holds the latest results and the command
// that made them.
//
// # Setup
//
// A two-host lab built by scripts/lab (prefix --prefix, default bo-):
// namespaces h1 and h2 with eth0 (10.47.0.1 and .2) on veth pairs into a
// switch namespace's bridge, at the lab's MTU (--mtu; default: the root
// namespace's default-route interface, as scripts/lab chooses). This
// program programs both hosts with netplane from one process
// (Config.NetNS): subnet 10.213.K.0/24 on host K, VNI 4242, port 4789, the
// overlay MTU derived from eth0 (50 bytes less), each host the other's
// peer. It then creates one replica namespace per host (PREFIX+"r1",
// "r2", so the lab's teardown removes them too) and attaches it with
// Plane.Attach: eth0 at 10.213.K.2, default route via the bridge.
//
// The two paths compared:
//
//   - underlay: host namespace h1 → h2 over their eth0 (10.47.0.2): one
//     veth pair, the switch bridge, another veth pair;
//   - overlay: replica r1 → r2 (10.213.2.2): r1's veth, h1's bridge orch0,
//     routing to orchvx, VXLAN encapsulation, the same underlay path,
//     decapsulation on h2, routing to its orch0, r2's veth.
//
// Both use the same kernel, CPUs and iperf3/ping binaries, so the ratio
// isolates the cost of the overlay's extra hops and encapsulation. On one
// machine, that cost is CPU, not wire time: the figures say how much work
// the overlay adds, not what a physical network would show.
//
// # GRO
//
// Everything is measured once per setting of --gro (default "off,on"),
// the generic receive offload of the lab hosts' eth0, set with ethtool -K
// before the phase. veth has GRO off by default, which also keeps its
// receive side off NAPI: packets are handed up one by one. Physical NICs
// have GRO on, and a host then merges the packets of a flow (VXLAN ones
// included) before they climb the stack. "off" is the lab as scripts/lab
// builds it; "on" is closer to real hosts. Both paths cross the same
// eth0s, so each setting applies to both sides of its ratio. The
// replicas' veths are left as netplane makes them.
//
// # Throughput
//
// iperf3 TCP, one stream, client in the sending namespace and a
// one-shot server (`iperf3 -s -1`) in the receiving one, --duration
// seconds with the first --omit second(s) left out of the result (slow
// start), --runs times per path. Within each run, the two paths alternate
// which goes first. The figure is the receiver's bits per second from the
// client's JSON (-J), with the sender's retransmits and both ends' CPU
// use as iperf3 reports them. The table shows the median and the range;
// the ratio is overlay median / underlay median (aim: at least 0.85).
// The processes are not pinned: --affinity 0,1 (iperf3 -A) was tried and
// gave lower and noisier figures on both paths, since the softirq work of
// the whole path then competes with a pinned process.
//
// # Latency
//
// `ping -c --pings -i --interval -n` in both directions on both paths,
// after a three-packet warm-up that settles ARP; the round trip of every
// reply is parsed, and the first reply is dropped. The table shows the
// median (p50), mean, p90 and max in µs; the added latency is overlay p50
// − underlay p50 for each direction (aim: below 50 µs).
//
// # Fair measurements on a shared machine
//
// Before each sample (each iperf3 run, each ping series) it waits, up to
// --wait-idle, until no other benchmark runs (processes whose command line
// names scripts/bench/ other than this one), no test binary (*.test) runs
// and no other network namespace exists (tests build labs): on 2 CPUs any
// of these halves what a sample sees. A sample taken anyway is listed in
// the report as disturbed, with what was running. It also records how
// busy the machine's CPUs were during each sample (/proc/stat).
//
// # Output
//
// The table goes to stdout, progress to stderr, and CSV is appended to
// --results/overlay.csv (one line per iperf3 run and per ping series) and
// overlay-summary.csv (medians, ratio, added latency).
//
// # Cleanup
//
// On exit, SIGINT or SIGTERM, `scripts/lab down --prefix` kills every
// process left inside the lab (iperf3 servers) and deletes the host,
// switch and replica namespaces; the script runs the same before and
// after.
package main

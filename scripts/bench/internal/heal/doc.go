// Command heal is the engine of scripts/bench/heal: how long a cluster
// takes to heal when a host running a replica dies, as every surviving
// host's DNS sees it. Run it through that script: it checks for root,
// builds orch from the working tree, this program and the busybox image
// (internal/testimage, through its TestWriteImage), removes
// what a crashed run left behind, and tears everything down on exit.
//
// # Setup (one cluster per profile)
//
// A lab of --hosts network namespaces (scripts/lab, prefix bh-, host K at
// 10.47.0.K, permanent ARP entries between all hosts as in
// scripts/bench/membership). In each host, started with `nsenter --net`:
// a private containerd (its own config, root, state and sockets under
// WORK/run/hK/ctd, CRI and NRI off, as internal/testenv does) and `orch
// agent --name hK --bind 10.47.0.K:7946 --profile P --containerd SOCK`;
// h1 founds the cluster, the others join it with its token 50 ms apart.
// With --containerd-hosts M only h1..hM run a containerd (and carry the
// node label ctd=yes, which the service is constrained to); the others
// get --containerd none. The image is imported on every containerd host
// with `orch image import`, then, on h1:
//
//	orch service create --name web --replicas 3 --port http:8080/tcp \
//	    --health-http /:8080 --health-interval 1s --health-timeout 1s --health-retries 2 \
//	    docker.io/orch/busybox:test httpd -f -p 8080 -h /www
//
// runc's state (/run/containerd/runc/orch/ID) and cgroups (/orch/ID) are
// shared by every containerd on the machine; replica IDs hash the node
// ID, which is random per data dir, so the benchmark's replicas never
// collide with a test's web on a lab host also named h1.
//
// The cluster is ready when h1 lists 3 replicas running on 3 distinct
// hosts with their addresses, every host's DNS answers exactly those 3
// for web.svc.orch, and each answers GET / from h1.
//
// # A repetition (--runs per profile)
//
// The cluster must be settled: every agent lists every host alive, the
// service is ready as above, and the last victim's containerd holds no
// container of a slot it does not hold. The victim is drawn (--seed)
// among the hosts other than h1 that run a replica. Every survivor's DNS
// is checked to answer the victim's replica. Then the list of the
// victim's processes is taken (every process in its network namespace,
// as `ip netns pids` gives it: agent, containerd, shims; with their
// descendants: the containers, which live in the replicas' own
// namespaces), and at t0 they are SIGKILLed, the survivors' pollers
// start, and the victim's switch port is detached (scripts/lab isolate).
// The namespace is swept again until nothing is left in it.
//
// Each survivor has its own poller: a UDP socket opened inside the host
// (a locked OS thread enters the namespace, opens the socket, returns to
// ours before it is unlocked; a thread that cannot return dies locked),
// connected to the agent's DNS on 127.0.0.1:8600 there, asking A
// web.svc.orch every --poll (20 ms), each answer stamped when it arrives.
//
//   - T1: the first answer without the dead replica's address after which
//     no answer had it again (answers that had it again are counted as
//     flaps).
//   - T2: once an answer holds 3 addresses, none of them the dead one, the
//     poller does GET http://ADDR:8080/ to each over a fresh connection
//     opened inside the survivor's namespace (the host reaches replicas on
//     other hosts over the overlay); T2 is when the last of the three
//     returned 200. Until then, polling goes on. "T2 (DNS part)" is when
//     that answer arrived.
//
// The repetition's figures are the slowest survivor's (all of them must
// have healed); "first survivor" is the fastest. Polling stops --tail
// (2 s) after the last survivor healed, or at --heal-timeout (60 s).
// Alongside, every agent's event stream (member, task and node events)
// is recorded, stamped by the agents on the same clock as t0: detect is
// the survivor's `member failed` event about the victim, assigned the
// first `task assigned` of the slot to another node on any agent,
// starting and running the slot's events on its new node. How busy both
// CPUs were from t0 until the last survivor healed is recorded too.
//
// The victim is then restored in place, not rebuilt: its port attached
// again (scripts/lab heal), its containerd restarted on the same root and
// state (it cleans up the bundles of the dead shims), its agent restarted
// from its data dir without join flags (it rejoins from peers.json), and
// the next repetition starts once the cluster has settled again and
// --settle (3 s) has passed. Placement is sticky, so the victim's return
// should move no slot; slots that changed node between just before the
// restore and after it are reported ("moved on return"). A cluster that does not settle within
// --settle-timeout is torn down and formed again (at most twice per
// profile); that repetition's figures are kept.
//
// # Soak (--soak D)
//
// One cluster with the fast profile and the service deployed, idle for
// D. Every member failed or leave event on any agent's stream is false
// (nobody is killed), summed over the observers; memberlist's "Suspect X
// has failed" log lines (near-misses) are counted, as are task and node
// events (restarts, health flapping, minority verdicts), the service's
// restart counters at the end, and the agents' CPU.
//
// # Load and cleanup
//
// Before forming a cluster and before each repetition the program waits,
// up to --wait-idle each time, while another benchmark (a command line
// naming scripts/bench/), a test binary (*.test), a Go build (go build,
// test or vet, the compiler, the linker) or another lab's namespace with
// processes in it exists: on 2 shared CPUs they distort the figures. What still ran is listed with the repetition. The wrapper
// runs the program at nice −10 and it starts the agents and containerds
// back at 0, so that its timestamps are taken promptly.
//
// Each cluster's agent and containerd logs and its event streams (one
// JSON line per event with the observer) are kept in WORK/logs until the
// next run; the report counts the agents' WARN and ERROR lines by message.
// Cleanup (on exit, SIGINT, SIGTERM, and with --reap alone): stop the
// agents and containerds, SIGKILL every process whose command line names
// the work directory and every shim whose -address is under it with all
// their descendants, `runc delete --force` each bundle left in the
// containerds' state, remove their shim sockets, unmount everything below
// the work directory (rootfs, the replicas' network namespaces), rmdir the
// containers' cgroups, remove the work directory except logs/, and tear
// the lab down. The containerd namespace orch's own runc directory and
// cgroup are shared with every containerd on the machine and left alone.
//
// # Output
//
// Progress on stderr; the tables on stdout; CSV appended to
// RESULTS/heal.csv (one row per survivor and repetition),
// heal-summary.csv (one row per profile) and heal-soak.csv.
package main

// Package lab builds a multi-host test lab out of Linux network namespaces
// for integration tests, by driving scripts/lab, the single implementation of
// the topology (see the comment at the top of that script):
//
//	l := lab.New(t, lab.Config{Hosts: 3})
//	h1, h2 := l.Host(1), l.Host(2)
//	agent := h1.Start(t, orchBin, "agent", "--data-dir", h1.Dir)
//	lab.Eventually(t, 10*time.Second, 100*time.Millisecond, func() error {
//		return h2.Command(t.Context(), orchBin, "members").Run()
//	})
//	l.Isolate(t, h2) // partition h2 away from the switch
//
// Each [Host] is one namespace with eth0 on a shared bridge, an address in
// [Config.Subnet], and no route out of the lab. Commands run in a host
// through `nsenter --net=/run/netns/NAME`, which enters only the network
// namespace and then execs the command, so [Process.Pid] is the command's
// own PID, the filesystem, cgroups and mounts are the test's, and only
// /sys/class/net is misleading (it still lists the root namespace's
// interfaces; ask `ip link` inside the host instead).
//
// # Lifetime and crashed runs
//
// [New] registers a cleanup that stops every process started with
// [Host.Start] (SIGTERM, then SIGKILL after [Config.StopGrace]), prints the
// tail of their logs if the test failed, and runs `scripts/lab down`, which
// also kills anything else still running inside the lab.
//
// A test process that dies without running cleanups (go test -timeout,
// SIGKILL) leaves namespaces and processes behind. Each lab therefore has an
// owner marker, /run/orch-lab/PREFIX, holding the owner's PID and process
// start time, written before any namespace exists and removed after the lab
// is gone. [New] first sweeps, under an flock of /run/orch-lab/.lock: a lab
// whose marker names a dead owner, and a namespace of the automatic
// "oXXXX-" form with no marker at all, are torn down. Labs of live test
// processes, including concurrently running test binaries, are never
// touched; /run is a tmpfs, so a reboot forgets markers and namespaces
// together.
//
// # Gating
//
// [New] skips the test unless it runs as root with ip and nsenter on PATH
// (see [testenv.RequireRoot], [testenv.RequireCommand]).
//
// # Imports and concurrency
//
// lab imports only the standard library and internal/testenv, and is meant
// for _test.go files only. A [Lab], its [Host] values and [Process] values
// are safe for concurrent use; methods taking a testing.TB must be called
// from that test's goroutine, as with t.Fatal.
package lab

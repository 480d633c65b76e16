package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/orchproject/orch/scripts/bench/internal/benchkit"
)

// Paths measured.
const (
	pathUnderlay = "underlay"
	pathOverlay  = "overlay"
)

type bench struct {
	o      options
	stdout io.Writer
	lab    *benchkit.Lab

	started   time.Time
	labMTU    int
	mtu       int // overlay
	env       string
	disturbed []string // samples taken while other load was present, and what it was

	tcp   []tcpRow
	pings []pingRow
}

type tcpRow struct {
	gro   string // GRO of the lab hosts' eth0: off, on
	run   int
	path  string
	first bool // went first in its run
	tcpResult
}

type pingRow struct {
	gro, path, from, to string
	pingResult
}

func (b *bench) run(ctx context.Context) error {
	b.started = time.Now()
	b.lab = &benchkit.Lab{Script: b.o.labScript, Prefix: b.o.prefix, MTU: b.o.mtu}
	if _, err := exec.LookPath("iperf3"); err != nil {
		return fmt.Errorf("iperf3 not found on PATH (scripts/bench/overlay installs it): %w", err)
	}

	logf("building a 2-host lab (prefix %s)", b.o.prefix)
	if err := b.lab.Up(ctx, 2); err != nil {
		return err
	}
	nodes, err := b.buildOverlay(ctx, 2)
	if err != nil {
		return err
	}
	for _, nd := range nodes {
		defer nd.plane.Close()
	}
	h1, h2 := nodes[0].host, nodes[1].host
	r1, r2 := nodes[0].replica, nodes[1].replica
	b.mtu = nodes[0].plane.MTU()
	b.labMTU = linkMTU(ctx, h1, "eth0")
	b.env = environment()
	logf("overlay up: underlay MTU %d, overlay MTU %d; %s", b.labMTU, b.mtu, b.env)

	if err := b.waitConnected(ctx, [][2]endpoint{{h1, h2}, {h2, h1}, {r1, r2}, {r2, r1}}); err != nil {
		return err
	}
	if b.o.hold {
		logf("holding (Ctrl-C tears down): hosts %s %s (%s, %s), replicas %s %s (%s, %s); nsenter --net=/run/netns/NAME -- CMD",
			h1.ns, h2.ns, h1.addr, h2.addr, r1.ns, r2.ns, r1.addr, r2.addr)
		<-ctx.Done()
		return nil
	}
	for _, gro := range b.o.gro {
		for _, h := range []endpoint{h1, h2} {
			if out, err := h.command(ctx, "ethtool", "-K", "eth0", "gro", gro).CombinedOutput(); err != nil {
				return fmt.Errorf("ethtool -K eth0 gro %s in %s: %w: %s", gro, h.name, err, out)
			}
		}
		if err := b.measure(ctx, gro, h1, h2, r1, r2); err != nil {
			return err
		}
	}

	b.report()
	return b.writeCSV()
}

// measure runs the throughput and latency measurements with the lab
// hosts' eth0 GRO set to gro.
func (b *bench) measure(ctx context.Context, gro string, h1, h2, r1, r2 endpoint) error {
	// Throughput: the paths alternate which goes first in each run, so a
	// drift of the machine's state over time hits both alike.
	for run := 1; run <= b.o.runs; run++ {
		order := []string{pathUnderlay, pathOverlay}
		if run%2 == 0 {
			order = []string{pathOverlay, pathUnderlay}
		}
		for i, path := range order {
			client, server := h1, h2
			if path == pathOverlay {
				client, server = r1, r2
			}
			if err := b.quiet(ctx, fmt.Sprintf("GRO %s iperf3 run %d %s", gro, run, path)); err != nil {
				return err
			}
			logf("GRO %s: iperf3 run %d/%d, %s %s → %s, %d s", gro, run, b.o.runs, path, client.name, server.name, b.o.duration)
			r, err := b.iperf(ctx, client, server)
			if err != nil {
				return err
			}
			logf("  %.2f Gbit/s, %d retransmits", r.bps/1e9, r.retransmits)
			b.tcp = append(b.tcp, tcpRow{gro: gro, run: run, path: path, first: i == 0, tcpResult: r})
		}
	}

	// Latency, both directions on both paths.
	for _, s := range []struct {
		path     string
		from, to endpoint
	}{
		{pathUnderlay, h1, h2}, {pathOverlay, r1, r2},
		{pathUnderlay, h2, h1}, {pathOverlay, r2, r1},
	} {
		if err := b.quiet(ctx, fmt.Sprintf("GRO %s ping %s %s→%s", gro, s.path, s.from.name, s.to.name)); err != nil {
			return err
		}
		logf("GRO %s: ping %s %s → %s, %d × %s s", gro, s.path, s.from.name, s.to.name, b.o.pings, b.o.interval)
		r, err := b.ping(ctx, s.from, s.to, b.o.pings)
		if err != nil {
			return err
		}
		b.pings = append(b.pings, pingRow{gro: gro, path: s.path, from: s.from.name, to: s.to.name, pingResult: r})
	}
	return nil
}

// quiet waits (up to --wait-idle) until no other benchmark, test binary or
// lab is running, before each sample: on a shared 2-CPU machine anything
// else running halves what a sample sees. A sample taken anyway is
// recorded as disturbed, with what was running.
func (b *bench) quiet(ctx context.Context, sample string) error {
	waited, others, err := benchkit.WaitIdle(ctx, b.o.waitIdle, 5*time.Second, func() []string {
		return benchkit.OtherLoad(benchkit.LoadFilter{
			Own:    []string{"scripts/bench/overlay", "internal/overlay", "orch-bench-overlay"},
			Tests:  true,
			Netns:  benchkit.NetnsAll,
			Prefix: b.o.prefix,
		})
	}, func(others []string) {
		logf("other load is running, waiting up to %v:\n  %s", b.o.waitIdle, strings.Join(others, "\n  "))
	})
	if err != nil {
		return err
	}
	if len(others) > 0 {
		note := fmt.Sprintf("%s: taken after waiting %v, with %s", sample, waited.Round(time.Second), strings.Join(others, "; "))
		b.disturbed = append(b.disturbed, note)
		logf("measuring anyway: %s", note)
	}
	return nil
}

// linkMTU returns the MTU of dev in e's namespace, 0 if unknown. It asks
// ip: under nsenter --net, /sys/class/net is still the root namespace's.
func linkMTU(ctx context.Context, e endpoint, dev string) int {
	out, err := e.command(ctx, "ip", "-o", "link", "show", "dev", dev).Output()
	if err != nil {
		return 0
	}
	f := strings.Fields(string(out))
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "mtu" {
			n, _ := strconv.Atoi(f[i+1])
			return n
		}
	}
	return 0
}

// environment describes the machine for the report.
func environment() string {
	var parts []string
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		parts = append(parts, "kernel "+strings.TrimSpace(string(b)))
	}
	parts = append(parts, fmt.Sprintf("%d CPUs", numCPU()))
	if out, err := exec.Command("iperf3", "--version").Output(); err == nil {
		line, _, _ := strings.Cut(string(out), "\n")
		if f := strings.Fields(line); len(f) >= 2 {
			parts = append(parts, "iperf3 "+f[1])
		}
	}
	return strings.Join(parts, ", ")
}

func numCPU() int {
	b, _ := os.ReadFile("/proc/stat")
	n := 0
	for line := range strings.Lines(string(b)) {
		if strings.HasPrefix(line, "cpu") && len(line) > 3 && line[3] >= '0' && line[3] <= '9' {
			n++
		}
	}
	return n
}

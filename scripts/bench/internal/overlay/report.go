package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/orchproject/orch/scripts/bench/internal/benchkit"
)

// Aims of the overlay, from the brief: what a VXLAN overlay on Linux
// should cost at most.
const (
	aimRatio   = 0.85 // overlay/underlay TCP throughput
	aimAddedUS = 50.0 // overlay − underlay round trip, µs
)

// tcpField returns f of every throughput run of path with GRO gro.
func (b *bench) tcpField(gro, path string, f func(tcpRow) float64) []float64 {
	var v []float64
	for _, r := range b.tcp {
		if r.gro == gro && r.path == path {
			v = append(v, f(r))
		}
	}
	return v
}

// gbps returns the throughputs of path with GRO gro, in Gbit/s.
func (b *bench) gbps(gro, path string) []float64 {
	return b.tcpField(gro, path, func(r tcpRow) float64 { return r.bps / 1e9 })
}

// ratio is overlay/underlay of the median throughputs with GRO gro.
func (b *bench) ratio(gro string) float64 {
	return benchkit.Median(b.gbps(gro, pathOverlay)) / benchkit.Median(b.gbps(gro, pathUnderlay))
}

// added returns overlay p50 − underlay p50 with GRO gro for the direction
// from → to of the hosts ("1→2": h1 → h2 on the underlay, r1 → r2 on the
// overlay).
func (b *bench) added(gro, dir string) float64 {
	under, over := math.NaN(), math.NaN()
	for _, p := range b.pings {
		d := strings.TrimLeft(p.from, "hr") + "→" + strings.TrimLeft(p.to, "hr")
		if p.gro != gro || d != dir {
			continue
		}
		if p.path == pathUnderlay {
			under = benchkit.Quantile(p.rtts, 0.5)
		} else {
			over = benchkit.Quantile(p.rtts, 0.5)
		}
	}
	return over - under
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

func (b *bench) report() {
	w := b.stdout
	fmt.Fprintf(w, "\noverlay benchmark, %s\n", b.started.UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "2-host netns lab, underlay MTU %d (veth), overlay MTU %d (VXLAN VNI 4242, port 4789); %s\n", b.labMTU, b.mtu, b.env)
	if b.o.source != "" {
		fmt.Fprintf(w, "netplane from %s\n", b.o.source)
	}
	if len(b.disturbed) > 0 {
		fmt.Fprintf(w, "WARNING: %d samples were taken while other load ran:\n  %s\n", len(b.disturbed), strings.Join(b.disturbed, "\n  "))
	}

	fmt.Fprintf(w, "\nTCP throughput: iperf3, 1 stream, %d s (first %d s omitted) × %d runs, h1 → h2 (r1 → r2)\n", b.o.duration, b.o.omit, b.o.runs)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "eth0 GRO\tpath\tmedian Gbit/s\tmin\tmax\tretransmits\tsender CPU %\treceiver CPU %\tmachine busy %\t")
	for _, gro := range b.o.gro {
		for _, path := range []string{pathUnderlay, pathOverlay} {
			g := b.gbps(gro, path)
			f := func(get func(tcpRow) float64) float64 { return benchkit.Median(b.tcpField(gro, path, get)) }
			fmt.Fprintf(tw, "%s\t%s\t%.2f\t%.2f\t%.2f\t%.0f\t%.0f\t%.0f\t%.0f\t\n", gro, path, benchkit.Median(g), slices.Min(g), slices.Max(g),
				f(func(r tcpRow) float64 { return float64(r.retransmits) }),
				f(func(r tcpRow) float64 { return r.senderCPU }),
				f(func(r tcpRow) float64 { return r.receiverCPU }),
				f(func(r tcpRow) float64 { return r.hostBusyPerc }))
		}
	}
	tw.Flush()
	for _, gro := range b.o.gro {
		ratio := b.ratio(gro)
		fmt.Fprintf(w, "ratio overlay/underlay (medians), GRO %-3s: %.3f  (aim ≥ %.2f: %s)\n", gro, ratio, aimRatio, verdict(ratio >= aimRatio))
	}

	fmt.Fprintf(w, "\nICMP round trip: ping -c %d -i %s (first reply dropped), µs\n", b.o.pings, b.o.interval)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "eth0 GRO\tpath\tfrom → to\tp50\tmean\tp90\tmax\tlost\t")
	for _, p := range b.pings {
		fmt.Fprintf(tw, "%s\t%s\t%s → %s\t%.0f\t%.0f\t%.0f\t%.0f\t%d/%d\t\n", p.gro, p.path, p.from, p.to,
			benchkit.Quantile(p.rtts, 0.5), benchkit.Mean(p.rtts), benchkit.Quantile(p.rtts, 0.9), slices.Max(p.rtts), p.lost, p.sent)
	}
	tw.Flush()
	for _, gro := range b.o.gro {
		a12, a21 := b.added(gro, "1→2"), b.added(gro, "2→1")
		fmt.Fprintf(w, "added latency (overlay p50 − underlay p50), GRO %-3s: h1→h2 %.0f µs, h2→h1 %.0f µs  (aim < %.0f µs: %s)\n",
			gro, a12, a21, aimAddedUS, verdict(a12 < aimAddedUS && a21 < aimAddedUS))
	}
}

func (b *bench) writeCSV() error {
	if err := os.MkdirAll(b.o.results, 0o755); err != nil {
		return err
	}
	stamp := b.started.UTC().Format(time.RFC3339)
	var runs strings.Builder
	runs.WriteString("time,source,underlay_mtu,gro,kind,path,run_or_direction,went_first,value,unit,retransmits,sender_cpu,receiver_cpu,machine_busy\n")
	for _, r := range b.tcp {
		fmt.Fprintf(&runs, "%s,%q,%d,%s,tcp,%s,%d,%t,%.3f,Gbit/s,%d,%.1f,%.1f,%.1f\n", stamp, b.o.source, b.labMTU, r.gro, r.path, r.run, r.first,
			r.bps/1e9, r.retransmits, r.senderCPU, r.receiverCPU, r.hostBusyPerc)
	}
	for _, p := range b.pings {
		fmt.Fprintf(&runs, "%s,%q,%d,%s,rtt_p50,%s,%s→%s,,%.1f,us,,,,%.1f\n", stamp, b.o.source, b.labMTU, p.gro, p.path, p.from, p.to,
			benchkit.Quantile(p.rtts, 0.5), p.hostBusyPerc)
	}
	var sum strings.Builder
	sum.WriteString("time,source,underlay_mtu,gro,metric,value,unit\n")
	add := func(gro, metric string, v float64, unit string) {
		fmt.Fprintf(&sum, "%s,%q,%d,%s,%s,%.3f,%s\n", stamp, b.o.source, b.labMTU, gro, metric, v, unit)
	}
	add("", "overlay_mtu", float64(b.mtu), "bytes")
	for _, gro := range b.o.gro {
		add(gro, "underlay_tcp_median", benchkit.Median(b.gbps(gro, pathUnderlay)), "Gbit/s")
		add(gro, "overlay_tcp_median", benchkit.Median(b.gbps(gro, pathOverlay)), "Gbit/s")
		add(gro, "tcp_ratio", b.ratio(gro), "x")
		add(gro, "added_latency_p50_1to2", b.added(gro, "1→2"), "us")
		add(gro, "added_latency_p50_2to1", b.added(gro, "2→1"), "us")
	}
	for _, p := range b.pings {
		add(p.gro, fmt.Sprintf("%s_rtt_p50_%s_%s", p.path, p.from, p.to), benchkit.Quantile(p.rtts, 0.5), "us")
	}
	for name, body := range map[string]string{"overlay.csv": runs.String(), "overlay-summary.csv": sum.String()} {
		if err := benchkit.AppendCSV(filepath.Join(b.o.results, name), body); err != nil {
			return err
		}
	}
	logf("CSV appended to %s/overlay.csv and overlay-summary.csv", b.o.results)
	return nil
}

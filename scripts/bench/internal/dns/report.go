package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/orchproject/orch/scripts/bench/internal/benchkit"
)

// report prints the tables and appends the CSV files.
func (b *bench) report() error {
	o := b.o
	w := os.Stdout
	qps := func(r perfRow) float64 { return r.qps }
	fmt.Fprintf(w, "\n%s\n", benchkit.Header(b.o.source, b.started))
	if b.otherBusy {
		fmt.Fprintln(w, "\nWARNING: the machine was not quiet before every phase (another benchmark, or other load; see the host columns).")
	}
	fmt.Fprintf(w, "\nThroughput: %d names (A), dnsperf -c %d -q %d -l %d, %d rounds, alternating which server goes first:\n\n",
		len(b.names), o.clients, o.outstanding, int(o.duration.Seconds()), o.rounds)
	fmt.Fprintln(w, "| round | server | queries/s | avg ms | stddev ms | lost | server cores | server µs CPU/query | dnsperf cores | host busy cores |")
	fmt.Fprintln(w, "|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|")
	for _, r := range b.perf {
		fmt.Fprintf(w, "| %d | %s | %.0f | %.3f | %.3f | %d | %.2f | %.2f | %.2f | %.2f |\n",
			r.round, r.impl, r.qps, r.avgMS, r.stddevMS, r.lost, r.serverCores, r.serverUSPerQuery, r.perfCores, r.hostCores)
	}
	fmt.Fprintln(w, "\n(server cores: the server's CPU time over the run's wall time; host busy: every process on the machine, so host − server − dnsperf is other load.)")
	oq, mq := benchkit.Median(b.perfCol("orch", qps)), benchkit.Median(b.perfCol("dnsmasq", qps))
	oc, mc := benchkit.Median(b.perfCol("orch", func(r perfRow) float64 { return r.serverCores })), benchkit.Median(b.perfCol("dnsmasq", func(r perfRow) float64 { return r.serverCores }))
	ou, mu := benchkit.Median(b.perfCol("orch", func(r perfRow) float64 { return r.serverUSPerQuery })), benchkit.Median(b.perfCol("dnsmasq", func(r perfRow) float64 { return r.serverUSPerQuery }))
	fmt.Fprintf(w, "\nMedians: orch %.0f q/s on %.2f cores (%.2f µs CPU/query), dnsmasq %.0f q/s on %.2f cores (%.2f µs CPU/query).\n", oq, oc, ou, mq, mc, mu)
	fmt.Fprintf(w, "Ratio orch/dnsmasq: throughput %.2f, CPU per query %.2f.\n", oq/mq, ou/mu)

	var loads []string
	for _, l := range b.loadRates {
		loads = append(loads, fmt.Sprintf("%d (%.0f%%)", l, 100*float64(l)/mq))
	}
	fmt.Fprintf(w, "\nLatency seen by a probe (%.0f queries/s, open loop, one socket) at rest (%v) and while dnsperf (-q %d) sends a fixed load of %s queries/s (%% of dnsmasq's median maximum; the probe runs over the middle %v), µs:\n\n",
		o.probeRate, o.restDuration, o.outstanding, strings.Join(loads, ", "), o.latencyDuration-2*time.Second)
	fmt.Fprintln(w, "| round | server | load q/s | dnsperf avg ms | server cores | server µs CPU/query | host busy cores | p50 | p90 | p99 | p99.9 | max | lost |")
	fmt.Fprintln(w, "|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	for _, r := range b.lat {
		load, avg, cores, cpu, host := "0", "–", "–", "–", "–"
		if r.load > 0 {
			load, avg = fmt.Sprintf("%.0f", r.perf.qps), fmt.Sprintf("%.3f", r.perf.avgMS)
			cores, cpu, host = fmt.Sprintf("%.2f", r.perf.serverCores), fmt.Sprintf("%.2f", r.perf.serverUSPerQuery), fmt.Sprintf("%.2f", r.perf.hostCores)
		}
		fmt.Fprintf(w, "| %d | %s | %s | %s | %s | %s | %s | %.0f | %.0f | %.0f | %.0f | %.0f | %d |\n",
			r.round, r.impl, load, avg, cores, cpu, host, us(r.p50), us(r.p90), us(r.p99), us(r.p999), us(r.max), r.lost())
	}
	latMedian := func(name string, load int, f func(latRow) time.Duration) float64 {
		var xs []float64
		for _, r := range b.lat {
			if r.impl == name && r.load == load {
				xs = append(xs, us(f(r)))
			}
		}
		return benchkit.Median(xs)
	}
	fmt.Fprint(w, "\nMedians over the rounds, µs:\n\n")
	fmt.Fprintln(w, "| server | load q/s | p50 | p99 | p99.9 |")
	fmt.Fprintln(w, "|---|--:|--:|--:|--:|")
	for _, load := range append([]int{0}, b.loadRates...) {
		for _, name := range []string{"orch", "dnsmasq"} {
			fmt.Fprintf(w, "| %s | %d | %.0f | %.0f | %.0f |\n", name, load,
				latMedian(name, load, func(r latRow) time.Duration { return r.p50 }),
				latMedian(name, load, func(r latRow) time.Duration { return r.p99 }),
				latMedian(name, load, func(r latRow) time.Duration { return r.p999 }))
		}
	}
	fmt.Fprintf(w, "\ntotal %s\n", time.Since(b.started).Round(time.Second))

	if err := os.MkdirAll(o.results, 0o755); err != nil {
		return err
	}
	stamp := b.started.UTC().Format(time.RFC3339)
	var runs strings.Builder
	runs.WriteString("time,orch_source,kind,round,impl,went_first,load_qps,qps,avg_ms,stddev_ms,p50_us,p90_us,p99_us,p999_us,max_us,lost,server_cores,server_us_per_query,dnsperf_cores,host_cores,rcvbuf_drops\n")
	for _, r := range b.perf {
		fmt.Fprintf(&runs, "%s,%q,throughput,%d,%s,%t,0,%.0f,%.4f,%.4f,,,,,%.0f,%d,%.3f,%.3f,%.3f,%.3f,%d\n",
			stamp, o.source, r.round, r.impl, r.first, r.qps, r.avgMS, r.stddevMS, r.maxMS*1000, r.lost, r.serverCores, r.serverUSPerQuery, r.perfCores, r.hostCores, r.rcvbufDrops)
	}
	for _, r := range b.lat {
		kind, load := "latency-rest", r.load
		if r.load > 0 {
			kind = "latency-load"
		}
		fmt.Fprintf(&runs, "%s,%q,%s,%d,%s,%t,%d,%.0f,%.4f,%.4f,%.1f,%.1f,%.1f,%.1f,%.1f,%d,%.3f,%.3f,%.3f,%.3f,%d\n",
			stamp, o.source, kind, r.round, r.impl, r.first, load, r.perf.qps, r.perf.avgMS, r.perf.stddevMS,
			us(r.p50), us(r.p90), us(r.p99), us(r.p999), us(r.max), r.lost(), r.perf.serverCores, r.perf.serverUSPerQuery,
			r.perf.perfCores, r.perf.hostCores, r.perf.rcvbufDrops)
	}
	var sum strings.Builder
	sum.WriteString("time,orch_source,metric,value,unit\n")
	add := func(metric string, v float64, unit string) {
		fmt.Fprintf(&sum, "%s,%q,%s,%.3f,%s\n", stamp, o.source, metric, v, unit)
	}
	add("orch_qps_median", oq, "q/s")
	add("dnsmasq_qps_median", mq, "q/s")
	add("ratio_qps", oq/mq, "x")
	add("orch_cores_median", oc, "cores")
	add("dnsmasq_cores_median", mc, "cores")
	add("orch_us_per_query_median", ou, "us")
	add("dnsmasq_us_per_query_median", mu, "us")
	for _, load := range append([]int{0}, b.loadRates...) {
		for _, name := range []string{"orch", "dnsmasq"} {
			tag := fmt.Sprintf("%s_load%d", name, load)
			add(tag+"_p50_median", latMedian(name, load, func(r latRow) time.Duration { return r.p50 }), "us")
			add(tag+"_p99_median", latMedian(name, load, func(r latRow) time.Duration { return r.p99 }), "us")
			add(tag+"_p999_median", latMedian(name, load, func(r latRow) time.Duration { return r.p999 }), "us")
		}
	}
	for name, body := range map[string]string{"dns.csv": runs.String(), "dns-summary.csv": sum.String()} {
		if err := benchkit.AppendCSV(filepath.Join(o.results, name), body); err != nil {
			return err
		}
	}
	logf("CSV appended to %s/dns.csv and dns-summary.csv", o.results)
	return nil
}

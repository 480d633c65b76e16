package main

import (
	"fmt"
	"io"
	"math"
	"path/filepath"
	"strconv"
	"text/tabwriter"

	"github.com/orchproject/orch/scripts/bench/internal/benchkit"
)

// CSV files written to the results directory; each run overwrites them.
const (
	runsCSV    = "membership.csv"
	summaryCSV = "membership-summary.csv"
	soakCSV    = "membership-soak.csv"
)

// describeMachine describes the machine, orch and, if the run measures it,
// serf.
func describeMachine(o options) *benchkit.Machine {
	m := benchkit.DescribeMachine(o.Orch, o.OrchSource)
	if !o.skipSerf && o.soak == 0 {
		m.Also = "serf: " + benchkit.Version(o.serfBin, "version")
	}
	return m
}

// fastTarget is the LAN-tuned profile's goal at N=20 (the "under 2 s").
const fastTarget = 2000.0 // ms

// printTable prints one aligned row per implementation, profile and size.
func printTable(w io.Writer, sums []summary, o options) {
	fmt.Fprintf(w, "Time until every survivor marks a SIGKILLed member failed, ms (median and max of %d runs);\n", o.runs)
	fmt.Fprintf(w, "idle RSS and CPU per agent (mean over the cluster, first run). \">\" = not detected within %s.\n", o.timeout)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "impl\tprofile\tN\tdetect med\tdetect max\tfirst med\tpoll med\tpoll max\tRSS MiB\tCPU %\tfalse\thost %\truns\t")
	for _, s := range sums {
		rss, cpu := "-", "-"
		if s.hasIdle {
			rss, cpu = fmt.Sprintf("%.1f", s.idle.rssMeanMiB), fmt.Sprintf("%.2f", s.idle.cpuMeanPct)
		}
		runs := fmt.Sprintf("%d/%d", s.complete, o.runs)
		if s.unformed != "" {
			runs += "*"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t\n",
			s.impl, s.profile, s.n, benchkit.FormatMs(s.detectMed), benchkit.FormatMs(s.detectMax), benchkit.FormatMs(s.firstMed),
			benchkit.FormatMs(s.pollMed), benchkit.FormatMs(s.pollMax), rss, cpu, s.falseFailures, fmtPct(s.hostBusyMax), runs)
	}
	tw.Flush()
	fmt.Fprintln(w, "detect: orch's member-failed event time, serf's EventMemberFailed log line; first: the first survivor to know;")
	fmt.Fprintf(w, "poll: member list polled every %s per survivor; false: failed/leave events about live members;\n", o.poll)
	fmt.Fprintln(w, "host %: how busy both CPUs were during the busiest run, from settling to detection (agents, benchmark and anything else);")
	fmt.Fprintln(w, "runs: runs in which every survivor saw the failure / runs planned; * = a cluster did not form (see below).")
}

// printUnformed explains the groups whose cluster did not form.
func printUnformed(w io.Writer, sums []summary) {
	for _, s := range sums {
		if s.unformed != "" {
			fmt.Fprintf(w, "* %s/%s N=%d did not form, remaining runs skipped: %s\n", s.impl, s.profile, s.n, s.unformed)
		}
	}
}

// printVerdicts compares orch lan with serf at each size, and checks the
// fast profile against its target at N=20.
func printVerdicts(w io.Writer, sums []summary) {
	find := func(impl, profile string, n int) *summary {
		for i := range sums {
			if s := &sums[i]; s.impl == impl && s.profile == profile && s.n == n {
				return s
			}
		}
		return nil
	}
	for _, s := range sums {
		if s.impl != "orch" || s.profile != "lan" {
			continue
		}
		ref := find("serf", "lan", s.n)
		if ref == nil {
			continue
		}
		fmt.Fprintf(w, "orch lan vs serf, N=%d: median %s vs %s ms (%s), max %s vs %s ms (%s); by polling: median %s vs %s ms (%s)\n",
			s.n, benchkit.FormatMs(s.detectMed), benchkit.FormatMs(ref.detectMed), notSlower(s.detectMed, ref.detectMed),
			benchkit.FormatMs(s.detectMax), benchkit.FormatMs(ref.detectMax), notSlower(s.detectMax, ref.detectMax),
			benchkit.FormatMs(s.pollMed), benchkit.FormatMs(ref.pollMed), notSlower(s.pollMed, ref.pollMed))
	}
	if s := find("orch", "fast", 20); s != nil {
		verdict := "meets"
		if !(s.detectMax < fastTarget) {
			verdict = "MISSES"
		}
		fmt.Fprintf(w, "orch fast, N=20: max %s ms, median %s ms: %s the %.0f ms target\n",
			benchkit.FormatMs(s.detectMax), benchkit.FormatMs(s.detectMed), verdict, fastTarget)
	}
}

func notSlower(got, ref float64) string {
	if math.IsNaN(got) || math.IsNaN(ref) {
		return "no data"
	}
	if got <= ref {
		return "not slower"
	}
	return fmt.Sprintf("SLOWER by %.0f ms", got-ref)
}

// fmtPct prints a percentage in whole numbers; NaN as "-".
func fmtPct(v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	return strconv.FormatFloat(v, 'f', 0, 64)
}

// csvFloat prints v with two decimals if ok; empty otherwise.
func csvFloat(v float64, ok bool) string {
	if !ok {
		return ""
	}
	return benchkit.CSVNum(v, 2)
}

// writeBenchCSV writes one row per run and one per summary.
func writeBenchCSV(dir string, runs []runResult, sums []summary) error {
	rows := [][]string{{"impl", "profile", "n", "run", "victim", "survivors", "detect_ms", "first_ms", "detected",
		"poll_ms", "poll_detected", "log_ms", "log_detected", "false_failures", "form_ms", "host_busy_pct"}}
	for _, r := range runs {
		d := r.det
		rows = append(rows, []string{r.impl, r.profile, strconv.Itoa(r.n), strconv.Itoa(r.run), d.victim, strconv.Itoa(d.survivors),
			benchkit.CSVNum(benchkit.LastMs(d.stamp, d.survivors), 1), benchkit.CSVNum(benchkit.FirstMs(d.stamp), 1), strconv.Itoa(len(d.stamp)),
			benchkit.CSVNum(benchkit.LastMs(d.poll, d.survivors), 1), strconv.Itoa(len(d.poll)),
			benchkit.CSVNum(benchkit.LastMs(d.log, d.survivors), 1), strconv.Itoa(len(d.log)),
			strconv.Itoa(d.falseFailures), benchkit.CSVNum(benchkit.Ms(r.formed), 1), csvFloat(r.hostBusyPct, !math.IsNaN(r.hostBusyPct))})
	}
	if err := benchkit.WriteCSV(filepath.Join(dir, runsCSV), rows); err != nil {
		return err
	}
	rows = [][]string{{"impl", "profile", "n", "runs", "complete", "detect_median_ms", "detect_max_ms", "first_median_ms",
		"poll_median_ms", "poll_max_ms", "log_median_ms", "log_max_ms", "rss_mib_mean", "rss_mib_max", "cpu_pct_mean", "cpu_pct_max", "false_failures", "host_busy_pct_max", "unformed"}}
	for _, s := range sums {
		rows = append(rows, []string{s.impl, s.profile, strconv.Itoa(s.n), strconv.Itoa(s.runs), strconv.Itoa(s.complete),
			benchkit.CSVNum(s.detectMed, 1), benchkit.CSVNum(s.detectMax, 1), benchkit.CSVNum(s.firstMed, 1),
			benchkit.CSVNum(s.pollMed, 1), benchkit.CSVNum(s.pollMax, 1), benchkit.CSVNum(s.logMed, 1), benchkit.CSVNum(s.logMax, 1),
			csvFloat(s.idle.rssMeanMiB, s.hasIdle), csvFloat(s.idle.rssMaxMiB, s.hasIdle),
			csvFloat(s.idle.cpuMeanPct, s.hasIdle), csvFloat(s.idle.cpuMaxPct, s.hasIdle),
			strconv.Itoa(s.falseFailures), csvFloat(s.hostBusyMax, !math.IsNaN(s.hostBusyMax)), s.unformed})
	}
	return benchkit.WriteCSV(filepath.Join(dir, summaryCSV), rows)
}

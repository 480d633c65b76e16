package main

import (
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// CSV files written to the results directory; each run overwrites them.
const (
	runsCSV    = "membership.csv"
	summaryCSV = "membership-summary.csv"
	soakCSV    = "membership-soak.csv"
)

// fastTarget is the LAN-tuned profile's goal at N=20 (the "under 2 s").
const fastTarget = 2000.0 // ms

// machine describes where and when the benchmark ran.
type machine struct {
	cpus               int
	cpuModel, kernel   string
	orch, serf         string
	orchSource         string
	loadStart, loadEnd string
	started            time.Time
	took               time.Duration
}

func describeMachine(o options) *machine {
	m := &machine{
		cpus:       runtime.NumCPU(),
		cpuModel:   cpuinfoModel(),
		kernel:     firstLine(readString("/proc/sys/kernel/osrelease")),
		orch:       firstLine(commandOutput(o.orchBin, "version")),
		orchSource: o.orchSource,
		loadStart:  loadavg(),
		started:    time.Now(),
	}
	if !o.skipSerf && o.soak == 0 {
		m.serf = firstLine(commandOutput(o.serfBin, "version"))
	}
	return m
}

// finish records the end of the run.
func (m *machine) finish(start time.Time) {
	m.took = time.Since(start)
	m.loadEnd = loadavg()
}

func (m *machine) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "machine: %d CPUs (%s), Linux %s\n", m.cpus, m.cpuModel, m.kernel)
	fmt.Fprintf(&b, "orch: %s", m.orch)
	if m.orchSource != "" {
		fmt.Fprintf(&b, ", built from the %s", m.orchSource)
	}
	if m.serf != "" {
		fmt.Fprintf(&b, "; serf: %s", m.serf)
	}
	fmt.Fprintf(&b, "\nstarted %s, load average %s", m.started.UTC().Format(time.RFC3339), m.loadStart)
	if m.took > 0 {
		fmt.Fprintf(&b, "; took %s, load average at the end %s", m.took.Round(time.Second), m.loadEnd)
	}
	b.WriteString("\n")
	return b.String()
}

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
			s.impl, s.profile, s.n, fmtMs(s.detectMed), fmtMs(s.detectMax), fmtMs(s.firstMed),
			fmtMs(s.pollMed), fmtMs(s.pollMax), rss, cpu, s.falseFailures, fmtPct(s.hostBusyMax), runs)
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
			s.n, fmtMs(s.detectMed), fmtMs(ref.detectMed), notSlower(s.detectMed, ref.detectMed),
			fmtMs(s.detectMax), fmtMs(ref.detectMax), notSlower(s.detectMax, ref.detectMax),
			fmtMs(s.pollMed), fmtMs(ref.pollMed), notSlower(s.pollMed, ref.pollMed))
	}
	if s := find("orch", "fast", 20); s != nil {
		verdict := "meets"
		if !(s.detectMax < fastTarget) {
			verdict = "MISSES"
		}
		fmt.Fprintf(w, "orch fast, N=20: max %s ms, median %s ms: %s the %.0f ms target\n",
			fmtMs(s.detectMax), fmtMs(s.detectMed), verdict, fastTarget)
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

// fmtMs prints a time in whole ms; +Inf as ">timeout", NaN as "-".
func fmtMs(v float64) string {
	switch {
	case math.IsNaN(v):
		return "-"
	case math.IsInf(v, 1):
		return ">timeout"
	}
	return strconv.FormatFloat(v, 'f', 0, 64)
}

// fmtPct prints a percentage in whole numbers; NaN as "-".
func fmtPct(v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	return strconv.FormatFloat(v, 'f', 0, 64)
}

// csvMs prints a time in ms with one decimal; empty for no value.
func csvMs(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return ""
	}
	return strconv.FormatFloat(v, 'f', 1, 64)
}

func csvFloat(v float64, ok bool) string {
	if !ok {
		return ""
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

// writeBenchCSV writes one row per run and one per summary.
func writeBenchCSV(dir string, runs []runResult, sums []summary) error {
	rows := [][]string{{"impl", "profile", "n", "run", "victim", "survivors", "detect_ms", "first_ms", "detected",
		"poll_ms", "poll_detected", "log_ms", "log_detected", "false_failures", "form_ms", "host_busy_pct"}}
	for _, r := range runs {
		d := r.det
		rows = append(rows, []string{r.impl, r.profile, strconv.Itoa(r.n), strconv.Itoa(r.run), d.victim, strconv.Itoa(d.survivors),
			csvMs(lastMs(d.stamp, d.survivors)), csvMs(firstMs(d.stamp)), strconv.Itoa(len(d.stamp)),
			csvMs(lastMs(d.poll, d.survivors)), strconv.Itoa(len(d.poll)),
			csvMs(lastMs(d.log, d.survivors)), strconv.Itoa(len(d.log)),
			strconv.Itoa(d.falseFailures), csvMs(ms(r.formed)), csvFloat(r.hostBusyPct, !math.IsNaN(r.hostBusyPct))})
	}
	if err := writeCSV(filepath.Join(dir, runsCSV), rows); err != nil {
		return err
	}
	rows = [][]string{{"impl", "profile", "n", "runs", "complete", "detect_median_ms", "detect_max_ms", "first_median_ms",
		"poll_median_ms", "poll_max_ms", "log_median_ms", "log_max_ms", "rss_mib_mean", "rss_mib_max", "cpu_pct_mean", "cpu_pct_max", "false_failures", "host_busy_pct_max", "unformed"}}
	for _, s := range sums {
		rows = append(rows, []string{s.impl, s.profile, strconv.Itoa(s.n), strconv.Itoa(s.runs), strconv.Itoa(s.complete),
			csvMs(s.detectMed), csvMs(s.detectMax), csvMs(s.firstMed),
			csvMs(s.pollMed), csvMs(s.pollMax), csvMs(s.logMed), csvMs(s.logMax),
			csvFloat(s.idle.rssMeanMiB, s.hasIdle), csvFloat(s.idle.rssMaxMiB, s.hasIdle),
			csvFloat(s.idle.cpuMeanPct, s.hasIdle), csvFloat(s.idle.cpuMaxPct, s.hasIdle),
			strconv.Itoa(s.falseFailures), csvFloat(s.hostBusyMax, !math.IsNaN(s.hostBusyMax)), s.unformed})
	}
	return writeCSV(filepath.Join(dir, summaryCSV), rows)
}

func writeCSV(path string, rows [][]string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	w.WriteAll(rows) // flushes
	if err := w.Error(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}

func readString(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "?"
	}
	return string(b)
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(s)
}

func commandOutput(name string, args ...string) string {
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		return "?"
	}
	return string(out)
}

func cpuinfoModel() string {
	for line := range strings.SplitSeq(readString("/proc/cpuinfo"), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

// loadavg is the 1, 5 and 15 minute load averages.
func loadavg() string {
	f := strings.Fields(readString("/proc/loadavg"))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

package main

import (
	"encoding/csv"
	"fmt"
	"io"
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
	runsCSV    = "state.csv"
	summaryCSV = "state-summary.csv"
)

// syncTarget is the acceptance test's bound for 1,000 services to reach a
// sixth node (internal/e2e TestReplicatedState), counted from the moment
// the node is ready.
const (
	syncTarget         = 5000.0 // ms
	syncTargetServices = 1000
)

// pathOf names how a spec kind's delta travels.
func pathOf(kind string) string {
	if kind == kindLarge {
		return "TCP push"
	}
	return "user event"
}

// machine describes where and when the benchmark ran.
type machine struct {
	cpus               int
	cpuModel, kernel   string
	orch, orchSource   string
	agentFlags         []string
	loadStart, loadEnd string
	started            time.Time
	took               time.Duration
}

func describeMachine(o options) *machine {
	return &machine{
		cpus:       runtime.NumCPU(),
		cpuModel:   cpuinfoModel(),
		kernel:     firstLine(readString("/proc/sys/kernel/osrelease")),
		orch:       firstLine(commandOutput(o.orchBin, "version")),
		orchSource: o.orchSource,
		agentFlags: append([]string{"--profile", "fast"}, o.agentFlags...),
		loadStart:  loadavg(),
		started:    time.Now(),
	}
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
	fmt.Fprintf(&b, "; agents run with %s", strings.Join(m.agentFlags, " "))
	fmt.Fprintf(&b, "\nstarted %s, load average %s", m.started.UTC().Format(time.RFC3339), m.loadStart)
	if m.took > 0 {
		fmt.Fprintf(&b, "; took %s, load average at the end %s", m.took.Round(time.Second), m.loadEnd)
	}
	b.WriteString("\n")
	return b.String()
}

// printReport prints the tables and what the run noticed.
func printReport(w io.Writer, res results, o options) {
	if len(res.prop) > 0 {
		fmt.Fprintln(w)
		printPropTable(w, res.prop, o)
	}
	if len(res.sync) > 0 {
		fmt.Fprintln(w)
		printSyncTable(w, res.sync, o)
	}
	fmt.Fprintln(w)
	for _, ph := range res.prop {
		if ph.fellBack != "" {
			fmt.Fprintf(w, "! propagation N=%d: measured with the %s profile; with %s\n", ph.n, ph.profile, ph.fellBack)
		}
		if len(ph.busy) > 0 {
			fmt.Fprintf(w, "! propagation N=%d: another benchmark was running at the end of the phase: %s\n", ph.n, strings.Join(ph.busy, "; "))
		}
		if ph.lagged > 0 {
			fmt.Fprintf(w, "! propagation N=%d: agents dropped events for the benchmark %d times (lagged markers)\n", ph.n, ph.lagged)
		}
	}
	for _, ph := range res.sync {
		if len(ph.busy) > 0 {
			fmt.Fprintf(w, "! full sync S=%d: another benchmark was running at the end of the phase: %s\n", ph.services, strings.Join(ph.busy, "; "))
		}
	}
	for _, e := range res.errs {
		fmt.Fprintf(w, "! %s\n", e)
	}
	printLogNotes(w, res)
}

func printPropTable(w io.Writer, phases []propPhase, o options) {
	fmt.Fprintf(w, "Propagation: a service created on a random agent, until every other agent's event stream reports it,\n")
	fmt.Fprintf(w, "ms from the create call returning (median, 90th percentile and max of %d writes; per-agent: all agents' delays).\n", o.runs)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "N\tprofile\tspec\tbytes\tpath\tall med\tall p90\tall max\tfirst med\tper-agent med\tcreate call\truns\t")
	for _, ph := range phases {
		for _, s := range summariseProp(ph) {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d/%d\t\n",
				s.n, s.profile, s.kind, s.specBytes, pathOf(s.kind), fmtMs(s.med), fmtMs(s.p90), fmtMs(s.max),
				fmtMs(s.firstMed), fmtMs(s.nodeMed), fmtMs(s.callMed), s.complete, s.runs)
		}
	}
	tw.Flush()
	fmt.Fprintf(w, "bytes: canonical spec; runs: writes every agent reported within %s / writes made.\n", o.timeout)
}

func printSyncTable(w io.Writer, phases []syncPhase, o options) {
	fmt.Fprintf(w, "Full sync: a fresh agent joins a cluster of %d agents holding S services (replicas %d), until its\n", o.syncSize, o.bulkReplicas)
	fmt.Fprintf(w, "ListServices returns all S; seconds (median and max of %d joiners), from its process start and from its API answering.\n", o.syncRuns)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "S\tstart med\tstart max\tAPI med\tAPI max\tAPI up\tsync logged\tstate.json MiB\tRSS members MiB\tCPU members %\tRSS joiner MiB\tcreate s\tcreate /s\tspread s\tdrained s\truns\t")
	var verdict string
	for _, ph := range phases {
		s := summariseSync(ph)
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%.2f\t%.1f\t%.2f\t%.1f\t%.1f\t%.0f\t%.1f\t%s\t%d/%d\t\n",
			s.services, fmtS(s.doneMed), fmtS(s.doneMax), fmtS(s.fromAPIMed), fmtS(s.fromAPIMax),
			fmtS(s.apiMed), fmtS(s.logMed), float64(s.stateBytes)/(1<<20), mean(s.rssMiB), mean(s.cpuPct), s.joinerRSSMed,
			s.createMs/1000, float64(s.created)/(s.createMs/1000), s.convergeMs/1000, fmtS(s.drainMs), s.complete, o.syncRuns)
		if s.services == syncTargetServices && s.complete > 0 {
			verdict = "MISSES"
			if s.fromAPIMax < syncTarget {
				verdict = "meets"
			}
			verdict = fmt.Sprintf("%d services on a new node: max %s s from its API answering (%s s from its start): %s the acceptance test's %.0f s",
				s.services, fmtS(s.fromAPIMax), fmtS(s.doneMax), verdict, syncTarget/1000)
		}
	}
	tw.Flush()
	fmt.Fprintf(w, "API up: process start to /v1/info answering; sync logged: to the joiner's first \"store sync\" debug line with entries;\n")
	fmt.Fprintf(w, "RSS, CPU members: mean of the %d members holding S, CPU over %s idle (%% of one core); create: %d API clients (%s) adding the services of the step;\n", o.syncSize, o.idle, o.writers, o.bulkAPI)
	fmt.Fprintf(w, "spread: from the last create returning until every member listed all S (polled every %s); drained: until no member\n", holdPoll)
	fmt.Fprintf(w, "had logged a stale delta (\"serf: received old event o.st\") for %s. Idle figures and joins come after that.\n", drainQuiet)
	if verdict != "" {
		fmt.Fprintln(w, verdict)
	}
}

// printLogNotes lists the WARN and ERROR lines of the agents' logs.
func printLogNotes(w io.Writer, res results) {
	for _, sp := range res.logs {
		phase := sp.phase
		notes := res.notes[phase]
		if len(notes) == 0 {
			fmt.Fprintf(w, "agent logs, %s: no WARN or ERROR lines\n", phase)
			continue
		}
		fmt.Fprintf(w, "agent logs, %s: WARN/ERROR lines by message:\n", phase)
		for _, n := range notes {
			agents := strings.Join(n.agents[:min(6, len(n.agents))], ",")
			if len(n.agents) > 6 {
				agents += fmt.Sprintf(",… (%d agents)", len(n.agents))
			}
			fmt.Fprintf(w, "  %5d× %s %q on %s\n         e.g. %s\n", n.count, n.level, n.msg, agents, truncate(n.example, 300))
		}
	}
}

// writeCSVs writes one row per measurement and one per summary.
func writeCSVs(dir string, res results, o options) error {
	rows := [][]string{{"bench", "n", "profile", "services", "spec", "spec_bytes", "run", "agent", "version",
		"visible_ms", "first_ms", "agents_seen", "agents_verified", "call_ms",
		"api_ms", "member_ms", "done_ms", "from_api_ms", "log_ms", "poll_gap_ms", "rss_mib"}}
	for _, ph := range res.prop {
		for _, r := range ph.runs {
			rows = append(rows, []string{"propagation", strconv.Itoa(r.n), ph.profile, "", r.kind, strconv.Itoa(r.specBytes), strconv.Itoa(r.run), r.writer, r.version,
				csvMs(r.visibleMs()), csvMs(firstMs(r.delays)), strconv.Itoa(len(r.delays)), strconv.Itoa(r.verified), csvMs(r.callMs),
				"", "", "", "", "", "", ""})
		}
	}
	for _, ph := range res.sync {
		for _, r := range ph.runs {
			rows = append(rows, []string{"fullsync", "", o.syncProfile, strconv.Itoa(r.services), "bulk", "", strconv.Itoa(r.run), r.joiner, "",
				"", "", "", "", "",
				csvMs(r.apiMs), csvMs(r.memberMs), csvMs(r.doneMs), csvMs(r.fromAPIMs()), csvMs(r.logMs), csvMs(r.pollGapMs), csvFloat(r.rssMiB)})
		}
	}
	if err := writeCSV(filepath.Join(dir, runsCSV), rows); err != nil {
		return err
	}
	rows = [][]string{{"bench", "n", "profile", "services", "spec", "spec_bytes", "runs", "complete",
		"median_ms", "p90_ms", "max_ms", "first_median_ms", "agent_median_ms",
		"from_api_median_ms", "from_api_max_ms", "api_median_ms", "log_median_ms",
		"state_json_bytes", "rss_mib_mean", "rss_mib_max", "cpu_pct_mean", "cpu_pct_max", "joiner_rss_mib", "create_ms", "converge_ms", "drain_ms", "form_ms", "lagged", "fell_back", "busy"}}
	for _, ph := range res.prop {
		for _, s := range summariseProp(ph) {
			rows = append(rows, []string{"propagation", strconv.Itoa(s.n), s.profile, "", s.kind, strconv.Itoa(s.specBytes), strconv.Itoa(s.runs), strconv.Itoa(s.complete),
				csvMs(s.med), csvMs(s.p90), csvMs(s.max), csvMs(s.firstMed), csvMs(s.nodeMed),
				"", "", "", "", "", "", "", "", "", "", "", "", "", csvMs(ph.formMs), strconv.Itoa(ph.lagged), ph.fellBack, strings.Join(ph.busy, "; ")})
		}
	}
	for _, ph := range res.sync {
		s := summariseSync(ph)
		rows = append(rows, []string{"fullsync", "", o.syncProfile, strconv.Itoa(s.services), "bulk", "", strconv.Itoa(len(s.runs)), strconv.Itoa(s.complete),
			csvMs(s.doneMed), "", csvMs(s.doneMax), "", "",
			csvMs(s.fromAPIMed), csvMs(s.fromAPIMax), csvMs(s.apiMed), csvMs(s.logMed),
			strconv.FormatInt(s.stateBytes, 10), csvFloat(mean(s.rssMiB)), csvFloat(maximum(s.rssMiB)),
			csvFloat(mean(s.cpuPct)), csvFloat(maximum(s.cpuPct)), csvFloat(s.joinerRSSMed),
			csvMs(s.createMs), csvMs(s.convergeMs), csvMs(s.drainMs), "", "", "", strings.Join(s.busy, "; ")})
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

package main

import (
	"fmt"
	"io"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/orchproject/orch/scripts/bench/internal/benchkit"
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

// describeMachine describes the machine, orch and the agents' flags.
func describeMachine(o options) *benchkit.Machine {
	m := benchkit.DescribeMachine(o.Orch, o.OrchSource)
	m.Also = "agents run with " + strings.Join(append([]string{"--profile", "fast"}, o.agentFlags...), " ")
	return m
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
				s.n, s.profile, s.kind, s.specBytes, pathOf(s.kind), benchkit.FormatMs(s.med), benchkit.FormatMs(s.p90), benchkit.FormatMs(s.max),
				benchkit.FormatMs(s.firstMed), benchkit.FormatMs(s.nodeMed), benchkit.FormatMs(s.callMed), s.complete, s.runs)
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
			fmtS(s.apiMed), fmtS(s.logMed), float64(s.stateBytes)/(1<<20), benchkit.Mean(s.rssMiB), benchkit.Mean(s.cpuPct), s.joinerRSSMed,
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
			fmt.Fprintf(w, "  %5d× %s %q on %s\n         e.g. %s\n", n.count, n.level, n.msg, agents, benchkit.Truncate(n.example, 300))
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
				benchkit.CSVNum(r.visibleMs(), 1), benchkit.CSVNum(benchkit.FirstMs(r.delays), 1), strconv.Itoa(len(r.delays)), strconv.Itoa(r.verified), benchkit.CSVNum(r.callMs, 1),
				"", "", "", "", "", "", ""})
		}
	}
	for _, ph := range res.sync {
		for _, r := range ph.runs {
			rows = append(rows, []string{"fullsync", "", o.syncProfile, strconv.Itoa(r.services), "bulk", "", strconv.Itoa(r.run), r.joiner, "",
				"", "", "", "", "",
				benchkit.CSVNum(r.apiMs, 1), benchkit.CSVNum(r.memberMs, 1), benchkit.CSVNum(r.doneMs, 1), benchkit.CSVNum(r.fromAPIMs(), 1), benchkit.CSVNum(r.logMs, 1), benchkit.CSVNum(r.pollGapMs, 1), benchkit.CSVNum(r.rssMiB, 2)})
		}
	}
	if err := benchkit.WriteCSV(filepath.Join(dir, runsCSV), rows); err != nil {
		return err
	}
	rows = [][]string{{"bench", "n", "profile", "services", "spec", "spec_bytes", "runs", "complete",
		"median_ms", "p90_ms", "max_ms", "first_median_ms", "agent_median_ms",
		"from_api_median_ms", "from_api_max_ms", "api_median_ms", "log_median_ms",
		"state_json_bytes", "rss_mib_mean", "rss_mib_max", "cpu_pct_mean", "cpu_pct_max", "joiner_rss_mib", "create_ms", "converge_ms", "drain_ms", "form_ms", "lagged", "fell_back", "busy"}}
	for _, ph := range res.prop {
		for _, s := range summariseProp(ph) {
			rows = append(rows, []string{"propagation", strconv.Itoa(s.n), s.profile, "", s.kind, strconv.Itoa(s.specBytes), strconv.Itoa(s.runs), strconv.Itoa(s.complete),
				benchkit.CSVNum(s.med, 1), benchkit.CSVNum(s.p90, 1), benchkit.CSVNum(s.max, 1), benchkit.CSVNum(s.firstMed, 1), benchkit.CSVNum(s.nodeMed, 1),
				"", "", "", "", "", "", "", "", "", "", "", "", "", benchkit.CSVNum(ph.formMs, 1), strconv.Itoa(ph.lagged), ph.fellBack, strings.Join(ph.busy, "; ")})
		}
	}
	for _, ph := range res.sync {
		s := summariseSync(ph)
		rows = append(rows, []string{"fullsync", "", o.syncProfile, strconv.Itoa(s.services), "bulk", "", strconv.Itoa(len(s.runs)), strconv.Itoa(s.complete),
			benchkit.CSVNum(s.doneMed, 1), "", benchkit.CSVNum(s.doneMax, 1), "", "",
			benchkit.CSVNum(s.fromAPIMed, 1), benchkit.CSVNum(s.fromAPIMax, 1), benchkit.CSVNum(s.apiMed, 1), benchkit.CSVNum(s.logMed, 1),
			strconv.FormatInt(s.stateBytes, 10), benchkit.CSVNum(benchkit.Mean(s.rssMiB), 2), benchkit.CSVNum(benchkit.Max(s.rssMiB), 2),
			benchkit.CSVNum(benchkit.Mean(s.cpuPct), 2), benchkit.CSVNum(benchkit.Max(s.cpuPct), 2), benchkit.CSVNum(s.joinerRSSMed, 2),
			benchkit.CSVNum(s.createMs, 1), benchkit.CSVNum(s.convergeMs, 1), benchkit.CSVNum(s.drainMs, 1), "", "", "", strings.Join(s.busy, "; ")})
	}
	return benchkit.WriteCSV(filepath.Join(dir, summaryCSV), rows)
}

// fmtS prints a time given in ms as seconds with two decimals.
func fmtS(v float64) string {
	switch {
	case math.IsNaN(v):
		return "-"
	case math.IsInf(v, 1):
		return ">timeout"
	}
	return strconv.FormatFloat(v/1000, 'f', 2, 64)
}

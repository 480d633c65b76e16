package main

import (
	"bufio"
	"cmp"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/orchproject/orch/scripts/bench/internal/benchkit"
)

// aims are the targets for T2, per profile.
var aims = map[string]time.Duration{"lan": 10 * time.Second, "fast": 4 * time.Second}

// profileRun is what one profile gave.
type profileRun struct {
	profile string
	reps    []repResult
	mem     memSample
	logs    logSummary
	err     error
}

// stat is median and max of per-repetition figures; a repetition that
// did not get there counts as +Inf (so the max says "not within").
type stat struct {
	median, max float64
	n           int
}

func statOf(xs []float64) stat {
	if len(xs) == 0 {
		return stat{median: math.NaN(), max: math.NaN()}
	}
	s := slices.Clone(xs)
	for i, v := range s {
		if math.IsNaN(v) {
			s[i] = math.Inf(1)
		}
	}
	return stat{median: benchkit.Median(s), max: benchkit.Max(s), n: len(s)}
}

func col(reps []repResult, f func(repResult) float64) []float64 {
	var out []float64
	for _, r := range reps {
		out = append(out, f(r))
	}
	return out
}

var (
	fT1     = func(r repResult) float64 { return r.max(func(s survivorResult) float64 { return s.t1 }) }
	fT2     = func(r repResult) float64 { return r.max(func(s survivorResult) float64 { return s.t2 }) }
	fT2DNS  = func(r repResult) float64 { return r.max(func(s survivorResult) float64 { return s.t2DNS }) }
	fT2Min  = func(r repResult) float64 { return r.min(func(s survivorResult) float64 { return s.t2 }) }
	fDetect = func(r repResult) float64 { return r.max(func(s survivorResult) float64 { return s.detect }) }
)

// sec formats ms as seconds with 2 decimals; +Inf as "not healed".
func sec(ms float64) string {
	switch {
	case math.IsNaN(ms):
		return "–"
	case math.IsInf(ms, 1):
		return "never"
	}
	return fmt.Sprintf("%.2f", ms/1000)
}

// header describes the run.
func header(w io.Writer, o *options, started time.Time) {
	fmt.Fprintf(w, "\n%s\n", benchkit.Header(o.source, started))
	ctd := "a containerd on every host"
	if o.ctdHosts > 0 && o.ctdHosts < o.hosts {
		ctd = fmt.Sprintf("containerd on h1-h%d only, --containerd none on the other %d (the service is constrained to node.label.%s==yes)", o.ctdHosts, o.hosts-o.ctdHosts, ctdLabel)
	}
	fmt.Fprintf(w, "# %d hosts, %s; service %s: 3 replicas, HTTP health check every 1 s (timeout 1 s, 2 retries); DNS polled every %v per survivor\n",
		o.hosts, ctd, service, o.poll)
}

func printResults(w io.Writer, o *options, runs []profileRun) {
	fmt.Fprintln(w, "\nHealing after a host running a replica dies (agent, containerd, shims and containers SIGKILLed, link cut).")
	fmt.Fprintln(w, "Per repetition the figure is the slowest survivor; seconds after t0, median and max over the repetitions.")
	fmt.Fprintln(w, "T1: the survivor's DNS stops answering the dead replica. T2: it answers 3 live replicas, each of which answers GET / from the survivor.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| profile | N | runs healed | T1 median | T1 max | T2 median | T2 max | aim T2 | verdict | detect median | slot running median | first survivor T2 median | returns that moved slots |")
	fmt.Fprintln(w, "|---|--:|--:|--:|--:|--:|--:|--:|---|--:|--:|--:|--:|")
	for _, pr := range runs {
		if len(pr.reps) == 0 {
			fmt.Fprintf(w, "| %s | %d | 0/%d | – | – | – | – | %s | no result: %v | – | – | – | – |\n", pr.profile, o.hosts, o.runs, aimString(pr.profile), pr.err)
			continue
		}
		t1, t2 := statOf(col(pr.reps, fT1)), statOf(col(pr.reps, fT2))
		healed, moved := 0, 0
		for _, r := range pr.reps {
			if r.healed {
				healed++
			}
			if len(r.moved) > 0 {
				moved++
			}
		}
		fmt.Fprintf(w, "| %s | %d | %d/%d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %d/%d |\n", pr.profile, o.hosts, healed, len(pr.reps),
			sec(t1.median), sec(t1.max), sec(t2.median), sec(t2.max), aimString(pr.profile), verdict(pr.profile, t2),
			sec(statOf(col(pr.reps, fDetect)).median), sec(statOf(col(pr.reps, func(r repResult) float64 { return r.running })).median),
			sec(statOf(col(pr.reps, fT2Min)).median), moved, len(pr.reps))
	}

	fmt.Fprintln(w, "\nEvery repetition (s after t0; detect, T1, T2: slowest survivor; assigned: first agent to place the slot elsewhere; starting/running: on the new node):")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| profile | rep | victim | slot | new node | detect | assigned | starting | running | T1 | T2 (DNS part) | T2 | flaps | host % | moved on return | other load |")
	fmt.Fprintln(w, "|---|--:|---|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|---|")
	for _, pr := range runs {
		for _, r := range pr.reps {
			other := "none"
			if len(r.others) > 0 {
				other = fmt.Sprintf("%d processes/labs", len(r.others))
			}
			if r.err != "" {
				other += "; " + r.err
			}
			moved := "none"
			if len(r.moved) > 0 {
				moved = strings.Join(r.moved, ", ")
			}
			fmt.Fprintf(w, "| %s | %d | %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %d | %.0f | %s | %s |\n", r.profile, r.rep, r.victim, r.slot, orDash(r.newNode),
				sec(fDetect(r)), sec(r.assigned), sec(r.starting), sec(r.running), sec(fT1(r)), sec(fT2DNS(r)), sec(fT2(r)), r.flaps(), r.hostBusy, moved, other)
		}
	}
	fmt.Fprintln(w)
	for _, pr := range runs {
		fmt.Fprintf(w, "%s: memory once deployed: %s\n", pr.profile, pr.mem)
		pr.logs.print(w, pr.profile)
		if pr.err != nil {
			fmt.Fprintf(w, "%s: stopped early: %v\n", pr.profile, pr.err)
		}
	}
	for _, pr := range runs {
		if len(pr.reps) == 0 {
			continue
		}
		t2 := statOf(col(pr.reps, fT2))
		fmt.Fprintf(w, "verdict %s: T2 median %s s, max %s s against the aim of %s: %s\n", pr.profile, sec(t2.median), sec(t2.max), aimString(pr.profile), verdict(pr.profile, t2))
	}
}

func aimString(profile string) string {
	if a, ok := aims[profile]; ok {
		return fmt.Sprintf("≤ %.0f s", a.Seconds())
	}
	return "–"
}

func verdict(profile string, t2 stat) string {
	a, ok := aims[profile]
	if !ok || math.IsNaN(t2.max) {
		return "–"
	}
	aim := float64(a.Milliseconds())
	switch {
	case t2.max <= aim:
		return "meets (max)"
	case t2.median <= aim:
		return "median meets, max MISSES"
	}
	return "MISSES"
}

// writeResults appends heal.csv (one row per survivor and repetition) and
// heal-summary.csv (one row per profile).
func writeResults(o *options, started time.Time, runs []profileRun) error {
	stamp := started.UTC().Format(time.RFC3339)
	ctdHosts := o.hosts
	if o.ctdHosts > 0 && o.ctdHosts < o.hosts {
		ctdHosts = o.ctdHosts
	}
	rows := [][]string{{"time", "orch_source", "profile", "n", "containerd_hosts", "rep", "victim", "slot", "dead_addr", "new_node", "new_addr",
		"survivor", "t1_ms", "t2_ms", "t2_dns_ms", "detect_ms", "flaps", "queries", "dns_errors", "http_errors",
		"assigned_ms", "starting_ms", "running_ms", "healed", "host_busy_pct", "moved_on_return", "restore_error", "other_load"}}
	for _, pr := range runs {
		for _, r := range pr.reps {
			for _, s := range r.survs {
				rows = append(rows, []string{stamp, o.source, r.profile, strconv.Itoa(r.n), strconv.Itoa(ctdHosts), strconv.Itoa(r.rep), r.victim,
					strconv.Itoa(r.slot), addrOrDash(r.deadAddr), r.newNode, addrOrDash(r.newAddr), "h" + strconv.Itoa(s.host),
					f1(s.t1), f1(s.t2), f1(s.t2DNS), f1(s.detect), strconv.Itoa(s.flaps), strconv.Itoa(s.queries), strconv.Itoa(s.dnsErrs), strconv.Itoa(s.httpErrs),
					f1(r.assigned), f1(r.starting), f1(r.running), strconv.FormatBool(r.healed), f1(r.hostBusy),
					strings.Join(r.moved, "; "), r.err, strings.Join(r.others, "; ")})
			}
		}
	}
	sum := [][]string{{"time", "orch_source", "profile", "n", "containerd_hosts", "runs", "healed", "t1_median_ms", "t1_max_ms", "t2_median_ms", "t2_max_ms",
		"aim_t2_ms", "verdict", "detect_median_ms", "running_median_ms", "agents_rss_mib", "containerds_rss_mib", "shims_rss_mib"}}
	for _, pr := range runs {
		t1, t2 := statOf(col(pr.reps, fT1)), statOf(col(pr.reps, fT2))
		healed := 0
		for _, r := range pr.reps {
			if r.healed {
				healed++
			}
		}
		sum = append(sum, []string{stamp, o.source, pr.profile, strconv.Itoa(o.hosts), strconv.Itoa(ctdHosts), strconv.Itoa(len(pr.reps)), strconv.Itoa(healed),
			f1(t1.median), f1(t1.max), f1(t2.median), f1(t2.max), strconv.FormatInt(aims[pr.profile].Milliseconds(), 10), verdict(pr.profile, t2),
			f1(statOf(col(pr.reps, fDetect)).median), f1(statOf(col(pr.reps, func(r repResult) float64 { return r.running })).median),
			f1(benchkit.MiB(pr.mem.agentKiB)), f1(benchkit.MiB(pr.mem.ctdKiB)), f1(benchkit.MiB(pr.mem.shimKiB))})
	}
	if err := benchkit.AppendCSVRows(filepath.Join(o.results, "heal.csv"), rows); err != nil {
		return err
	}
	return benchkit.AppendCSVRows(filepath.Join(o.results, "heal-summary.csv"), sum)
}

// f1 prints v with one decimal for the CSV files; empty for no value.
func f1(v float64) string { return benchkit.CSVNum(v, 1) }

// logSummary counts the WARN and ERROR lines of a cluster's agent logs.
type logSummary struct {
	warn, errs int
	suspicions int            // memberlist "Suspect X has failed": probes refuted or not
	byMsg      map[string]int // "LEVEL msg" → count
}

var (
	levelRE   = regexp.MustCompile(`\blevel=(WARN|ERROR)\b`)
	msgRE     = regexp.MustCompile(`\bmsg="((?:[^"\\]|\\.)*)"|\bmsg=(\S+)`)
	suspectRE = regexp.MustCompile(`memberlist: Suspect \S+ has failed`)
	timeRE    = regexp.MustCompile(`^time=(\S+)`)
	numberRE  = regexp.MustCompile(`[0-9]+`)
)

// scanLogs reads the agent logs of the cluster tagged tag, counting lines
// stamped at or after since.
func scanLogs(o *options, tag string, since time.Time) logSummary {
	s := logSummary{byMsg: map[string]int{}}
	files, _ := filepath.Glob(filepath.Join(o.work, "logs", tag+"-h*-agent.log"))
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if m := timeRE.FindStringSubmatch(line); m != nil {
				if t, err := time.Parse(time.RFC3339Nano, m[1]); err == nil && t.Before(since) {
					continue
				}
			}
			if suspectRE.MatchString(line) {
				s.suspicions++
			}
			lv := levelRE.FindStringSubmatch(line)
			if lv == nil {
				continue
			}
			if lv[1] == "WARN" {
				s.warn++
			} else {
				s.errs++
			}
			msg := "?"
			if m := msgRE.FindStringSubmatch(line); m != nil {
				msg = m[1] + m[2]
			}
			// Numbers (addresses, ports, counts) vary; the kind does not.
			msg = numberRE.ReplaceAllString(msg, "N")
			if len(msg) > 110 {
				msg = msg[:110] + "…"
			}
			s.byMsg[lv[1]+" "+msg]++
		}
		fh.Close()
	}
	return s
}

func (s logSummary) print(w io.Writer, profile string) {
	fmt.Fprintf(w, "%s: agent logs: %d WARN, %d ERROR lines, %d memberlist suspicions\n", profile, s.warn, s.errs, s.suspicions)
	type kv struct {
		k string
		v int
	}
	var all []kv
	for k, v := range s.byMsg {
		all = append(all, kv{k, v})
	}
	slices.SortFunc(all, func(a, b kv) int { return cmp.Or(b.v-a.v, strings.Compare(a.k, b.k)) })
	for i, e := range all {
		if i == 10 {
			fmt.Fprintf(w, "  … %d more kinds\n", len(all)-10)
			break
		}
		fmt.Fprintf(w, "  %5d × %s\n", e.v, e.k)
	}
}

package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/orchproject/orch/scripts/bench/internal/benchkit"
)

// soakProgress is how often the soak reports on stderr.
const soakProgress = time.Minute

// soakResult is what an idle soak saw.
type soakResult struct {
	profile  string
	n        int
	duration time.Duration
	// falseFailed and falseLeave count member events about live members,
	// summed over the observing agents (one flap seen by 19 agents is 19).
	falseFailed, falseLeave int
	// flapped lists the members any of those events were about.
	flapped []string
	// suspicions counts memberlist "Suspect X has failed" log lines: a
	// probe went unanswered, but the member refuted it in time.
	suspicions int
	// notAlive counts (agent, member) pairs not alive at the end.
	notAlive int
	idle     idle
	// hostBusyPct is how busy all CPUs were over the soak, in %.
	hostBusyPct float64
}

// runSoak forms one orch cluster, leaves it idle for o.soak and counts
// member events other than joins.
func runSoak(ctx context.Context, o options, stdout, stderr io.Writer) error {
	n := o.soakSize
	env := describeMachine(o)
	fmt.Fprint(stderr, env.String())
	l, down := newLab(ctx, o, stderr)
	defer down()
	if err := l.Up(ctx, n); err != nil {
		return err
	}
	dir := filepath.Join(o.Work, fmt.Sprintf("soak-orch-%s-n%d", o.soakProfile, n))
	start := time.Now()
	c, err := formCluster(ctx, newOrchDriver(o.Orch, benchkit.NoContainerdFlags(o.Orch), o.soakProfile, l, dir, n), l, n, dir, o.stagger, o.formTimeout)
	if err != nil {
		return err
	}
	defer c.stop()
	fmt.Fprintf(stderr, "soak: %d orch agents (%s profile) formed in %s; idle for %s\n", n, o.soakProfile, c.formedAt.Sub(start).Round(time.Millisecond), o.soak)

	u0, err := c.usage()
	if err != nil {
		return err
	}
	h0, herr := benchkit.ReadHostCPU()
	t0 := time.Now()
	end := t0.Add(o.soak)
	for now := t0; now.Before(end); now = time.Now() {
		if benchkit.Sleep(ctx, min(soakProgress, end.Sub(now))) != nil {
			return ctx.Err()
		}
		if err := c.checkRunning(); err != nil {
			return err
		}
		r := soakCount(c, c.formedAt)
		fmt.Fprintf(stderr, "soak: %s of %s: %d failed, %d leave events, %d suspicions\n",
			time.Since(t0).Round(time.Second), o.soak, r.falseFailed, r.falseLeave, r.suspicions)
	}
	u1, err := c.usage()
	if err != nil {
		return err
	}
	r := soakCount(c, c.formedAt)
	r.profile, r.n, r.duration = o.soakProfile, n, time.Since(t0)
	r.idle = idleFrom(u0, u1, r.duration)
	r.hostBusyPct = math.NaN()
	if h1, err := benchkit.ReadHostCPU(); err == nil && herr == nil {
		r.hostBusyPct = h0.BusyPct(h1)
	}
	for k := 1; k <= n; k++ {
		ms, err := c.d.members(ctx, k)
		if err != nil {
			return fmt.Errorf("agent %d at the end: %w", k, err)
		}
		for _, st := range ms {
			if st != "alive" {
				r.notAlive++
			}
		}
		r.notAlive += n - len(ms)
	}
	env.Finish(t0)
	fmt.Fprintln(stdout)
	fmt.Fprint(stdout, env.String())
	fmt.Fprintln(stdout)
	printSoak(stdout, r)
	if err := benchkit.WriteCSV(filepath.Join(o.Results, soakCSV), soakRows(r)); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "results: %s\n", filepath.Join(o.Results, soakCSV))
	return nil
}

// soakCount counts the cluster's non-join member events since since. Every
// member is alive throughout a soak, so every failed or leave event is
// false.
func soakCount(c *cluster, since time.Time) soakResult {
	var r soakResult
	for _, e := range c.rec.events(sourceEvent, since) {
		switch e.action {
		case actionFailed:
			r.falseFailed++
		case actionLeave:
			r.falseLeave++
		default:
			continue
		}
		if !slices.Contains(r.flapped, e.subject) {
			r.flapped = append(r.flapped, e.subject)
		}
	}
	for _, e := range c.rec.events(sourceLog, since) {
		if e.action == actionSuspect {
			r.suspicions++
		}
	}
	slices.Sort(r.flapped)
	return r
}

func printSoak(w io.Writer, r soakResult) {
	fmt.Fprintf(w, "Idle soak: %d orch agents, %s profile, %s. Counts are summed over observing agents.\n", r.n, r.profile, r.duration.Round(time.Second))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "profile\tN\tminutes\tfalse failed\tfalse leave\tsuspicions\tnot alive at end\tRSS MiB\tCPU %\thost %\t")
	fmt.Fprintf(tw, "%s\t%d\t%.1f\t%d\t%d\t%d\t%d\t%.1f\t%.2f\t%s\t\n", r.profile, r.n, r.duration.Minutes(),
		r.falseFailed, r.falseLeave, r.suspicions, r.notAlive, r.idle.rssMeanMiB, r.idle.cpuMeanPct, fmtPct(r.hostBusyPct))
	tw.Flush()
	if len(r.flapped) > 0 {
		fmt.Fprintf(w, "members reported failed or left while alive: %s\n", strings.Join(r.flapped, ", "))
	}
	verdict := "no false failure"
	if r.falseFailed+r.falseLeave > 0 {
		verdict = "FALSE FAILURES"
	}
	fmt.Fprintf(w, "verdict: %s (suspicions are probes refuted in time: near-misses, not failures)\n", verdict)
	fmt.Fprintln(w, "RSS at the end and CPU over the soak are per agent (mean); host % is how busy both CPUs were over the soak.")
}

func soakRows(r soakResult) [][]string {
	return [][]string{
		{"impl", "profile", "n", "duration_s", "false_failed", "false_leave", "flapped", "suspicions", "not_alive_at_end",
			"rss_mib_mean", "rss_mib_max", "cpu_pct_mean", "cpu_pct_max", "host_busy_pct"},
		{"orch", r.profile, strconv.Itoa(r.n), strconv.FormatFloat(r.duration.Seconds(), 'f', 0, 64),
			strconv.Itoa(r.falseFailed), strconv.Itoa(r.falseLeave), strings.Join(r.flapped, " "), strconv.Itoa(r.suspicions),
			strconv.Itoa(r.notAlive), csvFloat(r.idle.rssMeanMiB, true), csvFloat(r.idle.rssMaxMiB, true),
			csvFloat(r.idle.cpuMeanPct, true), csvFloat(r.idle.cpuMaxPct, true), csvFloat(r.hostBusyPct, !math.IsNaN(r.hostBusyPct))},
	}
}

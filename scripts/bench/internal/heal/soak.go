package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/orchproject/orch/scripts/bench/internal/benchkit"
)

// soakResult is what an idle soak saw. Every member stays alive
// throughout, so every member failed or leave event is false.
type soakResult struct {
	n                       int
	duration                time.Duration
	falseFailed, falseLeave int      // summed over observers
	flapped                 []string // members those events were about
	taskEvents              map[string]int
	nodeEvents              map[string]int
	restarts                int // the service's restarts at the end, summed over slots
	endState                string
	agentCPU                float64 // % of a core per agent, mean over the soak
	hostBusy                float64
	mem                     memSample
	logs                    logSummary
	others                  []string
}

// runSoak forms a fast cluster of o.hosts with the service deployed,
// leaves it idle for o.soak, and counts what the agents' streams report.
func runSoak(ctx context.Context, o *options, stdout io.Writer, started time.Time) error {
	others, err := waitIdle(ctx, o.waitIdle, o.prefix)
	if err != nil {
		return err
	}
	tag := fmt.Sprintf("soak-fast-n%d", o.hosts)
	c, err := formCluster(ctx, o, "fast", o.hosts, tag)
	if err != nil {
		return err
	}
	defer c.stop()
	t0 := time.Now()
	logf("soak: idle for %v", o.soak)
	cpu0 := c.agentCPU()
	host0, _ := benchkit.ReadHostCPU()
	end := t0.Add(o.soak)
	var r soakResult
	for now := t0; now.Before(end); now = time.Now() {
		if err := benchkit.Sleep(ctx, min(time.Minute, end.Sub(now))); err != nil {
			return err
		}
		if err := c.checkRunning(); err != nil {
			return err
		}
		r = soakCount(c, t0)
		logf("soak: %s of %s: %d failed, %d leave member events; task events %v", time.Since(t0).Round(time.Second), o.soak, r.falseFailed, r.falseLeave, r.taskEvents)
		for _, s := range otherLoad(o.prefix) {
			if !slices.Contains(others, s) {
				others = append(others, s)
			}
		}
	}
	r = soakCount(c, t0)
	r.n, r.duration, r.others = o.hosts, time.Since(t0), others
	host1, _ := benchkit.ReadHostCPU()
	r.hostBusy = host0.BusyPct(host1)
	cpu1 := c.agentCPU()
	r.agentCPU = (cpu1 - cpu0).Seconds() / r.duration.Seconds() * 100 / float64(len(c.hosts))
	r.mem = c.memory()
	cctx, cancel := context.WithTimeout(ctx, apiTimeout)
	r.endState = "every agent lists every host alive; 3 replicas running on 3 hosts, in every DNS, answering HTTP"
	if err := c.allAlive(cctx); err != nil {
		r.endState = err.Error()
	} else if err := c.deployed(cctx); err != nil {
		r.endState = err.Error()
	}
	if ts, err := c.host(1).client.ServiceTasks(cctx, service); err == nil {
		for _, t := range ts {
			r.restarts += t.Restarts
		}
	}
	cancel()
	r.logs = scanLogs(o, tag, t0)

	header(stdout, o, started)
	fmt.Fprintf(stdout, "\nIdle soak: %d agents, fast profile, %s, service %s deployed. Counts are summed over the observing agents.\n\n", r.n, r.duration.Round(time.Second), service)
	fmt.Fprintln(stdout, "| profile | N | minutes | false failed | false leave | suspicions | task events | node events | restarts | agent CPU % | host % |")
	fmt.Fprintln(stdout, "|---|--:|--:|--:|--:|--:|---|---|--:|--:|--:|")
	fmt.Fprintf(stdout, "| fast | %d | %.1f | %d | %d | %d | %s | %s | %d | %.2f | %.0f |\n", r.n, r.duration.Minutes(), r.falseFailed, r.falseLeave,
		r.logs.suspicions, countString(r.taskEvents), countString(r.nodeEvents), r.restarts, r.agentCPU, r.hostBusy)
	if len(r.flapped) > 0 {
		fmt.Fprintf(stdout, "members reported failed or left while alive: %s\n", strings.Join(r.flapped, ", "))
	}
	fmt.Fprintf(stdout, "at the end: %s\n", r.endState)
	fmt.Fprintf(stdout, "memory: %s\n", r.mem)
	r.logs.print(stdout, "soak")
	if len(r.others) > 0 {
		shown := r.others[:min(len(r.others), 15)]
		fmt.Fprintf(stdout, "other load seen during the soak (sampled every minute):\n  %s\n", strings.Join(shown, "\n  "))
		if len(r.others) > len(shown) {
			fmt.Fprintf(stdout, "  … and %d more\n", len(r.others)-len(shown))
		}
	}
	v := "0 false failures: meets the aim"
	if r.falseFailed+r.falseLeave > 0 {
		v = fmt.Sprintf("%d FALSE FAILURES (aim 0)", r.falseFailed+r.falseLeave)
	}
	fmt.Fprintf(stdout, "verdict soak: %s\n", v)

	ctdHosts := o.hosts
	if o.ctdHosts > 0 && o.ctdHosts < o.hosts {
		ctdHosts = o.ctdHosts
	}
	return benchkit.AppendCSVRows(filepath.Join(o.results, "heal-soak.csv"), [][]string{
		{"time", "orch_source", "profile", "n", "containerd_hosts", "duration_s", "false_failed", "false_leave", "flapped", "suspicions",
			"task_events", "node_events", "restarts", "agent_cpu_pct", "host_busy_pct", "warn_lines", "error_lines", "end_state", "other_load"},
		{started.UTC().Format(time.RFC3339), o.source, "fast", strconv.Itoa(r.n), strconv.Itoa(ctdHosts), strconv.FormatFloat(r.duration.Seconds(), 'f', 0, 64),
			strconv.Itoa(r.falseFailed), strconv.Itoa(r.falseLeave), strings.Join(r.flapped, " "), strconv.Itoa(r.logs.suspicions),
			countString(r.taskEvents), countString(r.nodeEvents), strconv.Itoa(r.restarts), f1(r.agentCPU), f1(r.hostBusy),
			strconv.Itoa(r.logs.warn), strconv.Itoa(r.logs.errs), r.endState, strings.Join(r.others, "; ")},
	})
}

// agentCPU is the CPU time the agents have used so far; an agent that has
// exited counts as none.
func (c *cluster) agentCPU() time.Duration {
	var t time.Duration
	for _, h := range c.hosts {
		d, _ := benchkit.ProcCPU(h.agent.Pid())
		t += d
	}
	return t
}

// soakCount counts the events since t0.
func soakCount(c *cluster, t0 time.Time) soakResult {
	r := soakResult{taskEvents: map[string]int{}, nodeEvents: map[string]int{}}
	for _, e := range c.events.since(t0) {
		switch e.ev.Type {
		case "member":
			switch e.ev.Action {
			case "failed":
				r.falseFailed++
			case "leave":
				r.falseLeave++
			default:
				continue
			}
			if !slices.Contains(r.flapped, e.ev.Subject) {
				r.flapped = append(r.flapped, e.ev.Subject)
			}
		case "task":
			r.taskEvents[e.ev.Action]++
		case "node":
			r.nodeEvents[e.ev.Action]++
		}
	}
	slices.Sort(r.flapped)
	return r
}

func countString(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

package main

import (
	"math"
	"time"

	"github.com/orchproject/orch/scripts/bench/internal/benchkit"
)

// runResult is one run: a cluster formed, one member killed.
type runResult struct {
	impl, profile string
	n, run        int
	formed        time.Duration // from starting agent 1 to all agents listing n alive
	det           detection
	// hostBusyPct is how busy all of the machine's CPUs were, in %, from
	// settling to the end of detection: the agents, the benchmark, and
	// anything else running. NaN if unknown.
	hostBusyPct float64
}

// summary aggregates the runs of one implementation, profile and size.
// Times are in ms; +Inf means some survivor never saw the failure within
// the timeout.
type summary struct {
	impl, profile string
	n             int
	runs          int
	complete      int // runs in which every survivor's stamp arrived in time

	detectMed, detectMax float64 // per run: the last survivor's stamp
	firstMed             float64 // per run: the first survivor's stamp
	pollMed, pollMax     float64 // per run: the last survivor's failed poll
	logMed, logMax       float64 // per run: the last survivor's log line

	falseFailures int
	hostBusyMax   float64 // the busiest run's runResult.hostBusyPct
	idle          idle
	hasIdle       bool
	// unformed, if not empty, says why a run's cluster did not form;
	// the group's later runs were skipped.
	unformed string
}

// summarise groups runs by size, implementation and profile, in the order
// the benchmark runs them, with the idle figures measured for each group
// and the groups whose cluster did not form.
func summarise(runs []runResult, idles map[groupKey]idle, unformed map[groupKey]string, o options) []summary {
	byKey := map[groupKey][]runResult{}
	for _, r := range runs {
		k := groupKey{r.impl, r.profile, r.n}
		byKey[k] = append(byKey[k], r)
	}
	var out []summary
	for _, n := range o.sizes {
		for _, c := range o.configs() {
			k := groupKey{c.impl, c.profile, n}
			if s, ok := summariseGroup(k, byKey[k], idles, unformed); ok {
				out = append(out, s)
			}
		}
	}
	return out
}

// summariseGroup aggregates one group; false if it has no runs and no
// formation failure (the benchmark never got to it).
func summariseGroup(k groupKey, rs []runResult, idles map[groupKey]idle, unformed map[groupKey]string) (summary, bool) {
	s := summary{impl: k.impl, profile: k.profile, n: k.n, runs: len(rs), unformed: unformed[k]}
	if len(rs) == 0 && s.unformed == "" {
		return s, false
	}
	var detect, first, poll, log, busy []float64
	for _, r := range rs {
		d := benchkit.LastMs(r.det.stamp, r.det.survivors)
		if !math.IsInf(d, 1) {
			s.complete++
		}
		detect = append(detect, d)
		first = append(first, benchkit.FirstMs(r.det.stamp))
		poll = append(poll, benchkit.LastMs(r.det.poll, r.det.survivors))
		log = append(log, benchkit.LastMs(r.det.log, r.det.survivors))
		s.falseFailures += r.det.falseFailures
		if !math.IsNaN(r.hostBusyPct) {
			busy = append(busy, r.hostBusyPct)
		}
	}
	s.hostBusyMax = benchkit.Max(busy)
	s.detectMed, s.detectMax = benchkit.Median(detect), benchkit.Max(detect)
	s.firstMed = benchkit.Median(first)
	s.pollMed, s.pollMax = benchkit.Median(poll), benchkit.Max(poll)
	s.logMed, s.logMax = benchkit.Median(log), benchkit.Max(log)
	s.idle, s.hasIdle = idles[k]
	return s, true
}

// groupKey identifies one implementation, profile and size.
type groupKey struct {
	impl, profile string
	n             int
}

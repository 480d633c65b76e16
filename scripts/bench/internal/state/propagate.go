package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"time"

	"github.com/orchproject/orch/scripts/bench/internal/benchkit"
)

// propRun is one write and how long it took to be visible everywhere.
type propRun struct {
	n         int
	kind      string // kindSmall or kindLarge
	run       int
	writer    string
	service   string
	version   string
	specBytes int
	callMs    float64 // the create call, client side
	// Per other agent, from t0 (the create call returned) to its service
	// event; agents missing did not report it within the timeout.
	delays map[string]time.Duration
	others int // agents other than the writer
	// verified counts agents whose GetService showed the version after
	// the measurement.
	verified int
}

// visibleMs is the time until every other agent reported the write;
// +Inf if some never did.
func (r propRun) visibleMs() float64 { return benchkit.LastMs(r.delays, r.others) }

// propPhase is what a propagation phase of one cluster size produced.
type propPhase struct {
	n       int
	profile string // the profile of the cluster measured
	// fellBack says why the first profile was given up for
	// --fallback-profile; empty if it was not.
	fellBack string
	runs     []propRun
	formMs   float64
	lagged   int       // "lagged" markers: an agent dropped events for us
	busy     []string  // other activity noticed at the end of the phase
	logs     []logSpan // the agents' logs of each attempt
}

// runPropagation measures one cluster size with o.profile, or, if that
// cluster does not form, with o.fallbackProfile. Results gathered before
// an error are returned with it.
func runPropagation(ctx context.Context, o options, l *benchkit.Lab, n int, rng *rand.Rand, stderr io.Writer) (propPhase, error) {
	ph := propPhase{n: n, profile: o.profile}
	if err := waitIdle(ctx, o.Prefix, o.waitIdle, o.waitIdlePoll, fmt.Sprintf("propagation N=%d", n), stderr); err != nil {
		return ph, err
	}
	err := propagateCluster(ctx, o, l, n, o.profile, rng, &ph, stderr)
	if fe := (*formError)(nil); errors.As(err, &fe) && o.fallbackProfile != "" && o.fallbackProfile != o.profile && ctx.Err() == nil {
		ph.fellBack = fmt.Sprintf("%s: %v", o.profile, fe)
		fmt.Fprintf(stderr, "propagation N=%d: %s; measuring with the %s profile instead\n", n, ph.fellBack, o.fallbackProfile)
		ph.profile = o.fallbackProfile
		err = propagateCluster(ctx, o, l, n, o.fallbackProfile, rng, &ph, stderr)
	}
	ph.busy = otherActivity(o.Prefix)
	return ph, err
}

// propagateCluster forms a cluster of n agents with profile and makes
// o.runs writes of each spec kind on random agents, into ph.
func propagateCluster(ctx context.Context, o options, l *benchkit.Lab, n int, profile string, rng *rand.Rand, ph *propPhase, stderr io.Writer) error {
	fmt.Fprintf(stderr, "propagation N=%d (%s): lab of %d hosts\n", n, profile, n)
	if err := l.Up(ctx, n); err != nil {
		return err
	}
	dir := filepath.Join(o.Work, fmt.Sprintf("prop-n%d-%s", n, profile))
	c := newCluster(o, profile, l, dir)
	defer c.stop()
	// The logs count up to here: what the teardown causes (syncs with
	// members already killed) is not the cluster's doing.
	defer func() {
		ph.logs = append(ph.logs, logSpan{phase: fmt.Sprintf("propagation N=%d %s", n, profile), dir: dir, until: time.Now()})
	}()
	start := time.Now()
	if err := c.form(ctx, n, o.stagger, o.formTimeout); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("propagation N=%d: %w", n, &formError{err})
	}
	ph.formMs = benchkit.Ms(time.Since(start))
	c.watch(ctx)
	if benchkit.Sleep(ctx, o.settle) != nil {
		return ctx.Err()
	}
	// The warm-up write proves every event stream is live before the
	// first measured write.
	warm := fmt.Sprintf("warmup-n%d", n)
	if _, err := c.agents["h1"].client.CreateService(ctx, specFor(kindSmall, warm)); err != nil {
		return fmt.Errorf("warm-up write: %w", err)
	}
	if !c.rec.waitFor(ctx, time.Now().Add(o.timeout), func() bool { return len(c.rec.seenAny(warm)) == n }) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("warm-up write: only %d of %d agents reported it within %s", len(c.rec.seenAny(warm)), n, o.timeout)
	}
	if benchkit.Sleep(ctx, o.gap) != nil {
		return ctx.Err()
	}
	members := c.members()
	for run := 1; run <= o.runs; run++ {
		for _, kind := range []string{kindSmall, kindLarge} {
			w := members[rng.IntN(len(members))]
			r, err := propagateOnce(ctx, o, c, n, kind, run, w)
			if err != nil {
				return fmt.Errorf("propagation N=%d %s run %d: %w", n, kind, run, err)
			}
			ph.runs = append(ph.runs, r)
			fmt.Fprintf(stderr, "propagation N=%d %s run %d: written on %s (%s), on all %d others by %s ms (first %s ms)%s\n",
				n, kind, run, w.name, r.version, r.others, benchkit.FormatMs(r.visibleMs()), benchkit.FormatMs(benchkit.FirstMs(r.delays)), verifiedNote(r))
			if err := c.checkRunning(); err != nil {
				return err
			}
			if benchkit.Sleep(ctx, o.gap) != nil {
				return ctx.Err()
			}
		}
	}
	ph.lagged = c.rec.lagCount()
	return nil
}

func verifiedNote(r propRun) string {
	if r.verified == r.others+1 {
		return ""
	}
	return fmt.Sprintf("; only %d of %d agents serve the version afterwards", r.verified, r.others+1)
}

// propagateOnce creates one service on w and waits until every other
// agent has reported it.
func propagateOnce(ctx context.Context, o options, c *cluster, n int, kind string, run int, w *agentProc) (propRun, error) {
	name := fmt.Sprintf("%s-n%d-r%02d", kind, n, run)
	raw := specFor(kind, name)
	r := propRun{n: n, kind: kind, run: run, writer: w.name, service: name, others: n - 1}
	cctx, cancel := context.WithTimeout(ctx, apiTimeout)
	before := time.Now()
	info, err := w.client.CreateService(cctx, raw)
	t0 := time.Now()
	cancel()
	if err != nil {
		return r, fmt.Errorf("create %s on %s: %w", name, w.name, err)
	}
	r.callMs = benchkit.Ms(t0.Sub(before))
	r.version, r.specBytes = info.Version, len(info.Spec)
	others := func() map[string]time.Time {
		seen := c.rec.seen(name, info.Version)
		delete(seen, w.name)
		return seen
	}
	c.rec.waitFor(ctx, t0.Add(o.timeout), func() bool { return len(others()) >= n-1 })
	if ctx.Err() != nil {
		return r, ctx.Err()
	}
	r.delays = map[string]time.Duration{}
	for node, at := range others() {
		// Event times come from the agents' clocks, the same machine's
		// CLOCK_REALTIME as t0's wall reading.
		r.delays[node] = at.Sub(t0.Round(0))
	}
	r.verified = verify(ctx, c, name, info.Version)
	return r, nil
}

// verify asks every agent for the service and counts those serving the
// version.
func verify(ctx context.Context, c *cluster, name, version string) int {
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8) // a few concurrent calls: the harness shares 2 cores with the agents
	ok := 0
	for _, a := range c.members() {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			cctx, cancel := context.WithTimeout(ctx, apiTimeout)
			defer cancel()
			s, err := a.client.GetService(cctx, name)
			if err == nil && s.Version == version {
				mu.Lock()
				ok++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return ok
}

// propSummary aggregates the runs of one size and spec kind, in ms.
type propSummary struct {
	n                int
	profile          string
	kind             string
	specBytes        int
	runs, complete   int
	med, max, p90    float64 // per run: the last agent to report
	firstMed         float64 // per run: the first agent to report
	nodeMed, nodeMax float64 // over every (run, agent) delay
	callMed          float64
}

func summariseProp(ph propPhase) []propSummary {
	var out []propSummary
	for _, kind := range []string{kindSmall, kindLarge} {
		s := propSummary{n: ph.n, profile: ph.profile, kind: kind}
		var vis, first, node, call []float64
		for _, r := range ph.runs {
			if r.kind != kind {
				continue
			}
			s.runs++
			s.specBytes = r.specBytes
			v := r.visibleMs()
			if !math.IsInf(v, 1) {
				s.complete++
			}
			vis = append(vis, v)
			first = append(first, benchkit.FirstMs(r.delays))
			call = append(call, r.callMs)
			for _, d := range r.delays {
				node = append(node, benchkit.Ms(d))
			}
		}
		if s.runs == 0 {
			continue
		}
		s.med, s.max, s.p90 = benchkit.Median(vis), benchkit.Max(vis), benchkit.Quantile(vis, 0.9)
		s.firstMed = benchkit.Median(first)
		s.nodeMed, s.nodeMax = benchkit.Median(node), benchkit.Max(node)
		s.callMed = benchkit.Median(call)
		out = append(out, s)
	}
	return out
}

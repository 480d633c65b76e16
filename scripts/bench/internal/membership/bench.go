package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/orchproject/orch/scripts/bench/internal/benchkit"
)

// config is one implementation and profile under test.
type config struct {
	impl, profile string
	// newDriver makes the driver for one cluster of n agents in dir.
	newDriver func(l *benchkit.Lab, dir string, n int) (driver, error)
}

// configs lists what to measure: orch with each profile, then serf.
func (o options) configs() []config {
	var cs []config
	for _, p := range o.profiles {
		cs = append(cs, config{impl: "orch", profile: p, newDriver: func(l *benchkit.Lab, dir string, n int) (driver, error) {
			return newOrchDriver(o.Orch, o.orchFlags, p, l, dir, n), nil
		}})
	}
	if !o.skipSerf {
		cs = append(cs, config{impl: "serf", profile: "lan", newDriver: func(l *benchkit.Lab, dir string, _ int) (driver, error) {
			return newSerfDriver(o.serfBin, l, dir)
		}})
	}
	return cs
}

// runBench runs the detection benchmark and reports it on stdout and in
// CSV files; progress goes to stderr. Results gathered before an error or
// an interrupt are still reported.
func runBench(ctx context.Context, o options, stdout, stderr io.Writer) error {
	o.orchFlags = benchkit.NoContainerdFlags(o.Orch) // before configs: its drivers copy o
	cs := o.configs()
	if len(cs) == 0 {
		return benchkit.UsageError{Err: errors.New("nothing to measure: --profiles is empty and --skip-serf is set")}
	}
	if !o.skipSerf {
		if _, err := exec.LookPath(o.serfBin); err != nil {
			return fmt.Errorf("stock serf agent %q not found (install the serf package, pass --serf PATH, or --skip-serf): %w", o.serfBin, err)
		}
	}
	env := describeMachine(o)
	fmt.Fprint(stderr, env.String())
	l, down := newLab(ctx, o, stderr)
	defer down()

	rng := rand.New(rand.NewPCG(o.seed, 0))
	var runs []runResult
	idles := map[groupKey]idle{}
	unformed := map[groupKey]string{} // configurations whose cluster did not form
	start := time.Now()
	err := func() error {
		for _, n := range o.sizes {
			fmt.Fprintf(stderr, "lab: %d hosts\n", n)
			if err := l.Up(ctx, n); err != nil {
				return err
			}
			for _, c := range cs {
				for run := 1; run <= o.runs; run++ {
					victim := 2 + rng.IntN(n-1) // never agent 1, the founder
					r, id, err := runOnce(ctx, o, l, c, n, run, victim)
					if fe := (*formError)(nil); errors.As(err, &fe) {
						// Another try would most likely fail the same way
						// and cost the whole --form-timeout again.
						k := groupKey{c.impl, c.profile, n}
						unformed[k] = fmt.Sprintf("run %d: %v", run, fe)
						fmt.Fprintf(stderr, "%s/%s N=%d run %d: %v; skipping its remaining runs\n", c.impl, c.profile, n, run, fe)
						break
					}
					if err != nil {
						return fmt.Errorf("%s/%s N=%d run %d: %w", c.impl, c.profile, n, run, err)
					}
					runs = append(runs, r)
					if id != nil {
						idles[groupKey{c.impl, c.profile, n}] = *id
					}
					fmt.Fprintln(stderr, progressLine(r, id))
				}
			}
		}
		return nil
	}()
	env.Finish(start)
	sums := summarise(runs, idles, unformed, o)
	if len(sums) > 0 {
		fmt.Fprintln(stdout)
		fmt.Fprint(stdout, env.String())
		fmt.Fprintln(stdout)
		printTable(stdout, sums, o)
		fmt.Fprintln(stdout)
		printVerdicts(stdout, sums)
		printUnformed(stdout, sums)
		if werr := writeBenchCSV(o.Results, runs, sums); werr != nil {
			err = errors.Join(err, werr)
		} else {
			fmt.Fprintf(stderr, "results: %s, %s\n", filepath.Join(o.Results, runsCSV), filepath.Join(o.Results, summaryCSV))
		}
	}
	return err
}

// newLab returns the lab of o, with permanent neighbour entries (see
// [benchkit.Lab.PinNeighbours]), and a function that tears it down.
func newLab(ctx context.Context, o options, stderr io.Writer) (*benchkit.Lab, func()) {
	l := &benchkit.Lab{Script: o.Lab, Prefix: o.Prefix, Subnet: o.Subnet, PinNeighbours: true}
	return l, func() {
		if err := l.Down(ctx); err != nil {
			fmt.Fprintf(stderr, "membership: warning: %v\n", err)
		}
	}
}

// runOnce forms a fresh cluster, lets it settle, measures idle use if
// this is the first run of its configuration, and kills victim. It also
// records how busy the whole machine was from settling to detection, to
// flag runs disturbed by other work on the host.
func runOnce(ctx context.Context, o options, l *benchkit.Lab, c config, n, run, victim int) (runResult, *idle, error) {
	dir := filepath.Join(o.Work, fmt.Sprintf("%s-%s-n%d-r%d", c.impl, c.profile, n, run))
	d, err := c.newDriver(l, dir, n)
	if err != nil {
		return runResult{}, nil, err
	}
	start := time.Now()
	cl, err := formCluster(ctx, d, l, n, dir, o.stagger, o.formTimeout)
	if err != nil {
		return runResult{}, nil, err
	}
	defer cl.stop()
	r := runResult{impl: c.impl, profile: c.profile, n: n, run: run, formed: cl.formedAt.Sub(start), hostBusyPct: math.NaN()}
	h0, herr := benchkit.ReadHostCPU()
	if benchkit.Sleep(ctx, o.settle) != nil {
		return runResult{}, nil, ctx.Err()
	}
	var id *idle
	if run == 1 {
		v, err := cl.idleOver(ctx, o.idle)
		if err != nil {
			return runResult{}, nil, fmt.Errorf("idle sample: %w", err)
		}
		id = &v
	}
	if r.det, err = cl.detect(ctx, victim, o.poll, o.timeout); err != nil {
		return runResult{}, nil, err
	}
	if h1, err := benchkit.ReadHostCPU(); err == nil && herr == nil {
		r.hostBusyPct = h0.BusyPct(h1)
	}
	return r, id, nil
}

func progressLine(r runResult, id *idle) string {
	s := fmt.Sprintf("%s/%s N=%d run %d: formed in %s, killed %s: all %d survivors by %s (first %s), poll %s, log %s",
		r.impl, r.profile, r.n, r.run, r.formed.Round(time.Millisecond), r.det.victim, r.det.survivors,
		benchkit.FormatMs(benchkit.LastMs(r.det.stamp, r.det.survivors)), benchkit.FormatMs(benchkit.FirstMs(r.det.stamp)),
		benchkit.FormatMs(benchkit.LastMs(r.det.poll, r.det.survivors)), benchkit.FormatMs(benchkit.LastMs(r.det.log, r.det.survivors)))
	if r.det.falseFailures > 0 {
		s += fmt.Sprintf(", %d FALSE FAILURES", r.det.falseFailures)
	}
	if id != nil {
		s += fmt.Sprintf("; idle %.1f MiB, %.2f%% CPU per agent", id.rssMeanMiB, id.cpuMeanPct)
	}
	s += fmt.Sprintf("; host %.0f%% busy", r.hostBusyPct)
	return s
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"time"

	"github.com/orchproject/orch/scripts/bench/internal/benchkit"
)

// results is everything measured, for the report.
type results struct {
	prop  []propPhase
	sync  []syncPhase
	logs  []logSpan
	notes map[string][]logNote // logSpan.phase → WARN/ERROR lines of its agents
	errs  []string             // phases that ended early, and why
}

// runBench runs the phases and reports them on stdout and in CSV files;
// progress goes to stderr. Results gathered before an error or an
// interrupt are still reported.
func runBench(ctx context.Context, o options, stdout, stderr io.Writer) error {
	o.agentFlags = benchkit.NoContainerdFlags(o.Orch)
	env := describeMachine(o)
	fmt.Fprint(stderr, env.String())
	l := &benchkit.Lab{Script: o.Lab, Prefix: o.Prefix, Subnet: o.Subnet, PinNeighbours: true}
	down := func() {
		if err := l.Down(ctx); err != nil {
			fmt.Fprintf(stderr, "state: warning: %v\n", err)
		}
	}
	defer down()

	rng := rand.New(rand.NewPCG(o.seed, 0))
	res := results{notes: map[string][]logNote{}}
	note := func(spans []logSpan) {
		for _, sp := range spans {
			res.logs = append(res.logs, sp)
			res.notes[sp.phase] = scanLogs(sp)
		}
	}
	start := time.Now()
	err := func() error {
		for _, n := range o.sizes {
			ph, err := runPropagation(ctx, o, l, n, rng, stderr)
			note(ph.logs)
			down() // the next phase waits for an idle machine, ours included
			if len(ph.runs) > 0 {
				res.prop = append(res.prop, ph)
			}
			if err != nil {
				if ctx.Err() != nil {
					return err
				}
				// A size that fails (say, a cluster that does not form
				// on a loaded machine) does not cost the other phases.
				res.errs = append(res.errs, "ended early: "+err.Error())
				fmt.Fprintf(stderr, "state: %v\n", err)
			}
		}
		if len(o.services) > 0 {
			phs, logs, err := runFullSync(ctx, o, l, stderr)
			note(logs)
			down()
			if err != nil && ctx.Err() == nil {
				// Once more from scratch: on a shared machine an agent
				// can be killed from outside (another lab's teardown
				// killing a reused PID), or a cluster fail to form.
				res.errs = append(res.errs, fmt.Sprintf("retried the full sync phase after: %v", err))
				fmt.Fprintf(stderr, "state: %v; trying the full sync phase once more\n", err)
				phs, logs, err = runFullSync(ctx, o, l, stderr)
				note(logs)
				down()
			}
			res.sync = phs
			if err != nil {
				if ctx.Err() != nil {
					return err
				}
				res.errs = append(res.errs, "ended early: "+err.Error())
				fmt.Fprintf(stderr, "state: %v\n", err)
			}
		}
		return nil
	}()
	env.Finish(start)
	if len(res.prop) == 0 && len(res.sync) == 0 {
		return errors.Join(err, errors.New("nothing was measured"))
	}
	fmt.Fprintln(stdout)
	fmt.Fprint(stdout, env.String())
	printReport(stdout, res, o)
	if werr := writeCSVs(o.Results, res, o); werr != nil {
		err = errors.Join(err, werr)
	} else {
		fmt.Fprintf(stderr, "results: %s, %s\n", filepath.Join(o.Results, runsCSV), filepath.Join(o.Results, summaryCSV))
	}
	for _, e := range res.errs {
		if err == nil && strings.HasPrefix(e, "ended early") {
			err = errors.New("a phase ended early (see above)")
		}
	}
	return err
}

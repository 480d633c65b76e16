package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/orchproject/orch/scripts/bench/internal/benchkit"
)

const (
	// convergePoll is how often formation checks every agent's member list.
	convergePoll = 250 * time.Millisecond
	// killWait bounds the wait for a SIGKILLed agent to be reaped.
	killWait = 10 * time.Second
)

// formError is a cluster that did not form: it failed to start or did not
// converge in time.
type formError struct{ err error }

func (e *formError) Error() string { return "form the cluster: " + e.err.Error() }
func (e *formError) Unwrap() error { return e.err }

// cluster is one running cluster of n agents in the lab, agent k on host k.
type cluster struct {
	d        driver
	n        int
	procs    map[int]*benchkit.Daemon // fixed once formed
	rec      *recorder
	formedAt time.Time // when every agent first listed n alive members

	stopWatch context.CancelFunc
	watchers  sync.WaitGroup
}

// formCluster starts n agents, agent 1 first, the others stagger apart,
// and waits until every one lists n alive members. It then watches every
// agent's member events until stop. On error it stops what it started.
func formCluster(ctx context.Context, d driver, l *benchkit.Lab, n int, dir string, stagger, timeout time.Duration) (_ *cluster, err error) {
	c := &cluster{d: d, n: n, procs: map[int]*benchkit.Daemon{}, rec: &recorder{}, stopWatch: func() {}}
	defer func() {
		if err != nil {
			c.stop()
		}
	}()
	fctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := c.start(l, 1, dir); err != nil {
		return nil, err
	}
	if err := c.poll(fctx, 100*time.Millisecond, func() error { return d.ready(fctx, 1) }); err != nil {
		return nil, c.formFailed(ctx, fmt.Errorf("wait for agent 1: %w", err))
	}
	for k := 2; k <= n; k++ {
		if benchkit.Sleep(fctx, stagger) != nil {
			return nil, c.formFailed(ctx, fctx.Err())
		}
		if err := c.start(l, k, dir); err != nil {
			return nil, err
		}
	}
	if err := c.poll(fctx, convergePoll, func() error { return c.converged(fctx) }); err != nil {
		return nil, c.formFailed(ctx, fmt.Errorf("wait for %d agents to list each other alive: %w", n, err))
	}
	c.formedAt = time.Now()
	wctx, stopWatch := context.WithCancel(ctx)
	c.stopWatch = stopWatch
	for k := 1; k <= n; k++ {
		c.watchers.Go(func() { d.watch(wctx, k, c.rec) })
	}
	return c, nil
}

// formFailed wraps a formation error in *formError, unless the caller's
// ctx ended (an interrupt is not the cluster's fault).
func (c *cluster) formFailed(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return &formError{err}
}

// start runs agent k in lab host k with its log in dir/hK.log; member
// events in the log go to the recorder. The benchmark runs at nice -10
// (scripts/bench/membership), so that its timestamps (reading an agent's
// log line, an answer to a poll) are taken promptly while the agents keep
// both cores busy; the agents run at the default priority.
func (c *cluster) start(l *benchkit.Lab, k int, dir string) error {
	host := filepath.Join(dir, "h"+strconv.Itoa(k))
	if err := os.MkdirAll(host, 0o700); err != nil {
		return err
	}
	p, err := benchkit.StartDaemon(benchkit.DaemonOptions{
		Name:  "agent " + strconv.Itoa(k),
		Log:   host + ".log",
		NetNS: l.NetNS(k),
		Nice:  -benchkit.HarnessNice(),
		OnLine: func(line string, at time.Time) {
			if action, subject, ok := parseLogLine(line); ok {
				c.rec.add(memberEvent{observer: k, source: sourceLog, action: action, subject: subject, at: at})
			}
		},
	}, c.d.argv(k)...)
	if err != nil {
		return err
	}
	c.procs[k] = p
	return nil
}

// poll calls f every interval until it succeeds, ctx ends, or an agent
// exits on its own (which no waiting cures).
func (c *cluster) poll(ctx context.Context, interval time.Duration, f func() error) error {
	return benchkit.Retry(ctx, interval, func() error {
		if err := c.checkRunning(); err != nil {
			return benchkit.StopRetry{Err: err}
		}
		return f()
	})
}

// checkRunning reports an agent that has exited although nobody killed it.
func (c *cluster) checkRunning() error {
	for k := 1; k <= c.n; k++ {
		if p := c.procs[k]; p != nil && p.Exited() {
			return p.ExitError()
		}
	}
	return nil
}

// converged checks that every agent lists exactly n members, all alive.
func (c *cluster) converged(ctx context.Context) error {
	for k := 1; k <= c.n; k++ {
		ms, err := c.d.members(ctx, k)
		if err != nil {
			return fmt.Errorf("agent %d: %w", k, err)
		}
		alive := 0
		for _, st := range ms {
			if st == "alive" {
				alive++
			}
		}
		if len(ms) != c.n || alive != c.n {
			return fmt.Errorf("agent %d lists %d members, %d alive; want %d alive", k, len(ms), alive, c.n)
		}
	}
	return nil
}

// usage reads every live agent's counters.
func (c *cluster) usage() (map[int]benchkit.Usage, error) {
	out := map[int]benchkit.Usage{}
	for k, p := range c.procs {
		if p.Exited() {
			continue
		}
		u, err := benchkit.ReadUsage(p.Pid())
		if err != nil {
			return nil, fmt.Errorf("agent %d: %w", k, err)
		}
		out[k] = u
	}
	return out, nil
}

// stop kills every agent and stops watching. Safe to call on a partly
// started cluster.
func (c *cluster) stop() {
	c.stopWatch()
	var errs []error
	for _, p := range c.procs {
		if !p.Exited() {
			errs = append(errs, p.Kill(killWait))
		}
	}
	c.watchers.Wait()
	c.d.close()
	if err := errors.Join(errs...); err != nil {
		// scripts/lab down kills anything left in the namespaces.
		fmt.Fprintf(os.Stderr, "membership: warning: %v\n", err)
	}
}

// idle is the agents' resource use over an idle window.
type idle struct {
	rssMeanMiB, rssMaxMiB float64 // VmRSS at the end of the window
	cpuMeanPct, cpuMaxPct float64 // % of one core over the window
}

// idleOver samples every agent's CPU time at the start and the end of
// window, and its RSS at the end.
func (c *cluster) idleOver(ctx context.Context, window time.Duration) (idle, error) {
	u0, err := c.usage()
	if err != nil {
		return idle{}, err
	}
	t0 := time.Now()
	if benchkit.Sleep(ctx, window) != nil {
		return idle{}, ctx.Err()
	}
	u1, err := c.usage()
	if err != nil {
		return idle{}, err
	}
	return idleFrom(u0, u1, time.Since(t0)), nil
}

// idleFrom computes idle figures from two samples taken elapsed apart;
// agents missing from either sample are left out.
func idleFrom(u0, u1 map[int]benchkit.Usage, elapsed time.Duration) idle {
	var r idle
	var n int
	for k, b := range u1 {
		a, ok := u0[k]
		if !ok {
			continue
		}
		n++
		rss := benchkit.MiB(b.RSS)
		cpu := a.CPUPct(b, elapsed)
		r.rssMeanMiB += rss
		r.cpuMeanPct += cpu
		r.rssMaxMiB = max(r.rssMaxMiB, rss)
		r.cpuMaxPct = max(r.cpuMaxPct, cpu)
	}
	if n > 0 {
		r.rssMeanMiB /= float64(n)
		r.cpuMeanPct /= float64(n)
	}
	return r
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/orchproject/orch/scripts/bench/internal/benchkit"
)

const (
	// holdPoll is how often every agent's service count is checked after
	// the bulk creation; each check decodes every service on each agent,
	// so not too often.
	holdPoll = time.Second
	// stateStable is how long state.json must stay unchanged before its
	// size is taken (the store saves 200 ms after a burst of changes).
	stateStable = time.Second
	// leftWait bounds the wait for the cluster to see a joiner leave.
	leftWait = 15 * time.Second
	// drainQuiet is how long no member may log a stale store delta for
	// the cluster to count as at rest.
	drainQuiet = 5 * time.Second
)

// syncRun is one fresh agent joining a cluster that holds the services.
type syncRun struct {
	services int
	run      int
	joiner   string
	// From the joiner's process start (just before exec), in ms:
	apiMs    float64 // its API answered /v1/info
	memberMs float64 // its ListServices answered (it had joined)
	doneMs   float64 // its ListServices first returned every service
	// logMs is when the joiner logged its first store sync that received
	// entries (a sync it started; the ones members start with it are not
	// logged); NaN if none. syncLines are those log lines, for diagnosis.
	logMs     float64
	syncLines []string
	// pollGapMs is the time between the last incomplete poll and the
	// complete one being sent: the resolution of doneMs.
	pollGapMs float64
	got       int     // services the joiner held at the end
	rssMiB    float64 // the joiner's RSS once it held them
}

// fromAPIMs is the time from the joiner's API answering until it held
// every service.
func (r syncRun) fromAPIMs() float64 { return r.doneMs - r.apiMs }

// syncPhase is the cluster holding one service count, and the joins.
type syncPhase struct {
	services   int
	created    int       // services created for this step
	createMs   float64   // creating them through the API
	convergeMs float64   // from the last create returning until every agent held all
	drainMs    float64   // from the last create until stale deltas stopped arriving; +Inf: not within --drain-timeout
	stateBytes int64     // h1's state.json once stable
	rssMiB     []float64 // each member's RSS, after the idle window
	cpuPct     []float64 // each member's CPU over the idle window, % of one core
	runs       []syncRun
	busy       []string
}

// runFullSync forms a cluster of o.syncSize agents and, for each service
// count, fills it up and lets o.syncRuns fresh agents join one after the
// other. It returns the phases measured so far, also on error.
func runFullSync(ctx context.Context, o options, l *benchkit.Lab, stderr io.Writer) (phases []syncPhase, logs []logSpan, err error) {
	if err := waitIdle(ctx, o.Prefix, o.waitIdle, o.waitIdlePoll, "full sync", stderr); err != nil {
		return nil, nil, err
	}
	hosts := o.syncSize + o.syncRuns*len(o.services)
	fmt.Fprintf(stderr, "full sync: lab of %d hosts (%d members, %d joiners)\n", hosts, o.syncSize, hosts-o.syncSize)
	if err := l.Up(ctx, hosts); err != nil {
		return nil, nil, err
	}
	dir := filepath.Join(o.Work, "sync")
	c := newCluster(o, o.syncProfile, l, dir)
	c.logLevel = o.memberLogLevel
	defer c.stop()
	defer func() {
		logs = []logSpan{{phase: "full sync", dir: dir, until: time.Now()}}
		if err != nil {
			// Keep this attempt's logs for a retry's report.
			if kept := dir + "-failed"; os.RemoveAll(kept) == nil && os.Rename(dir, kept) == nil {
				logs[0] = logSpan{phase: "full sync (failed attempt)", dir: kept, until: logs[0].until}
			}
		}
	}()
	if err := c.form(ctx, o.syncSize, o.stagger, o.formTimeout); err != nil {
		return nil, nil, fmt.Errorf("full sync: %w", &formError{err})
	}
	members := c.members()
	created, joiners := 0, 0
	for _, s := range o.services {
		ph := syncPhase{services: s, created: s - created}
		fmt.Fprintf(stderr, "full sync S=%d: creating %d services through %d clients (%s)\n", s, s-created, o.writers, o.bulkAPI)
		start := time.Now()
		if err := createBulk(ctx, o, members, created, s); err != nil {
			return phases, nil, fmt.Errorf("full sync S=%d: %w", s, err)
		}
		ph.createMs = benchkit.Ms(time.Since(start))
		created = s
		start = time.Now()
		if err := waitHold(ctx, c, members, s, o.syncTimeout); err != nil {
			return phases, nil, fmt.Errorf("full sync S=%d: %w", s, err)
		}
		ph.convergeMs = benchkit.Ms(time.Since(start))
		// A burst of writes leaves thousands of deltas in serf's broadcast
		// queues, gossiped for minutes after they stopped mattering; the
		// figures below are for a cluster at rest.
		if c.waitQuiet(ctx, drainQuiet, o.drainTimeout) {
			ph.drainMs = benchkit.Ms(time.Since(start))
		} else {
			ph.drainMs = math.Inf(1)
		}
		if ctx.Err() != nil {
			return phases, nil, ctx.Err()
		}
		if benchkit.Sleep(ctx, o.settle) != nil {
			return phases, nil, ctx.Err()
		}
		var err error
		if ph.stateBytes, err = stableSize(ctx, filepath.Join(members[0].dir, "state.json")); err != nil {
			return phases, nil, fmt.Errorf("full sync S=%d: %w", s, err)
		}
		if ph.rssMiB, ph.cpuPct, err = idleUse(ctx, members, o.idle); err != nil {
			return phases, nil, fmt.Errorf("full sync S=%d: idle sample: %w", s, err)
		}
		fmt.Fprintf(stderr, "full sync S=%d: created in %.1f s (%.0f/s), on all %d agents %.1f s later, stale deltas drained %s s later; state.json %.2f MiB, RSS %.1f MiB, idle CPU %.2f%% (mean)\n",
			s, ph.createMs/1000, float64(ph.created)/(ph.createMs/1000), len(members), ph.convergeMs/1000, fmtS(ph.drainMs), float64(ph.stateBytes)/(1<<20), benchkit.Mean(ph.rssMiB), benchkit.Mean(ph.cpuPct))
		for run := 1; run <= o.syncRuns; run++ {
			joiners++
			r, err := joinOnce(ctx, o, c, s, run, o.syncSize+joiners, fmt.Sprintf("j%d", joiners))
			if err != nil {
				phases = append(phases, ph)
				return phases, nil, fmt.Errorf("full sync S=%d run %d: %w", s, run, err)
			}
			ph.runs = append(ph.runs, r)
			fmt.Fprintf(stderr, "full sync S=%d run %d: %s held all %d services %s ms after its start, %s ms after its API answered (API up at %s ms; logged sync at %s ms); RSS %.1f MiB\n",
				s, run, r.joiner, r.got, benchkit.FormatMs(r.doneMs), benchkit.FormatMs(r.fromAPIMs()), benchkit.FormatMs(r.apiMs), benchkit.FormatMs(r.logMs), r.rssMiB)
			for _, line := range r.syncLines {
				fmt.Fprintf(stderr, "    %s\n", line)
			}
		}
		ph.busy = otherActivity(o.Prefix)
		phases = append(phases, ph)
	}
	return phases, nil, nil
}

// idleUse samples the agents' CPU time over window and their RSS at its
// end: CPU in % of one core, RSS in MiB, one value per agent.
func idleUse(ctx context.Context, as []*agentProc, window time.Duration) (rssMiB, cpuPct []float64, err error) {
	u0 := make([]benchkit.Usage, len(as))
	for i, a := range as {
		if u0[i], err = benchkit.ReadUsage(a.proc.Pid()); err != nil {
			return nil, nil, fmt.Errorf("agent %s: %w", a.name, err)
		}
	}
	t0 := time.Now()
	if benchkit.Sleep(ctx, window) != nil {
		return nil, nil, ctx.Err()
	}
	elapsed := time.Since(t0)
	for i, a := range as {
		u, err := benchkit.ReadUsage(a.proc.Pid())
		if err != nil {
			return nil, nil, fmt.Errorf("agent %s: %w", a.name, err)
		}
		rssMiB = append(rssMiB, benchkit.MiB(u.RSS))
		cpuPct = append(cpuPct, u0[i].CPUPct(u, elapsed))
	}
	return rssMiB, cpuPct, nil
}

// createBulk creates services [from, to) with o.writers concurrent
// clients, service i on agent i mod len(members).
func createBulk(ctx context.Context, o options, members []*agentProc, from, to int) error {
	var next atomic.Int64
	next.Store(int64(from))
	g, gctx := errgroup.WithContext(ctx)
	for range o.writers {
		g.Go(func() error {
			for {
				i := int(next.Add(1) - 1)
				if i >= to {
					return nil
				}
				a := members[i%len(members)]
				raw := bulkSpec(bulkName(i), o.bulkReplicas)
				cctx, cancel := context.WithTimeout(gctx, apiTimeout)
				var err error
				if o.bulkAPI == "create" {
					_, err = a.client.CreateService(cctx, raw)
				} else {
					_, err = a.client.ApplyService(cctx, raw)
				}
				cancel()
				if err != nil {
					return fmt.Errorf("create %s on %s: %w", bulkName(i), a.name, err)
				}
			}
		})
	}
	return g.Wait()
}

// countBulk counts the bulk services an agent serves.
func countBulk(ctx context.Context, a *agentProc) (int, error) {
	cctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	svcs, err := a.client.ListServices(cctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, s := range svcs {
		if strings.HasPrefix(s.Name, "bulk-") {
			n++
		}
	}
	return n, nil
}

// waitHold waits until every member serves s bulk services.
func waitHold(ctx context.Context, c *cluster, members []*agentProc, s int, timeout time.Duration) error {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return c.poll(wctx, holdPoll, func() error {
		for _, a := range members {
			n, err := countBulk(wctx, a)
			if err != nil {
				return fmt.Errorf("%s: %w", a.name, err)
			}
			if n != s {
				return fmt.Errorf("%s holds %d of %d services", a.name, n, s)
			}
		}
		return nil
	})
}

// stableSize returns a file's size once it has not changed for stateStable.
func stableSize(ctx context.Context, path string) (int64, error) {
	deadline := time.Now().Add(time.Minute)
	for {
		fi, err := os.Stat(path)
		if err == nil && time.Since(fi.ModTime()) >= stateStable {
			return fi.Size(), nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = errors.New("still changing")
			}
			return 0, fmt.Errorf("size of %s: %w", path, err)
		}
		if benchkit.Sleep(ctx, 200*time.Millisecond) != nil {
			return 0, ctx.Err()
		}
	}
}

// storeSyncRE matches the joiner's debug line for a store sync it
// started: time=… level=DEBUG msg="store sync" component=gossip peer=h1
// received=1000 sent=0 took=180ms.
var storeSyncRE = regexp.MustCompile(`msg="store sync".*\breceived=(\d+)`)

// joinOnce starts a fresh agent on host k, measures until it serves all
// s services, then makes it leave and removes its data dir.
func joinOnce(ctx context.Context, o options, c *cluster, s, run, k int, name string) (syncRun, error) {
	r := syncRun{services: s, run: run, joiner: name, logMs: math.NaN()}
	var mu sync.Mutex
	var logAt time.Time
	var lines []string
	onLine := func(line string, at time.Time) {
		m := storeSyncRE.FindStringSubmatch(line)
		if m == nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		lines = append(lines, compactLogLine(line))
		if got, _ := strconv.Atoi(m[1]); got > 0 && logAt.IsZero() {
			logAt = at
		}
	}
	var perf *exec.Cmd
	if o.perfJoins > 0 {
		// Started before the joiner, so its first moments are in it.
		// Stamped with CLOCK_REALTIME, so that samples can be cut at the
		// joiner's start and done times printed below.
		perf = exec.Command("perf", "record", "-a", "-g", "-F", "499", "-k", "CLOCK_REALTIME", "-o", filepath.Join(o.Work, name+".perf.data"),
			"--", "sleep", strconv.FormatFloat(o.perfJoins.Seconds(), 'f', 1, 64))
		perf.Stdout, perf.Stderr = io.Discard, io.Discard
		if err := perf.Start(); err != nil {
			return r, fmt.Errorf("--perf-joins: %w", err)
		}
		benchkit.Sleep(ctx, 300*time.Millisecond) // perf's own start-up
	}
	a, err := c.start(k, name, startOptions{join: true, logLevel: o.joinerLogLevel, onLine: onLine})
	if err != nil {
		return r, err
	}
	if perf != nil {
		defer perf.Wait()
		fmt.Fprintf(os.Stderr, "perf: %s started at %s\n", name, a.started.UTC().Format(time.RFC3339Nano))
	}
	defer func() {
		if !a.proc.Exited() {
			if err := c.leave(ctx, a); err != nil {
				fmt.Fprintf(os.Stderr, "state: warning: %v\n", err)
			}
		}
	}()
	jctx, cancel := context.WithTimeout(ctx, o.syncTimeout)
	defer cancel()
	if err := c.poll(jctx, readyPoll, func() error { _, err := a.client.Info(jctx); return err }); err != nil {
		return r, fmt.Errorf("wait for %s's API: %w", name, err)
	}
	r.apiMs = benchkit.Ms(time.Since(a.started))
	var prev time.Time
	for {
		sent := time.Now()
		n, err := countBulk(jctx, a)
		if err == nil && r.memberMs == 0 {
			r.memberMs = benchkit.Ms(sent.Sub(a.started))
		}
		if err == nil && n == s {
			r.got = n
			r.doneMs = benchkit.Ms(sent.Sub(a.started))
			r.pollGapMs = benchkit.Ms(sent.Sub(prev))
			break
		}
		if err := c.checkRunning(); err != nil {
			return r, err
		}
		if jctx.Err() != nil {
			return r, fmt.Errorf("%s holds %d of %d services after %s (last error: %v)", name, n, s, o.syncTimeout, err)
		}
		prev = sent
		if benchkit.Sleep(jctx, o.syncPoll) != nil && ctx.Err() != nil {
			return r, ctx.Err()
		}
	}
	if u, err := benchkit.ReadUsage(a.proc.Pid()); err == nil {
		r.rssMiB = benchkit.MiB(u.RSS)
	}
	// Give the other syncs the joiner started a moment to log, so their
	// lines show how the work was shared.
	benchkit.Sleep(ctx, time.Second)
	mu.Lock()
	if !logAt.IsZero() {
		r.logMs = benchkit.Ms(logAt.Sub(a.started))
	}
	r.syncLines = lines
	mu.Unlock()

	if err := c.leave(ctx, a); err != nil {
		return r, err
	}
	if err := os.RemoveAll(a.dir); err != nil {
		return r, err
	}
	if err := waitGone(ctx, c, name); err != nil {
		return r, err
	}
	if benchkit.Sleep(ctx, o.settle) != nil {
		return r, ctx.Err()
	}
	return r, nil
}

// waitGone waits until no member lists name as alive.
func waitGone(ctx context.Context, c *cluster, name string) error {
	wctx, cancel := context.WithTimeout(ctx, leftWait)
	defer cancel()
	return c.poll(wctx, convergePoll, func() error {
		for _, a := range c.members() {
			ms, err := a.client.Members(wctx)
			if err != nil {
				return err
			}
			for _, m := range ms {
				if m.Name == name && m.Status == "alive" {
					return fmt.Errorf("%s still lists %s alive", a.name, name)
				}
			}
		}
		return nil
	})
}

// compactLogLine drops the time and level of an agent's text log line.
func compactLogLine(line string) string {
	if i := strings.Index(line, "msg="); i >= 0 {
		return line[i:]
	}
	return line
}

// syncSummary aggregates the joins of one service count, in ms.
type syncSummary struct {
	syncPhase
	complete               int
	doneMed, doneMax       float64 // from process start
	fromAPIMed, fromAPIMax float64 // from the API answering
	apiMed, logMed         float64
	joinerRSSMed           float64
}

func summariseSync(ph syncPhase) syncSummary {
	s := syncSummary{syncPhase: ph}
	var done, fromAPI, api, logs, jrss []float64
	for _, r := range ph.runs {
		s.complete++
		done = append(done, r.doneMs)
		fromAPI = append(fromAPI, r.fromAPIMs())
		api = append(api, r.apiMs)
		if !math.IsNaN(r.logMs) {
			logs = append(logs, r.logMs)
		}
		jrss = append(jrss, r.rssMiB)
	}
	s.doneMed, s.doneMax = benchkit.Median(done), benchkit.Max(done)
	s.fromAPIMed, s.fromAPIMax = benchkit.Median(fromAPI), benchkit.Max(fromAPI)
	s.apiMed, s.logMed = benchkit.Median(api), benchkit.Median(logs)
	s.joinerRSSMed = benchkit.Median(jrss)
	return s
}

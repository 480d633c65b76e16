package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/orchproject/orch/agent/api"
	"github.com/orchproject/orch/scripts/bench/internal/benchkit"
)

const (
	// convergePoll is how often formation checks every agent's member list.
	convergePoll = 250 * time.Millisecond
	// readyPoll is how often a starting agent's API is tried.
	readyPoll = 20 * time.Millisecond
	// leaveWait bounds a graceful leave before the agent is killed.
	leaveWait = 15 * time.Second
	// killWait bounds the wait for a SIGKILLed agent to be reaped.
	killWait = 10 * time.Second
	// apiTimeout bounds one API call of the harness. Calls on a node
	// holding 10,000 services take a few hundred ms (every call decodes
	// every spec); this only catches a hung agent.
	apiTimeout = 30 * time.Second
)

// agentProc is one orch agent of the benchmark: name hK (or jK for a
// joiner) on lab host k, its data dir and API socket in dir/NAME.
type agentProc struct {
	k       int
	name    string
	dir     string
	client  *api.Client
	proc    *benchkit.Daemon
	started time.Time // just before the process was started
}

// cluster is the orch agents of one lab. Agents are added by start and
// removed by stopAgent; the map is only touched by the benchmark's main
// goroutine, watchers get their agent by value.
type cluster struct {
	bin, profile string
	extra        []string // more agent flags, see benchkit.NoContainerdFlags
	logLevel     string   // of the agents formed by form; empty: info
	lab          *benchkit.Lab
	dir          string
	token        string // set once the founder answers

	agents map[string]*agentProc
	order  []string // founding order, for stable reports

	rec       *recorder
	lastStale atomic.Int64 // unix ns of the last stale store delta a formed agent logged
	stopWatch context.CancelFunc
	watchers  sync.WaitGroup
}

func newCluster(o options, profile string, l *benchkit.Lab, dir string) *cluster {
	return &cluster{bin: o.Orch, profile: profile, extra: o.agentFlags, lab: l, dir: dir, agents: map[string]*agentProc{}, rec: newRecorder(), stopWatch: func() {}}
}

// formError is a cluster that did not form: an agent failed to start or
// exited, or the agents did not all list each other alive in time.
type formError struct{ err error }

func (e *formError) Error() string { return "form the cluster: " + e.err.Error() }
func (e *formError) Unwrap() error { return e.err }

// startOptions are the per-agent settings of start.
type startOptions struct {
	join     bool   // join the founder (h1) with the token
	logLevel string // empty: the agent's default (info)
	// onLine sees every log line with the time it was read; may be nil.
	onLine func(line string, at time.Time)
}

// start runs agent name on lab host k with a fresh data dir.
func (c *cluster) start(k int, name string, so startOptions) (*agentProc, error) {
	dir := filepath.Join(c.dir, name)
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	sock := filepath.Join(dir, "orch.sock")
	ag := benchkit.Agent{Bin: c.bin, Name: name, Addr: c.lab.Addr(k), DataDir: dir, Socket: sock, Profile: c.profile,
		Extra: slices.Clone(c.extra)}
	if so.logLevel != "" {
		ag.Extra = append(ag.Extra, "--log-level", so.logLevel)
	}
	if so.join {
		ag.Join, ag.Token = c.lab.Addr(1), c.token
	}
	argv := ag.Argv()
	a := &agentProc{k: k, name: name, dir: dir, client: api.NewClient(sock)}
	a.started = time.Now()
	// The benchmark runs at nice -10 (scripts/bench/state), so that its
	// timestamps are taken promptly while the agents keep both cores busy;
	// the agents run at the default priority.
	p, err := benchkit.StartDaemon(benchkit.DaemonOptions{
		Name:   "agent " + name,
		Log:    filepath.Join(c.dir, name+".log"),
		NetNS:  c.lab.NetNS(k),
		Nice:   -benchkit.HarnessNice(),
		OnLine: so.onLine,
	}, argv...)
	if err != nil {
		return nil, err
	}
	a.proc = p
	c.agents[name] = a
	c.order = append(c.order, name)
	return a, nil
}

// form starts agents h1..hN on hosts 1..N (h1 founds, the others join it,
// stagger apart) and waits until every one lists N alive members.
func (c *cluster) form(ctx context.Context, n int, stagger, timeout time.Duration) error {
	fctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	h1, err := c.start(1, "h1", startOptions{logLevel: c.logLevel, onLine: c.watchLine})
	if err != nil {
		return err
	}
	if err := c.poll(fctx, readyPoll, func() error {
		tok, err := h1.client.Token(fctx)
		if err == nil {
			c.token = tok
		}
		return err
	}); err != nil {
		return fmt.Errorf("wait for h1: %w", err)
	}
	for k := 2; k <= n; k++ {
		if benchkit.Sleep(fctx, stagger) != nil {
			return fctx.Err()
		}
		if _, err := c.start(k, "h"+strconv.Itoa(k), startOptions{join: true, logLevel: c.logLevel, onLine: c.watchLine}); err != nil {
			return err
		}
	}
	if err := c.poll(fctx, convergePoll, func() error { return c.converged(fctx, n) }); err != nil {
		return fmt.Errorf("wait for %d agents to list each other alive: %w", n, err)
	}
	return nil
}

// staleDeltaRE matches serf's warning for a user event older than its
// event buffer (512 events): a store delta still circulating after it
// stopped being news.
var staleDeltaRE = regexp.MustCompile(`serf: received old event o\.st `)

// watchLine notes the formed agents' stale-delta warnings.
func (c *cluster) watchLine(line string, at time.Time) {
	if staleDeltaRE.MatchString(line) {
		c.lastStale.Store(at.UnixNano())
	}
}

// waitQuiet waits until no formed agent has logged a stale store delta
// for quiet, at most timeout; it reports whether that happened.
func (c *cluster) waitQuiet(ctx context.Context, quiet, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		if time.Since(time.Unix(0, c.lastStale.Load())) >= quiet {
			return true
		}
		if time.Now().After(deadline) || benchkit.Sleep(ctx, 250*time.Millisecond) != nil {
			return false
		}
	}
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

// checkRunning reports an agent that has exited although nobody stopped it.
func (c *cluster) checkRunning() error {
	for _, a := range c.agents {
		if a.proc.Exited() {
			return a.proc.ExitError()
		}
	}
	return nil
}

// converged checks that every running agent lists n alive members.
func (c *cluster) converged(ctx context.Context, n int) error {
	for _, name := range c.order {
		a := c.agents[name]
		if a == nil {
			continue
		}
		ms, err := a.client.Members(ctx)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		alive := 0
		for _, m := range ms {
			if m.Status == "alive" {
				alive++
			}
		}
		if alive != n {
			return fmt.Errorf("%s lists %d alive members, want %d", name, alive, n)
		}
	}
	return nil
}

// members returns the running agents in founding order.
func (c *cluster) members() []*agentProc {
	var out []*agentProc
	for _, name := range c.order {
		if a := c.agents[name]; a != nil {
			out = append(out, a)
		}
	}
	return out
}

// watch subscribes to every running agent's service events, into c.rec,
// until stop.
func (c *cluster) watch(ctx context.Context) {
	wctx, cancel := context.WithCancel(ctx)
	c.stopWatch = cancel
	for _, a := range c.members() {
		c.watchers.Go(func() { watchServices(wctx, a.name, a.client, c.rec) })
	}
}

// watchServices records one agent's service events until ctx ends.
func watchServices(ctx context.Context, name string, cl *api.Client, rec *recorder) {
	req := api.EventsRequest{Filters: []string{"type=service"}}
	var lastSeq uint64
	for ctx.Err() == nil {
		// The stream ends when the agent goes away or drops us:
		// reconnect and resume after the last event until ctx ends.
		_ = cl.Events(ctx, req, func(ev api.Event) error {
			lastSeq = ev.Seq
			if ev.Type != "service" {
				rec.lagged(name) // the stream's "lagged" marker
				return nil
			}
			rec.add(serviceEvent{node: name, action: ev.Action, subject: ev.Subject, version: ev.Attributes["version"], at: ev.Time})
			return nil
		})
		if benchkit.Sleep(ctx, 200*time.Millisecond) != nil {
			return
		}
		if lastSeq > 0 {
			req = api.EventsRequest{Filters: req.Filters, After: lastSeq}
		}
	}
}

// leave makes agent a leave the cluster gracefully and waits until it has
// exited (killing it after leaveWait), then forgets it.
func (c *cluster) leave(ctx context.Context, a *agentProc) error {
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), leaveWait)
	defer cancel()
	err := a.client.Leave(lctx)
	select {
	case <-a.proc.Done():
	case <-lctx.Done():
		err = errors.Join(err, fmt.Errorf("agent %s still running %v after leave", a.name, leaveWait), a.proc.Kill(killWait))
	}
	delete(c.agents, a.name)
	return err
}

// stop kills every agent and stops watching. Safe to call on a partly
// started cluster.
func (c *cluster) stop() {
	c.stopWatch()
	var errs []error
	for _, a := range c.agents {
		if !a.proc.Exited() {
			errs = append(errs, a.proc.Kill(killWait))
		}
	}
	c.watchers.Wait()
	c.agents = map[string]*agentProc{}
	if err := errors.Join(errs...); err != nil {
		// scripts/lab down kills anything left in the namespaces.
		fmt.Fprintf(os.Stderr, "state: warning: %v\n", err)
	}
}

// rss returns the resident set sizes of the given agents, in MiB.
func rss(as []*agentProc) ([]float64, error) {
	var out []float64
	for _, a := range as {
		u, err := benchkit.ReadUsage(a.proc.Pid())
		if err != nil {
			return nil, fmt.Errorf("agent %s: %w", a.name, err)
		}
		out = append(out, benchkit.MiB(u.RSS))
	}
	return out, nil
}

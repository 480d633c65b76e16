package main

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/orchproject/orch/scripts/bench/internal/benchkit"
)

// survivorResult is what one surviving host saw in one repetition. Times
// are ms after t0, NaN when the thing did not happen before the deadline.
type survivorResult struct {
	host int
	// t1: the first answer of the host's DNS without the dead replica's
	// address, after which no answer had it again.
	t1 float64
	// t2: when the host's DNS answered 3 addresses, none the dead one, and
	// a GET to each of them from the host had returned 200; t2DNS is when
	// that DNS answer arrived.
	t2, t2DNS float64
	// detect: the member-failed event about the victim on this host's
	// stream (the agent's own time stamp).
	detect float64
	// flaps counts answers that had the dead address again after one
	// without it.
	flaps                      int
	queries, dnsErrs, httpErrs int
	lastErr                    string
}

// repResult is one repetition: kill a host running a replica, watch every
// survivor heal.
type repResult struct {
	profile  string
	n, rep   int
	victim   string
	slot     int
	deadAddr netip.Addr
	newNode  string
	newAddr  netip.Addr
	survs    []survivorResult
	// Slot events after t0, ms (NaN if not seen): placed on the new node
	// (earliest "assigned" on any stream), its containers starting and
	// running (on the new node's stream).
	assigned, starting, running float64
	hostBusy                    float64 // % of both CPUs from t0 to the last survivor's t2
	others                      []string
	killed                      bool   // the victim was killed: the figures count
	healed                      bool   // every survivor reached t2
	err                         string // the cluster could not be restored afterwards
	// moved lists slots that changed node when the victim came back
	// ("web.0 h2→h3"): placement is sticky, so this should stay empty.
	moved []string
}

// max over survivors of a field; NaN if any is NaN.
func (r repResult) max(f func(survivorResult) float64) float64 {
	m := math.Inf(-1)
	for _, s := range r.survs {
		v := f(s)
		if math.IsNaN(v) {
			return math.NaN()
		}
		m = max(m, v)
	}
	if len(r.survs) == 0 {
		return math.NaN()
	}
	return m
}

// min over survivors of a field, ignoring NaN.
func (r repResult) min(f func(survivorResult) float64) float64 {
	m := math.NaN()
	for _, s := range r.survs {
		if v := f(s); !math.IsNaN(v) && (math.IsNaN(m) || v < m) {
			m = v
		}
	}
	return m
}

func (r repResult) flaps() int {
	n := 0
	for _, s := range r.survs {
		n += s.flaps
	}
	return n
}

// answer is one DNS answer a survivor's agent gave.
type answer struct {
	at    time.Time
	addrs []netip.Addr
}

// runProfile forms a cluster with profile and runs o.runs repetitions,
// restoring the victim in place between them. A cluster that cannot be
// restored is rebuilt (at most twice).
func runProfile(ctx context.Context, o *options, profile string, rng *rand.Rand) ([]repResult, memSample, error) {
	tag := fmt.Sprintf("%s-n%d", profile, o.hosts)
	var results []repResult
	var mem memSample
	rebuilds := 0
	var c *cluster
	defer func() {
		if c != nil {
			c.stop()
		}
	}()
	for len(results) < o.runs {
		i := len(results) + 1
		if c == nil {
			others, err := waitIdle(ctx, o.waitIdle, o.prefix)
			if err != nil {
				return results, mem, err
			}
			if len(others) > 0 {
				logf("forming the cluster although other load runs:\n  %s", strings.Join(others, "\n  "))
			}
			if c, err = formCluster(ctx, o, profile, o.hosts, tag); err != nil {
				c = nil
				return results, mem, err
			}
			if mem.agents == 0 {
				mem = c.mem
			}
		}
		r, err := c.rep(ctx, i, rng)
		if r.killed {
			if err != nil {
				r.err = err.Error()
			}
			results = append(results, r)
		}
		if ctx.Err() != nil {
			return results, mem, ctx.Err()
		}
		if err != nil {
			logf("%s rep %d: %v", tag, i, err)
			if rebuilds == 2 {
				return results, mem, fmt.Errorf("%s: third failure of the cluster: %w", tag, err)
			}
			rebuilds++
			logf("%s: rebuilding the cluster", tag)
			c.stop()
			c = nil
		}
	}
	return results, mem, nil
}

// rep runs one repetition. The returned error means the cluster could not
// be restored afterwards; a repetition that did not heal in time is a
// result, not an error.
func (c *cluster) rep(ctx context.Context, i int, rng *rand.Rand) (repResult, error) {
	o := c.o
	r := repResult{profile: c.profile, n: len(c.hosts), rep: i, assigned: math.NaN(), starting: math.NaN(), running: math.NaN(), hostBusy: math.NaN()}
	others, err := waitIdle(ctx, o.waitIdle, o.prefix)
	if err != nil {
		return r, err
	}
	r.others = others
	if len(others) > 0 {
		logf("%s rep %d runs although other load runs:\n  %s", c.tag, i, strings.Join(others, "\n  "))
	}
	if err := c.poll(ctx, o.settleTimeout, 250*time.Millisecond, c.settled(c.host(1))); err != nil {
		return r, fmt.Errorf("not settled before the repetition: %w", err)
	}
	cctx, cancel := context.WithTimeout(ctx, apiTimeout)
	byNode, ts, err := c.placed(cctx)
	cancel()
	if err != nil {
		return r, err
	}
	var cands []*host
	for _, h := range c.hosts[1:] {
		if _, ok := byNode[h.name]; ok && h.runsCtd {
			cands = append(cands, h)
		}
	}
	if len(cands) == 0 {
		return r, fmt.Errorf("no replica on a host other than h1: %v", byNode)
	}
	victim := cands[rng.IntN(len(cands))]
	r.victim, r.deadAddr = victim.name, byNode[victim.name]
	for _, t := range ts {
		if t.Node == victim.name {
			r.slot = t.Slot
		}
	}
	var survivors []*host
	for _, h := range c.hosts {
		if h != victim {
			survivors = append(survivors, h)
		}
	}
	// Every survivor announces the victim's replica right now.
	for _, h := range survivors {
		got, err := h.dns.query(time.Second)
		if err != nil || !slices.Contains(got, r.deadAddr) {
			return r, fmt.Errorf("before t0, DNS on %s answers %v (%v), without %s", h.name, got, err, r.deadAddr)
		}
	}
	pre, err := victimProcs(victim)
	if err != nil {
		return r, err
	}
	subject := fmt.Sprintf("%s.%d", service, r.slot)
	logf("%s rep %d/%d: killing %s (%d processes; replica %s at %s)", c.tag, i, o.runs, victim.name, len(pre), subject, r.deadAddr)

	cpu0, _ := benchkit.ReadHostCPU()
	t0 := time.Now()
	benchkit.SigKill(pre)
	r.killed = true
	pollCtx, stopPolls := context.WithCancel(ctx)
	defer stopPolls()
	results := make([]survivorResult, len(survivors))
	answers := make([][]answer, len(survivors))
	healed := make(chan int, len(survivors))
	var wg sync.WaitGroup
	for j, h := range survivors {
		results[j] = survivorResult{host: h.k, t1: math.NaN(), t2: math.NaN(), t2DNS: math.NaN(), detect: math.NaN()}
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[j] = c.pollSurvivor(pollCtx, h, r.deadAddr, t0, &results[j], healed)
		}()
	}
	if err := c.lab.Isolate(ctx, victim.k); err != nil {
		stopPolls()
		wg.Wait()
		return r, err
	}
	if err := c.killHost(victim, pre); err != nil {
		stopPolls()
		wg.Wait()
		return r, err
	}
	deadline := time.NewTimer(o.healTimeout - time.Since(t0))
	got := 0
wait:
	for got < len(survivors) {
		select {
		case <-healed:
			got++
		case <-deadline.C:
			break wait
		case <-ctx.Done():
			break wait
		}
	}
	deadline.Stop()
	r.healed = got == len(survivors)
	cpu1, _ := benchkit.ReadHostCPU()
	r.hostBusy = cpu0.BusyPct(cpu1)
	// A little longer, to see the dead address come back if it does.
	benchkit.Sleep(ctx, o.tail)
	stopPolls()
	wg.Wait()
	if ctx.Err() != nil {
		return r, ctx.Err()
	}

	for j := range survivors {
		results[j].t1, results[j].flaps = t1Of(answers[j], r.deadAddr, t0)
	}
	// Events: detection on each survivor, and the slot's move.
	cctx, cancel = context.WithTimeout(ctx, apiTimeout)
	now, _ := c.host(1).client.ServiceTasks(cctx, service)
	cancel()
	for _, t := range now {
		if t.Slot == r.slot && t.Node != victim.name {
			r.newNode = t.Node
			r.newAddr, _ = netip.ParseAddr(t.Addr)
		}
	}
	for _, e := range c.events.since(t0) {
		ev := e.ev
		switch {
		case ev.Type == "member" && ev.Action == "failed" && ev.Subject == victim.name:
			for j := range results {
				if results[j].host == e.host && math.IsNaN(results[j].detect) {
					results[j].detect = msSince(t0, ev.Time)
				}
			}
		case ev.Type == "task" && ev.Subject == subject && ev.Action == "assigned" && ev.Attributes["node"] != victim.name:
			if math.IsNaN(r.assigned) || msSince(t0, ev.Time) < r.assigned {
				r.assigned = msSince(t0, ev.Time)
			}
		case ev.Type == "task" && ev.Subject == subject && ev.Action == "starting" && r.newNode != "" && ev.Node == r.newNode:
			if math.IsNaN(r.starting) {
				r.starting = msSince(t0, ev.Time)
			}
		case ev.Type == "task" && ev.Subject == subject && ev.Action == "running" && r.newNode != "" && ev.Node == r.newNode:
			if math.IsNaN(r.running) {
				r.running = msSince(t0, ev.Time)
			}
		}
	}
	r.survs = results
	logf("%s rep %d/%d: %s", c.tag, i, o.runs, r.summary())

	// Restore the victim for the next repetition. Its return should move
	// nothing (placement is sticky); slots that moved anyway are noted.
	before := map[int]string{}
	for _, t := range now {
		before[t.Slot] = t.Node
	}
	rerr := c.restore(ctx, victim)
	cctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), apiTimeout)
	after, _ := c.host(1).client.ServiceTasks(cctx, service)
	cancel()
	for _, t := range after {
		if b, ok := before[t.Slot]; ok && b != t.Node {
			r.moved = append(r.moved, fmt.Sprintf("%s.%d %s→%s", service, t.Slot, b, t.Node))
		}
	}
	if len(r.moved) > 0 {
		logf("%s rep %d/%d: %s's return moved slots: %s", c.tag, i, o.runs, victim.name, strings.Join(r.moved, ", "))
	}
	if rerr != nil {
		return r, fmt.Errorf("restore %s: %w", victim.name, rerr)
	}
	logf("%s rep %d/%d: %s back, cluster settled", c.tag, i, o.runs, victim.name)
	return r, benchkit.Sleep(ctx, o.settle)
}

// pollSurvivor asks h's DNS every o.poll until ctx ends, and records in
// s when its answers first satisfy T2 (checking HTTP only once the DNS
// part holds); it sends h.k on healed then. It returns every answer.
func (c *cluster) pollSurvivor(ctx context.Context, h *host, dead netip.Addr, t0 time.Time, s *survivorResult, healed chan<- int) []answer {
	var out []answer
	tick := time.NewTicker(c.o.poll)
	defer tick.Stop()
	done := false
	for {
		addrs, err := h.dns.query(c.o.dnsTimeout)
		at := time.Now()
		s.queries++
		if err != nil {
			s.dnsErrs++
			s.lastErr = "dns: " + err.Error()
		} else {
			out = append(out, answer{at: at, addrs: addrs})
			if !done && len(addrs) == replicas && !slices.Contains(addrs, dead) {
				ok := true
				for _, a := range addrs {
					if err := httpGet(ctx, h.netns, a, port, c.o.httpTimeout); err != nil {
						ok = false
						s.httpErrs++
						s.lastErr = "http: " + err.Error()
						break
					}
				}
				if ok {
					s.t2, s.t2DNS = msSince(t0, time.Now()), msSince(t0, at)
					done = true
					healed <- h.k
				}
			}
		}
		select {
		case <-ctx.Done():
			return out
		case <-tick.C:
		}
	}
}

// t1Of returns T1 of a survivor's answers (ms after t0, NaN if every
// answer had dead) and how many times dead came back after an answer
// without it.
func t1Of(answers []answer, dead netip.Addr, t0 time.Time) (t1 float64, flaps int) {
	lastWith := -1
	for k, a := range answers {
		if slices.Contains(a.addrs, dead) {
			if k > 0 && !slices.Contains(answers[k-1].addrs, dead) {
				flaps++
			}
			lastWith = k
		}
	}
	if lastWith+1 < len(answers) {
		return msSince(t0, answers[lastWith+1].at), flaps
	}
	return math.NaN(), flaps
}

func msSince(t0, t time.Time) float64 { return float64(t.Sub(t0).Microseconds()) / 1000 }

func (r repResult) summary() string {
	t1 := func(s survivorResult) float64 { return s.t1 }
	t2 := func(s survivorResult) float64 { return s.t2 }
	det := func(s survivorResult) float64 { return s.detect }
	var b strings.Builder
	fmt.Fprintf(&b, "%s.%d %s → %s %s; T1 max %s, T2 max %s (first %s); detect max %s, assigned %s, running %s",
		service, r.slot, r.deadAddr, orDash(r.newNode), addrOrDash(r.newAddr), fmtMS(r.max(t1)), fmtMS(r.max(t2)), fmtMS(r.min(t2)),
		fmtMS(r.max(det)), fmtMS(r.assigned), fmtMS(r.running))
	if f := r.flaps(); f > 0 {
		fmt.Fprintf(&b, "; %d flaps", f)
	}
	for _, s := range r.survs {
		if math.IsNaN(s.t2) {
			fmt.Fprintf(&b, "; h%d not healed (%d queries, %d DNS errors, %d HTTP errors, last %s)", s.host, s.queries, s.dnsErrs, s.httpErrs, s.lastErr)
		}
	}
	return b.String()
}

func orDash(s string) string {
	if s == "" {
		return "–"
	}
	return s
}

func addrOrDash(a netip.Addr) string {
	if !a.IsValid() {
		return "–"
	}
	return a.String()
}

func fmtMS(v float64) string {
	if math.IsNaN(v) {
		return "–"
	}
	return fmt.Sprintf("%.0f ms", v)
}

// otherLoad lists what else loads the machine: other benchmarks (command
// lines naming scripts/bench/), test binaries, Go builds, and network
// namespaces other than this run's (prefix) with processes in them (tests
// build labs and run agents in them). Empty namespaces left by crashed
// runs cost nothing and are not listed.
func otherLoad(prefix string) []string {
	return benchkit.OtherLoad(benchkit.LoadFilter{
		Own:      []string{"scripts/bench/heal", "internal/heal", "orch-bench-heal"},
		Tests:    true,
		GoBuilds: true,
		Netns:    benchkit.NetnsBusy,
		Prefix:   prefix,
	})
}

// waitIdle waits, up to limit, until no other benchmark or test runs (see
// otherLoad), and returns what still runs.
func waitIdle(ctx context.Context, limit time.Duration, prefix string) ([]string, error) {
	_, others, err := benchkit.WaitIdle(ctx, limit, 5*time.Second, func() []string { return otherLoad(prefix) }, func(others []string) {
		logf("other load is running, waiting up to %v:\n  %s", limit, strings.Join(others, "\n  "))
	})
	return others, err
}

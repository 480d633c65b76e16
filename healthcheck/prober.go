package healthcheck

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"net/url"
	"sync"
	"time"
)

// prober is one incarnation of a target: Set and Reset replace it rather
// than mutate it, so a probe in flight for the old incarnation can never
// touch the new one's status.
type prober struct {
	// target is as given to Set (Command copied); check is its Check with
	// defaults applied. Both are immutable.
	target Target
	check  Check
	// start is the origin of the start period: Target.Started, or when the
	// monitor first saw the target, or the last Reset.
	start time.Time
	// hostport and url are precomputed for tcp and http probes.
	hostport string
	url      string
	// firstDelay is the wait before the first probe, jitter included.
	firstDelay time.Duration

	ctx    context.Context
	cancel context.CancelFunc

	// seen is the Set pass that last listed the target. Guarded by
	// Monitor.opMu.
	seen uint64

	// emitMu is held while a result is applied and its transition
	// emitted. It orders a target's transitions, and lets stop wait out
	// a callback in progress so none follows Set's return.
	emitMu sync.Mutex
	// stopped is set by stop; a stopped prober applies nothing. Guarded
	// by emitMu.
	stopped bool

	// status is guarded by Monitor.mu, and written only with emitMu held
	// too.
	status Status
}

// newProber returns a starting prober for t (already validated) whose
// start period counts from start.
func newProber(t Target, start, now time.Time) *prober {
	c := t.Check.withDefaults()
	p := &prober{
		target:     t,
		check:      c,
		start:      start,
		firstDelay: c.InitialDelay + rand.N(c.StartInterval/jitterFraction+1),
		status:     Status{State: StateStarting, Since: now},
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	if c.Kind == KindHTTP || c.Kind == KindTCP {
		p.hostport = netip.AddrPortFrom(t.Addr, uint16(c.Port)).String()
	}
	if c.Kind == KindHTTP {
		// url.URL escapes an IPv6 zone ("%" → "%25"); Validate checked
		// that the path parses.
		p.url = (&url.URL{Scheme: "http", Host: p.hostport}).String() + c.Path
	}
	return p
}

// same reports whether t is the target p probes: same address and check,
// and not restarted since (a Started no later than p's start).
func (p *prober) same(t Target) bool {
	return t.Addr == p.target.Addr && t.Check.equal(p.target.Check) && !t.Started.After(p.start)
}

// run probes p until it is stopped: the first probe after firstDelay, each
// next one an interval (the start interval while starting) after the
// previous finished (Docker's schedule: a slow probe delays the next
// instead of overlapping it).
func (m *Monitor) run(p *prober) {
	timer := time.NewTimer(p.firstDelay)
	defer timer.Stop()
	for {
		select {
		case <-p.ctx.Done():
			return
		case <-timer.C:
		}
		r := m.probe(p.ctx, p)
		if p.ctx.Err() != nil {
			return // stopped mid-probe: the result is about nothing
		}
		if m.cfg.OnProbe != nil {
			m.cfg.OnProbe(r)
		}
		if !r.OK {
			m.log.Debug("health probe failed", "target", r.ID, "kind", r.Kind,
				"timed_out", r.TimedOut, "output", r.Output)
		}
		m.apply(p, r)
		timer.Reset(p.nextInterval(time.Now()))
	}
}

// nextInterval is the wait before the next probe: StartInterval while the
// target is still starting within its start period, else Interval.
func (p *prober) nextInterval(now time.Time) time.Duration {
	p.emitMu.Lock()
	starting := p.status.State == StateStarting
	p.emitMu.Unlock()
	if starting && now.Before(p.start.Add(p.check.StartPeriod)) {
		return p.check.StartInterval
	}
	return p.check.Interval
}

// apply folds r into p's status and emits the transition, if any.
func (m *Monitor) apply(p *prober, r ProbeResult) {
	p.emitMu.Lock()
	defer p.emitMu.Unlock()
	if p.stopped {
		return
	}
	m.mu.Lock()
	from := p.status.State
	p.status = step(p.status, p.check, p.start, r)
	st := p.status
	m.mu.Unlock()
	if st.State != from {
		m.emit(Transition{ID: p.target.ID, From: from, To: st.State, Status: st, At: st.Since})
	}
}

package healthcheck

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"
)

// Design note: locks and promises.
//
// Each target incarnation is a *prober with its own goroutine; Set and
// Reset replace probers instead of mutating them, so a probe in flight for
// an old incarnation cannot touch the new one. Three locks, always taken
// in this order:
//
//   - Monitor.opMu serialises Set, Reset and Close. It is held while they
//     emit restart transitions, which is why callbacks must not call them.
//   - prober.emitMu is held while a probe result is applied and its
//     transition emitted (OnTransition runs under it). Taking it is how
//     stop waits out a callback in progress: after stop, a prober emits
//     nothing, which gives "no transition after Set returns" for removed
//     targets without waiting for probes (an Exec slow to honour
//     cancellation would otherwise stall the reconcile loop). A
//     replacement prober's emitMu is taken before its goroutine starts and
//     released after the restart transition, so a target's transitions
//     stay in order across a restart.
//   - Monitor.mu guards the target map and the statuses, briefly; it is
//     never held across I/O, a callback or a wait. (startLocked takes a
//     fresh prober's emitMu under it, which cannot contend.)

// ErrClosed is returned by [Monitor.Set] after [Monitor.Close].
var ErrClosed = errors.New("health monitor closed")

// Config configures a [Monitor]. Every field is optional.
type Config struct {
	// Exec runs argv inside target id and returns its exit code and
	// combined output; err reports a failure to run it at all. It must
	// return promptly once ctx is done (ctx carries the probe's timeout,
	// and is cancelled when the target is stopped): the monitor waits for
	// it, so probes never overlap and Close leaks nothing. The output may
	// be large; the monitor keeps MaxOutput bytes. Nil means exec checks
	// are rejected by [Monitor.Set].
	Exec func(ctx context.Context, id string, argv []string) (exitCode int, output []byte, err error)
	// OnTransition is called on every state change of a target, in order
	// per target and never concurrently for one target. It is called from
	// the target's probe goroutine, or from Set or Reset for a restart.
	// It must not block long and must not call Set, Reset or Close: Set
	// waits for a callback in progress of a target it removes, so the
	// callback must not wait for anything Set's caller holds either (hand
	// the transition to a buffered channel or an event bus and return).
	// Nil means none; [Monitor.Changed] and [Monitor.Statuses] still tell.
	OnTransition func(Transition)
	// OnProbe is called with every probe's result, from the target's probe
	// goroutine and without locks held, for metrics. It must not block
	// long: the next probe of the target waits for it. A result may still
	// arrive shortly after Set removed the target. Nil means none.
	OnProbe func(ProbeResult)
	// Logger receives transitions (Info) and failed probes (Debug).
	// Nil means discard.
	Logger *slog.Logger
	// Now returns the current time for timestamps and start periods. Nil
	// means time.Now. Probe schedules and timeouts always use real timers.
	Now func() time.Time
}

// Monitor probes a set of targets. Create it with [New]; it probes nothing
// until [Monitor.Set].
type Monitor struct {
	cfg    Config
	log    *slog.Logger
	now    func() time.Time
	client *http.Client
	// changed wakes the agent's reconcile loop after transitions. Capacity
	// 1: a wake-up, not a payload; one pending wake-up is enough.
	changed chan struct{}

	// opMu serialises Set, Reset and Close, so a target's restart
	// transition is emitted before any other operation touches it.
	opMu sync.Mutex
	// pass numbers Set calls, to mark the targets a call saw without
	// allocating. Guarded by opMu.
	pass uint64

	// mu guards targets, closed and every prober's status. It is never
	// held across a probe, a callback or a wait.
	mu      sync.Mutex
	targets map[string]*prober
	closed  bool

	// wg counts the probe goroutines.
	wg sync.WaitGroup
}

// New returns a monitor for cfg. It starts nothing.
func New(cfg Config) (*Monitor, error) {
	m := &Monitor{
		cfg:     cfg,
		log:     cfg.Logger,
		now:     cfg.Now,
		client:  newHTTPClient(),
		changed: make(chan struct{}, 1),
		targets: map[string]*prober{},
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	m.log = m.log.With("component", "healthcheck")
	if m.now == nil {
		m.now = time.Now
	}
	return m, nil
}

// restart is a target whose prober Set or Reset replaced.
type restart struct{ old, new *prober }

// Set makes the monitored targets exactly targets: it starts probing new
// ones, stops removed ones, and restarts (back to starting, with a new
// schedule) those whose Check or Addr changed, or whose Started is later
// than the start the monitor knows (the replica restarted). A target
// equal to what the monitor has is left alone, so calling Set on every
// reconcile pass is cheap and harmless.
//
// A restart of a target that was not starting emits a transition to
// starting before Set returns; new targets start as starting without a
// transition, and removed ones vanish without one. Once Set returns, a
// removed target emits no transition.
//
// An invalid target, or a second target with the same ID, is skipped (an
// invalid target already present is removed) and reported in the joined
// error; the others are applied. After Close, Set returns ErrClosed.
func (m *Monitor) Set(targets []Target) error {
	m.opMu.Lock()
	defer m.opMu.Unlock()

	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return ErrClosed
	}
	m.pass++
	var (
		errs      []error
		stopped   []*prober
		restarted []restart
		now       time.Time
	)
	for _, t := range targets {
		old := m.targets[t.ID]
		if old != nil && old.seen == m.pass {
			errs = append(errs, fmt.Errorf("target %q: duplicate id, ignored", t.ID))
			continue
		}
		if old != nil && old.same(t) {
			old.seen = m.pass
			continue
		}
		if err := t.validate(m.cfg.Exec != nil); err != nil {
			errs = append(errs, err)
			continue // an old prober is left unseen, so removed below
		}
		if now.IsZero() {
			now = m.now()
		}
		start := t.Started
		if start.IsZero() {
			start = now
		}
		p := m.startLocked(t, start, now)
		if old != nil {
			restarted = append(restarted, restart{old, p})
		}
	}
	for id, p := range m.targets {
		if p.seen != m.pass {
			delete(m.targets, id)
			stopped = append(stopped, p)
		}
	}
	m.mu.Unlock()

	for _, p := range stopped {
		m.stop(p)
		m.log.Debug("health check stopped", "target", p.target.ID)
	}
	for _, r := range restarted {
		m.finishRestart(r)
	}
	return errors.Join(errs...)
}

// Reset puts target id back to starting with a fresh start period counted
// from now and a new probe schedule, as for a new target; the agent calls
// it after restarting an unhealthy replica. A transition to starting is
// emitted before Reset returns unless the target was already starting.
// An unknown id (or a closed monitor) is ignored.
func (m *Monitor) Reset(id string) {
	m.opMu.Lock()
	defer m.opMu.Unlock()
	m.mu.Lock()
	old := m.targets[id]
	if m.closed || old == nil {
		m.mu.Unlock()
		return
	}
	now := m.now()
	p := m.startLocked(old.target, now, now)
	m.mu.Unlock()
	m.finishRestart(restart{old, p})
}

// startLocked creates the prober for t, installs it and starts its
// goroutine. start is the origin of its start period. Its emitMu is
// returned locked if it replaces a prober (finishRestart unlocks it), so
// its first transition cannot overtake the restart's. Callers hold m.mu
// and m.opMu.
func (m *Monitor) startLocked(t Target, start, now time.Time) *prober {
	t.Check.Command = append([]string(nil), t.Check.Command...)
	p := newProber(t, start, now)
	p.seen = m.pass
	if m.targets[t.ID] != nil {
		p.emitMu.Lock()
	}
	m.targets[t.ID] = p
	m.wg.Go(func() { m.run(p) })
	m.log.Debug("health check started", "target", t.ID, "kind", t.Check.Kind)
	return p
}

// finishRestart stops r.old, emits its transition to starting and lets
// r.new emit. Callers hold m.opMu, not m.mu.
func (m *Monitor) finishRestart(r restart) {
	defer r.new.emitMu.Unlock()
	m.stop(r.old)
	m.mu.Lock()
	from, to := r.old.status.State, r.new.status
	m.mu.Unlock()
	if from != to.State {
		m.emit(Transition{ID: r.new.target.ID, From: from, To: to.State, Status: to, At: to.Since})
	}
}

// stop cancels p's probes and waits out a transition it is emitting; p
// emits nothing afterwards. It does not wait for p's goroutine (Close
// does), so an Exec slow to honour cancellation cannot stall Set.
func (m *Monitor) stop(p *prober) {
	p.cancel()
	p.emitMu.Lock()
	p.stopped = true
	p.emitMu.Unlock()
}

// emit reports one transition. Callers hold the target's emitMu, and no
// other lock.
func (m *Monitor) emit(tr Transition) {
	m.log.Info("health state changed", "target", tr.ID, "from", tr.From, "to", tr.To,
		"failing_streak", tr.Status.FailingStreak, "output", tr.Status.LastOutput)
	if m.cfg.OnTransition != nil {
		m.cfg.OnTransition(tr)
	}
	select {
	case m.changed <- struct{}{}:
	default:
	}
}

// Changed returns a channel that receives a value after transitions, for
// the agent's reconcile loop to wake on. Several transitions may share one
// wake-up; read [Monitor.Statuses] for the state.
func (m *Monitor) Changed() <-chan struct{} { return m.changed }

// Status returns the status of target id, and false if the monitor does
// not have it.
func (m *Monitor) Status(id string) (Status, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.targets[id]
	if p == nil {
		return Status{}, false
	}
	return p.status, true
}

// Statuses returns the status of every target, by ID. The map is the
// caller's.
func (m *Monitor) Statuses() map[string]Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]Status, len(m.targets))
	for id, p := range m.targets {
		out[id] = p.status
	}
	return out
}

// Close stops every probe and waits for the probe goroutines; no callback
// runs after it returns. It is idempotent and always returns nil.
func (m *Monitor) Close() error {
	m.opMu.Lock()
	defer m.opMu.Unlock()
	m.mu.Lock()
	m.closed = true
	ps := m.targets
	m.targets = map[string]*prober{}
	m.mu.Unlock()
	for _, p := range ps {
		m.stop(p)
	}
	m.wg.Wait()
	m.client.CloseIdleConnections()
	return nil
}

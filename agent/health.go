package agent

import (
	"cmp"
	"context"
	"net/netip"
	"sync"
	"time"

	"github.com/orchproject/orch/agent/events"
	"github.com/orchproject/orch/agent/runtime"
	"github.com/orchproject/orch/agent/spec"
	"github.com/orchproject/orch/healthcheck"
)

// Health events: one per transition of a container's health.
const (
	typeHealth     events.Type   = "health"
	actHealthy     events.Action = "healthy"
	actUnhealthy   events.Action = "unhealthy"
	actHealthStart events.Action = "starting"
)

// healthHealthy is the task record's Health of a healthy replica.
const healthHealthy = string(healthcheck.StateHealthy)

const (
	// unhealthyRestartBase is the first delay before an unhealthy
	// container is restarted again; it doubles per restart up to
	// maxRestartBackoff, so a check that keeps failing cannot cause a
	// restart storm.
	unhealthyRestartBase = 2 * time.Second
	// healthyForget is how long a container must stay healthy before its
	// unhealthy-restart backoff is forgotten.
	healthyForget = time.Minute
	// defaultStartInterval is Docker's probe interval during a start
	// period when none is given.
	defaultStartInterval = 5 * time.Second
)

// healthTarget is what a checked container belongs to.
type healthTarget struct {
	task      string // task subject, "web.0"
	container string // the container's name in the spec
}

// health runs the containers' health checks and restarts the unhealthy
// ones. Targets are set by the reconcile loop on every pass; transitions
// wake it.
type health struct {
	a   *Agent
	mon *healthcheck.Monitor

	// images caches each image's HEALTHCHECK (nil: none) by reference.
	// Owned by the reconcile loop.
	images map[string]*runtime.ImageHealth

	mu         sync.Mutex
	targets    map[string]healthTarget // container ID → what it belongs to
	restarting map[string]bool
	backoff    map[string]restartBackoff // container ID → unhealthy restarts
}

type restartBackoff struct {
	next  time.Time
	delay time.Duration
}

func newHealth(a *Agent) (*health, error) {
	h := &health{a: a, images: map[string]*runtime.ImageHealth{}, targets: map[string]healthTarget{}, restarting: map[string]bool{}, backoff: map[string]restartBackoff{}}
	mon, err := healthcheck.New(healthcheck.Config{
		Exec: func(ctx context.Context, id string, argv []string) (int, []byte, error) {
			return a.rt.Exec(ctx, id, argv)
		},
		OnTransition: h.onTransition,
		OnProbe:      a.metrics.probe,
		Logger:       a.log,
	})
	if err != nil {
		return nil, err
	}
	h.mon = mon
	return h, nil
}

func (h *health) onTransition(tr healthcheck.Transition) {
	h.mu.Lock()
	t, ok := h.targets[tr.ID]
	h.mu.Unlock()
	if !ok {
		return
	}
	act := actHealthStart
	switch tr.To {
	case healthcheck.StateHealthy:
		act = actHealthy
	case healthcheck.StateUnhealthy:
		act = actUnhealthy
	}
	attrs := map[string]string{"container": t.container, "from": string(tr.From)}
	if tr.Status.LastOutput != "" {
		attrs["output"] = tr.Status.LastOutput
	}
	h.a.bus.Publish(typeHealth, act, t.task, attrs)
	h.a.wake() // DNS and the task record follow health
}

// checkOf turns a container's health check (or, lacking one, its image's
// HEALTHCHECK) into a healthcheck.Check; ok is false when the container is
// not checked.
func (h *health) checkOf(ctx context.Context, c spec.Container) (healthcheck.Check, bool) {
	hc := c.HealthCheck
	var test []string
	var chk healthcheck.Check
	switch {
	case hc != nil && hc.HTTP != nil:
		chk = healthcheck.Check{Kind: healthcheck.KindHTTP, Path: hc.HTTP.Path, Port: hc.HTTP.Port}
	case hc != nil && hc.TCP != nil:
		chk = healthcheck.Check{Kind: healthcheck.KindTCP, Port: hc.TCP.Port}
	case hc != nil && len(hc.Test) > 0:
		test = hc.Test
	default:
		img, cached := h.images[c.Image]
		if !cached {
			ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
			var err error
			img, err = h.a.rt.ImageHealthcheck(ictx, c.Image)
			cancel()
			if err != nil {
				h.a.log.Debug("cannot read the image's HEALTHCHECK", "image", c.Image, "err", err)
				return chk, false // asked again next pass
			}
			h.images[c.Image] = img
		}
		if img == nil {
			return chk, false
		}
		test = img.Test
		chk.Interval, chk.Timeout, chk.StartPeriod, chk.StartInterval, chk.Retries = img.Interval, img.Timeout, img.StartPeriod, img.StartInterval, img.Retries
	}
	if test != nil {
		switch test[0] {
		case spec.TestCmd:
			chk.Kind, chk.Command = healthcheck.KindExec, test[1:]
		case spec.TestCmdShell:
			chk.Kind, chk.Command = healthcheck.KindExec, []string{"/bin/sh", "-c", test[1]}
		default: // NONE, or nothing runnable
			return chk, false
		}
	}
	// The spec's timings win over the image's (Docker's rule).
	if hc != nil {
		if hc.Interval != 0 {
			chk.Interval = hc.Interval.Std()
		}
		if hc.Timeout != 0 {
			chk.Timeout = hc.Timeout.Std()
		}
		if hc.StartPeriod != 0 {
			chk.StartPeriod = hc.StartPeriod.Std()
		}
		if hc.StartInterval != 0 {
			chk.StartInterval = hc.StartInterval.Std()
		}
		if hc.Retries != 0 {
			chk.Retries = hc.Retries
		}
	}
	if chk.StartPeriod > 0 && chk.StartInterval == 0 {
		// Docker's default, but never slower than the interval.
		chk.StartInterval = min(defaultStartInterval, cmp.Or(chk.Interval, healthcheck.DefaultInterval))
	}
	return chk, len(chk.Command) > 0 || chk.Kind != healthcheck.KindExec
}

// checkedReplica is a running replica whose containers may be checked.
type checkedReplica struct {
	task      string // "web.0"
	replicaID string
	addr      netip.Addr
	started   time.Time
	spec      *spec.Service
}

// set makes the monitor probe exactly the containers of reps that have a
// check, and returns each task's health: "" when none of its containers is
// checked, else the worst of them (unhealthy, starting, healthy).
func (h *health) set(ctx context.Context, reps []checkedReplica) map[string]string {
	var targets []healthcheck.Target
	byID := map[string]healthTarget{}
	taskOf := map[string][]string{}
	for _, r := range reps {
		for _, c := range r.spec.Containers {
			chk, ok := h.checkOf(ctx, c)
			if !ok {
				continue
			}
			id := runtime.ContainerID(r.replicaID, c.Name)
			targets = append(targets, healthcheck.Target{ID: id, Addr: r.addr, Check: chk, Started: r.started})
			byID[id] = healthTarget{task: r.task, container: c.Name}
			taskOf[r.task] = append(taskOf[r.task], id)
		}
	}
	h.mu.Lock()
	for id, t := range byID {
		h.targets[id] = t
	}
	h.mu.Unlock()
	if err := h.mon.Set(targets); err != nil {
		h.a.log.Warn("health checks", "err", err)
	}
	h.mu.Lock()
	for id := range h.targets {
		if _, ok := byID[id]; !ok {
			delete(h.targets, id)
			delete(h.backoff, id)
		}
	}
	h.mu.Unlock()

	statuses := h.mon.Statuses()
	out := map[string]string{}
	now := time.Now()
	for task, ids := range taskOf {
		worst := ""
		for _, id := range ids {
			st, ok := statuses[id]
			if !ok {
				continue // invalid check, reported by Set
			}
			switch {
			case st.State == healthcheck.StateUnhealthy:
				worst = string(healthcheck.StateUnhealthy)
				h.restartUnhealthy(id, byID[id], st, now)
			case st.State == healthcheck.StateStarting && worst != string(healthcheck.StateUnhealthy):
				worst = string(healthcheck.StateStarting)
			case worst == "":
				worst = string(healthcheck.StateHealthy)
			}
			if st.State == healthcheck.StateHealthy && now.Sub(st.Since) > healthyForget {
				h.mu.Lock()
				delete(h.backoff, id)
				h.mu.Unlock()
			}
		}
		out[task] = worst
	}
	return out
}

// restartUnhealthy restarts an unhealthy container in the background,
// once at a time, no sooner than its backoff allows.
func (h *health) restartUnhealthy(id string, t healthTarget, st healthcheck.Status, now time.Time) {
	h.mu.Lock()
	b := h.backoff[id]
	if h.restarting[id] || now.Before(b.next) {
		h.mu.Unlock()
		if !b.next.IsZero() && now.Before(b.next) {
			h.a.wakeAt(b.next)
		}
		return
	}
	b.delay = min(max(2*b.delay, unhealthyRestartBase), maxRestartBackoff)
	h.restarting[id] = true
	h.mu.Unlock()
	h.a.bus.Publish(typeTask, actRestarting, t.task, map[string]string{"container": t.container, "reason": "unhealthy: " + st.LastOutput})
	h.a.log.Warn("restarting an unhealthy container", "task", t.task, "container", t.container, "output", st.LastOutput)
	h.a.mu.Lock()
	ctx := h.a.loopCtx
	h.a.mu.Unlock()
	if ctx == nil {
		ctx = context.Background()
	}
	h.a.removals.Go(func() {
		rctx, cancel := context.WithTimeout(ctx, runtime.DefaultStopGrace+runtimeTimeout)
		defer cancel()
		err := h.a.rt.RestartContainerNow(rctx, id, runtime.DefaultStopGrace)
		if err != nil {
			h.a.log.Warn("restart unhealthy container", "container", id, "err", err)
		} else {
			// Probing starts over, with a fresh start period.
			h.mon.Reset(id)
		}
		h.mu.Lock()
		delete(h.restarting, id)
		h.backoff[id] = restartBackoff{next: time.Now().Add(b.delay), delay: b.delay}
		h.mu.Unlock()
		h.a.wake()
	})
}

func (h *health) close() {
	if err := h.mon.Close(); err != nil {
		h.a.log.Warn("stop health checks", "err", err)
	}
}

package main

import (
	"context"
	"sync"
	"time"
)

// serviceEvent is a service event as one agent's event stream reported
// it. The agent's reconcile loop publishes it on the first pass after the
// store changed, stamped with the agent's clock: the moment the new
// version became visible through that agent's API, give or take the
// pass (well under a millisecond with the few services of the
// propagation benchmark).
type serviceEvent struct {
	node    string // the agent that reported it
	action  string // created, updated, removed
	subject string // the service
	version string // e.g. 12@h3
	at      time.Time
}

// recorder collects service events from every agent of a cluster. Safe
// for concurrent use.
type recorder struct {
	mu     sync.Mutex
	evs    []serviceEvent
	lags   map[string]int // agent → "lagged" markers (events the agent dropped for us)
	signal chan struct{}  // capacity 1: a wake-up for waitFor, not a payload
}

func newRecorder() *recorder {
	return &recorder{lags: map[string]int{}, signal: make(chan struct{}, 1)}
}

func (r *recorder) add(e serviceEvent) {
	r.mu.Lock()
	r.evs = append(r.evs, e)
	r.mu.Unlock()
	r.notify()
}

func (r *recorder) lagged(node string) {
	r.mu.Lock()
	r.lags[node]++
	r.mu.Unlock()
}

func (r *recorder) notify() {
	select {
	case r.signal <- struct{}{}:
	default:
	}
}

// seen returns, for each agent that has reported subject at version, the
// earliest time it did.
func (r *recorder) seen(subject, version string) map[string]time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]time.Time{}
	for _, e := range r.evs {
		if e.subject != subject || e.version != version || (e.action != "created" && e.action != "updated") {
			continue
		}
		if t, ok := out[e.node]; !ok || e.at.Before(t) {
			out[e.node] = e.at
		}
	}
	return out
}

// seenAny is seen for whatever version each agent first reported: for
// a warm-up write whose version the caller does not know yet.
func (r *recorder) seenAny(subject string) map[string]time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]time.Time{}
	for _, e := range r.evs {
		if e.subject == subject {
			if t, ok := out[e.node]; !ok || e.at.Before(t) {
				out[e.node] = e.at
			}
		}
	}
	return out
}

// lagCount is the number of "lagged" markers received so far.
func (r *recorder) lagCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, v := range r.lags {
		n += v
	}
	return n
}

// waitFor calls done after every new event until it returns true, the
// deadline passes or ctx ends; it reports whether done returned true.
func (r *recorder) waitFor(ctx context.Context, deadline time.Time, done func() bool) bool {
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	for {
		if done() {
			return true
		}
		select {
		case <-r.signal:
		case <-t.C:
			return done()
		case <-ctx.Done():
			return false
		}
	}
}

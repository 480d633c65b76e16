package events

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"
)

// ErrClosed is returned by [Bus.Subscribe] after [Bus.Close].
var ErrClosed = errors.New("event bus closed")

// ErrInvalidOptions is wrapped by the error [Bus.Subscribe] returns for
// options that cannot be served, so the API can answer 400 with errors.Is.
var ErrInvalidOptions = errors.New("invalid subscribe options")

// Bus stamps, retains and fans out events. See the package documentation
// for its ordering, replay and backpressure contract. A Bus is safe for
// concurrent use; create it with [New].
type Bus struct {
	cfg Config // with defaults applied; read-only after New
	log *slog.Logger

	closeOnce sync.Once

	mu          sync.Mutex
	closed      bool            // guarded by mu
	seq         uint64          // Seq of the newest event; guarded by mu
	ring        ring[Event]     // retained events in Seq order; guarded by mu
	lastEvicted time.Time       // Time of the newest evicted event; guarded by mu
	subs        []*Subscription // live subscriptions; guarded by mu
	nextID      uint64          // last subscription id handed out; guarded by mu
	dropped     uint64          // events dropped over all subscriptions; guarded by mu
}

// New validates cfg and returns a Bus. It starts nothing.
func New(cfg Config) (*Bus, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("event bus config: %w", err)
	}
	cfg = cfg.withDefaults()
	return &Bus{
		cfg:  cfg,
		log:  cfg.Logger.With("component", "events"),
		ring: newRing[Event](cfg.RingSize),
	}, nil
}

// Publish stamps an event with the next Seq, the time and this node's name,
// retains it for replay and hands it to every matching subscription. It
// never blocks on subscribers. attrs is cloned, so the caller may reuse it;
// the returned Event shares its Attributes with subscribers and must be
// treated as read-only.
//
// After [Bus.Close], Publish does nothing and returns the zero Event.
func (b *Bus) Publish(typ Type, action Action, subject string, attrs map[string]string) Event {
	attrs = maps.Clone(attrs) // outside the lock: it may be large

	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return Event{}
	}
	b.seq++
	ev := Event{
		Time:       b.cfg.Now().Round(0), // wall clock only: Since compares wall times
		Seq:        b.seq,
		Type:       typ,
		Action:     action,
		Node:       b.cfg.Node,
		Subject:    subject,
		Attributes: attrs,
	}
	if old, evicted := b.ring.push(ev); evicted {
		b.lastEvicted = old.Time
	}
	// Fan out under the lock: two concurrent Publish calls must reach each
	// subscription in Seq order, and Subscribe must see either all or none
	// of this event's fan-out. offer never blocks.
	for _, s := range b.subs {
		if s.filter.Match(ev) && !s.offer(ev) {
			b.dropped++
		}
	}
	return ev
}

// Subscribe registers a subscription and starts its delivery goroutine,
// which runs until [Subscription.Close] or [Bus.Close]. It returns
// [ErrClosed] after Close and an error wrapping [ErrInvalidOptions] if both
// After and Since are set.
func (b *Bus) Subscribe(opts SubscribeOptions) (*Subscription, error) {
	if opts.After != 0 && !opts.Since.IsZero() {
		return nil, fmt.Errorf("%w: both After (%d) and Since (%s) are set: use After to resume after a sequence number, or Since to replay a time window, not both",
			ErrInvalidOptions, opts.After, opts.Since.Format(time.RFC3339))
	}
	s := newSubscription(b, opts.Filter)

	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, ErrClosed
	}
	b.nextID++
	s.id = b.nextID
	lag, replay := b.replayLocked(opts)
	b.subs = append(b.subs, s)
	b.mu.Unlock()

	b.log.Debug("subscribed", "subscriber", s.id, "filter", strings.Join(opts.Filter.Strings(), ","),
		"after", opts.After, "since", opts.Since, "replay", len(replay))
	go s.run(lag, replay)
	return s, nil
}

// replayLocked returns the retained events opts asks to replay, in Seq
// order, and the gap before them if part of the requested range was
// evicted. b.mu must be held.
func (b *Bus) replayLocked(opts SubscribeOptions) (*gap, []Event) {
	n := b.ring.len()
	evicted := b.seq - uint64(n) // Seq of the newest evicted event; 0 if none
	var lag *gap
	start := 0
	switch {
	case opts.After != 0:
		if opts.After < evicted {
			lag = &gap{missed: evicted - opts.After, first: opts.After + 1, last: evicted, time: b.lastEvicted}
		} else {
			start = int(min(opts.After-evicted, uint64(n)))
		}
	case !opts.Since.IsZero():
		// Times follow Seq unless the clock stepped back; if the newest
		// evicted event is inside the window, older ones may be too, and
		// where the window began is lost with them.
		if evicted > 0 && !b.lastEvicted.Before(opts.Since) {
			lag = &gap{missed: evicted, first: 1, last: evicted, time: b.lastEvicted}
		}
	default:
		return nil, nil // live only
	}
	var replay []Event
	for i := start; i < n; i++ {
		ev := *b.ring.at(i)
		// Since is checked per event rather than by search, so a clock step
		// cannot hide retained events inside the window.
		if !opts.Since.IsZero() && ev.Time.Before(opts.Since) {
			continue
		}
		if opts.Filter.Match(ev) {
			replay = append(replay, ev)
		}
	}
	return lag, replay
}

// remove unregisters s; after it returns, Publish no longer offers to s.
func (b *Bus) remove(s *Subscription) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.subs = slices.DeleteFunc(b.subs, func(x *Subscription) bool { return x == s })
}

// Stats is a snapshot of the bus's counters, for metrics.
type Stats struct {
	// Published is how many events have been published; it equals the Seq
	// of the newest event.
	Published uint64
	// Subscribers is how many subscriptions are open.
	Subscribers int
	// Dropped is how many events were dropped for slow subscribers, summed
	// over every subscription since New, closed ones included. Events
	// missed because a replay reached past the ring are not counted.
	Dropped uint64
}

// Stats returns the bus's counters.
func (b *Bus) Stats() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return Stats{Published: b.seq, Subscribers: len(b.subs), Dropped: b.dropped}
}

// Close closes every subscription, waits for their goroutines to exit and
// makes later Publish calls no-ops. It is idempotent, safe to call
// concurrently, and always returns nil.
func (b *Bus) Close() error {
	b.closeOnce.Do(func() {
		b.mu.Lock()
		b.closed = true
		subs := b.subs
		b.subs = nil
		b.mu.Unlock()

		for _, s := range subs {
			s.stop()
		}
		for _, s := range subs {
			<-s.exited
		}
		b.log.Debug("closed", "subscribers", len(subs))
	})
	return nil
}

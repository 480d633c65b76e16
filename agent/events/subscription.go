package events

// Design note: how a subscription delivers.
//
// Publish must never block, and the consumer of C may be arbitrarily slow,
// so a subscription keeps its own bounded queue (q) that Publish appends to
// under s.mu and never waits on. One goroutine per subscription (run) moves
// events from the replay copy and then from q to the unbuffered channel C.
//
// C is unbuffered so that q is the whole buffer: run peeks at the head of
// q, sends it, and pops it only once the consumer has taken it. So "at most
// SubscriberBuffer events held for this consumer" is exact, and the lagged
// counts in tests are deterministic.
//
// When q is full, Publish drops the event and widens s.gap. The next event
// that fits carries the gap with it (entry.gap), and run sends the marker
// just before that event, so the marker sits where the missed events would
// have been. If nothing follows the gap, run sends the marker once q is
// empty.
//
// Locks: Publish holds b.mu and takes s.mu (in offer); run takes only s.mu
// and never holds it across a send. Nothing takes b.mu while holding s.mu.

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// SubscribeOptions selects what a subscription receives.
type SubscribeOptions struct {
	// Filter selects the events delivered, replayed and live. The zero
	// Filter passes everything. Markers are delivered regardless.
	Filter Filter
	// After replays the retained events with Seq > After before live ones.
	// If After is older than the oldest retained event, a lagged marker
	// comes first. Zero, with Since zero, means live events only.
	After uint64
	// Since replays the retained events with Time >= Since before live
	// ones. Zero means no time-based replay. Setting both After and Since
	// is an error (see [ErrInvalidOptions]).
	Since time.Time
}

// Subscription is one consumer's view of the bus. Receive on [Subscription.C]
// until it is closed. All methods are safe for concurrent use.
type Subscription struct {
	bus    *Bus
	id     uint64 // for logs; set by Subscribe before run starts
	filter Filter

	// c is unbuffered: the subscription's buffer is q (see the design note).
	c      chan Event
	wake   chan struct{} // capacity 1: a pending wake-up is enough
	done   chan struct{} // closed by stop
	exited chan struct{} // closed when run returns

	stopOnce sync.Once
	dropped  atomic.Uint64

	mu  sync.Mutex
	q   ring[entry] // live events not yet received; guarded by mu
	gap gap         // events dropped since the last queued event; guarded by mu
}

// entry is a queued live event, with the gap of dropped events just before
// it, if any.
type entry struct {
	ev  Event
	gap *gap
}

// gap describes consecutive missed events: missed of them, from Seq first
// to last, the last at time.
type gap struct {
	missed      uint64
	first, last uint64
	time        time.Time
}

func newSubscription(b *Bus, f Filter) *Subscription {
	return &Subscription{
		bus:    b,
		filter: f,
		c:      make(chan Event),
		wake:   make(chan struct{}, 1),
		done:   make(chan struct{}),
		exited: make(chan struct{}),
		q:      newRing[entry](b.cfg.SubscriberBuffer),
	}
}

// C returns the channel on which events arrive, in Seq order, with markers
// where events were missed. It is closed after [Subscription.Close] or
// [Bus.Close].
func (s *Subscription) C() <-chan Event { return s.c }

// Dropped returns how many events matching this subscription's filter were
// dropped because its buffer was full.
func (s *Subscription) Dropped() uint64 { return s.dropped.Load() }

// Close unsubscribes, stops delivery and waits until C is closed. Events
// not yet received are discarded. It is idempotent, safe to call
// concurrently with Publish and with [Bus.Close], and always returns nil.
func (s *Subscription) Close() error {
	s.bus.remove(s)
	s.stop()
	<-s.exited
	return nil
}

func (s *Subscription) stop() {
	s.stopOnce.Do(func() { close(s.done) })
}

// offer queues ev for delivery, or records it as missed if the queue is
// full. It never blocks. It reports whether ev was queued. The caller holds
// s.bus.mu, which orders offers by Seq.
func (s *Subscription) offer(ev Event) bool {
	s.mu.Lock()
	if s.q.full() {
		if s.gap.missed == 0 {
			s.gap.first = ev.Seq
		}
		s.gap.missed++
		s.gap.last = ev.Seq
		s.gap.time = ev.Time
		s.mu.Unlock()
		s.dropped.Add(1)
		return false
	}
	e := entry{ev: ev}
	if s.gap.missed > 0 {
		g := s.gap
		e.gap = &g
		s.gap = gap{}
	}
	s.q.push(e)
	s.mu.Unlock()

	select {
	case s.wake <- struct{}{}:
	default: // a wake-up is already pending
	}
	return true
}

// run delivers lag (a marker, if set), then replay, then queued live events,
// until stop. It owns closing C.
func (s *Subscription) run(lag *gap, replay []Event) {
	defer close(s.exited)
	defer close(s.c)

	if lag != nil {
		s.bus.log.Debug("replay starts after evicted events", "subscriber", s.id,
			"missed", lag.missed, "first_seq", lag.first, "last_seq", lag.last)
		if !s.send(s.marker(*lag)) {
			return
		}
	}
	for i := range replay {
		if !s.send(replay[i]) {
			return
		}
		replay[i] = Event{} // let the garbage collector have what was sent
	}
	for {
		s.mu.Lock()
		switch {
		case s.q.len() > 0:
			head := *s.q.at(0) // peek; pop only once the consumer has it
			s.mu.Unlock()
			if head.gap != nil {
				s.logLagged(*head.gap)
				if !s.send(s.marker(*head.gap)) {
					return
				}
				s.mu.Lock()
				s.q.at(0).gap = nil // only run pops, so the head is the same entry
				s.mu.Unlock()
			}
			if !s.send(head.ev) {
				return
			}
			s.mu.Lock()
			s.q.pop()
			s.mu.Unlock()

		case s.gap.missed > 0:
			// Drained with nothing after the gap: report it now.
			g := s.gap
			s.gap = gap{}
			s.mu.Unlock()
			s.logLagged(g)
			if !s.send(s.marker(g)) {
				return
			}

		default:
			s.mu.Unlock()
			select {
			case <-s.wake:
			case <-s.done:
				return
			}
		}
	}
}

// send delivers ev on C, or gives up when the subscription stops.
func (s *Subscription) send(ev Event) bool {
	select {
	case s.c <- ev:
		return true
	case <-s.done:
		return false
	}
}

func (s *Subscription) marker(g gap) Event {
	return Event{
		Time:   g.time,
		Seq:    0,
		Type:   TypeStream,
		Action: ActionLagged,
		Node:   s.bus.cfg.Node,
		Attributes: map[string]string{
			AttrMissed:   strconv.FormatUint(g.missed, 10),
			AttrFirstSeq: strconv.FormatUint(g.first, 10),
			AttrLastSeq:  strconv.FormatUint(g.last, 10),
		},
	}
}

func (s *Subscription) logLagged(g gap) {
	s.bus.log.Warn("subscriber lagged, events dropped", "subscriber", s.id,
		"missed", g.missed, "first_seq", g.first, "last_seq", g.last)
}

package events

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// TestSubscription_SlowDoesNotBlock publishes in lockstep with a fast
// subscriber while a slow one never reads: every Publish returns and the
// fast subscriber gets every event at once. Then the slow one drains and
// gets what its buffer held, a marker for the rest, and later events.
func TestSubscription_SlowDoesNotBlock(t *testing.T) {
	b := newTestBus(t, Config{SubscriberBuffer: 4})
	slow := subscribe(t, b, SubscribeOptions{})
	fast := subscribe(t, b, SubscribeOptions{})

	for want := uint64(1); want <= 10; want++ {
		b.Publish(TypeMember, ActionJoin, "n2", nil)
		if ev := recv(t, fast); ev.Seq != want {
			t.Fatalf("fast subscriber got %s, want Seq %d", describe(ev), want)
		}
	}
	if d := fast.Dropped(); d != 0 {
		t.Errorf("fast Dropped = %d, want 0", d)
	}
	if d := slow.Dropped(); d != 6 {
		t.Errorf("slow Dropped = %d, want 6", d)
	}
	if d := b.Stats().Dropped; d != 6 {
		t.Errorf("Stats().Dropped = %d, want 6", d)
	}

	want := append(seqs(1, 4), lagged(6, 5, 10))
	if got := recvN(t, slow, len(want)); !equalStrings(got, want) {
		t.Errorf("slow got %q, want %q", got, want)
	}
	b.Publish(TypeMember, ActionJoin, "n2", nil)
	if got, want := recvN(t, slow, 1), seqs(11, 11); !equalStrings(got, want) {
		t.Errorf("slow after draining got %q, want %q", got, want)
	}

	// The marker went to the slow subscriber only and was not stored.
	if got, want := recvN(t, fast, 1), seqs(11, 11); !equalStrings(got, want) {
		t.Errorf("fast got %q, want %q", got, want)
	}
	late := subscribe(t, b, SubscribeOptions{Since: time.Unix(0, 0)})
	if got, want := recvN(t, late, 11), seqs(1, 11); !equalStrings(got, want) {
		t.Errorf("replay got %q, want %q (no markers)", got, want)
	}
}

// TestSubscription_MarkerBeforeNextEvent checks the marker's position when
// events arrive after a gap while older ones are still queued.
func TestSubscription_MarkerBeforeNextEvent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newTestBus(t, Config{SubscriberBuffer: 2})
		s := subscribe(t, b, SubscribeOptions{})
		publishN(b, 4) // 1, 2 queued; 3, 4 dropped
		if got := recvN(t, s, 1); got[0] != "1" {
			t.Fatalf("got %q, want 1", got)
		}
		synctest.Wait() // run has popped 1 and is offering 2: one slot free
		publishN(b, 1)  // 5 is queued, carrying the gap
		publishN(b, 1)  // 6 is dropped: 2 and 5 fill the buffer
		synctest.Wait()

		want := []string{"2", lagged(2, 3, 4), "5", lagged(1, 6, 6)}
		if got := recvN(t, s, len(want)); !equalStrings(got, want) {
			t.Errorf("got %q, want %q", got, want)
		}
		if d := s.Dropped(); d != 3 {
			t.Errorf("Dropped = %d, want 3", d)
		}
		synctest.Wait()
		select {
		case ev := <-s.C():
			t.Errorf("unexpected %s", describe(ev))
		default:
		}
	})
}

func TestSubscription_MarkerTimeIsLastMissed(t *testing.T) {
	clock := newFakeClock()
	b := newTestBus(t, Config{SubscriberBuffer: 1, Now: clock.Now})
	s := subscribe(t, b, SubscribeOptions{})
	publishN(b, 3)
	recv(t, s)
	m := recv(t, s)
	if !m.IsMarker() || !m.Time.Equal(clock.at(3)) || m.Node != "n1" || m.Subject != "" {
		t.Errorf("marker = %+v, want Time %v, Node n1, empty Subject", m, clock.at(3))
	}
}

// TestSubscription_DropsCountOnlyMatches checks that a filtered subscriber
// counts only the dropped events it would have received.
func TestSubscription_DropsCountOnlyMatches(t *testing.T) {
	b := newTestBus(t, Config{SubscriberBuffer: 1})
	f, err := ParseFilter([]string{"type=member"})
	if err != nil {
		t.Fatal(err)
	}
	s := subscribe(t, b, SubscribeOptions{Filter: f})
	b.Publish(TypeMember, ActionJoin, "n2", nil)   // 1: queued
	b.Publish(TypeMember, ActionJoin, "n3", nil)   // 2: dropped
	b.Publish("service", "start", "web", nil)      // 3: not for s
	b.Publish(TypeMember, ActionFailed, "n2", nil) // 4: dropped
	want := []string{"1", lagged(2, 2, 4)}
	if got := recvN(t, s, len(want)); !equalStrings(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if d := s.Dropped(); d != 2 {
		t.Errorf("Dropped = %d, want 2", d)
	}
}

func TestSubscription_Close(t *testing.T) {
	b := newTestBus(t, Config{})
	s := subscribe(t, b, SubscribeOptions{})
	publishN(b, 3) // pending, never read
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	waitClosed(t, s)
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if got := b.Stats().Subscribers; got != 0 {
		t.Errorf("Subscribers = %d after Close, want 0", got)
	}
	publishN(b, 3) // must not reach or count against the closed subscription
	if d := s.Dropped(); d != 0 {
		t.Errorf("Dropped = %d after Close, want 0", d)
	}
}

func TestSubscription_CloseWhileReplaying(t *testing.T) {
	b := newTestBus(t, Config{SubscriberBuffer: 1})
	publishN(b, 100)
	s := subscribe(t, b, SubscribeOptions{After: 1})
	recv(t, s)
	s.Close()
	waitClosed(t, s)
}

// TestSubscription_CloseConcurrentWithPublish closes subscriptions, some
// reading and some not, while publishers run; the race detector and the
// deadline on waitClosed do the checking.
func TestSubscription_CloseConcurrentWithPublish(t *testing.T) {
	b := newTestBus(t, Config{SubscriberBuffer: 8})
	stop := make(chan struct{})
	var pubs sync.WaitGroup
	for range 4 {
		pubs.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
					b.Publish(TypeMember, ActionUpdate, "n2", map[string]string{"k": "v"})
				}
			}
		})
	}
	var subs sync.WaitGroup
	for i := range 32 {
		subs.Go(func() {
			s, err := b.Subscribe(SubscribeOptions{After: uint64(i)})
			if err != nil {
				t.Error(err)
				return
			}
			if i%2 == 0 {
				for range i {
					if _, ok := <-s.C(); !ok {
						break
					}
				}
			}
			s.Close()
			s.Close()
			for range s.C() {
			}
		})
	}
	subs.Wait()
	close(stop)
	pubs.Wait()
	if got := b.Stats().Subscribers; got != 0 {
		t.Errorf("Subscribers = %d, want 0", got)
	}
}

// TestSubscription_NoGapNoDup hammers Subscribe concurrently with Publish.
// Buffers and ring hold every event, so nothing may be dropped: each
// subscriber must see exactly the Seqs from its starting point to the end,
// each once. A live subscriber starts right after the newest event at the
// moment Subscribe ran; an After subscriber starts at After+1.
func TestSubscription_NoGapNoDup(t *testing.T) {
	const publishers, each, subscribers = 4, 1000, 24
	const total = publishers*each + 1 // plus the final event
	b := newTestBus(t, Config{RingSize: 2 * total, SubscriberBuffer: 2 * total})

	var pubs sync.WaitGroup
	for range publishers {
		pubs.Go(func() {
			for range each {
				b.Publish(TypeMember, ActionUpdate, "n2", nil)
			}
		})
	}

	type result struct {
		first, lo, hi uint64 // first Seq received; bounds it must lie in
		err           error
	}
	results := make(chan result, subscribers)
	var subscribed, readers sync.WaitGroup
	subscribed.Add(subscribers)
	for i := range subscribers {
		readers.Go(func() {
			before := b.Stats().Published
			var opts SubscribeOptions
			if i%2 == 1 && before > 0 {
				opts.After = rand.Uint64N(before) + 1 // 1..before
			}
			s, err := b.Subscribe(opts)
			after := b.Stats().Published
			subscribed.Done()
			if err != nil {
				results <- result{err: err}
				return
			}
			defer s.Close()
			r := result{lo: before + 1, hi: after + 1}
			if opts.After != 0 {
				r.lo, r.hi = opts.After+1, opts.After+1
			}
			var c streamChecker
			for c.next != total+1 {
				ev, err := next(s)
				if err != nil {
					r.err = err
					break
				}
				if r.first == 0 {
					r.first = ev.Seq
				}
				if err := c.check(ev); err != nil {
					r.err = err
					break
				}
				if c.markers > 0 {
					r.err = fmt.Errorf("unexpected marker %s", describe(ev))
					break
				}
			}
			results <- r
		})
	}
	subscribed.Wait()
	pubs.Wait()
	b.Publish(TypeMember, ActionUpdate, "final", nil) // every subscriber is registered: all see it
	readers.Wait()
	close(results)
	for r := range results {
		if r.err != nil {
			t.Error(r.err)
			continue
		}
		if r.first < r.lo || r.first > r.hi {
			t.Errorf("first Seq %d, want within [%d, %d]", r.first, r.lo, r.hi)
		}
	}
	if d := b.Stats().Dropped; d != 0 {
		t.Errorf("Stats().Dropped = %d, want 0", d)
	}
}

// TestSubscription_AccountsEverySeqUnderPressure runs slow consumers with
// tiny buffers against busy publishers: drops happen, but every Seq is
// either delivered once or inside one marker, in order.
func TestSubscription_AccountsEverySeqUnderPressure(t *testing.T) {
	const publishers, each = 4, 2000
	const total = publishers * each
	b := newTestBus(t, Config{SubscriberBuffer: 3})
	var subs []*Subscription
	for range 6 {
		subs = append(subs, subscribe(t, b, SubscribeOptions{}))
	}
	var wg sync.WaitGroup
	for range publishers {
		wg.Go(func() { publishN(b, each) })
	}
	for i, s := range subs {
		wg.Go(func() {
			var c streamChecker
			c.next = 1
			for c.next != total+1 {
				if i%2 == 0 {
					runtime.Gosched() // be slower than the others
				}
				ev, err := next(s)
				if err == nil {
					err = c.check(ev)
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
			if c.missed != s.Dropped() {
				t.Errorf("markers report %d missed, Dropped = %d", c.missed, s.Dropped())
			}
		})
	}
	wg.Wait()
}

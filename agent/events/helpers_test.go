package events

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"
)

// waitTimeout bounds every wait for an event, so a broken bus fails the test
// instead of hanging it. Inside a synctest bubble it elapses instantly once
// everything is blocked.
const waitTimeout = 10 * time.Second

func newTestBus(tb testing.TB, cfg Config) *Bus {
	tb.Helper()
	if cfg.Node == "" {
		cfg.Node = "n1"
	}
	b, err := New(cfg)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	tb.Cleanup(func() { b.Close() })
	return b
}

func subscribe(tb testing.TB, b *Bus, opts SubscribeOptions) *Subscription {
	tb.Helper()
	s, err := b.Subscribe(opts)
	if err != nil {
		tb.Fatalf("Subscribe(%+v): %v", opts, err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// publishN publishes n member events and returns the last one.
func publishN(b *Bus, n int) Event {
	var ev Event
	for i := range n {
		ev = b.Publish(TypeMember, ActionJoin, "m"+strconv.Itoa(i), nil)
	}
	return ev
}

// recv returns the next event on s, failing the test if none arrives in
// time or C is closed. Call it from the test's goroutine; others use next.
func recv(tb testing.TB, s *Subscription) Event {
	tb.Helper()
	ev, err := next(s)
	if err != nil {
		tb.Fatal(err)
	}
	return ev
}

// next returns the next event on s, or an error if none arrives in time or
// C is closed.
func next(s *Subscription) (Event, error) {
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	select {
	case ev, ok := <-s.C():
		if !ok {
			return Event{}, errors.New("subscription closed, want an event")
		}
		return ev, nil
	case <-timer.C:
		return Event{}, fmt.Errorf("no event within %v", waitTimeout)
	}
}

// recvN receives n events and describes them (see describe).
func recvN(tb testing.TB, s *Subscription, n int) []string {
	tb.Helper()
	out := make([]string, 0, n)
	for range n {
		out = append(out, describe(recv(tb, s)))
	}
	return out
}

// describe renders an event compactly for comparisons: its Seq, or the
// marker and its counts.
func describe(e Event) string {
	if e.IsMarker() {
		return fmt.Sprintf("%s/%s missed=%s first=%s last=%s seq=%d",
			e.Type, e.Action, e.Attributes[AttrMissed], e.Attributes[AttrFirstSeq], e.Attributes[AttrLastSeq], e.Seq)
	}
	return strconv.FormatUint(e.Seq, 10)
}

func seqs(from, to uint64) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, strconv.FormatUint(i, 10))
	}
	return out
}

func lagged(missed, first, last uint64) string {
	return fmt.Sprintf("stream/lagged missed=%d first=%d last=%d seq=0", missed, first, last)
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// waitClosed drains s until C is closed, failing if that takes too long.
func waitClosed(tb testing.TB, s *Subscription) {
	tb.Helper()
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	for {
		select {
		case _, ok := <-s.C():
			if !ok {
				return
			}
		case <-timer.C:
			tb.Fatalf("C not closed within %v", waitTimeout)
		}
	}
}

// streamChecker verifies an unfiltered stream: every Seq from the first one
// on is accounted for exactly once, either delivered or inside a marker's
// range, in order.
type streamChecker struct {
	next    uint64 // Seq expected next; 0 until the first event
	markers int
	missed  uint64
}

func (c *streamChecker) check(e Event) error {
	if e.IsMarker() {
		first, err1 := strconv.ParseUint(e.Attributes[AttrFirstSeq], 10, 64)
		last, err2 := strconv.ParseUint(e.Attributes[AttrLastSeq], 10, 64)
		missed, err3 := strconv.ParseUint(e.Attributes[AttrMissed], 10, 64)
		switch {
		case err1 != nil || err2 != nil || err3 != nil:
			return fmt.Errorf("marker with bad attributes %v", e.Attributes)
		case e.Seq != 0:
			return fmt.Errorf("marker has Seq %d, want 0", e.Seq)
		case c.next != 0 && first != c.next:
			return fmt.Errorf("marker starts at %d, want %d", first, c.next)
		case last < first || missed != last-first+1:
			return fmt.Errorf("marker missed=%d first=%d last=%d inconsistent", missed, first, last)
		}
		c.next = last + 1
		c.markers++
		c.missed += missed
		return nil
	}
	if c.next != 0 && e.Seq != c.next {
		return fmt.Errorf("got Seq %d, want %d", e.Seq, c.next)
	}
	c.next = e.Seq + 1
	return nil
}

// fakeClock returns times one step apart, starting at start+step.
type fakeClock struct {
	mu   sync.Mutex
	t    time.Time
	step time.Duration
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), step: time.Second}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(c.step)
	return c.t
}

// at returns the time the clock gave (or will give) the n-th call.
func (c *fakeClock) at(n int) time.Time {
	return time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).Add(time.Duration(n) * c.step)
}

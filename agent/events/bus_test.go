package events

import (
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

func TestBus_PublishStamps(t *testing.T) {
	clock := newFakeClock()
	b := newTestBus(t, Config{Node: "alpha", Now: clock.Now})
	for i := 1; i <= 3; i++ {
		ev := b.Publish(TypeMember, ActionJoin, "n"+strconv.Itoa(i), map[string]string{"addr": "10.0.0.1"})
		if ev.Seq != uint64(i) || ev.Node != "alpha" || !ev.Time.Equal(clock.at(i)) ||
			ev.Type != TypeMember || ev.Action != ActionJoin || ev.Subject != "n"+strconv.Itoa(i) || ev.Attributes["addr"] != "10.0.0.1" {
			t.Errorf("Publish #%d = %+v", i, ev)
		}
	}
	if got := b.Stats().Published; got != 3 {
		t.Errorf("Stats().Published = %d, want 3", got)
	}
}

func TestBus_PublishStripsMonotonicClock(t *testing.T) {
	b := newTestBus(t, Config{}) // time.Now carries a monotonic reading
	ev := b.Publish(TypeMember, ActionJoin, "n2", nil)
	if ev.Time != ev.Time.Round(0) {
		t.Errorf("event time %v keeps a monotonic reading", ev.Time)
	}
}

func TestBus_PublishClonesAttributes(t *testing.T) {
	b := newTestBus(t, Config{})
	s := subscribe(t, b, SubscribeOptions{})
	attrs := map[string]string{"status": "alive"}
	b.Publish(TypeMember, ActionUpdate, "n2", attrs)
	attrs["status"] = "changed" // the caller reuses its map
	attrs["extra"] = "x"
	ev := recv(t, s)
	if ev.Attributes["status"] != "alive" || len(ev.Attributes) != 1 {
		t.Errorf("delivered attributes %v changed with the caller's map", ev.Attributes)
	}
}

// TestBus_OrderingConcurrentPublishers checks that a subscriber sees one
// timeline: every Seq once, in order, and each publisher's events in the
// order it published them.
func TestBus_OrderingConcurrentPublishers(t *testing.T) {
	const publishers, each = 4, 500
	b := newTestBus(t, Config{SubscriberBuffer: publishers * each}) // room for all: no drops
	s := subscribe(t, b, SubscribeOptions{})

	var wg sync.WaitGroup
	for p := range publishers {
		wg.Go(func() {
			for i := range each {
				b.Publish(TypeMember, ActionUpdate, "p"+strconv.Itoa(p), map[string]string{"i": strconv.Itoa(i)})
			}
		})
	}
	lastPerPublisher := map[string]int{}
	for want := uint64(1); want <= publishers*each; want++ {
		ev := recv(t, s)
		if ev.Seq != want {
			t.Fatalf("got Seq %d, want %d", ev.Seq, want)
		}
		i, _ := strconv.Atoi(ev.Attributes["i"])
		if last, ok := lastPerPublisher[ev.Subject]; ok && i != last+1 {
			t.Fatalf("publisher %s: event %d after %d", ev.Subject, i, last)
		}
		lastPerPublisher[ev.Subject] = i
	}
	wg.Wait()
}

func TestBus_ReplayAfter(t *testing.T) {
	tests := []struct {
		name  string
		ring  int
		after uint64
		want  []string // after publishing 10, then one live event (seq 11)
	}{
		{name: "within ring", ring: 16, after: 7, want: seqs(8, 11)},
		{name: "at newest is live only", ring: 16, after: 10, want: seqs(11, 11)},
		{name: "beyond newest is live only", ring: 16, after: 1000, want: seqs(11, 11)},
		{name: "at ring edge", ring: 4, after: 6, want: seqs(7, 11)},
		{name: "older than ring gets a lagged marker", ring: 4, after: 3, want: append([]string{lagged(3, 4, 6)}, seqs(7, 11)...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newTestBus(t, Config{RingSize: tt.ring})
			publishN(b, 10)
			s := subscribe(t, b, SubscribeOptions{After: tt.after})
			publishN(b, 1)
			if got := recvN(t, s, len(tt.want)); !equalStrings(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestBus_LiveOnly(t *testing.T) {
	b := newTestBus(t, Config{})
	publishN(b, 5)
	s := subscribe(t, b, SubscribeOptions{})
	publishN(b, 2)
	if got, want := recvN(t, s, 2), seqs(6, 7); !equalStrings(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestBus_ReplaySince(t *testing.T) {
	clock := newFakeClock()
	tests := []struct {
		name  string
		ring  int
		since time.Time
		want  []string // after publishing 10 (event n at clock.at(n)), then seq 11
	}{
		{name: "inclusive", ring: 16, since: clock.at(8), want: seqs(8, 11)},
		{name: "between events", ring: 16, since: clock.at(8).Add(-time.Millisecond), want: seqs(8, 11)},
		{name: "everything", ring: 16, since: time.Unix(0, 0), want: seqs(1, 11)},
		{name: "future is live only", ring: 16, since: clock.at(100), want: seqs(11, 11)},
		{name: "window within retained", ring: 4, since: clock.at(7), want: seqs(7, 11)},
		{
			name: "window reaches evicted events", ring: 4, since: clock.at(5),
			want: append([]string{lagged(6, 1, 6)}, seqs(7, 11)...),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			b := newTestBus(t, Config{RingSize: tt.ring, Now: clock.Now})
			publishN(b, 10)
			s := subscribe(t, b, SubscribeOptions{Since: tt.since})
			publishN(b, 1)
			got := recvN(t, s, len(tt.want))
			if !equalStrings(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestBus_ReplaySinceClockSteppedBack(t *testing.T) {
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	times := []time.Time{base.Add(10 * time.Second), base.Add(time.Second), base.Add(20 * time.Second)}
	var mu sync.Mutex
	now := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		t := times[0]
		times = times[1:]
		return t
	}
	b := newTestBus(t, Config{Now: now})
	publishN(b, 3)
	s := subscribe(t, b, SubscribeOptions{Since: base.Add(5 * time.Second)})
	if got, want := recvN(t, s, 2), []string{"1", "3"}; !equalStrings(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestBus_ReplayAndLiveFiltered(t *testing.T) {
	b := newTestBus(t, Config{})
	b.Publish(TypeMember, ActionJoin, "n2", nil)   // 1
	b.Publish(TypeMember, ActionFailed, "n2", nil) // 2
	b.Publish(TypeMember, ActionJoin, "n3", nil)   // 3
	f, err := ParseFilter([]string{"action=failed", "action=leave", "type=member"})
	if err != nil {
		t.Fatal(err)
	}
	s := subscribe(t, b, SubscribeOptions{Filter: f, Since: time.Unix(0, 0)})
	b.Publish(TypeMember, ActionJoin, "n4", nil)   // 4
	b.Publish(TypeMember, ActionLeave, "n3", nil)  // 5
	b.Publish("service", ActionLeave, "web", nil)  // 6
	b.Publish(TypeMember, ActionFailed, "n4", nil) // 7
	if got, want := recvN(t, s, 3), []string{"2", "5", "7"}; !equalStrings(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestBus_ReplayLargerThanBuffer replays far more events than the
// subscriber buffer holds, with live events arriving during the replay.
func TestBus_ReplayLargerThanBuffer(t *testing.T) {
	b := newTestBus(t, Config{RingSize: 2000, SubscriberBuffer: 2})
	publishN(b, 1000)
	s := subscribe(t, b, SubscribeOptions{After: 1})
	for want := uint64(2); want <= 1000; want++ {
		if ev := recv(t, s); ev.Seq != want {
			t.Fatalf("replay: got %s, want Seq %d", describe(ev), want)
		}
	}
	if d := s.Dropped(); d != 0 {
		t.Errorf("Dropped = %d after replay alone, want 0", d)
	}

	// Live events published while a second replay is being consumed may
	// overflow the small buffer; the stream must still account for every
	// Seq in order.
	s2 := subscribe(t, b, SubscribeOptions{After: 1})
	done := make(chan struct{})
	go func() {
		defer close(done)
		publishN(b, 500)
	}()
	var c streamChecker
	for c.next != 1501 {
		if err := c.check(recv(t, s2)); err != nil {
			t.Fatal(err)
		}
	}
	<-done
	if c.missed != s2.Dropped() {
		t.Errorf("markers report %d missed, Dropped = %d", c.missed, s2.Dropped())
	}
}

func TestBus_SubscribeAfterAndSinceRejected(t *testing.T) {
	b := newTestBus(t, Config{})
	_, err := b.Subscribe(SubscribeOptions{After: 3, Since: time.Unix(0, 0)})
	if !errors.Is(err, ErrInvalidOptions) {
		t.Fatalf("Subscribe = %v, want ErrInvalidOptions", err)
	}
	if got := b.Stats().Subscribers; got != 0 {
		t.Errorf("Subscribers = %d after a rejected Subscribe, want 0", got)
	}
}

func TestBus_Stats(t *testing.T) {
	b := newTestBus(t, Config{SubscriberBuffer: 1})
	slow := subscribe(t, b, SubscribeOptions{})
	other := subscribe(t, b, SubscribeOptions{})
	publishN(b, 3) // each subscription holds 1 and drops 2
	want := Stats{Published: 3, Subscribers: 2, Dropped: 4}
	if got := b.Stats(); got != want {
		t.Errorf("Stats() = %+v, want %+v", got, want)
	}
	other.Close()
	slow.Close()
	want = Stats{Published: 3, Subscribers: 0, Dropped: 4} // closed subscriptions still count
	if got := b.Stats(); got != want {
		t.Errorf("after Close, Stats() = %+v, want %+v", got, want)
	}
}

func TestBus_Close(t *testing.T) {
	b := newTestBus(t, Config{})
	reading := subscribe(t, b, SubscribeOptions{})
	idle := subscribe(t, b, SubscribeOptions{}) // never read: run is blocked sending
	publishN(b, 3)
	recv(t, reading)

	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	// Close waited for the delivery goroutines, so both channels are closed
	// now; at most the event run was already offering may still arrive.
	for _, s := range []*Subscription{reading, idle} {
		waitClosed(t, s)
	}
	if ev := b.Publish(TypeMember, ActionJoin, "late", nil); ev.Seq != 0 || !ev.Time.IsZero() {
		t.Errorf("Publish after Close = %+v, want the zero Event", ev)
	}
	if got := b.Stats(); got.Published != 3 || got.Subscribers != 0 {
		t.Errorf("Stats() after Close = %+v, want 3 published, 0 subscribers", got)
	}
	if _, err := b.Subscribe(SubscribeOptions{}); !errors.Is(err, ErrClosed) {
		t.Errorf("Subscribe after Close = %v, want ErrClosed", err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := idle.Close(); err != nil {
		t.Errorf("Subscription.Close after Bus.Close: %v", err)
	}
}

func TestBus_CloseConcurrent(t *testing.T) {
	b := newTestBus(t, Config{})
	var subs []*Subscription
	for range 8 {
		subs = append(subs, subscribe(t, b, SubscribeOptions{}))
	}
	publishN(b, 10)
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() { b.Close() })
	}
	for _, s := range subs {
		wg.Go(func() { s.Close() })
	}
	wg.Go(func() { publishN(b, 10) })
	wg.Wait()
	for _, s := range subs {
		waitClosed(t, s)
	}
}

// TestBus_NoGoroutineLeak counts goroutines around a bus's whole life.
func TestBus_NoGoroutineLeak(t *testing.T) {
	before := runtime.NumGoroutine()

	b, err := New(Config{Node: "n1", SubscriberBuffer: 4})
	if err != nil {
		t.Fatal(err)
	}
	var subs []*Subscription
	for i := range 20 {
		s, err := b.Subscribe(SubscribeOptions{After: uint64(i)})
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, s)
	}
	publishN(b, 50)
	recv(t, subs[0])
	subs[1].Close()
	if n := runtime.NumGoroutine(); n < before+len(subs)-1 {
		t.Fatalf("NumGoroutine = %d with %d subscriptions, want at least %d", n, len(subs)-1, before+len(subs)-1)
	}
	b.Close()

	deadline := time.Now().Add(waitTimeout)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("NumGoroutine = %d after Close, want %d\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		runtime.Gosched()
	}
}

// TestBus_SynctestNoLeak runs a bus in a synctest bubble, which fails the
// test if any goroutine the bus started is still blocked at the end.
func TestBus_SynctestNoLeak(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, err := New(Config{Node: "n1", SubscriberBuffer: 2})
		if err != nil {
			t.Fatal(err)
		}
		var subs []*Subscription
		for i := range 5 {
			s, err := b.Subscribe(SubscribeOptions{After: uint64(i)})
			if err != nil {
				t.Fatal(err)
			}
			subs = append(subs, s)
		}
		publishN(b, 10)
		recv(t, subs[0])
		synctest.Wait() // every delivery goroutine is now blocked
		subs[2].Close()
		b.Close()
	})
}

func BenchmarkPublish(b *testing.B) {
	for _, n := range []int{0, 10} {
		b.Run(fmt.Sprintf("subscribers=%d", n), func(b *testing.B) {
			bus := newTestBus(b, Config{})
			var wg sync.WaitGroup
			for range n {
				s := subscribe(b, bus, SubscribeOptions{})
				wg.Go(func() {
					for range s.C() {
					}
				})
			}
			attrs := map[string]string{"addr": "10.0.0.2:7946", "status": "alive"}
			b.ReportAllocs()
			for b.Loop() {
				bus.Publish(TypeMember, ActionUpdate, "n2", attrs)
			}
			b.StopTimer()
			bus.Close()
			wg.Wait()
		})
	}
}

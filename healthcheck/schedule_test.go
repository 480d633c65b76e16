package healthcheck

import (
	"context"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// The tests in this file run in a synctest bubble, where time is fake and
// advances only when every goroutine is blocked, so they can assert the
// probe schedule exactly without being slow or flaky.

// timedExec records when each probe of each target started (since its
// creation) and whether probes of one target overlapped, and takes d per
// probe.
type timedExec struct {
	d       time.Duration
	origin  time.Time
	mu      sync.Mutex
	starts  map[string][]time.Time
	running map[string]int
	overlap bool
}

func newTimedExec(d time.Duration) *timedExec {
	return &timedExec{d: d, origin: time.Now(), starts: map[string][]time.Time{}, running: map[string]int{}}
}

func (e *timedExec) exec(ctx context.Context, id string, _ []string) (int, []byte, error) {
	e.mu.Lock()
	e.starts[id] = append(e.starts[id], time.Now())
	e.running[id]++
	e.overlap = e.overlap || e.running[id] > 1
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		e.running[id]--
		e.mu.Unlock()
	}()
	select {
	case <-time.After(e.d):
		return 0, nil, nil
	case <-ctx.Done():
		return 1, nil, ctx.Err()
	}
}

func (e *timedExec) startsOf(id string) []time.Duration {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []time.Duration
	for _, s := range e.starts[id] {
		out = append(out, s.Sub(e.origin))
	}
	return out
}

func TestSchedule_IntervalAfterPreviousProbe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newTimedExec(300 * time.Millisecond)
		m, _ := New(Config{Exec: e.exec})
		defer m.Close()
		target := execTarget("job", 1)
		target.Check.Interval, target.Check.Timeout = time.Second, time.Second
		mustSet(t, m, target)
		time.Sleep(10 * time.Second)
		m.Close()

		starts := e.startsOf("job")
		if len(starts) < 5 {
			t.Fatalf("%d probes in 10s, want at least 5", len(starts))
		}
		// First probe an interval after Set, plus up to 10% jitter.
		if first := starts[0]; first < time.Second || first > 1100*time.Millisecond {
			t.Errorf("first probe after %v, want within [1s, 1.1s]", first)
		}
		// Each next one an interval after the previous ended.
		for i := 1; i < len(starts); i++ {
			if gap := starts[i] - starts[i-1]; gap != 1300*time.Millisecond {
				t.Errorf("probe %d came %v after the previous, want 1.3s (probe 300ms + interval 1s)", i, gap)
			}
		}
	})
}

func TestSchedule_SlowProbesNeverOverlap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Probes take 5 intervals but stay within the timeout.
		e := newTimedExec(500 * time.Millisecond)
		m, _ := New(Config{Exec: e.exec})
		defer m.Close()
		target := execTarget("job", 1)
		target.Check.Interval, target.Check.Timeout = 100*time.Millisecond, time.Second
		mustSet(t, m, target)
		time.Sleep(10 * time.Second)
		m.Close()
		if e.overlap {
			t.Error("probes of one target overlapped")
		}
		if n := len(e.startsOf("job")); n < 10 {
			t.Errorf("%d probes in 10s, want at least 10", n)
		}
		if st, _ := m.Status("job"); st.State == StateUnhealthy {
			t.Error("slow but timely probes made the target unhealthy")
		}
	})
}

func TestSchedule_InitialDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newTimedExec(0)
		m, _ := New(Config{Exec: e.exec})
		defer m.Close()
		target := execTarget("job", 1)
		target.Check.Interval, target.Check.InitialDelay = time.Second, 5*time.Second
		mustSet(t, m, target)
		time.Sleep(6200 * time.Millisecond)
		m.Close()
		starts := e.startsOf("job")
		if len(starts) != 2 || starts[0] < 5*time.Second || starts[0] > 5100*time.Millisecond {
			t.Errorf("probes at %v, want the first within [5s, 5.1s] and one more", starts)
		}
	})
}

func TestSchedule_FirstProbesJittered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newTimedExec(0)
		m, _ := New(Config{Exec: e.exec})
		defer m.Close()
		var targets []Target
		for i := range 100 {
			tg := execTarget(string(rune(0x4e00+i)), 1)
			tg.Check.Interval = time.Second
			targets = append(targets, tg)
		}
		mustSet(t, m, targets...)
		time.Sleep(1500 * time.Millisecond)
		m.Close()
		var firsts []time.Duration
		for _, tg := range targets {
			s := e.startsOf(tg.ID)
			if len(s) == 0 {
				t.Fatalf("%s never probed", tg.ID)
			}
			if s[0] < time.Second || s[0] > 1100*time.Millisecond {
				t.Errorf("%s first probed after %v, want within [1s, 1.1s]", tg.ID, s[0])
			}
			firsts = append(firsts, s[0])
		}
		slices.Sort(firsts)
		if n := len(slices.Compact(firsts)); n < 50 {
			t.Errorf("100 targets made their first probe at only %d distinct times", n)
		}
	})
}

func TestSchedule_TimeoutFailsAtTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newTimedExec(time.Hour)
		var rec recorder
		m, _ := New(rec.config(Config{Exec: e.exec}))
		defer m.Close()
		target := execTarget("job", 1)
		target.Check.Interval, target.Check.Timeout = time.Second, 2*time.Second
		mustSet(t, m, target)
		time.Sleep(5 * time.Second)
		m.Close()
		rs := rec.probes("job")
		if len(rs) == 0 {
			t.Fatal("no probe finished")
		}
		if r := rs[0]; r.OK || !r.TimedOut || r.Duration != 2*time.Second {
			t.Errorf("result = %+v, want a timeout after exactly 2s", r)
		}
	})
}

func TestSchedule_StartPeriodBoundary(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		var rec recorder
		m, _ := New(rec.config(Config{Exec: func(context.Context, string, []string) (int, []byte, error) {
			return 1, nil, nil
		}}))
		defer m.Close()
		target := execTarget("job", 2)
		target.Check.Interval, target.Check.StartPeriod = time.Second, 10*time.Second
		target.Started = t0
		mustSet(t, m, target)
		time.Sleep(20 * time.Second)
		m.Close()
		trs := rec.transitionsSince("job", 0)
		if len(trs) != 1 || trs[0].To != StateUnhealthy || trs[0].Status.FailingStreak != 2 {
			t.Fatalf("transitions %+v, want one, to unhealthy with a streak of 2", trs)
		}
		tr := trs[0]
		// Probes start every ~1s (jitter < 100ms once); the first that
		// counts starts at or after 10s, the second one a second later.
		if at := tr.Status.LastProbe.Sub(t0); at < 11*time.Second || at > 12200*time.Millisecond {
			t.Errorf("became unhealthy on the probe started at %v, want the second probe after 10s", at)
		}
	})
}

// scriptedExec records when probes start and answers with exit code
// codes(n) for the n-th probe (from 0).
type scriptedExec struct {
	origin time.Time
	codes  func(n int) int
	mu     sync.Mutex
	starts []time.Duration
}

func (e *scriptedExec) exec(ctx context.Context, id string, _ []string) (int, []byte, error) {
	e.mu.Lock()
	n := len(e.starts)
	e.starts = append(e.starts, time.Since(e.origin))
	e.mu.Unlock()
	return e.codes(n), nil, nil
}

func (e *scriptedExec) startsSoFar() []time.Duration {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.starts)
}

// With a start interval, a starting target is probed every start interval
// until the start period ends, then every interval; a target found healthy
// goes to the interval at once.
func TestSchedule_StartInterval(t *testing.T) {
	for _, tc := range []struct {
		name  string
		codes func(n int) int
		// want is each probe's start, allowing 10% jitter on the first.
		want []time.Duration
	}{
		{"never healthy", func(int) int { return 1 },
			[]time.Duration{1 * time.Second, 2 * time.Second, 3 * time.Second, 4 * time.Second, 5 * time.Second, 15 * time.Second, 25 * time.Second}},
		{"healthy at the third probe", func(n int) int { return min(1, max(0, 1-n/2)) },
			[]time.Duration{1 * time.Second, 2 * time.Second, 3 * time.Second, 13 * time.Second, 23 * time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e := &scriptedExec{origin: time.Now(), codes: tc.codes}
				m, _ := New(Config{Exec: e.exec})
				defer m.Close()
				target := execTarget("job", 3)
				target.Started = time.Now()
				target.Check.Interval, target.Check.Timeout = 10*time.Second, time.Second
				target.Check.StartPeriod, target.Check.StartInterval = 5*time.Second, time.Second
				mustSet(t, m, target)
				time.Sleep(tc.want[len(tc.want)-1] + 500*time.Millisecond)
				m.Close()
				got := e.startsSoFar()
				if len(got) != len(tc.want) {
					t.Fatalf("probes at %v, want %v", got, tc.want)
				}
				jitter := got[0] - tc.want[0] // the first delay's jitter shifts all
				if jitter < 0 || jitter > 100*time.Millisecond {
					t.Fatalf("first probe at %v, want within [%v, +100ms]", got[0], tc.want[0])
				}
				for i := range got {
					if got[i]-jitter != tc.want[i] {
						t.Errorf("probe %d at %v, want %v (+%v jitter)", i, got[i], tc.want[i], jitter)
					}
				}
			})
		})
	}
}

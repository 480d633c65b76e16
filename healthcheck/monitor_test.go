package healthcheck

import (
	"context"
	"errors"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestMonitor_StartPeriodFailuresDoNotCount(t *testing.T) {
	f := newFakeExec()
	f.on("job", exitCodes(1, 1, 1, 1, 1, 0, 1))
	var rec recorder
	m := newTestMonitor(t, rec.config(Config{Exec: f.exec}))
	target := execTarget("job", 1)
	target.Check.StartPeriod = time.Hour
	target.Started = time.Now()
	mustSet(t, m, target)
	// Five failures inside the start period change nothing, even with
	// Retries 1; the success makes it healthy and ends the start period,
	// so the next failure counts at once.
	equalWords(t, rec.waitTranscript(t, "job", 9), []string{
		"fail", "fail", "fail", "fail", "fail",
		"ok", "starting>healthy",
		"fail", "healthy>unhealthy",
	})
}

func TestMonitor_StartPeriodOverFailuresCount(t *testing.T) {
	f := newFakeExec()
	f.on("job", exitCodes(1))
	var rec recorder
	m := newTestMonitor(t, rec.config(Config{Exec: f.exec}))
	target := execTarget("job", 2)
	target.Check.StartPeriod = time.Minute
	target.Started = time.Now().Add(-time.Hour) // an adopted replica, long running
	mustSet(t, m, target)
	equalWords(t, rec.waitTranscript(t, "job", 3), []string{"fail", "fail", "starting>unhealthy"})
}

func TestMonitor_StartPeriodUsesConfigNow(t *testing.T) {
	// Config.Now an hour ahead: the start period of a target started
	// "now" by the wall clock is over by the monitor's clock.
	f := newFakeExec()
	f.on("job", exitCodes(1))
	var rec recorder
	m := newTestMonitor(t, rec.config(Config{Exec: f.exec, Now: func() time.Time { return time.Now().Add(time.Hour) }}))
	target := execTarget("job", 1)
	target.Check.StartPeriod = time.Minute
	target.Started = time.Now()
	mustSet(t, m, target)
	equalWords(t, rec.waitTranscript(t, "job", 2), []string{"fail", "starting>unhealthy"})
}

func TestMonitor_Flapping(t *testing.T) {
	t.Run("retries 3 never unhealthy", func(t *testing.T) {
		f := newFakeExec()
		f.on("job", alternate)
		var rec recorder
		m := newTestMonitor(t, rec.config(Config{Exec: f.exec}))
		mustSet(t, m, execTarget("job", 3))
		want := append([]string{"ok", "starting>healthy"}, repeat(15, "fail", "ok")...)
		equalWords(t, rec.waitTranscript(t, "job", len(want)), want)
	})
	t.Run("retries 1 alternates", func(t *testing.T) {
		f := newFakeExec()
		f.on("job", alternate)
		var rec recorder
		m := newTestMonitor(t, rec.config(Config{Exec: f.exec}))
		mustSet(t, m, execTarget("job", 1))
		want := append([]string{"ok", "starting>healthy"}, repeat(10, "fail", "healthy>unhealthy", "ok", "unhealthy>healthy")...)
		equalWords(t, rec.waitTranscript(t, "job", len(want)), want)
	})
}

func TestMonitor_TargetsProbeConcurrently(t *testing.T) {
	// The first probe of each target waits until the first probes of all
	// n targets have begun; they can all succeed only if the targets probe
	// concurrently (probed one after another, the first would time out).
	const n = 5
	var arrived atomic.Int32
	f := newFakeExec()
	var targets []Target
	for i := range n {
		id := string(rune('a' + i))
		f.on(id, func(ctx context.Context, _ int) (int, []byte, error) {
			arrived.Add(1)
			for arrived.Load() < n {
				select {
				case <-ctx.Done():
					return 0, nil, ctx.Err()
				case <-time.After(time.Millisecond):
				}
			}
			return 0, nil, nil
		})
		targets = append(targets, execTarget(id, 1))
	}
	var rec recorder
	m := newTestMonitor(t, rec.config(Config{Exec: f.exec}))
	mustSet(t, m, targets...)
	for _, tg := range targets {
		waitState(t, m, tg.ID, StateHealthy)
		if r := rec.probes(tg.ID)[0]; !r.OK {
			t.Errorf("first probe of %s failed: %q", tg.ID, r.Output)
		}
	}
}

func TestMonitor_SetRemovedTargetEmitsNothing(t *testing.T) {
	f := newFakeExec()
	f.on("flap", alternate) // with Retries 1, a transition on every probe
	var rec recorder
	m := newTestMonitor(t, rec.config(Config{Exec: f.exec}))
	flap, steady := execTarget("flap", 1), execTarget("steady", 1)
	for round := range 3 {
		mustSet(t, m, flap, steady)
		waitFor(t, "flap to flap", func() bool { return len(rec.transitionsSince("flap", 0)) >= 4*(round+1) })
		mustSet(t, m, steady)
		mark := rec.len()
		if _, ok := m.Status("flap"); ok {
			t.Fatal("Status(flap) found after its removal")
		}
		if _, ok := m.Statuses()["flap"]; ok {
			t.Fatal("Statuses() has flap after its removal")
		}
		// Let the steady target probe a few times: time for the removed
		// one to misbehave if it could.
		probes := len(rec.probes("steady"))
		waitFor(t, "steady to probe", func() bool { return len(rec.probes("steady")) >= probes+5 })
		if trs := rec.transitionsSince("flap", mark); len(trs) > 0 {
			t.Fatalf("round %d: removed target emitted %d transitions after Set returned: %+v", round, len(trs), trs)
		}
		f.on("flap", alternate) // a re-added target starts afresh
	}
}

func TestMonitor_SetUnchangedIsNoop(t *testing.T) {
	f := newFakeExec()
	var rec recorder
	m := newTestMonitor(t, rec.config(Config{Exec: f.exec}))
	started := time.Now().Add(-time.Minute)
	target := func() Target {
		tg := execTarget("job", 1) // a fresh Command slice each time
		tg.Started = started
		return tg
	}
	mustSet(t, m, target())
	before := waitState(t, m, "job", StateHealthy)
	for range 100 {
		mustSet(t, m, target())
	}
	calls := f.count("job")
	waitFor(t, "probes to go on", func() bool { return f.count("job") >= calls+3 })
	after, _ := m.Status("job")
	if after.State != StateHealthy || !after.Since.Equal(before.Since) {
		t.Errorf("status after unchanged Sets = %+v, want healthy since %v", after, before.Since)
	}
	if trs := rec.transitionsSince("job", 0); len(trs) != 1 {
		t.Errorf("got %d transitions, want only starting>healthy: %+v", len(trs), trs)
	}
}

func TestMonitor_SetChangedRestarts(t *testing.T) {
	started := time.Now().Add(-time.Minute)
	tests := []struct {
		name   string
		change func(*Target)
	}{
		{"interval", func(tg *Target) { tg.Check.Interval = 2 * testInterval }},
		{"command", func(tg *Target) { tg.Check.Command = []string{"other"} }},
		{"retries", func(tg *Target) { tg.Check.Retries = 2 }},
		{"start period", func(tg *Target) { tg.Check.StartPeriod = time.Second }},
		{"addr", func(tg *Target) { tg.Addr = localhost }},
		{"started later (the replica restarted)", func(tg *Target) { tg.Started = started.Add(time.Second) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeExec()
			var rec recorder
			m := newTestMonitor(t, rec.config(Config{Exec: f.exec}))
			target := execTarget("job", 1)
			target.Started = started
			mustSet(t, m, target)
			waitState(t, m, "job", StateHealthy)
			tt.change(&target)
			mustSet(t, m, target)
			// The restart's transition is emitted before Set returns.
			got := rec.transcript("job")
			if got[len(got)-1] != "healthy>starting" {
				t.Fatalf("transcript after the change ends %q, want healthy>starting", got[len(got)-1])
			}
			if st, _ := m.Status("job"); st.State != StateStarting || st.FailingStreak != 0 || !st.LastProbe.IsZero() {
				t.Errorf("status after the change = %+v, want a fresh starting one", st)
			}
			waitState(t, m, "job", StateHealthy)
		})
	}
	t.Run("started earlier or zero is no restart", func(t *testing.T) {
		f := newFakeExec()
		var rec recorder
		m := newTestMonitor(t, rec.config(Config{Exec: f.exec}))
		target := execTarget("job", 1)
		target.Started = started
		mustSet(t, m, target)
		waitState(t, m, "job", StateHealthy)
		for _, s := range []time.Time{started.Add(-time.Second), {}, started} {
			target.Started = s
			mustSet(t, m, target)
		}
		if st, _ := m.Status("job"); st.State != StateHealthy {
			t.Errorf("state = %s, want still healthy", st.State)
		}
	})
}

func TestMonitor_SetErrors(t *testing.T) {
	f := newFakeExec()
	m := newTestMonitor(t, Config{Exec: f.exec})
	mustSet(t, m, execTarget("a", 1), execTarget("b", 1))
	waitState(t, m, "b", StateHealthy)

	bad := execTarget("b", 1)
	bad.Check.Command = nil
	err := m.Set([]Target{execTarget("a", 1), execTarget("a", 2), bad, execTarget("c", 1)})
	for _, want := range []string{`target "a": duplicate id`, `target "b": command is missing`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Set() = %v, want an error with %q", err, want)
		}
	}
	// The valid targets are applied (a as first given, unchanged), the
	// invalid b removed.
	got := slices.Sorted(func(yield func(string) bool) {
		for id := range m.Statuses() {
			yield(id)
		}
	})
	if !slices.Equal(got, []string{"a", "c"}) {
		t.Errorf("targets after Set = %q, want [a c]", got)
	}

	noExec := newTestMonitor(t, Config{})
	if err := noExec.Set([]Target{execTarget("a", 1)}); err == nil || !strings.Contains(err.Error(), "no Config.Exec") {
		t.Errorf("Set(exec target) without Exec = %v, want an error", err)
	}

	m.Close()
	if err := m.Set(nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Set after Close = %v, want ErrClosed", err)
	}
	m.Reset("a") // ignored, must not panic or start anything
	if len(m.Statuses()) != 0 {
		t.Errorf("Statuses after Close = %v, want none", m.Statuses())
	}
}

func TestMonitor_Reset(t *testing.T) {
	f := newFakeExec()
	f.on("job", exitCodes(1))
	var rec recorder
	m := newTestMonitor(t, rec.config(Config{Exec: f.exec}))
	target := execTarget("job", 1)
	target.Check.StartPeriod = time.Hour
	target.Started = time.Now().Add(-2 * time.Hour) // start period long over
	mustSet(t, m, target)
	equalWords(t, rec.waitTranscript(t, "job", 2), []string{"fail", "starting>unhealthy"})

	m.Reset("job")
	got := rec.transcript("job")
	if got[len(got)-1] != "unhealthy>starting" {
		t.Fatalf("transcript after Reset ends %q, want unhealthy>starting", got[len(got)-1])
	}
	mark := len(got)
	// A fresh start period: failures no longer count, though Set keeps
	// passing the old Started (no restart either: it is not later).
	for range 3 {
		mustSet(t, m, target)
	}
	equalWords(t, rec.waitTranscript(t, "job", mark+5)[mark:], []string{"fail", "fail", "fail", "fail", "fail"})
	if st, _ := m.Status("job"); st.State != StateStarting || st.FailingStreak != 0 {
		t.Errorf("status = %+v, want starting with no streak", st)
	}

	// Reset of a starting target emits nothing; of an unknown one, nothing.
	m.Reset("job")
	m.Reset("nobody")
	if got := rec.transcript("job"); slices.Contains(got[mark:], "starting>starting") {
		t.Errorf("Reset of a starting target emitted a transition: %q", got[mark:])
	}
}

func TestMonitor_Changed(t *testing.T) {
	f := newFakeExec()
	m := newTestMonitor(t, Config{Exec: f.exec})
	select {
	case <-m.Changed():
		t.Fatal("Changed before any transition")
	default:
	}
	mustSet(t, m, execTarget("job", 1))
	waitState(t, m, "job", StateHealthy)
	select {
	case <-m.Changed():
	default:
		t.Fatal("no wake-up on Changed after a transition")
	}
}

func TestMonitor_CloseCancelsProbes(t *testing.T) {
	cancelled := make(chan error, 1) // one target, one probe in flight
	f := newFakeExec()
	f.on("job", func(ctx context.Context, _ int) (int, []byte, error) {
		<-ctx.Done()
		cancelled <- ctx.Err()
		return 0, nil, ctx.Err()
	})
	var rec recorder
	m := newTestMonitor(t, rec.config(Config{Exec: f.exec}))
	target := execTarget("job", 1)
	target.Check.Timeout = time.Hour
	mustSet(t, m, target)
	waitFor(t, "the probe to start", func() bool { return f.count("job") == 1 })
	closed := make(chan struct{})
	go func() {
		m.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(waitDeadline):
		t.Fatal("Close did not return")
	}
	if err := <-cancelled; !errors.Is(err, context.Canceled) {
		t.Errorf("probe context ended with %v, want context.Canceled", err)
	}
	if n := rec.len(); n != 0 {
		t.Errorf("a probe cut short by Close was reported: %d entries", n)
	}
	if err := m.Close(); err != nil { // idempotent
		t.Errorf("second Close = %v", err)
	}
}

func TestMonitor_CloseLeaksNothing(t *testing.T) {
	tcpPort := newTCPListener(t)
	web := newHTTPServer(t, "/", func(http.ResponseWriter, *http.Request) {})
	f := newFakeExec()
	f.on("blocked", func(ctx context.Context, _ int) (int, []byte, error) {
		<-ctx.Done()
		return 0, nil, ctx.Err()
	})
	base := runtime.NumGoroutine()

	var rec recorder
	m, err := New(rec.config(Config{Exec: f.exec}))
	if err != nil {
		t.Fatal(err)
	}
	var targets []Target
	for i := range 20 {
		c := fastCheck(KindTCP, 1)
		c.Port = tcpPort
		targets = append(targets, Target{ID: "tcp" + string(rune('a'+i)), Addr: localhost, Check: c})
	}
	web.ID = "web"
	blocked := execTarget("blocked", 1)
	blocked.Check.Timeout = time.Hour
	targets = append(targets, web, execTarget("exec", 1), blocked)
	mustSet(t, m, targets...)
	for _, id := range []string{"tcpa", "tcpt", "web", "exec"} {
		waitState(t, m, id, StateHealthy)
	}
	waitFor(t, "the blocked probe to start", func() bool { return f.count("blocked") == 1 })
	mustSet(t, m, targets[:10]...) // stop some through Set too
	m.Close()
	n := rec.len()

	waitFor(t, "goroutines to exit", func() bool { return runtime.NumGoroutine() <= base })
	if got := rec.len(); got != n {
		t.Errorf("%d callbacks after Close returned", got-n)
	}
}

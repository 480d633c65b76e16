package healthcheck

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"
)

// Test timings: probes are fast so the package's tests take seconds, and
// timeouts generous so a loaded 2-core machine running -race never fails a
// probe that should pass. Tests assert on states and counts, and wait by
// polling with waitDeadline.
const (
	testInterval = 10 * time.Millisecond
	testTimeout  = 5 * time.Second
	waitDeadline = 30 * time.Second
)

var localhost = netip.MustParseAddr("127.0.0.1")

// recorder records every probe result and transition in the order the
// monitor reports them. Both callbacks of one target run on one goroutine
// (or under its emit lock), so a target's transcript is exact.
type recorder struct {
	mu  sync.Mutex
	log []entry
}

type entry struct {
	id    string
	probe *ProbeResult
	tr    *Transition
}

// config returns cfg with the recorder's callbacks.
func (r *recorder) config(cfg Config) Config {
	cfg.OnProbe = func(p ProbeResult) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.log = append(r.log, entry{id: p.ID, probe: &p})
	}
	cfg.OnTransition = func(t Transition) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.log = append(r.log, entry{id: t.ID, tr: &t})
	}
	return cfg
}

// transcript returns id's record as words: "ok" and "fail" for probes,
// "from>to" for transitions.
func (r *recorder) transcript(id string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.log {
		switch {
		case e.id != id:
		case e.probe != nil && e.probe.OK:
			out = append(out, "ok")
		case e.probe != nil:
			out = append(out, "fail")
		default:
			out = append(out, fmt.Sprintf("%s>%s", e.tr.From, e.tr.To))
		}
	}
	return out
}

// probes returns id's probe results.
func (r *recorder) probes(id string) []ProbeResult {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []ProbeResult
	for _, e := range r.log {
		if e.id == id && e.probe != nil {
			out = append(out, *e.probe)
		}
	}
	return out
}

// transitions returns id's transitions after the first skip log entries
// (of any target).
func (r *recorder) transitionsSince(id string, skip int) []Transition {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Transition
	for _, e := range r.log[skip:] {
		if e.id == id && e.tr != nil {
			out = append(out, *e.tr)
		}
	}
	return out
}

// len returns the number of entries recorded so far.
func (r *recorder) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.log)
}

// waitTranscript waits until id's transcript has at least n words and
// returns its first n.
func (r *recorder) waitTranscript(t *testing.T, id string, n int) []string {
	t.Helper()
	var got []string
	waitFor(t, fmt.Sprintf("%d transcript words of %s", n, id), func() bool {
		got = r.transcript(id)
		return len(got) >= n
	})
	return got[:n]
}

// waitFor polls cond until it holds, failing the test after waitDeadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitDeadline)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", waitDeadline, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// waitState waits until target id of m is in state want.
func waitState(t *testing.T, m *Monitor, id string, want State) Status {
	t.Helper()
	var st Status
	waitFor(t, fmt.Sprintf("%s to be %s", id, want), func() bool {
		var ok bool
		st, ok = m.Status(id)
		return ok && st.State == want
	})
	return st
}

// newTestMonitor returns a monitor for cfg, closed when the test ends.
func newTestMonitor(t *testing.T, cfg Config) *Monitor {
	t.Helper()
	m, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// mustSet calls m.Set and fails the test on an error.
func mustSet(t *testing.T, m *Monitor, targets ...Target) {
	t.Helper()
	if err := m.Set(targets); err != nil {
		t.Fatalf("Set: %v", err)
	}
}

// fastCheck returns a check of kind k with the test timings.
func fastCheck(k Kind, retries int) Check {
	return Check{Kind: k, Interval: testInterval, Timeout: testTimeout, Retries: retries}
}

// fakeExec is a Config.Exec whose outcome per target is scripted by call
// number (counting from 1).
type fakeExec struct {
	mu     sync.Mutex
	calls  map[string]int
	script map[string]func(ctx context.Context, n int) (int, []byte, error)
}

func newFakeExec() *fakeExec {
	return &fakeExec{calls: map[string]int{}, script: map[string]func(context.Context, int) (int, []byte, error){}}
}

// on scripts target id.
func (f *fakeExec) on(id string, fn func(ctx context.Context, n int) (int, []byte, error)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.script[id] = fn
	f.calls[id] = 0
}

// count returns how often id was probed.
func (f *fakeExec) count(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[id]
}

func (f *fakeExec) exec(ctx context.Context, id string, argv []string) (int, []byte, error) {
	f.mu.Lock()
	f.calls[id]++
	n, fn := f.calls[id], f.script[id]
	f.mu.Unlock()
	if fn == nil {
		return 0, []byte("ok"), nil
	}
	return fn(ctx, n)
}

// exitCodes returns a script that exits with codes[n-1], repeating the
// last code after the end.
func exitCodes(codes ...int) func(context.Context, int) (int, []byte, error) {
	return func(_ context.Context, n int) (int, []byte, error) {
		return codes[min(n, len(codes))-1], nil, nil
	}
}

// alternate returns a script that succeeds on odd calls and fails on even.
func alternate(_ context.Context, n int) (int, []byte, error) {
	return 1 - n%2, nil, nil
}

// execTarget returns an exec target with the test timings.
func execTarget(id string, retries int) Target {
	c := fastCheck(KindExec, retries)
	c.Command = []string{"check", id}
	return Target{ID: id, Check: c}
}

// repeat returns n copies of the words.
func repeat(n int, words ...string) []string {
	var out []string
	for range n {
		out = append(out, words...)
	}
	return out
}

// equalWords compares transcripts for the error message.
func equalWords(t *testing.T, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("transcript\n got %q\nwant %q", got, want)
	}
}

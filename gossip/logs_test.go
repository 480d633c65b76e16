package gossip

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// recordHandler keeps the records it is given.
type recordHandler struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (h *recordHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.recs = append(h.recs, r)
	return nil
}
func (h *recordHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordHandler) WithGroup(string) slog.Handler      { return h }

func TestLimitHandler(t *testing.T) {
	rec := &recordHandler{}
	c := &refusals{}
	lg := newLimitedLogger(slog.New(rec)).With("component", "gossip")
	std := newStdLogger(lg, c)
	for i := range 1000 {
		std.Printf("[ERR] memberlist: Decrypt packet failed: no installed keys could decrypt the message from=10.0.0.%d:7946", i%250)
	}
	for range 3 {
		lg.Info("info lines are never limited")
	}
	if got := len(rec.recs); got != logBurst+3 {
		t.Fatalf("%d records passed, want %d warnings and 3 info lines", got, logBurst)
	}
	if n := c.undecryptablePackets.Load(); n != 1000 {
		t.Errorf("counted %d undecryptable packets, want 1000", n)
	}
	if n := c.undecryptableStreams.Load(); n != 0 {
		t.Errorf("a packet counted as a stream: %d", n)
	}

	// After the window, the next one passes and says what was dropped.
	lim := &logLimiter{kinds: map[string]*logKind{}}
	t0 := time.Unix(0, 0)
	for i := range 20 {
		lim.allow("k", t0.Add(time.Duration(i)*time.Millisecond))
	}
	ok, suppressed := lim.allow("k", t0.Add(logWindow+time.Second))
	if !ok || suppressed != 15 {
		t.Errorf("after the window: allowed %v, suppressed %d; want true, 15", ok, suppressed)
	}
	// A flood of distinct kinds is bounded too.
	passed := 0
	for i := range 10 * logKinds {
		if ok, _ := lim.allow(strings.Repeat("x", i%97)+string(rune('a'+i%26))+string(rune(i)), t0.Add(logWindow+2*time.Second)); ok {
			passed++
		}
	}
	if passed > logKinds {
		t.Errorf("%d distinct kinds passed, want at most %d", passed, logKinds)
	}
}

func TestLogKindOf(t *testing.T) {
	for msg, want := range map[string]string{
		"memberlist: Decrypt packet failed: no installed keys from=1.2.3.4:5": "memberlist: Decrypt packet failed",
		"serf: received old event o.sd from time 3 (current: 900)":            "serf: received old event o.sd from time # (current",
		"serf: received old event o.sd from time 3127 (current: 900)":         "serf: received old event o.sd from time # (current",
		"refused store sync": "refused store sync",
	} {
		if got := logKindOf(msg); got != want {
			t.Errorf("logKindOf(%q) = %q, want %q", msg, got, want)
		}
	}
}

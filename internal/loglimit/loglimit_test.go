package loglimit

import (
	"context"
	"fmt"
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

func TestNew(t *testing.T) {
	rec := &recordHandler{}
	lg := New(slog.New(rec)).With("component", "x")
	for i := range 1000 {
		lg.Warn(fmt.Sprintf("memberlist: Decrypt packet failed: no key from=10.0.0.%d:7946", i%250))
		lg.Error("refused store sync", "remote", fmt.Sprint(i))
	}
	for range 3 {
		lg.Info("info lines are never limited")
	}
	if got := len(rec.recs); got != 2*Burst+3 {
		t.Fatalf("%d records passed, want %d of each warning and 3 info lines", got, Burst)
	}
}

func TestLimiter(t *testing.T) {
	lim := newLimiter()
	t0 := time.Unix(0, 0)
	for i := range 20 {
		lim.allow("k", t0.Add(time.Duration(i)*time.Millisecond))
	}
	// After the window, the next one passes and says what was dropped.
	ok, suppressed := lim.allow("k", t0.Add(Window+time.Second))
	if !ok || suppressed != 15 {
		t.Errorf("after the window: allowed %v, suppressed %d; want true, 15", ok, suppressed)
	}
	// A flood of distinct kinds is bounded too.
	passed := 0
	for i := range 10 * maxKinds {
		if ok, _ := lim.allow(strings.Repeat("x", i%97)+string(rune('a'+i%26))+string(rune(i)), t0.Add(Window+2*time.Second)); ok {
			passed++
		}
	}
	if passed > maxKinds {
		t.Errorf("%d distinct kinds passed, want at most %d", passed, maxKinds)
	}
}

func TestKind(t *testing.T) {
	for msg, want := range map[string]string{
		"memberlist: Decrypt packet failed: no installed keys from=1.2.3.4:5":               "memberlist: Decrypt packet failed",
		"serf: received old event o.sd from time 3 (current: 900)":                          "serf: received old event o.sd from time # (current",
		"serf: received old event o.sd from time 3127 (current: 900)":                       "serf: received old event o.sd from time # (current",
		"http: TLS handshake error from 10.0.0.7:51234: remote error: tls: bad certificate": "http: TLS handshake error from #.#.#.#",
		"refused store sync": "refused store sync",
	} {
		if got := Kind(msg); got != want {
			t.Errorf("Kind(%q) = %q, want %q", msg, got, want)
		}
	}
}

// Package loglimit rate-limits warnings that outsiders can cause: every
// junk packet, replayed stream or failed TLS handshake is refused one by
// one, and one warning each would let a sender fill the node's disk at
// line rate. Callers count such refusals themselves; the log keeps a
// sample.
package loglimit

import (
	"context"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"time"
)

const (
	// Burst warnings of one kind pass per Window; the first one after
	// that says how many were suppressed.
	Burst  = 5
	Window = 10 * time.Second
	// maxKinds bounds the kinds remembered.
	maxKinds = 256
)

func newLimiter() *limiter { return &limiter{kinds: map[string]*kind{}} }

// handler passes warnings and errors at most Burst per kind per
// Window; other levels pass.
type handler struct {
	slog.Handler
	lim *limiter
}

type limiter struct {
	mu    sync.Mutex
	kinds map[string]*kind
}

type kind struct {
	start      time.Time
	n          int
	suppressed int
}

// New returns a logger that passes l's warnings and errors at most Burst
// per kind of message per Window; the first one after that carries
// suppressed=N. Other levels pass.
func New(l *slog.Logger) *slog.Logger {
	return slog.New(handler{Handler: l.Handler(), lim: newLimiter()})
}

func (h handler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelWarn {
		return h.Handler.Handle(ctx, r)
	}
	ok, suppressed := h.lim.allow(Kind(r.Message), r.Time)
	if !ok {
		return nil
	}
	if suppressed > 0 {
		r.AddAttrs(slog.Int("suppressed", suppressed))
	}
	return h.Handler.Handle(ctx, r)
}

func (h handler) WithAttrs(as []slog.Attr) slog.Handler {
	return handler{Handler: h.Handler.WithAttrs(as), lim: h.lim}
}

func (h handler) WithGroup(name string) slog.Handler {
	return handler{Handler: h.Handler.WithGroup(name), lim: h.lim}
}

// allow reports whether a warning of kind k may be logged at now, and how
// many of its kind were suppressed before it.
func (l *limiter) allow(k string, now time.Time) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	kd := l.kinds[k]
	if kd == nil {
		if len(l.kinds) >= maxKinds {
			for name, old := range l.kinds {
				if now.Sub(old.start) >= Window {
					delete(l.kinds, name)
				}
			}
			if len(l.kinds) >= maxKinds {
				return false, 0 // too many kinds at once: a flood of its own
			}
		}
		kd = &kind{start: now}
		l.kinds[k] = kd
	}
	if now.Sub(kd.start) >= Window {
		kd.start, kd.n = now, 0
	}
	if kd.n >= Burst {
		kd.suppressed++
		return false, 0
	}
	kd.n++
	s := kd.suppressed
	kd.suppressed = 0
	return true, s
}

// Kind is a message without its variable part: structured messages are
// constant; library lines read "component: what: detail", with numbers
// (times, addresses) inside "what" at times.
func Kind(msg string) string {
	if i := strings.Index(msg, ": "); i >= 0 {
		if j := strings.Index(msg[i+2:], ":"); j >= 0 {
			msg = msg[:i+2+j]
		}
	}
	return digitsRE.ReplaceAllString(msg[:min(len(msg), 80)], "#")
}

var digitsRE = regexp.MustCompile(`[0-9]+`)

package gossip

import (
	"context"
	"log"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Logs of what anyone who reaches the gossip port can cause: junk,
// replayed or foreign packets and streams are refused one by one, and each
// refusal used to be a warning, so a sender could fill the node's disk
// at line rate. Refusals are counted instead ([Stats]), and warnings are
// rate-limited per kind of message.

const (
	// logBurst warnings of one kind pass per logWindow; the first one
	// after that says how many were suppressed.
	logBurst  = 5
	logWindow = 10 * time.Second
	// logKinds bounds the kinds remembered.
	logKinds = 256
)

// refusals counts what the node refused, by kind.
type refusals struct {
	undecryptablePackets atomic.Uint64 // datagrams no installed key opens
	undecryptableStreams atomic.Uint64 // memberlist streams no installed key opens
	staleEvents          atomic.Uint64 // user events serf dropped as too old
	streams              atomic.Uint64 // orch streams refused (TLS or join handshake)
}

// limitHandler passes warnings and errors at most logBurst per kind per
// logWindow; other levels pass.
type limitHandler struct {
	slog.Handler
	lim *logLimiter
}

type logLimiter struct {
	mu    sync.Mutex
	kinds map[string]*logKind
}

type logKind struct {
	start      time.Time
	n          int
	suppressed int
}

func newLimitedLogger(l *slog.Logger) *slog.Logger {
	return slog.New(limitHandler{Handler: l.Handler(), lim: &logLimiter{kinds: map[string]*logKind{}}})
}

func (h limitHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelWarn {
		return h.Handler.Handle(ctx, r)
	}
	ok, suppressed := h.lim.allow(logKindOf(r.Message), r.Time)
	if !ok {
		return nil
	}
	if suppressed > 0 {
		r.AddAttrs(slog.Int("suppressed", suppressed))
	}
	return h.Handler.Handle(ctx, r)
}

func (h limitHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return limitHandler{Handler: h.Handler.WithAttrs(as), lim: h.lim}
}

func (h limitHandler) WithGroup(name string) slog.Handler {
	return limitHandler{Handler: h.Handler.WithGroup(name), lim: h.lim}
}

// allow reports whether a warning of kind k may be logged at now, and how
// many of its kind were suppressed before it.
func (l *logLimiter) allow(k string, now time.Time) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	kd := l.kinds[k]
	if kd == nil {
		if len(l.kinds) >= logKinds {
			for name, old := range l.kinds {
				if now.Sub(old.start) >= logWindow {
					delete(l.kinds, name)
				}
			}
			if len(l.kinds) >= logKinds {
				return false, 0 // too many kinds at once: a flood of its own
			}
		}
		kd = &logKind{start: now}
		l.kinds[k] = kd
	}
	if now.Sub(kd.start) >= logWindow {
		kd.start, kd.n = now, 0
	}
	if kd.n >= logBurst {
		kd.suppressed++
		return false, 0
	}
	kd.n++
	s := kd.suppressed
	kd.suppressed = 0
	return true, s
}

// logKindOf is a message without its variable part: orch's messages are
// constant; memberlist's and serf's lines are "component: what: detail",
// with numbers (times, addresses) inside "what" at times.
func logKindOf(msg string) string {
	if i := strings.Index(msg, ": "); i >= 0 {
		if j := strings.Index(msg[i+2:], ":"); j >= 0 {
			msg = msg[:i+2+j]
		}
	}
	return digitsRE.ReplaceAllString(msg[:min(len(msg), 80)], "#")
}

var digitsRE = regexp.MustCompile(`[0-9]+`)

// newStdLogger adapts serf's and memberlist's log.Logger output, lines like
// "[WARN] memberlist: ...", to slog at the matching level, counting the
// refusals it reports.
func newStdLogger(l *slog.Logger, c *refusals) *log.Logger {
	return log.New(stdlogWriter{l, c}, "", 0)
}

type stdlogWriter struct {
	l *slog.Logger
	c *refusals
}

// refusalLines are the messages by which memberlist and serf report a
// refusal, and what each counts.
var refusalLines = []struct {
	sub   string
	count func(*refusals) *atomic.Uint64
}{
	{"Decrypt packet failed", func(c *refusals) *atomic.Uint64 { return &c.undecryptablePackets }},
	{"no installed keys could decrypt", func(c *refusals) *atomic.Uint64 { return &c.undecryptableStreams }},
	{"received old event", func(c *refusals) *atomic.Uint64 { return &c.staleEvents }},
}

func (w stdlogWriter) Write(p []byte) (int, error) {
	msg := strings.TrimRight(string(p), "\r\n")
	level := slog.LevelInfo
	for _, lv := range []struct {
		tag string
		l   slog.Level
	}{{"[DEBUG] ", slog.LevelDebug}, {"[INFO] ", slog.LevelInfo}, {"[WARN] ", slog.LevelWarn}, {"[ERR] ", slog.LevelWarn}, {"[ERROR] ", slog.LevelWarn}} {
		if rest, ok := strings.CutPrefix(msg, lv.tag); ok {
			level, msg = lv.l, rest
			break
		}
	}
	if w.c != nil {
		for _, r := range refusalLines {
			if strings.Contains(msg, r.sub) {
				r.count(w.c).Add(1)
				break
			}
		}
	}
	w.l.Log(context.Background(), level, msg)
	return len(p), nil
}

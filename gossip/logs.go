package gossip

import (
	"context"
	"log"
	"log/slog"
	"strings"
	"sync/atomic"
)

// Logs of what anyone who reaches the gossip port can cause: junk,
// replayed or foreign packets and streams are refused one by one. Refusals
// are counted ([Stats]), and the package's warnings are rate-limited per
// kind of message (internal/loglimit).

// refusals counts what the node refused, by kind.
type refusals struct {
	undecryptablePackets atomic.Uint64 // datagrams no installed key opens
	undecryptableStreams atomic.Uint64 // memberlist streams no installed key opens
	staleEvents          atomic.Uint64 // user events serf dropped as too old
	streams              atomic.Uint64 // orch streams refused (TLS or join handshake)
}

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

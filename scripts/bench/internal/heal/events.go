package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/orchproject/orch/agent/api"
	"github.com/orchproject/orch/scripts/bench/internal/benchkit"
)

// seenEvent is one event of one agent's stream.
type seenEvent struct {
	host int // observer: the agent whose stream carried it
	ev   api.Event
}

// eventLog collects the member, task and node events of every agent of a
// cluster, and writes each one as a JSON line to a file (the evidence
// behind the figures).
type eventLog struct {
	mu   sync.Mutex
	all  []seenEvent
	seen map[string]bool
	file *os.File
}

func newEventLog(path string) (*eventLog, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	return &eventLog{seen: map[string]bool{}, file: f}, nil
}

func (l *eventLog) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.file.Close()
}

func (l *eventLog) add(host int, ev api.Event) {
	// A stream that reconnects replays a little: drop what we have.
	key := fmt.Sprintf("%d/%d/%d/%s/%s/%s", host, ev.Time.UnixNano(), ev.Seq, ev.Type, ev.Action, ev.Subject)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seen[key] {
		return
	}
	l.seen[key] = true
	l.all = append(l.all, seenEvent{host: host, ev: ev})
	// api.Event marshals itself (the time format), so the observer is
	// spliced in front of its fields.
	b, err := json.Marshal(ev)
	if err != nil || len(b) < 2 || b[0] != '{' {
		return
	}
	line := fmt.Appendf(nil, `{"observer":"h%d",`, host)
	line = append(append(line, b[1:]...), '\n')
	l.file.Write(line)
}

// since returns the events stamped at or after t, in arrival order.
func (l *eventLog) since(t time.Time) []seenEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []seenEvent
	for _, e := range l.all {
		if !e.ev.Time.Before(t) {
			out = append(out, e)
		}
	}
	return out
}

// watchFilters are the events the benchmark follows.
var watchFilters = []string{"type=member", "type=task", "type=node"}

// watch follows host k's event stream until ctx ends, reconnecting when
// the agent goes away (killed, restarted) and replaying what it retained
// since the stream broke; duplicates are dropped by add.
func (l *eventLog) watch(ctx context.Context, k int, c *api.Client) {
	req := api.EventsRequest{Filters: watchFilters, Since: time.Hour}
	for ctx.Err() == nil {
		broke := time.Now()
		_ = c.Events(ctx, req, func(ev api.Event) error {
			if ev.Type == "stream" {
				return nil // a "lagged" marker
			}
			l.add(k, ev)
			broke = time.Now()
			return nil
		})
		if benchkit.Sleep(ctx, 200*time.Millisecond) != nil {
			return
		}
		// seq restarts at 1 when an agent restarts, so resume by time.
		req = api.EventsRequest{Filters: watchFilters, Since: time.Since(broke) + 2*time.Second}
	}
}

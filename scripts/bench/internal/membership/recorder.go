package main

import (
	"regexp"
	"strings"
	"sync"
	"time"
)

// Sources of a memberEvent.
const (
	sourceEvent = "event" // orch's event stream, stamped by the agent
	sourceLog   = "log"   // an agent's log line, stamped when read
)

// Actions of a memberEvent: serf's member event types, plus memberlist's
// suspicion, which is only in the log.
const (
	actionJoin    = "join"
	actionFailed  = "failed"
	actionLeave   = "leave"
	actionSuspect = "suspect"
)

// memberEvent is what one agent saw happen to a member.
type memberEvent struct {
	observer int    // the agent that saw it (host number)
	source   string // sourceEvent or sourceLog
	action   string // join, failed, leave, update, reap, suspect
	subject  string // the member's name
	at       time.Time
}

// recorder collects member events from every agent of a cluster. Safe for
// concurrent use.
type recorder struct {
	mu  sync.Mutex
	evs []memberEvent
}

func (r *recorder) add(e memberEvent) {
	r.mu.Lock()
	r.evs = append(r.evs, e)
	r.mu.Unlock()
}

// first returns the earliest time observer saw action happen to subject,
// from source, at or after since.
func (r *recorder) first(observer int, source, action, subject string, since time.Time) (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var t time.Time
	for _, e := range r.evs {
		if e.observer == observer && e.source == source && e.action == action && e.subject == subject &&
			!e.at.Before(since) && (t.IsZero() || e.at.Before(t)) {
			t = e.at
		}
	}
	return t, !t.IsZero()
}

// events returns a copy of the events from source at or after since.
func (r *recorder) events(source string, since time.Time) []memberEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []memberEvent
	for _, e := range r.evs {
		if e.source == source && !e.at.Before(since) {
			out = append(out, e)
		}
	}
	return out
}

// Log lines that carry member events. serf writes the first, from the
// serf library, when it emits a member event (before the stock agent
// coalesces it); memberlist writes the second when a probe goes
// unanswered. orch passes both into its own log, so they match there too:
//
//	2026/11/25 21:16:40 [INFO] serf: EventMemberFailed: s3 10.49.0.3
//	time=… level=INFO msg="serf: EventMemberFailed: h3 10.49.0.3" component=gossip
//	2026/11/25 21:16:36 [INFO] memberlist: Suspect s3 has failed, no acks received
var (
	serfEventRE = regexp.MustCompile(`serf: EventMember(Join|Leave|Failed|Update|Reap): (\S+)`)
	suspectRE   = regexp.MustCompile(`memberlist: Suspect (\S+) has failed`)
)

// parseLogLine extracts a member event from an agent's log line.
func parseLogLine(line string) (action, subject string, ok bool) {
	if m := serfEventRE.FindStringSubmatch(line); m != nil {
		return strings.ToLower(m[1]), m[2], true
	}
	if m := suspectRE.FindStringSubmatch(line); m != nil {
		return actionSuspect, m[1], true
	}
	return "", "", false
}

package events

import (
	"encoding/json"
	"fmt"
	"time"
)

// Type is the kind of thing an event is about. Types are open: new ones are
// added as the agent learns to report them.
type Type string

// Event types.
const (
	// TypeMember events report cluster membership, with the member's name as
	// the subject.
	TypeMember Type = "member"
	// TypeStream events are markers about the stream itself, such as
	// [ActionLagged]. They are never stored or replayed.
	TypeStream Type = "stream"
)

// Action is what happened. Actions are open, like [Type].
type Action string

// Actions of [TypeMember] events.
const (
	ActionJoin   Action = "join"
	ActionLeave  Action = "leave"
	ActionFailed Action = "failed"
	ActionUpdate Action = "update"
	ActionReap   Action = "reap"
)

// ActionLagged is the action of the [TypeStream] marker that tells a
// subscriber it missed events. Its attributes are [AttrMissed],
// [AttrFirstSeq] and [AttrLastSeq].
const ActionLagged Action = "lagged"

// Attribute keys of a lagged marker. Values are decimal integers.
const (
	AttrMissed   = "missed"
	AttrFirstSeq = "first_seq"
	AttrLastSeq  = "last_seq"
)

// TimeFormat is how [Event.Time] is written in JSON: RFC 3339 in UTC with
// exactly nine fractional digits. encoding/json would use time.RFC3339Nano,
// which trims trailing zeros (and drops the fraction when it is zero), so
// the width would vary. A fixed width in UTC keeps events from every node
// sortable as plain strings and keeps the column aligned in `orch events`.
// Decoding accepts any RFC 3339 time.
const TimeFormat = "2006-01-02T15:04:05.000000000Z07:00"

// Event is one entry of the event stream. Events are values; the
// Attributes map of a published or delivered Event is shared and must not be
// modified.
type Event struct {
	// Time is when the event was published, without a monotonic reading.
	Time time.Time `json:"time"`
	// Seq is the event's position on this agent's timeline: it starts at 1
	// and grows by one per event. Markers ([TypeStream]) have Seq 0.
	Seq uint64 `json:"seq"`
	// Type is the kind of thing the event is about, such as [TypeMember].
	Type Type `json:"type"`
	// Action is what happened, such as [ActionJoin].
	Action Action `json:"action"`
	// Node is the name of the agent that reported the event.
	Node string `json:"node"`
	// Subject is what the event is about: a member, service or task name.
	Subject string `json:"subject"`
	// Attributes are extra details. In JSON they are always present, as {}
	// when there are none.
	Attributes map[string]string `json:"attributes"`
}

// IsMarker reports whether e is a marker about the stream (Type
// [TypeStream]) rather than a stored event.
func (e Event) IsMarker() bool { return e.Type == TypeStream }

// eventJSON is the wire form of Event. It exists so that Time can be written
// in [TimeFormat] while the field names stay those of Event's tags.
type eventJSON struct {
	Time       string            `json:"time"`
	Seq        uint64            `json:"seq"`
	Type       Type              `json:"type"`
	Action     Action            `json:"action"`
	Node       string            `json:"node"`
	Subject    string            `json:"subject"`
	Attributes map[string]string `json:"attributes"`
}

// MarshalJSON writes e with Time in [TimeFormat] and Attributes as {} when
// empty.
func (e Event) MarshalJSON() ([]byte, error) {
	attrs := e.Attributes
	if attrs == nil {
		attrs = map[string]string{}
	}
	return json.Marshal(eventJSON{
		Time:       e.Time.UTC().Format(TimeFormat),
		Seq:        e.Seq,
		Type:       e.Type,
		Action:     e.Action,
		Node:       e.Node,
		Subject:    e.Subject,
		Attributes: attrs,
	})
}

// UnmarshalJSON reads an event written by [Event.MarshalJSON]. Time may be
// any RFC 3339 time; Attributes is never nil afterwards.
func (e *Event) UnmarshalJSON(data []byte) error {
	var w eventJSON
	if err := json.Unmarshal(data, &w); err != nil {
		return err
	}
	t, err := time.Parse(time.RFC3339Nano, w.Time)
	if err != nil {
		return fmt.Errorf("parse event time %q: %w", w.Time, err)
	}
	if w.Attributes == nil {
		w.Attributes = map[string]string{}
	}
	*e = Event{
		Time:       t,
		Seq:        w.Seq,
		Type:       w.Type,
		Action:     w.Action,
		Node:       w.Node,
		Subject:    w.Subject,
		Attributes: w.Attributes,
	}
	return nil
}

// Package events is the agent's in-memory event bus: the record behind
// `orch events`.
//
// Components report facts to the agent; the agent calls [Bus.Publish], and
// every [Subscription] (the API's NDJSON stream, a log sink, a test) receives
// the events that match its [Filter]. The bus keeps the last
// [Config.RingSize] events so that a client can resume with `--after SEQ` or
// look back with `--since`.
//
// The package imports only the standard library. It knows nothing of serf,
// gossip or containers: the agent turns what those report into an [Event].
//
// # Usage
//
// Build the bus with [New] (it starts nothing) and publish with
// [Bus.Publish]. To receive, call [Bus.Subscribe] and range over
// [Subscription.C] until it is closed; call [Subscription.Close] when the
// consumer goes away (for the API, when the request's context is done).
// [Bus.Close] closes every subscription and is the last step of the agent's
// shutdown.
//
// # Ordering
//
// Every published event gets a sequence number, [Event.Seq], under the bus's
// lock. Seq starts at 1 and grows by one per event, so there is one
// timeline per agent process: if one Publish call returns before another
// starts, the first event has the smaller Seq. [Event.Time] is read under the
// same lock, so Time never goes backwards along Seq unless the clock itself
// steps back.
//
// Each subscription receives its events in strictly increasing Seq order:
// first the replay (if any), then live events. An event that the
// subscription misses is reported by a marker (see Backpressure) at the
// position where it would have been. Markers carry Seq 0: they are not part
// of the timeline, so a client that resumes with the Seq of the last real
// event it saw gets neither a duplicate nor a gap.
//
// Subscriptions do not wait for each other: one subscription may be many
// events ahead of another.
//
// Sequence numbers restart at 1 when the agent restarts. A client that
// sees Seq go down knows the agent restarted and its old position means
// nothing.
//
// # Replay
//
// [SubscribeOptions.After] replays the retained events with Seq > After;
// [SubscribeOptions.Since] replays the retained events with Time >= Since.
// Setting both is rejected with [ErrInvalidOptions]: After is the exact way
// to resume, Since is for a time window, and mixing them would make it
// unclear what a lagged marker means. With neither set the subscription is
// live only. To replay everything retained, set Since to any time before the
// first event (for example time.Unix(0, 0)).
//
// Replay and live delivery have no gap and no duplicate. [Bus.Subscribe]
// copies the matching retained events and registers the subscription in the
// same critical section in which Publish assigns Seq and fans out, so an
// event published concurrently with Subscribe is either in the replay or
// in the live stream, exactly once.
//
// If the requested range starts before the oldest retained event (After is
// older than the ring, or the newest evicted event is not older than
// Since), the subscription first receives a lagged marker covering the
// evicted sequence numbers. For Since the start of the lost range is not
// known, so the marker covers every evicted Seq from 1.
//
// The replay is a copy taken at Subscribe and may be larger than
// [Config.SubscriberBuffer]; it does not count against that buffer. Each
// subscription has one goroutine that sends the replay, then the live
// events, on [Subscription.C]. The goroutine is owned by the subscription:
// it exits, and closes C, when [Subscription.Close] or [Bus.Close] is
// called, and both wait for it to exit.
//
// # Backpressure
//
// Publish never blocks on a subscriber, whatever the subscriber does. Each
// subscription holds at most [Config.SubscriberBuffer] live events that its
// consumer has not received yet. When that buffer is full, further
// matching events are dropped for that subscription alone and counted in
// [Subscription.Dropped] and [Stats.Dropped]; no other subscription and no
// publisher notices.
//
// Once the consumer drains the buffer, the next thing it receives is a
// marker: an Event with Type [TypeStream], Action [ActionLagged], Seq 0, an
// empty Subject and the attributes [AttrMissed] (how many events it missed),
// [AttrFirstSeq] and [AttrLastSeq] (the Seq of the first and last of them).
// For buffer overflow, missed counts exactly the events that matched the
// subscription's filter; for replay beyond the ring it counts every evicted
// Seq in the range, which is an upper bound. A marker's Time is the Time of
// the last missed event. Markers are sent to every subscription regardless
// of its filter, are never stored in the ring and are seen only by the
// subscription they concern.
//
// # Concurrency
//
// All methods of [Bus] and [Subscription] are safe for concurrent use.
// Publish waits for no consumer; it only takes the bus's lock, which
// Subscribe also holds while it copies the replay (at most
// [Config.RingSize] events).
// Publish clones the attributes map it is given, so callers may reuse it.
// The returned Event and every delivered Event share one Attributes map per
// event: treat it as read-only.
//
// Publish after [Bus.Close] is a no-op that returns the zero Event (Seq 0),
// and Subscribe after Close returns [ErrClosed].
package events

package gossip

import (
	"sync"
	"time"
)

// Loss detection for store deltas.
//
// A delta that rides a serf user event reaches most members, not all:
// gossip retransmits each message a bounded number of times to random
// peers, so a member is missed now and then even without packet loss
// (measured on loopback: a few in a thousand deliveries). Anti-entropy
// repairs that within SyncInterval, which is too slow for DNS that should
// never be stale. So each writer numbers its deltas (per run: an epoch
// and a sequence) and a member that sees a number skipped syncs with that
// writer at once. A writer's last delta has no successor to reveal its
// loss, so a writer also announces its latest number twice after it goes
// quiet (heartbeats: deltas without entries).
//
// Deltas in this form travel as userEventDelta; the older userEventStore
// (a bare entry list) is still accepted from agents that send it.

const (
	// userEventDelta names the serf user events that carry numbered deltas.
	userEventDelta = "o.sd"
	// heartbeatDelays are when a writer announces its latest number after
	// its last delta.
	heartbeatDelay1, heartbeatDelay2 = time.Second, 3 * time.Second
	// gapSyncEvery bounds the syncs one writer's gaps start.
	gapSyncEvery = time.Second
)

// deltaMsg is a numbered delta, or a heartbeat when Entries is empty.
type deltaMsg struct {
	Writer string `json:"w"`
	// Epoch identifies the writer's run (its start, Unix nanoseconds):
	// numbering starts again with each run.
	Epoch int64  `json:"ep"`
	Seq   uint64 `json:"s"`
	// Entries is the delta; empty in a heartbeat, whose Seq is the
	// writer's latest.
	Entries []Entry `json:"e,omitempty"`
}

// deltaNumbers numbers this node's outgoing deltas and sends its
// heartbeats.
type deltaNumbers struct {
	mu    sync.Mutex
	epoch int64
	seq   uint64
	beats int         // heartbeats sent since the last delta
	timer *time.Timer // fires the heartbeats; next arms it
}

// newDeltaNumbers starts a run's numbering; beat sends a heartbeat.
func newDeltaNumbers(beat func(epoch int64, seq uint64)) *deltaNumbers {
	d := &deltaNumbers{epoch: time.Now().UnixNano()}
	d.timer = time.AfterFunc(heartbeatDelay1, func() {
		d.mu.Lock()
		epoch, seq := d.epoch, d.seq
		d.beats++
		if d.beats == 1 {
			d.timer.Reset(heartbeatDelay2 - heartbeatDelay1)
		}
		d.mu.Unlock()
		beat(epoch, seq)
	})
	d.timer.Stop() // armed by the first delta
	return d
}

// next returns the number of a new delta and (re)arms the heartbeats:
// heartbeatDelay1 and heartbeatDelay2 after the latest delta, each with
// the latest number.
func (d *deltaNumbers) next() (epoch int64, seq uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.seq++
	d.beats = 0
	d.timer.Reset(heartbeatDelay1)
	return d.epoch, d.seq
}

func (d *deltaNumbers) stop() { d.timer.Stop() }

// deltaGaps follows each writer's numbers as received. Used by the event
// pump only.
type deltaGaps struct {
	self    string
	writers map[string]writerSeen
}

type writerSeen struct {
	epoch    int64
	seq      uint64
	lastSync time.Time
}

// saw records a message and reports whether this node missed a delta of
// its writer and should sync with it. A message from an older run of the
// writer is ignored; one from a run not seen before counts as a gap if
// it is not that run's first delta (this node cannot know what came
// before); out-of-order arrival may cause a needless sync, which is
// harmless and rate-limited.
func (g *deltaGaps) saw(m deltaMsg, now time.Time) bool {
	if m.Writer == g.self || m.Writer == "" {
		return false
	}
	w, known := g.writers[m.Writer]
	missed, seq := false, m.Seq
	switch {
	case known && m.Epoch < w.epoch:
		return false
	case !known || m.Epoch > w.epoch:
		missed = !(len(m.Entries) > 0 && m.Seq == 1)
		w = writerSeen{epoch: m.Epoch, lastSync: w.lastSync}
	case len(m.Entries) > 0:
		missed = m.Seq > w.seq+1
	default:
		missed = m.Seq > w.seq
	}
	if missed && now.Sub(w.lastSync) < gapSyncEvery {
		// Too soon after the last sync: keep the old number, so that the
		// next delta or heartbeat reports this gap again.
		missed, seq = false, w.seq
	}
	if missed {
		w.lastSync = now
	}
	w.seq = max(w.seq, seq)
	g.writers[m.Writer] = w
	return missed
}

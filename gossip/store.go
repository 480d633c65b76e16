package gossip

// The replicated store is the cluster's memory: tables of key → bytes that
// every member holds a copy of. It knows nothing of what the bytes mean.
//
// Two kinds of entries:
//
//   - shared entries (Owner ""), written by anyone: last writer wins by
//     Version, that is (Lamport time, writer name). Deletes are tombstones,
//     kept for StoreConfig.TombstoneTTL so that a partition that heals
//     within that time cannot resurrect what was deleted, then collected.
//   - owned entries (Owner = a node name), written only by that node: the
//     observed state. When the owner fails or leaves, every member drops
//     its entries at once, and entries of an owner that is not alive are
//     never accepted, so nobody serves a dead node's records.
//
// Writes are applied locally, then spread as deltas (serf user events when
// small, a direct push to every member when not). Anti-entropy repairs
// whatever the deltas missed: on every member join and periodically, two
// members exchange digests over an orch stream and send each other what the
// other lacks (store_sync.go). The store is saved to the data dir, so a
// restart, even of the whole cluster, loses nothing (store_persist.go).

import (
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"
)

const (
	// DefaultTombstoneTTL is how long deletes are remembered: a partition
	// longer than this could resurrect a deleted entry (serf's own
	// tombstones for left members last as long).
	DefaultTombstoneTTL = 24 * time.Hour
	// MaxValueSize bounds one entry's value; callers validate their own,
	// smaller limits first.
	MaxValueSize = 1 << 20
	// maxNameLen bounds table and key names.
	maxNameLen = 512
)

var (
	// ErrNotFound is returned for a key that does not exist (or is deleted).
	ErrNotFound = errors.New("not found")
	// ErrInvalidEntry is returned for an entry that cannot be stored.
	ErrInvalidEntry = errors.New("invalid entry")
)

// Version orders writes: Lamport time first, then the writer's name.
type Version struct {
	LTime  uint64 `json:"t"`
	Writer string `json:"w"`
}

// Less reports whether v is older than o.
func (v Version) Less(o Version) bool {
	if v.LTime != o.LTime {
		return v.LTime < o.LTime
	}
	return v.Writer < o.Writer
}

func (v Version) String() string { return fmt.Sprintf("%d@%s", v.LTime, v.Writer) }

// Entry is one record of the store. Values are read-only once stored.
type Entry struct {
	Table   string  `json:"tb"`
	Key     string  `json:"k"`
	Owner   string  `json:"o,omitempty"`
	Value   []byte  `json:"v,omitempty"`
	Deleted bool    `json:"d,omitempty"`
	Version Version `json:"ver"`
}

// id identifies an entry across the cluster.
func (e Entry) id() string { return e.Table + "\x00" + e.Owner + "\x00" + e.Key }

func (e Entry) validate() error {
	switch {
	case e.Table == "" || len(e.Table) > maxNameLen:
		return fmt.Errorf("%w: table name of %d bytes", ErrInvalidEntry, len(e.Table))
	case e.Key == "" || len(e.Key) > maxNameLen:
		return fmt.Errorf("%w: key of %d bytes", ErrInvalidEntry, len(e.Key))
	case len(e.Value) > MaxValueSize:
		return fmt.Errorf("%w: value of %d bytes, at most %d", ErrInvalidEntry, len(e.Value), MaxValueSize)
	case e.Deleted && len(e.Value) > 0:
		return fmt.Errorf("%w: a tombstone with a value", ErrInvalidEntry)
	case e.Version.LTime == 0 || e.Version.Writer == "":
		return fmt.Errorf("%w: no version", ErrInvalidEntry)
	case e.Owner != "" && e.Version.Writer != e.Owner:
		return fmt.Errorf("%w: entry owned by %s written by %s", ErrInvalidEntry, e.Owner, e.Version.Writer)
	}
	return nil
}

// storedEntry adds what only this node needs to know.
type storedEntry struct {
	Entry
	// seen is when this node stored this version; tombstones are collected
	// TombstoneTTL after it.
	seen time.Time
}

// Store is the replicated store. It is safe for concurrent use; no method
// blocks on the network.
type Store struct {
	self string
	ttl  time.Duration
	now  func() time.Time

	// spread sends locally written entries to the other members. Set by
	// the Node; called outside the lock.
	spread func([]Entry)

	mu      sync.Mutex
	clock   uint64
	entries map[string]*storedEntry
	live    map[string]bool // owners whose entries are accepted
	dirty   bool            // changed since the last save

	changed chan struct{} // capacity 1: a wake-up, not a payload
	saveReq chan struct{} // capacity 1: a wake-up for the saver
	// watchers are further readers' wake-ups (Watch), each capacity 1.
	watchers []chan struct{}
}

func newStore(self string, ttl time.Duration) *Store {
	if ttl <= 0 {
		ttl = DefaultTombstoneTTL
	}
	return &Store{
		self:    self,
		ttl:     ttl,
		now:     time.Now,
		entries: make(map[string]*storedEntry),
		live:    map[string]bool{self: true},
		changed: make(chan struct{}, 1),
		saveReq: make(chan struct{}, 1),
	}
}

// Changed delivers a wake-up after the store's content has changed. One
// pending wake-up stands for any number of changes; read a Snapshot then.
func (s *Store) Changed() <-chan struct{} { return s.changed }

// Put writes a shared entry (last writer wins) and returns it.
func (s *Store) Put(table, key string, value []byte) (Entry, error) {
	return s.write(table, key, "", value, false)
}

// Delete writes a tombstone for a shared entry. It returns ErrNotFound if
// the entry does not exist or is already deleted.
func (s *Store) Delete(table, key string) (Entry, error) {
	return s.write(table, key, "", nil, true)
}

// PutOwned writes an entry owned by this node.
func (s *Store) PutOwned(table, key string, value []byte) (Entry, error) {
	return s.write(table, key, s.self, value, false)
}

// DeleteOwned deletes an entry owned by this node.
func (s *Store) DeleteOwned(table, key string) (Entry, error) {
	return s.write(table, key, s.self, nil, true)
}

func (s *Store) write(table, key, owner string, value []byte, del bool) (Entry, error) {
	s.mu.Lock()
	if del {
		cur, ok := s.entries[Entry{Table: table, Key: key, Owner: owner}.id()]
		if !ok || cur.Deleted {
			s.mu.Unlock()
			return Entry{}, fmt.Errorf("%s/%s: %w", table, key, ErrNotFound)
		}
	}
	e := Entry{Table: table, Key: key, Owner: owner, Deleted: del, Version: Version{LTime: s.clock + 1, Writer: s.self}}
	if !del {
		e.Value = append([]byte(nil), value...)
	}
	if err := e.validate(); err != nil {
		s.mu.Unlock()
		return Entry{}, err
	}
	s.clock++
	s.storeLocked(e)
	s.mu.Unlock()
	s.notify()
	if s.spread != nil {
		s.spread([]Entry{e})
	}
	return e, nil
}

// Get returns the live entry for a shared key.
func (s *Store) Get(table, key string) (Entry, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[Entry{Table: table, Key: key}.id()]
	if !ok || e.Deleted {
		return Entry{}, false
	}
	return e.Entry, true
}

// Snapshot is a read-only copy of the store's live entries.
type Snapshot struct {
	// Tables maps a table name to its live entries, sorted by owner, key.
	Tables map[string][]Entry
	// Clock is the store's Lamport clock when the snapshot was taken.
	Clock uint64
}

// Snapshot returns the live (not deleted) entries of every table.
func (s *Store) Snapshot() Snapshot {
	s.mu.Lock()
	snap := Snapshot{Tables: make(map[string][]Entry), Clock: s.clock}
	for _, e := range s.entries {
		if !e.Deleted {
			snap.Tables[e.Table] = append(snap.Tables[e.Table], e.Entry)
		}
	}
	s.mu.Unlock()
	for _, es := range snap.Tables {
		sort.Slice(es, func(i, j int) bool {
			if es[i].Owner != es[j].Owner {
				return es[i].Owner < es[j].Owner
			}
			return es[i].Key < es[j].Key
		})
	}
	return snap
}

// Len counts live entries and tombstones.
func (s *Store) Len() (live, tombstones int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.entries {
		if e.Deleted {
			tombstones++
		} else {
			live++
		}
	}
	return live, tombstones
}

// merge applies entries from another member and returns how many changed
// the store. Invalid entries and entries of owners that are not alive are
// skipped.
func (s *Store) merge(in []Entry) int {
	s.mu.Lock()
	n := 0
	for _, e := range in {
		if e.validate() != nil {
			continue
		}
		if e.Owner != "" && !s.live[e.Owner] {
			continue
		}
		if e.Version.LTime > s.clock {
			s.clock = e.Version.LTime
		}
		cur, ok := s.entries[e.id()]
		if ok && !cur.Version.Less(e.Version) {
			continue
		}
		s.storeLocked(e)
		n++
	}
	s.mu.Unlock()
	if n > 0 {
		s.notify()
	}
	return n
}

func (s *Store) storeLocked(e Entry) {
	s.entries[e.id()] = &storedEntry{Entry: e, seen: s.now()}
	s.dirty = true
}

// setLive replaces the set of owners whose entries are accepted, and drops
// the entries of every owner no longer in it. The local node is always live.
func (s *Store) setLive(live map[string]bool) {
	s.mu.Lock()
	s.live = make(map[string]bool, len(live)+1)
	for k, v := range live {
		if v {
			s.live[k] = true
		}
	}
	s.live[s.self] = true
	dropped := 0
	for id, e := range s.entries {
		if e.Owner != "" && !s.live[e.Owner] {
			delete(s.entries, id)
			dropped++
		}
	}
	if dropped > 0 {
		s.dirty = true
	}
	s.mu.Unlock()
	if dropped > 0 {
		s.notify()
	}
}

// collect removes tombstones older than the TTL.
func (s *Store) collect() int {
	cutoff := s.now().Add(-s.ttl)
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for id, e := range s.entries {
		if e.Deleted && e.seen.Before(cutoff) {
			delete(s.entries, id)
			n++
		}
	}
	if n > 0 {
		s.dirty = true
	}
	return n
}

// Watch returns a new wake-up channel like Changed's, for another reader:
// each reader needs its own, since one wake-up is consumed by one receive.
func (s *Store) Watch() <-chan struct{} {
	ch := make(chan struct{}, 1)
	s.mu.Lock()
	s.watchers = append(s.watchers, ch)
	s.mu.Unlock()
	return ch
}

// notify wakes Changed's reader, the watchers and the saver without
// blocking.
func (s *Store) notify() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
	s.mu.Lock()
	ws := s.watchers
	s.mu.Unlock()
	for _, w := range ws {
		select {
		case w <- struct{}{}:
		default:
		}
	}
	select {
	case s.saveReq <- struct{}{}:
	default:
	}
}

// digest maps every entry this node would share to its version.
func (s *Store) digest() map[string]Version {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := make(map[string]Version, len(s.entries))
	for id, e := range s.entries {
		d[id] = e.Version
	}
	return d
}

// diff compares a peer's digest with the store: the entries the peer lacks
// or has older, and the ids the peer has newer or this node lacks.
func (s *Store) diff(peer map[string]Version) (send []Entry, want []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, e := range s.entries {
		pv, ok := peer[id]
		if !ok || pv.Less(e.Version) {
			send = append(send, e.Entry)
		}
	}
	for id, pv := range peer {
		e, ok := s.entries[id]
		if !ok || e.Version.Less(pv) {
			want = append(want, id)
		}
	}
	return send, want
}

// lookup returns the entries with the given ids that exist.
func (s *Store) lookup(ids []string) []Entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Entry, 0, len(ids))
	for _, id := range ids {
		if e, ok := s.entries[id]; ok {
			out = append(out, e.Entry)
		}
	}
	return out
}

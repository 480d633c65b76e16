package gossip

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/orchproject/orch/internal/atomicfile"
)

const (
	stateFile = "state.json"
	// saveDelay batches bursts of changes into one write.
	saveDelay = 200 * time.Millisecond
)

// stateOnDisk is state.json. Entries owned by other nodes are not saved:
// after a restart their owners may be gone, and live owners send them again
// on the first sync.
type stateOnDisk struct {
	Clock   uint64        `json:"clock"`
	Entries []entryOnDisk `json:"entries"`
}

type entryOnDisk struct {
	Entry
	Seen time.Time `json:"seen"`
}

// load reads the saved state; a missing file is an empty store.
func (s *Store) load(dataDir string) error {
	p := filepath.Join(dataDir, stateFile)
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read store: %w", err)
	}
	var st stateOnDisk
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("decode %s: %w", p, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if st.Clock > s.clock {
		s.clock = st.Clock
	}
	for _, e := range st.Entries {
		if e.validate() != nil || (e.Owner != "" && e.Owner != s.self) {
			continue
		}
		if e.Version.LTime > s.clock {
			s.clock = e.Version.LTime
		}
		s.entries[e.id()] = &storedEntry{Entry: e.Entry, seen: e.Seen}
	}
	return nil
}

// save writes the state if it changed since the last save.
func (s *Store) save(dataDir string) error {
	s.mu.Lock()
	if !s.dirty {
		s.mu.Unlock()
		return nil
	}
	st := stateOnDisk{Clock: s.clock, Entries: make([]entryOnDisk, 0, len(s.entries))}
	for _, e := range s.entries {
		if e.Owner == "" || e.Owner == s.self {
			st.Entries = append(st.Entries, entryOnDisk{Entry: e.Entry, Seen: e.seen})
		}
	}
	s.dirty = false
	s.mu.Unlock()
	b, err := json.Marshal(st)
	if err == nil {
		err = atomicfile.Write(filepath.Join(dataDir, stateFile), b, 0o600)
	}
	if err != nil {
		s.mu.Lock()
		s.dirty = true // try again next time
		s.mu.Unlock()
		return fmt.Errorf("save store: %w", err)
	}
	return nil
}

// runSaver saves the state shortly after changes until ctx ends, then once
// more.
func (s *Store) runSaver(ctx context.Context, dataDir string, onErr func(error)) {
	for {
		select {
		case <-ctx.Done():
			if err := s.save(dataDir); err != nil {
				onErr(err)
			}
			return
		case <-s.saveReq:
		}
		select {
		case <-ctx.Done():
		case <-time.After(saveDelay):
		}
		if err := s.save(dataDir); err != nil {
			onErr(err)
		}
	}
}

package gossip

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"github.com/orchproject/orch/internal/atomicfile"
)

// peersFile remembers the gossip addresses of the other members, so that a
// restarted node can find its cluster again by itself. serf's snapshot is
// meant to do that, but it buffers writes until the next line arrives more
// than 500 ms after the previous flush; on a quiet cluster the joins it saw
// are still in that buffer when the agent is killed, and the restarted node
// finds nobody.
const peersFile = "peers.json"

// peerBook tracks member addresses from member events. Owned by the event
// pump goroutine; not safe for concurrent use.
type peerBook struct {
	path  string
	self  string
	addrs map[string]string // name → host:port
	dirty bool
}

func newPeerBook(dataDir, self string) *peerBook {
	return &peerBook{path: filepath.Join(dataDir, peersFile), self: self, addrs: map[string]string{}}
}

// apply records what a member event says about addresses. Failed members
// are kept: they are the ones a restarted node most needs to find again.
func (b *peerBook) apply(ev MemberEvent) {
	for _, m := range ev.Members {
		if m.Name == b.self || !m.Orch {
			continue
		}
		switch ev.Action {
		case ActionJoin, ActionUpdate, ActionFailed:
			if a := m.Addr.String(); b.addrs[m.Name] != a {
				b.addrs[m.Name] = a
				b.dirty = true
			}
		case ActionLeave, ActionReap:
			if _, ok := b.addrs[m.Name]; ok {
				delete(b.addrs, m.Name)
				b.dirty = true
			}
		}
	}
}

// flush writes the book if it changed.
func (b *peerBook) flush() error {
	if !b.dirty {
		return nil
	}
	data, err := json.Marshal(b.addrs)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(b.path, data, 0o600); err != nil {
		return err
	}
	b.dirty = false
	return nil
}

// loadPeers returns the remembered addresses, sorted; none if there is no
// file yet.
func loadPeers(dataDir string) ([]string, error) {
	p := filepath.Join(dataDir, peersFile)
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	var m map[string]string
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("decode %s: %w", p, err)
	}
	return slices.Sorted(maps.Values(m)), nil
}

package agent

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/orchproject/orch/internal/atomicfile"
)

const identityFile = "node.json"

// identity is what makes a node the same node across restarts and address
// changes: a random ID created once and kept in the data dir.
type identity struct {
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
}

// loadIdentity reads the node's identity from dataDir, creating it on first
// start. A data dir created under another name is refused: the ID stands
// for one name, and renaming a node would leave a ghost member behind.
func loadIdentity(dataDir, name string) (identity, error) {
	p := filepath.Join(dataDir, identityFile)
	b, err := os.ReadFile(p)
	switch {
	case err == nil:
		var id identity
		if err := json.Unmarshal(b, &id); err != nil {
			return identity{}, fmt.Errorf("decode %s: %w", p, err)
		}
		if id.ID == "" || id.Name == "" {
			return identity{}, fmt.Errorf("%s is incomplete (no id or name)", p)
		}
		if id.Name != name {
			return identity{}, fmt.Errorf("the data dir %s belongs to node %q; start with --name %s, or use another --data-dir for a new node", dataDir, id.Name, id.Name)
		}
		return id, nil
	case errors.Is(err, fs.ErrNotExist):
		raw := make([]byte, 16)
		if _, err := rand.Read(raw); err != nil {
			return identity{}, fmt.Errorf("generate node id: %w", err)
		}
		id := identity{ID: hex.EncodeToString(raw), Name: name, Created: time.Now().UTC().Truncate(time.Second)}
		b, err := json.MarshalIndent(id, "", "  ")
		if err != nil {
			return identity{}, err
		}
		if err := atomicfile.Write(p, b, 0o600); err != nil {
			return identity{}, fmt.Errorf("save node identity: %w", err)
		}
		return id, nil
	default:
		return identity{}, fmt.Errorf("read node identity: %w", err)
	}
}

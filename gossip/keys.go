package gossip

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"path/filepath"

	"github.com/hashicorp/serf/serf"

	"github.com/orchproject/orch/internal/atomicfile"
)

// Gossip key rotation, cluster-wide, with serf's key manager: a key
// operation is a serf query every member answers (and applies to its
// keyring, which serf saves to keyring.json), so the result says which
// nodes did it. Rotation is install (everyone can decrypt the new key),
// use (everyone encrypts with it), remove (the old key is gone: a node that
// holds only the old key is refused from then on).

// KeyResult is the outcome of a key operation across the cluster.
type KeyResult struct {
	// Nodes is how many members the query went to, Responses how many
	// answered.
	Nodes, Responses int
	// Failed maps a node that answered with an error to its message.
	Failed map[string]string
	// Keys maps each key (base64) to how many nodes hold it; Primary to
	// how many encrypt with it. Filled by ListKeys.
	Keys, Primary map[string]int
}

// OK reports whether every member answered without error.
func (r KeyResult) OK() bool { return r.Responses == r.Nodes && len(r.Failed) == 0 }

// NewGossipKey returns a fresh 256-bit gossip key, base64-encoded as the
// key commands take it.
func NewGossipKey() (string, error) {
	k := make([]byte, GossipKeySize)
	if _, err := rand.Read(k); err != nil {
		return "", fmt.Errorf("generate key: %w", err)
	}
	return base64.StdEncoding.EncodeToString(k), nil
}

func (n *Node) keyOp(op func(*serf.KeyManager) (*serf.KeyResponse, error)) (KeyResult, error) {
	s := n.currentSerf()
	if s == nil {
		return KeyResult{}, ErrNotRunning
	}
	resp, err := op(s.KeyManager())
	res := KeyResult{Failed: map[string]string{}}
	if resp != nil {
		res.Nodes, res.Responses = resp.NumNodes, resp.NumResp
		for node, msg := range resp.Messages {
			if msg != "" {
				res.Failed[node] = msg
			}
		}
		res.Keys, res.Primary = maps.Clone(resp.Keys), maps.Clone(resp.PrimaryKeys)
	}
	// serf reports per-node failures as an error too; the result carries
	// them node by node, so only a failure to ask at all is returned.
	if err != nil && resp == nil {
		return res, err
	}
	if err != nil && len(res.Failed) == 0 {
		res.Failed["?"] = err.Error()
	}
	return res, nil
}

func checkKey(key string) error {
	b, err := base64.StdEncoding.DecodeString(key)
	if err != nil {
		return fmt.Errorf("key: not base64: %w", err)
	}
	if len(b) != GossipKeySize {
		return fmt.Errorf("key: %d bytes, want %d (AES-256)", len(b), GossipKeySize)
	}
	return nil
}

// ListKeys asks every member for its keys.
func (n *Node) ListKeys() (KeyResult, error) {
	return n.keyOp(func(k *serf.KeyManager) (*serf.KeyResponse, error) { return k.ListKeys() })
}

// InstallKey adds key to every member's keyring (not yet used to encrypt).
func (n *Node) InstallKey(key string) (KeyResult, error) {
	if err := checkKey(key); err != nil {
		return KeyResult{}, err
	}
	return n.keyOp(func(k *serf.KeyManager) (*serf.KeyResponse, error) { return k.InstallKey(key) })
}

// UseKey makes key, already installed, every member's primary key.
func (n *Node) UseKey(key string) (KeyResult, error) {
	if err := checkKey(key); err != nil {
		return KeyResult{}, err
	}
	return n.keyOp(func(k *serf.KeyManager) (*serf.KeyResponse, error) { return k.UseKey(key) })
}

// RemoveKey removes key, which must not be primary, from every member.
func (n *Node) RemoveKey(key string) (KeyResult, error) {
	if err := checkKey(key); err != nil {
		return KeyResult{}, err
	}
	return n.keyOp(func(k *serf.KeyManager) (*serf.KeyResponse, error) { return k.RemoveKey(key) })
}

// currentKeys is the keyring as memberlist holds it now, primary first:
// what a joining node must be given (the secrets loaded at start may be
// out of date after a rotation).
func (n *Node) currentKeys() [][]byte {
	n.mu.Lock()
	kr := n.keyring
	n.mu.Unlock()
	if kr == nil {
		return nil
	}
	return kr.GetKeys() // memberlist keeps the primary key first
}

// NewJoinSecret returns a fresh join secret.
func NewJoinSecret() ([]byte, error) {
	s := make([]byte, joinSecretSize)
	if _, err := rand.Read(s); err != nil {
		return nil, fmt.Errorf("generate join secret: %w", err)
	}
	return s, nil
}

// SetJoinSecret makes secret the one joining nodes must prove (the
// token's second half) and saves it in cluster.json; the cluster identity
// and the gossip keys are unchanged, so members are not disturbed. The
// agent spreads a new secret to every member through the replicated store
// and calls this on each.
func (n *Node) SetJoinSecret(secret []byte) error {
	if len(secret) < 16 {
		return fmt.Errorf("join secret: %d bytes, want at least 16", len(secret))
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.secrets == nil {
		return ErrNotRunning
	}
	sec := n.secrets.Clone()
	sec.JoinSecret = append([]byte(nil), secret...)
	b, err := json.MarshalIndent(secretsOnDisk{CertPEM: sec.CertPEM, KeyPEM: sec.KeyPEM, JoinSecret: sec.JoinSecret}, "", "  ")
	if err != nil {
		return fmt.Errorf("encode cluster secrets: %w", err)
	}
	// Only cluster.json: keyring.json is serf's, and may hold rotated keys.
	if err := atomicfile.Write(filepath.Join(n.cfg.DataDir, secretsFile), b, 0o600); err != nil {
		return fmt.Errorf("save join secret: %w", err)
	}
	n.secrets = sec
	return nil
}

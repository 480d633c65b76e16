package gossip

import (
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/pem"
	"errors"
	"fmt"
)

// DeriveKey returns a 32-byte key for purpose, derived (HKDF-SHA256) from
// the cluster identity's private key. Every member holds that key (it comes
// with admission), so every member derives the same key without asking
// anyone, and it never travels on its own. It changes only when the node
// joins another cluster. Different purposes give unrelated keys.
func (n *Node) DeriveKey(purpose string) ([]byte, error) {
	sec := n.currentSecrets()
	if sec == nil {
		return nil, errors.New("derive key: this node belongs to no cluster yet")
	}
	blk, _ := pem.Decode(sec.KeyPEM)
	if blk == nil {
		return nil, errors.New("derive key: the cluster identity key is not PEM")
	}
	k, err := hkdf.Key(sha256.New, blk.Bytes, nil, "orch "+purpose, 32)
	if err != nil {
		return nil, fmt.Errorf("derive key for %s: %w", purpose, err)
	}
	return k, nil
}

package gossip

import (
	"encoding/base64"
	"fmt"
	"testing"
)

// TestKeyRotation rotates the gossip key on a three-node cluster: install,
// use, remove, with every node reporting success; the members stay alive,
// a node joining afterwards receives the new key, and the old key is gone
// from every keyring.
func TestKeyRotation(t *testing.T) {
	a := startTestNode(t, "a", t.TempDir(), nil)
	defer a.stop(t)
	tok, err := a.Token()
	if err != nil {
		t.Fatal(err)
	}
	b := startTestNode(t, "b", t.TempDir(), &tok, a.Addr().String())
	defer b.stop(t)
	c := startTestNode(t, "c", t.TempDir(), &tok, a.Addr().String())
	defer c.stop(t)
	for _, n := range []*testNode{a, b, c} {
		waitFor(t, "three alive", func() error {
			for _, name := range []string{"a", "b", "c"} {
				if err := wantStatus(n.Node, name, StatusAlive)(); err != nil {
					return err
				}
			}
			return nil
		})
	}
	old := base64.StdEncoding.EncodeToString(a.currentKeys()[0])
	key, err := NewGossipKey()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.InstallKey("not base64!"); err == nil {
		t.Error("a malformed key was accepted")
	}
	for _, step := range []struct {
		name string
		op   func(string) (KeyResult, error)
		key  string
	}{{"install", b.InstallKey, key}, {"use", c.UseKey, key}, {"remove", a.RemoveKey, old}} {
		res, err := step.op(step.key)
		if err != nil || !res.OK() || res.Nodes != 3 {
			t.Fatalf("%s: %+v, %v; want all 3 nodes to succeed", step.name, res, err)
		}
	}
	res, err := b.ListKeys()
	if err != nil || !res.OK() {
		t.Fatalf("list: %+v, %v", res, err)
	}
	if res.Keys[key] != 3 || res.Primary[key] != 3 || res.Keys[old] != 0 || len(res.Keys) != 1 {
		t.Errorf("after rotation: keys %v, primary %v; want only the new key, on all 3, primary", res.Keys, res.Primary)
	}
	// A node joining now (through any member) gets the new keyring.
	d := startTestNode(t, "d", t.TempDir(), &tok, c.Addr().String())
	defer d.stop(t)
	waitFor(t, "d joins with the new key", func() error {
		if err := wantStatus(a.Node, "d", StatusAlive)(); err != nil {
			return err
		}
		if k := d.currentKeys(); len(k) != 1 || base64.StdEncoding.EncodeToString(k[0]) != key {
			return fmt.Errorf("d holds %d keys", len(k))
		}
		return nil
	})
	// Removing the primary key is refused by every node.
	if res, err := a.RemoveKey(key); err == nil && res.OK() {
		t.Error("removing the primary key succeeded")
	}
}

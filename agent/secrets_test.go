package agent

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/orchproject/orch/agent/events"
	"github.com/orchproject/orch/agent/spec"
	"github.com/orchproject/orch/gossip"
)

func testAEAD(t *testing.T, key byte) cipher.AEAD {
	t.Helper()
	blk, err := aes.NewCipher(bytes.Repeat([]byte{key}, 32))
	if err != nil {
		t.Fatal(err)
	}
	aead, err := cipher.NewGCM(blk)
	if err != nil {
		t.Fatal(err)
	}
	return aead
}

func TestSealSecret(t *testing.T) {
	aead := testAEAD(t, 1)
	value := []byte("hunter2")
	sealed := sealSecret(aead, "db", value)
	if bytes.Contains(sealed, value) {
		t.Fatal("sealed form holds the value")
	}
	if again := sealSecret(aead, "db", value); bytes.Equal(again, sealed) {
		t.Error("two seals of one value are equal: the nonce is not fresh")
	}
	got, err := openSecret(aead, "db", sealed)
	if err != nil || !bytes.Equal(got, value) {
		t.Fatalf("open = %q, %v", got, err)
	}
	// Moved under another name, tampered with, truncated, or opened with
	// another cluster's key: refused, never garbage.
	tampered := bytes.Clone(sealed)
	tampered[len(tampered)-1] ^= 1
	for name, c := range map[string]struct {
		aead   cipher.AEAD
		name   string
		sealed []byte
	}{
		"renamed":       {aead, "other", sealed},
		"tampered":      {aead, "db", tampered},
		"truncated":     {aead, "db", sealed[:5]},
		"other cluster": {testAEAD(t, 2), "db", sealed},
	} {
		if v, err := openSecret(c.aead, c.name, c.sealed); err == nil {
			t.Errorf("%s: opened to %q", name, v)
		}
	}
}

func TestReplicaSpecSecrets(t *testing.T) {
	uid := 70
	s := &spec.Service{Name: "db", Containers: []spec.Container{{
		Name: "app", Image: "img", User: "999:998",
		Secrets: []spec.SecretRef{{Name: "pw", Target: "pw"}, {Name: "key", Target: "server.key", UID: &uid}},
		Env:     []spec.EnvVar{{Name: "A", Value: "1"}, {Name: "PW", ValueFrom: &spec.EnvSource{Secret: "pw"}}},
	}}}
	rs := replicaSpec("node", s, 0, "1@n")
	cs := rs.Containers[0]
	if len(cs.Env) != 1 || cs.Env[0] != "A=1" {
		t.Errorf("Env = %q: a secret variable must not be a plain one", cs.Env)
	}
	if len(cs.EnvSecrets) != 1 || cs.EnvSecrets[0].Var != "PW" || cs.EnvSecrets[0].Secret != "pw" || cs.EnvSecrets[0].Value != "" {
		t.Errorf("EnvSecrets = %+v", cs.EnvSecrets)
	}
	f := cs.Secrets
	if len(f) != 2 || f[0].File != "pw" || f[0].UID != 999 || f[0].GID != 998 || f[1].File != "server.key" || f[1].UID != 70 || f[1].GID != 998 || f[1].Data != nil {
		t.Errorf("Secrets = %+v", f)
	}
	if strings.Contains(rs.ID(), "pw") {
		t.Errorf("ID %s", rs.ID())
	}
}

func TestSecretUsers(t *testing.T) {
	svcs := map[string]serviceState{
		"b": {Spec: &spec.Service{Name: "b", Containers: []spec.Container{{Secrets: []spec.SecretRef{{Name: "x"}}}}}},
		"a": {Spec: &spec.Service{Name: "a", Containers: []spec.Container{{Env: []spec.EnvVar{{Name: "V", ValueFrom: &spec.EnvSource{Secret: "x"}}}}}}},
		"c": {Spec: &spec.Service{Name: "c", Containers: []spec.Container{{}}}},
	}
	if got := secretUsers(svcs)["x"]; strings.Join(got, ",") != "a,b" {
		t.Errorf("users of x = %q", got)
	}
}

// reportSecrets: the first pass only primes; then created (with the
// creating node) and removed, by name; a record that does not decode is
// no secret.
func TestReportSecrets(t *testing.T) {
	bus, err := events.New(events.Config{Node: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	defer bus.Close()
	r := &reconciler{a: &Agent{bus: bus}}
	entry := func(name, node string) gossip.Entry {
		v, _ := json.Marshal(secretRecord{Node: node, Size: 3})
		return gossip.Entry{Table: tableSecrets, Key: name, Value: v}
	}
	junk := gossip.Entry{Table: tableSecrets, Key: "junk", Value: []byte("{")}
	r.reportSecrets([]gossip.Entry{entry("old", "n1"), junk})
	r.reportSecrets([]gossip.Entry{entry("old", "n1"), junk, entry("new", "n2")})
	r.reportSecrets([]gossip.Entry{entry("new", "n2")})
	sub, err := bus.Subscribe(events.SubscribeOptions{Since: time.Now().Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	var got []string
	for len(got) < 2 {
		select {
		case ev := <-sub.C():
			got = append(got, fmt.Sprintf("%s %s %s %v", ev.Type, ev.Action, ev.Subject, ev.Attributes))
		case <-time.After(5 * time.Second):
			t.Fatalf("events %q, want 2", got)
		}
	}
	want := []string{"secret created new map[node:n2]", "secret removed old map[]"}
	if !slices.Equal(got, want) {
		t.Errorf("events %q, want %q", got, want)
	}
	select {
	case ev := <-sub.C():
		t.Errorf("extra event %+v", ev)
	case <-time.After(100 * time.Millisecond):
	}
}

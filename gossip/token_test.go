package gossip

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestToken_RoundTrip(t *testing.T) {
	s, err := NewSecrets()
	if err != nil {
		t.Fatal(err)
	}
	tok, err := s.Token()
	if err != nil {
		t.Fatal(err)
	}
	str := tok.String()
	if !strings.HasPrefix(str, "ORCH1-") {
		t.Fatalf("token %q lacks its prefix", str)
	}
	got, err := ParseToken("  " + str + "\n")
	if err != nil {
		t.Fatal(err)
	}
	if got.Fingerprint != tok.Fingerprint || !bytes.Equal(got.Secret, tok.Secret) {
		t.Fatal("parsed token differs")
	}
	for _, k := range s.Keys {
		if bytes.Contains([]byte(str), []byte(encodeKey(k))) {
			t.Fatal("the token contains the gossip key")
		}
	}
}

func TestParseToken_Bad(t *testing.T) {
	for _, s := range []string{"", "ORCH1", "ORCH1-a-b", "SWMTKN-1-abc-def", "ORCH1-" + strings.Repeat("a", 52) + "-!!"} {
		if _, err := ParseToken(s); !errors.Is(err, ErrBadToken) {
			t.Errorf("ParseToken(%q) = %v, want ErrBadToken", s, err)
		}
	}
}

func FuzzParseToken(f *testing.F) {
	s, _ := NewSecrets()
	tok, _ := s.Token()
	f.Add(tok.String())
	f.Add("ORCH1--")
	f.Add("ORCH1-" + strings.Repeat("a", 52) + "-" + strings.Repeat("b", 52))
	f.Fuzz(func(t *testing.T, in string) {
		tok, err := ParseToken(in)
		if err != nil {
			return
		}
		again, err := ParseToken(tok.String())
		if err != nil || again.Fingerprint != tok.Fingerprint || !bytes.Equal(again.Secret, tok.Secret) {
			t.Fatalf("round trip of %q failed: %v", in, err)
		}
	})
}

func TestSecrets_SaveLoad(t *testing.T) {
	dir := t.TempDir()
	s, err := NewSecrets()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Save(dir); err != nil {
		t.Fatal(err)
	}
	got, err := LoadSecrets(dir)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := s.ClusterID()
	b, _ := got.ClusterID()
	if a != b || !bytes.Equal(got.Keys[0], s.Keys[0]) || !bytes.Equal(got.JoinSecret, s.JoinSecret) {
		t.Fatal("loaded secrets differ from saved ones")
	}
}

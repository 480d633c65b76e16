package gossip

import (
	"encoding/base32"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// tokenPrefix names the token format and its version, like Swarm's SWMTKN-1.
const tokenPrefix = "ORCH1"

// b32 is lower-case, unpadded base32: copy-paste friendly, no '+' or '/'.
var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// ErrBadToken is returned for a token that cannot be parsed.
var ErrBadToken = errors.New("malformed join token")

// Token is a join token: ORCH1-<identity fingerprint>-<join secret>. The
// fingerprint lets a joining node authenticate the cluster before it sends
// anything secret; the secret lets the cluster admit the node. The token is
// not the gossip key: that is handed over only after both checks pass.
type Token struct {
	Fingerprint [32]byte
	Secret      []byte
}

// String renders the token.
func (t Token) String() string {
	return tokenPrefix + "-" + strings.ToLower(b32.EncodeToString(t.Fingerprint[:])) +
		"-" + strings.ToLower(b32.EncodeToString(t.Secret))
}

// ParseToken parses a token printed by [Token.String].
func ParseToken(s string) (Token, error) {
	s = strings.TrimSpace(s)
	parts := strings.Split(s, "-")
	if len(parts) != 3 || parts[0] != tokenPrefix {
		return Token{}, fmt.Errorf("%w: want %s-<fingerprint>-<secret> (print one with \"orch token\")", ErrBadToken, tokenPrefix)
	}
	fp, err := b32.DecodeString(strings.ToUpper(parts[1]))
	if err != nil || len(fp) != 32 {
		return Token{}, fmt.Errorf("%w: the fingerprint part is damaged", ErrBadToken)
	}
	sec, err := b32.DecodeString(strings.ToUpper(parts[2]))
	if err != nil || len(sec) < 16 || len(sec) > 64 {
		return Token{}, fmt.Errorf("%w: the secret part is damaged", ErrBadToken)
	}
	var t Token
	copy(t.Fingerprint[:], fp)
	t.Secret = sec
	// base32's last character carries unused bits; accept only the
	// canonical spelling so one secret has one token.
	if !strings.EqualFold(t.String(), s) {
		return Token{}, fmt.Errorf("%w: not in canonical form (was it edited?)", ErrBadToken)
	}
	return t, nil
}

func encodeKey(k []byte) string { return base64.StdEncoding.EncodeToString(k) }

func decodeKey(s string) ([]byte, error) {
	k, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("decode key: %w", err)
	}
	if n := len(k); n != 16 && n != 24 && n != 32 {
		return nil, fmt.Errorf("key is %d bytes, want 16, 24 or 32", n)
	}
	return k, nil
}

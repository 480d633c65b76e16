package spec

import (
	"bytes"
	"encoding/json"
)

// Marshal returns the canonical encoding of s: compact JSON of the
// normalized spec (see [Service.Normalize]; s itself is not changed), with
// struct fields in declaration order, map keys sorted and no HTML
// escaping. Specs that mean the same give the same bytes, and
// [Decode] of the bytes gives a spec [Equal] to s.
func (s *Service) Marshal() ([]byte, error) {
	if s == nil {
		return []byte("null"), nil
	}
	n := s.Clone()
	n.Normalize()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // "curl -f http://x && y" stays readable
	if err := enc.Encode(n); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// Equal reports whether a and b have the same canonical encoding: whether
// they mean the same, with defaults filled in. Two nils are equal.
func Equal(a, b *Service) bool {
	if a == nil || b == nil {
		return a == b
	}
	ab, err := a.Marshal()
	if err != nil {
		return false
	}
	bb, err := b.Marshal()
	if err != nil {
		return false
	}
	return bytes.Equal(ab, bb)
}

package spec

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func FuzzDecode(f *testing.F) {
	for _, name := range []string{"sentry.yaml", "sentry.json", "full.yaml"} {
		f.Add(readFile(f, name))
	}
	for _, s := range []string{
		"",
		"\x00\xff junk",
		"{}",
		"[]",
		"null",
		"name: x\ncontainers: [{name: a, image: b}]\n---\nname: y\n",
		"{name: x, containers: [{name: a, image: b}]} trailing",
		`{"name": "x", "containers": [{"name": "a", "image": "b", "args": ["\ud83d\ude00", "a\/b"]}]}`,
		strings.Repeat("[", 20000) + strings.Repeat("]", 20000),
		strings.Repeat("a:\n ", 3000) + "b",
		strings.Repeat(`{"a":`, 5000) + "1" + strings.Repeat("}", 5000),
		"name: x\nreplicas: 1e400\ncontainers: [{name: a, image: b}]",
		"name: x\nreplicas: 99999999999999999999999\ncontainers: [{name: a, image: b, resources: {memory: 99999999999999999999Ei, cpu: 1e9}}]",
		`{"name": "x", "replicas": -0, "containers": [{"name": "a", "image": "b", "ports": [{"name": "p", "containerPort": 1.0e1}]}]}`,
		"a: &a [x, x, x]\nb: &b [*a, *a, *a]\nc: &c [*b, *b, *b]\nd: [*c, *c, *c]\n",
		"name: x\ncontainers:\n - name: a\n   image: b\n   healthCheck: {test: [CMD-SHELL, \"\u0085\x7f\"], interval: 1ns}\n",
		"name: x\ncontainers: [{name: a, image: b}]\nlabels: {\"\": x, 1: 2, true: yes}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Decode(data)
		if err != nil {
			var se *SpecError
			if !errors.As(err, &se) || len(se.Problems) == 0 {
				t.Fatalf("error %v (%T) is not a *SpecError with problems", err, err)
			}
			return
		}
		b1, err := s.Marshal()
		if err != nil {
			t.Fatalf("Marshal of a decoded spec: %v", err)
		}
		s2, err := Decode(b1)
		if err != nil {
			t.Fatalf("canonical bytes do not decode: %v\n%s", err, b1)
		}
		if !Equal(s, s2) {
			t.Fatalf("decode → marshal → decode is not Equal:\n%s\n%s", b1, mustMarshal(t, s2))
		}
		if b2 := mustMarshal(t, s2); !bytes.Equal(b1, b2) {
			t.Fatalf("canonical bytes not stable:\n%s\n%s", b1, b2)
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("decoded spec is invalid: %v", err)
		}
	})
}

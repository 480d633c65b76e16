package main

import (
	"bytes"
	"testing"
)

func TestProgressBar(t *testing.T) {
	for _, tc := range []struct {
		done, total int64
		want        string
	}{
		{0, 1000000, "[>         ]    0.0/1.0 MB"},
		{500000, 1000000, "[=====>    ]    0.5/1.0 MB"},
		{1000000, 1000000, "[==========]    1.0/1.0 MB"},
		{2500000, 0, "   2.5 MB"},
	} {
		if got := progressBar(tc.done, tc.total, 10); got != tc.want {
			t.Errorf("progressBar(%d, %d) = %q, want %q", tc.done, tc.total, got, tc.want)
		}
	}
	if isTerminal(&bytes.Buffer{}) {
		t.Error("a buffer is not a terminal")
	}
}

package main

import (
	"os"
	"testing"

	"github.com/orchproject/orch/internal/testimage"
)

// TestWriteImage is not a test: scripts/bench/heal runs it (go test
// -count=1 -run '^TestWriteImage$') to build the busybox OCI archive of
// internal/testimage, which only test code may import (it takes a
// testing.TB), and write it to $ORCH_BENCH_HEAL_IMAGE. Without that
// variable it skips.
func TestWriteImage(t *testing.T) {
	out := os.Getenv("ORCH_BENCH_HEAL_IMAGE")
	if out == "" {
		t.Skip("set ORCH_BENCH_HEAL_IMAGE to a path to write the benchmark image (scripts/bench/heal does)")
	}
	b, err := os.ReadFile(testimage.Busybox(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

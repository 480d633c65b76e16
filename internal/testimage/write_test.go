package testimage

import (
	"os"
	"testing"
)

// TestWriteImage is not a test: scripts/demo runs it (go test -count=1
// -run '^TestWriteImage$' ./internal/testimage) to write the busybox OCI
// archive to $ORCH_IMAGE_OUT, since the builder takes a testing.TB.
// Without that variable it skips.
func TestWriteImage(t *testing.T) {
	out := os.Getenv("ORCH_IMAGE_OUT")
	if out == "" {
		t.Skip("set ORCH_IMAGE_OUT to a path to write the image (scripts/demo does)")
	}
	b, err := os.ReadFile(Busybox(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

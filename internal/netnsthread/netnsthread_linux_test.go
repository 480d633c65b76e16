package netnsthread

import (
	"errors"
	"os"
	"testing"
)

// TestDo runs a function in the process's own namespace (always there,
// no root needed), passes its error through, and fails on a missing path.
func TestDo(t *testing.T) {
	ran := false
	if err := Do("/proc/self/ns/net", func() error { ran = true; return nil }); err != nil || !ran {
		t.Fatalf("Do = %v, ran %v", err, ran)
	}
	want := errors.New("from fn")
	if err := Do("/proc/self/ns/net", func() error { return want }); !errors.Is(err, want) {
		t.Errorf("Do = %v, want fn's error", err)
	}
	if err := Do("/no/such/netns", func() error { t.Error("fn ran"); return nil }); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Do on a missing path = %v, want not-exist", err)
	}
}

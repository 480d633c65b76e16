package runtime

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestRotateLogs(t *testing.T) {
	rt, err := New(Config{Address: "/nonexistent", StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(logDir(rt.cfg.StateDir), "web.0.abc.web.log")
	small := filepath.Join(logDir(rt.cfg.StateDir), "db.0.abc.db.log")
	os.WriteFile(small, []byte("short\n"), 0o600)
	// A writer holding the file in append mode, like the shim.
	w, err := os.OpenFile(log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for gen := 1; gen <= 4; gen++ {
		w.Write(bytes.Repeat([]byte{byte('0' + gen)}, 100))
		if err := rt.RotateLogs(50, 3); err != nil {
			t.Fatal(err)
		}
	}
	w.Write([]byte("after\n"))
	got, _ := os.ReadFile(log)
	if string(got) != "after\n" {
		t.Errorf("live log holds %q, want only what came after the last rotation", got)
	}
	for i, want := range map[int]byte{1: '4', 2: '3', 3: '2'} {
		b, err := os.ReadFile(log + "." + string(rune('0'+i)))
		if err != nil || len(b) != 100 || b[0] != want {
			t.Errorf("%s.%d: %d bytes starting %q, err %v; want 100 of %q", log, i, len(b), b[:min(1, len(b))], err, want)
		}
	}
	if _, err := os.Stat(log + ".4"); !os.IsNotExist(err) {
		t.Errorf("more than 3 rotated files kept")
	}
	if b, _ := os.ReadFile(small); string(b) != "short\n" {
		t.Error("a small log was rotated")
	}
}

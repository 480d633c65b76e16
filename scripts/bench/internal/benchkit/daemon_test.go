package benchkit

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestDaemon_OnLineAndLog(t *testing.T) {
	log := filepath.Join(t.TempDir(), "d.log")
	if err := os.WriteFile(log, []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var lines []string
	d, err := StartDaemon(DaemonOptions{Name: "echo", Log: log, OnLine: func(line string, at time.Time) {
		mu.Lock()
		lines = append(lines, line)
		mu.Unlock()
	}}, "sh", "-c", "echo one; echo two >&2; exit 3")
	if err != nil {
		t.Fatal(err)
	}
	if !d.WaitGone(10 * time.Second) {
		t.Fatal("daemon still running after 10 s")
	}
	// The log is written after OnLine, by the reader, which may lag the
	// exit a little.
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(log)
		if string(b) == "one\ntwo\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("log = %q, want the output without the old content", b)
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	if !slices.Equal(lines, []string{"one", "two"}) {
		t.Errorf("OnLine saw %q", lines)
	}
	mu.Unlock()
	if err := d.ExitError(); !strings.Contains(err.Error(), "exit status 3") || !strings.Contains(err.Error(), "  two") {
		t.Errorf("ExitError() = %v", err)
	}
}

func TestDaemon_StopAndAppend(t *testing.T) {
	log := filepath.Join(t.TempDir(), "d.log")
	for i := range 2 {
		d, err := StartDaemon(DaemonOptions{Name: "sleeper", Log: log, AppendLog: true}, "sh", "-c", "echo up; exec sleep 60")
		if err != nil {
			t.Fatal(err)
		}
		if d.Exited() {
			t.Fatal("Exited() right after Start")
		}
		want := strings.Repeat("up\n", i+1)
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			if b, _ := os.ReadFile(log); string(b) == want {
				break
			} else if time.Now().After(deadline) {
				t.Fatalf("log = %q, want %q", b, want)
			}
		}
		d.Stop(5 * time.Second)
		if !d.Exited() {
			t.Fatal("still running after Stop")
		}
	}
	var nilDaemon *Daemon
	if !nilDaemon.Exited() || !nilDaemon.WaitGone(0) {
		t.Error("a nil daemon counts as exited")
	}
	nilDaemon.Stop(time.Second) // does nothing
}

func TestDaemon_StartFails(t *testing.T) {
	if _, err := StartDaemon(DaemonOptions{Name: "nothing", Log: filepath.Join(t.TempDir(), "d.log")}, "/nonexistent/binary"); err == nil {
		t.Error("Start of a missing binary: want an error")
	}
}

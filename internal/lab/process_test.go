package lab

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// failedTB is a test that has failed: it collects cleanups for the test to
// run and records Logf output. Everything else goes to the real test.
type failedTB struct {
	testing.TB
	mu       sync.Mutex
	logs     []string
	cleanups []func()
}

func (f *failedTB) Failed() bool { return true }

func (f *failedTB) Logf(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.logs = append(f.logs, fmt.Sprintf(format, args...))
}

func (f *failedTB) Cleanup(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cleanups = append(f.cleanups, fn)
}

func (f *failedTB) runCleanups() {
	f.mu.Lock()
	fns := slices.Clone(f.cleanups)
	f.cleanups = nil
	f.mu.Unlock()
	for _, fn := range slices.Backward(fns) {
		fn()
	}
}

// fatalTB records the first Fatal/Fatalf and ends its goroutine, as the
// real ones do; run the code under test in a goroutine of its own.
type fatalTB struct {
	testing.TB
	fatal string
}

func (f *fatalTB) Fatal(args ...any) {
	f.fatal = fmt.Sprint(args...)
	runtime.Goexit()
}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.fatal = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestProcess_PidIsTheTarget(t *testing.T) {
	t.Parallel()
	l := New(t, Config{Hosts: 1})
	h := l.Host(1)
	p := h.Start(t, "sleep", "1000")

	// nsenter execs the command in place: the PID we hold becomes sleep
	// itself (once exec has happened), not a wrapper around it.
	proc := filepath.Join("/proc", strconv.Itoa(p.Pid()))
	Eventually(t, 5*time.Second, 10*time.Millisecond, func() error {
		exe, err := os.Readlink(filepath.Join(proc, "exe"))
		if err != nil {
			return err
		}
		if filepath.Base(exe) != "sleep" {
			return fmt.Errorf("pid %d runs %s, want sleep", p.Pid(), exe)
		}
		return nil
	})
	var inNS, named syscall.Stat_t
	if err := syscall.Stat(filepath.Join(proc, "ns", "net"), &inNS); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Stat(netnsPath(h.NetNS), &named); err != nil {
		t.Fatal(err)
	}
	if inNS.Ino != named.Ino || inNS.Dev != named.Dev {
		t.Errorf("pid %d is in net namespace %d:%d, want %s (%d:%d)", p.Pid(), inNS.Dev, inNS.Ino, h.NetNS, named.Dev, named.Ino)
	}
	if cwd, err := os.Readlink(filepath.Join(proc, "cwd")); err != nil || cwd != h.Dir {
		t.Errorf("working directory %q, %v; want %q", cwd, err, h.Dir)
	}

	if _, err := p.Wait(10 * time.Millisecond); !errors.Is(err, ErrStillRunning) {
		t.Errorf("Wait on a running process: %v, want ErrStillRunning", err)
	}
	if p.Exited() {
		t.Fatal("Exited before Kill")
	}
	if err := p.Kill(); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	if !p.Exited() {
		t.Error("not Exited after Kill")
	}
	if code, err := p.Wait(0); code != -1 || err != nil {
		t.Errorf("Wait after Kill: %d, %v; want -1 (killed by a signal), nil", code, err)
	}
	if err := p.Signal(syscall.SIGTERM); !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("Signal after exit: %v, want os.ErrProcessDone", err)
	}
	if err := p.Kill(); err != nil {
		t.Errorf("second Kill: %v", err)
	}
}

func TestProcess_ExitCodeAndSignal(t *testing.T) {
	t.Parallel()
	l := New(t, Config{Hosts: 1})
	h := l.Host(1)

	p := h.Start(t, "sh", "-c", "exit 7")
	if code, err := p.Wait(10 * time.Second); code != 7 || err != nil {
		t.Errorf("sh -c 'exit 7': Wait = %d, %v; want 7, nil", code, err)
	}

	// A trap proves SIGTERM reaches the command itself.
	p = h.Start(t, "sh", "-c", `trap 'echo got-term; exit 3' TERM; echo ready; while :; do sleep 0.05; done`)
	Eventually(t, 5*time.Second, 10*time.Millisecond, func() error {
		return logContains(p, "ready")
	})
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code, err := p.Wait(10 * time.Second); code != 3 || err != nil {
		t.Errorf("after SIGTERM: Wait = %d, %v; want 3, nil", code, err)
	}
	if err := logContains(p, "got-term"); err != nil {
		t.Error(err)
	}
	if got, want := filepath.Base(p.LogPath()), "sh-2.log"; got != want {
		t.Errorf("second sh log is %s, want %s", got, want)
	}
}

func logContains(p *Process, s string) error {
	b, err := os.ReadFile(p.LogPath())
	if err != nil {
		return err
	}
	if !strings.Contains(string(b), s) {
		return fmt.Errorf("log %s has no %q:\n%s", p.LogPath(), s, b)
	}
	return nil
}

func TestProcess_LogTailOnFailure(t *testing.T) {
	t.Parallel()
	l := New(t, Config{Hosts: 1, StopGrace: 100 * time.Millisecond})
	ft := &failedTB{TB: t}
	// Ignores SIGTERM, so the cleanup has to escalate to SIGKILL.
	p := l.Host(1).Start(ft, "sh", "-c", `trap '' TERM; for i in $(seq 1 100); do echo line-$i; done; echo done >&2; while :; do sleep 0.05; done`)
	Eventually(t, 5*time.Second, 10*time.Millisecond, func() error {
		return logContains(p, "done")
	})

	ft.runCleanups()
	if !p.Exited() {
		t.Fatalf("%s still running after its cleanup", p)
	}
	if len(ft.logs) != 1 {
		t.Fatalf("cleanup logged %d messages, want 1 with the tail: %q", len(ft.logs), ft.logs)
	}
	msg := ft.logs[0]
	lines := strings.Split(msg, "\n")[1:] // after the header line
	want := []string{}
	for i := 62; i <= 100; i++ {
		want = append(want, "line-"+strconv.Itoa(i))
	}
	want = append(want, "done")
	if !slices.Equal(lines, want) {
		t.Errorf("tail:\n%s\nwant lines line-62..line-100, done", msg)
	}
	if !strings.Contains(lines[0], "line-62") || !strings.Contains(strings.SplitN(msg, "\n", 2)[0], p.LogPath()) {
		t.Errorf("tail header does not name the log: %q", strings.SplitN(msg, "\n", 2)[0])
	}

	// The lab's cleanup must not print the same tail again.
	l.logTails(ft)
	if len(ft.logs) != 1 {
		t.Errorf("tail printed twice: %q", ft.logs)
	}
}

func TestReadTail(t *testing.T) {
	t.Parallel()
	nums := func(from, to int) []string {
		var s []string
		for i := from; i <= to; i++ {
			s = append(s, "l"+strconv.Itoa(i))
		}
		return s
	}
	tests := []struct {
		name     string
		content  string
		n        int
		maxBytes int64
		want     []string
	}{
		{name: "empty", content: "", n: 3, maxBytes: 100, want: nil},
		{name: "fewer lines than n", content: "a\nb\n", n: 3, maxBytes: 100, want: []string{"a", "b"}},
		{name: "no final newline", content: "a\nb", n: 3, maxBytes: 100, want: []string{"a", "b"}},
		{name: "last n", content: strings.Join(nums(1, 10), "\n") + "\n", n: 3, maxBytes: 100, want: nums(8, 10)},
		// The last 12 bytes are "7\nl8\nl9\nl10\n": the cut "7" is dropped.
		{name: "byte window drops partial line", content: strings.Join(nums(1, 10), "\n") + "\n", n: 10, maxBytes: 12, want: nums(8, 10)},
		{name: "one long line", content: strings.Repeat("x", 50) + "\n", n: 3, maxBytes: 10, want: []string{strings.Repeat("x", 9)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "log")
			if err := os.WriteFile(path, []byte(tt.content), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := readTail(path, tt.n, tt.maxBytes)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

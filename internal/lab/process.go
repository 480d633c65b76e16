package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

const (
	// tailLines is how much of each process log a failed test prints.
	tailLines = 40

	// tailBytes caps how much of a log is read to find its tail.
	tailBytes = 64 << 10

	// reapTimeout bounds the wait for a SIGKILLed process to be reaped; only
	// a process stuck in the kernel (state D) takes longer.
	reapTimeout = 10 * time.Second
)

// ErrStillRunning is returned by [Process.Wait] when the process has not
// exited within the timeout.
var ErrStillRunning = errors.New("process still running")

// Process is a long-running command started in a host with [Host.Start].
// Its methods are safe for concurrent use.
type Process struct {
	name    string // base name of the binary, for messages
	host    *Host
	cmd     *exec.Cmd
	logPath string

	done    chan struct{} // closed once cmd.Wait has returned
	state   *os.ProcessState
	waitErr error // a failure of Wait other than a non-zero exit

	tailed atomic.Bool // the log tail was printed
}

// Start starts name with args in the host and returns at once. The working
// directory is [Host.Dir]; stdout and stderr both go to a new log file in
// Dir named after the binary and a counter ("orch-1.log"). The process gets
// its own process group, so [Process.Kill] also reaches its children and a
// Ctrl-C of go test does not; what a killed test leaves running is removed
// by the next [New]'s sweep.
//
// Start registers a cleanup on t that stops the process (SIGTERM, SIGKILL
// after [Config.StopGrace]) and, if t failed, prints the last 40 lines of
// its log. The lab's own cleanup stops it too, whichever comes first. Start
// fails the test if name is not found or cannot be started.
func (h *Host) Start(t testing.TB, name string, args ...string) *Process {
	t.Helper()
	if !strings.Contains(name, "/") {
		// nsenter would find the same binary (same mount namespace and
		// PATH), but only after Start had succeeded; fail here instead.
		if _, err := exec.LookPath(name); err != nil {
			t.Fatalf("start %s on %s: %v", name, h.Name, err)
		}
	}
	base := filepath.Base(name)
	logPath := filepath.Join(h.Dir, base+"-"+strconv.FormatInt(h.nlog.Add(1), 10)+".log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatalf("start %s on %s: %v", name, h.Name, err)
	}
	// Not CommandContext: the process lives until stop or Kill, not until
	// some context ends.
	cmd := h.Command(context.Background(), name, args...)
	cmd.Dir = h.Dir
	cmd.Stdout = logf // an *os.File: the child writes it directly, no copy goroutine
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = cmd.Start()
	logf.Close() // the child has its own descriptor
	if err != nil {
		t.Fatalf("start %s on %s: %v", name, h.Name, err)
	}
	p := &Process{
		name:    base,
		host:    h,
		cmd:     cmd,
		logPath: logPath,
		done:    make(chan struct{}),
	}
	// Owned by p; returns when the child exits, which stop and Kill force.
	go p.reap()
	h.lab.track(p)
	t.Cleanup(func() {
		if err := p.stop(h.lab.cfg.StopGrace); err != nil {
			t.Errorf("stop %s: %v", p, err)
		}
		if t.Failed() {
			p.logTail(t)
		}
	})
	return p
}

func (p *Process) reap() {
	err := p.cmd.Wait()
	p.state = p.cmd.ProcessState
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		p.waitErr = err
	}
	close(p.done)
}

// String describes the process for messages: "orch (pid 123) on h1".
func (p *Process) String() string {
	return fmt.Sprintf("%s (pid %d) on %s", p.name, p.Pid(), p.host.Name)
}

// Pid returns the process ID. nsenter execs the command in place, so this
// is the command's own PID, not a wrapper's.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// LogPath returns the file that receives the process's stdout and stderr.
func (p *Process) LogPath() string { return p.logPath }

// Exited reports whether the process has exited and been reaped.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Signal sends sig to the process (not to its children). It returns
// os.ErrProcessDone if the process has already exited.
func (p *Process) Signal(sig os.Signal) error {
	if p.Exited() {
		return os.ErrProcessDone
	}
	return p.cmd.Process.Signal(sig) // uses a pidfd: safe against PID reuse
}

// Kill sends SIGKILL to the process and its process group and waits until
// the process has been reaped. Killing an exited process is not an error.
func (p *Process) Kill() error {
	if !p.Exited() {
		// The group first, so children die with their parent; ESRCH means
		// the group is already empty.
		if err := syscall.Kill(-p.Pid(), syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("kill process group of %s: %w", p, err)
		}
		if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
			return fmt.Errorf("kill %s: %w", p, err)
		}
	}
	if _, err := p.Wait(reapTimeout); err != nil {
		return fmt.Errorf("kill %s: %w", p, err)
	}
	return nil
}

// Wait waits up to timeout for the process to exit and returns its exit
// code, which is -1 if a signal killed it. The error wraps
// [ErrStillRunning] on timeout, and is otherwise nil unless waiting itself
// failed; a non-zero exit is not an error. Wait may be called repeatedly.
func (p *Process) Wait(timeout time.Duration) (exitCode int, err error) {
	if !p.Exited() { // select picks at random if both are ready
		timer := time.NewTimer(timeout)
		defer timer.Stop()
		select {
		case <-p.done:
		case <-timer.C:
			return -1, fmt.Errorf("%s after %v: %w", p, timeout, ErrStillRunning)
		}
	}
	return p.state.ExitCode(), p.waitErr
}

// stop asks the process to exit with SIGTERM and kills it after grace.
func (p *Process) stop(grace time.Duration) error {
	if p.Exited() {
		return nil
	}
	if err := p.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	if _, err := p.Wait(grace); err == nil {
		return nil
	}
	return p.Kill()
}

// logTail prints the last lines of the process's log with t.Logf, once.
func (p *Process) logTail(t testing.TB) {
	if p.tailed.Swap(true) {
		return
	}
	lines, err := readTail(p.logPath, tailLines, tailBytes)
	if err != nil {
		t.Logf("log of %s: %v", p, err)
		return
	}
	t.Logf("last %d lines of %s, %s:\n%s", len(lines), p, p.logPath, strings.Join(lines, "\n"))
}

// readTail returns the last n lines of the file at path, reading at most
// maxBytes from its end (a longer last line is cut at the front).
func readTail(path string, n int, maxBytes int64) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	off := max(fi.Size()-maxBytes, 0)
	b, err := io.ReadAll(io.NewSectionReader(f, off, fi.Size()-off))
	if err != nil {
		return nil, err
	}
	if off > 0 {
		// Drop the partial first line, unless it is the only one.
		if i := bytes.IndexByte(b, '\n'); i >= 0 && i < len(b)-1 {
			b = b[i+1:]
		}
	}
	b = bytes.TrimSuffix(b, []byte("\n"))
	if len(b) == 0 {
		return nil, nil
	}
	lines := strings.Split(string(b), "\n")
	return lines[max(len(lines)-n, 0):], nil
}

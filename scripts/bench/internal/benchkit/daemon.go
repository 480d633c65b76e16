package benchkit

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// tailLines is how much of a daemon's log [Daemon.ExitError] quotes.
const tailLines = 15

// DaemonOptions describe a daemon for [StartDaemon].
type DaemonOptions struct {
	// Name describes the daemon in messages: "containerd", "h3 agent".
	Name string
	// Log is the file that receives the daemon's stdout and stderr.
	Log string
	// AppendLog keeps what Log already holds, so that a daemon restarted
	// in place continues its old log; false truncates it.
	AppendLog bool
	// NetNS is the path of the network namespace to run in (nsenter
	// --net, which execs the command, so the PID is the daemon's own);
	// empty means this process's.
	NetNS string
	// Nice is the daemon's nice value relative to this process's (nice
	// -n, which also execs); zero leaves it at ours. A harness that runs
	// at a raised priority passes -[HarnessNice] so that what it measures
	// runs at the default priority.
	Nice int
	// OnLine, if not nil, sees every line of the daemon's output, with
	// the time it was read, before the line is written to Log. It is
	// called from one goroutine, until the daemon and every child that
	// inherited its output have exited.
	OnLine func(line string, at time.Time)
}

// Daemon is a background process started by [StartDaemon]. It has its own
// process group, so a Ctrl-C on the terminal reaches only the benchmark,
// which then stops its daemons itself; and it is SIGKILLed if the
// benchmark dies. Its methods are safe for concurrent use, and a nil
// *Daemon counts as exited.
type Daemon struct {
	name string
	log  string
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has been reaped
}

// StartDaemon runs argv as described by o and returns once the process has
// started.
func StartDaemon(o DaemonOptions, argv ...string) (*Daemon, error) {
	flags := os.O_CREATE | os.O_WRONLY | os.O_TRUNC
	if o.AppendLog {
		flags = os.O_CREATE | os.O_WRONLY | os.O_APPEND
	}
	logf, err := os.OpenFile(o.Log, flags, 0o644)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", o.Name, err)
	}
	var full []string
	if o.Nice != 0 {
		full = append(full, "nice", "-n", strconv.Itoa(o.Nice))
	}
	if o.NetNS != "" {
		full = append(full, "nsenter", "--net="+o.NetNS, "--")
	}
	full = append(full, argv...)
	cmd := exec.Command(full[0], full[1:]...)
	// The child writes the file (or the pipe) directly: both are
	// *os.File, so exec starts no copying goroutine.
	out, pr := logf, (*os.File)(nil)
	if o.OnLine != nil {
		if pr, out, err = os.Pipe(); err != nil {
			logf.Close()
			return nil, fmt.Errorf("start %s: %w", o.Name, err)
		}
	}
	cmd.Stdout, cmd.Stderr = out, out
	// Pdeathsig fires when the forking thread exits: fork on a locked
	// thread that lives until the child is reaped. The signal survives
	// nice's and nsenter's exec.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	d := &Daemon{name: o.Name, log: o.Log, cmd: cmd, done: make(chan struct{})}
	started := make(chan error, 1) // one result; the goroutine never blocks on it
	// Owned by d: it ends when the process has been reaped.
	go func() {
		runtime.LockOSThread()
		err := cmd.Start()
		started <- err
		if err == nil {
			cmd.Wait()
		}
		close(d.done)
	}()
	err = <-started
	if pr != nil {
		out.Close() // the child has its own descriptor
		if err != nil {
			pr.Close()
			logf.Close()
		} else {
			// Owned by d: it ends at EOF, once every writer has exited.
			go copyLines(pr, logf, o.OnLine)
		}
	} else {
		logf.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", o.Name, err)
	}
	return d, nil
}

// copyLines hands every line of r to onLine, then writes it to w, and
// closes both at EOF.
func copyLines(r io.ReadCloser, w io.WriteCloser, onLine func(string, time.Time)) {
	defer w.Close()
	defer r.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		at := time.Now()
		onLine(sc.Text(), at)
		w.Write(append(sc.Bytes(), '\n'))
	}
}

// Pid is the daemon's process ID.
func (d *Daemon) Pid() int { return d.cmd.Process.Pid }

// Name is the daemon's name from [DaemonOptions.Name].
func (d *Daemon) Name() string { return d.name }

// LogPath is the daemon's log file.
func (d *Daemon) LogPath() string { return d.log }

// Done is closed once the daemon has exited and been reaped.
func (d *Daemon) Done() <-chan struct{} { return d.done }

// Exited reports whether the daemon has exited and been reaped.
func (d *Daemon) Exited() bool {
	if d == nil {
		return true
	}
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// Signal sends sig to the daemon (not to its process group).
func (d *Daemon) Signal(sig os.Signal) error { return d.cmd.Process.Signal(sig) }

// Stop sends SIGTERM, then SIGKILL after grace, and waits until the daemon
// has been reaped.
func (d *Daemon) Stop(grace time.Duration) {
	if d.Exited() {
		return
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	if d.WaitGone(grace) {
		return
	}
	d.cmd.Process.Kill()
	<-d.done
}

// Kill sends SIGKILL and waits up to timeout until the daemon has been
// reaped; only a process stuck in the kernel takes long.
func (d *Daemon) Kill(timeout time.Duration) error {
	if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kill %s: %w", d.name, err)
	}
	if !d.WaitGone(timeout) {
		return fmt.Errorf("%s (pid %d) still running %v after SIGKILL", d.name, d.Pid(), timeout)
	}
	return nil
}

// WaitGone waits up to timeout for the daemon to be reaped, and reports
// whether it was.
func (d *Daemon) WaitGone(timeout time.Duration) bool {
	if d == nil {
		return true
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-d.done:
		return true
	case <-t.C:
		return false
	}
}

// ExitError describes a daemon that exited on its own, with the end of
// its log. Call it once [Daemon.Exited] is true.
func (d *Daemon) ExitError() error {
	return fmt.Errorf("%s exited (%v); end of %s:\n%s", d.name, d.cmd.ProcessState, d.log, TailFile(d.log, tailLines))
}

// TailFile returns the last n lines of a file, indented, for error
// messages.
func TailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "  (" + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "  " + strings.Join(lines, "\n  ")
}

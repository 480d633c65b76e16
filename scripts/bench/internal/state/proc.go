package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// killWait bounds the wait for a SIGKILLed agent to be reaped.
const killWait = 10 * time.Second

// agentNiceAdjust undoes the benchmark's own raised priority for the
// agents, so they run at the default nice value 0; see [harnessNice].
var agentNiceAdjust = -harnessNice()

// harnessNice is this process's nice value. scripts/bench/state runs
// the benchmark at nice -10 so that its timestamps (reading an agent's log
// line, an answer to a poll) are taken promptly while the agents keep both
// cores busy; the agents themselves must not get that advantage.
func harnessNice() int {
	// The raw syscall returns 20 - nice.
	p, err := unix.Getpriority(unix.PRIO_PROCESS, 0)
	if err != nil {
		return 0
	}
	return 20 - p
}

// proc is one agent process running inside a lab host.
type proc struct {
	k       int
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{} // closed once the process has been reaped
	waitErr error         // valid after exited is closed
}

// startProc runs argv in lab host k through nice and nsenter, which set the
// priority, enter the network namespace and exec argv, so the PID is the
// agent's own. The
// agent's stdout and stderr go to logPath; onLine, if not nil, sees every
// line first, with the time it was read, from one goroutine.
func startProc(l *lab, k int, argv []string, logPath string, onLine func(line string, at time.Time)) (*proc, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		logf.Close()
		return nil, err
	}
	cmd := exec.Command("nice", append([]string{"-n", strconv.Itoa(agentNiceAdjust), "nsenter", "--net=" + l.netns(k), "--"}, argv...)...)
	cmd.Stdout, cmd.Stderr = pw, pw
	// Its own process group: a Ctrl-C on the terminal reaches only the
	// benchmark, which then kills the agents itself.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		logf.Close()
		return nil, fmt.Errorf("start agent %d: %w", k, err)
	}
	pw.Close()
	p := &proc{k: k, cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	// The reader ends at EOF, when the agent has exited.
	go func() {
		defer logf.Close()
		defer pr.Close()
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			at := time.Now()
			if onLine != nil {
				onLine(sc.Text(), at)
			}
			logf.Write(append(sc.Bytes(), '\n'))
		}
	}()
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// pid is the agent's process ID.
func (p *proc) pid() int { return p.cmd.Process.Pid }

// alive reports whether the agent is still running.
func (p *proc) alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// kill sends SIGKILL and waits until the process is reaped.
func (p *proc) kill() error {
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kill agent %d: %w", p.k, err)
	}
	select {
	case <-p.exited:
		return nil
	case <-time.After(killWait):
		return fmt.Errorf("agent %d (pid %d) still running %v after SIGKILL", p.k, p.pid(), killWait)
	}
}

// tailFile returns the last n lines of a file, indented, for error messages.
func tailFile(path string, n int) string {
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

// usage is one process's resource counters.
type usage struct {
	rssKiB   int64 // VmRSS
	cpuTicks int64 // utime + stime, in clock ticks
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat times; 100 on every
// Linux architecture Go supports.
const clockTicks = 100

// readUsage reads a process's RSS and CPU time from /proc.
func readUsage(pid int) (usage, error) {
	dir := "/proc/" + strconv.Itoa(pid)
	st, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return usage{}, err
	}
	ticks, err := parseStatCPU(st)
	if err != nil {
		return usage{}, fmt.Errorf("%s/stat: %w", dir, err)
	}
	status, err := os.ReadFile(dir + "/status")
	if err != nil {
		return usage{}, err
	}
	rss, err := parseStatusRSS(status)
	if err != nil {
		return usage{}, fmt.Errorf("%s/status: %w", dir, err)
	}
	return usage{rssKiB: rss, cpuTicks: ticks}, nil
}

// parseStatCPU returns utime+stime (fields 14 and 15) of /proc/PID/stat.
// The command name (field 2) may hold spaces and parentheses, so fields
// are counted from the last ')'.
func parseStatCPU(b []byte) (int64, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("no ')' after the command name")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime is field 14, stime field 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("%d fields after the command name, want at least 13", len(f))
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return ut + st, nil
}

// parseStatusRSS returns VmRSS from /proc/PID/status, in KiB.
func parseStatusRSS(b []byte) (int64, error) {
	for line := range strings.SplitSeq(string(b), "\n") {
		v, ok := strings.CutPrefix(line, "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("VmRSS line %q: want \"N kB\"", line)
		}
		return strconv.ParseInt(f[0], 10, 64)
	}
	return 0, errors.New("no VmRSS line")
}

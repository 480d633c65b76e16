package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTick is USER_HZ, the unit of /proc CPU times (100 on Linux).
const clockTick = 100

// daemon is a background process started by this program: own process
// group (a Ctrl-C reaches us, and we stop it), SIGKILLed if we die.
type daemon struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
}

// startDaemon starts argv with stdout and stderr appended to logPath.
func startDaemon(name, logPath string, argv ...string) (*daemon, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Pdeathsig fires when the forking thread exits: fork on a locked
	// thread that lives until the child is reaped.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	d := &daemon{name: name, cmd: cmd, done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			close(d.done)
			return
		}
		started <- nil
		cmd.Wait()
		close(d.done)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	return d, nil
}

func (d *daemon) pid() int { return d.cmd.Process.Pid }

func (d *daemon) exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, then SIGKILL after grace.
func (d *daemon) stop(grace time.Duration) {
	if d == nil || d.exited() {
		return
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
		return
	case <-time.After(grace):
	}
	d.cmd.Process.Kill()
	<-d.done
}

// procCPU returns the CPU time (user + system) pid has used so far.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	return parseStatCPU(string(b))
}

// parseStatCPU reads utime and stime (fields 14 and 15) of a
// /proc/PID/stat line; the command name in parentheses may hold spaces.
func parseStatCPU(s string) (time.Duration, error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("bad /proc stat line")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, errors.New("bad /proc stat line")
	}
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("bad /proc stat line: %w", err)
	}
	return time.Duration(u+st) * time.Second / clockTick, nil
}

// cpuTicks returns busy and total jiffies of all CPUs (/proc/stat).
func cpuTicks() (busy, total uint64) {
	b, _ := os.ReadFile("/proc/stat")
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 2 {
		return 0, 0
	}
	for i, s := range f[1:] {
		n, _ := strconv.ParseUint(s, 10, 64)
		total += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy, total
}

// hostCPU is a snapshot of the machine's CPU counters, to compute how many
// cores were busy between two snapshots.
type hostCPU struct {
	at          time.Time
	busy, total uint64
}

func readHostCPU() hostCPU {
	b, t := cpuTicks()
	return hostCPU{at: time.Now(), busy: b, total: t}
}

// busyCores returns the average number of busy cores from h to later.
func (h hostCPU) busyCores(later hostCPU) float64 {
	secs := later.at.Sub(h.at).Seconds()
	if secs <= 0 {
		return 0
	}
	return float64(later.busy-h.busy) / clockTick / secs
}

// proc is one process of /proc.
type proc struct {
	pid, ppid int
	argv      []string
}

func listProcs() []proc {
	entries, _ := os.ReadDir("/proc")
	var ps []proc
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		p := proc{pid: pid, ppid: ppid}
		if b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline"); err == nil {
			p.argv = strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		}
		ps = append(ps, p)
	}
	return ps
}

// ancestors returns this process and its ancestors.
func ancestors(ps []proc) map[int]bool {
	byPID := map[int]proc{}
	for _, p := range ps {
		byPID[p.pid] = p
	}
	out := map[int]bool{}
	for pid := os.Getpid(); pid > 1 && !out[pid]; pid = byPID[pid].ppid {
		out[pid] = true
	}
	return out
}

// reap SIGKILLs every process (not this one or its ancestors) whose
// command line names the work directory (both servers are started with
// it in their arguments) and removes the directory except logs/.
func reap(work string) error {
	work = filepath.Clean(work)
	if work == "/" || work == "" || !filepath.IsAbs(work) {
		return fmt.Errorf("refusing to reap %q", work)
	}
	ps := listProcs()
	mine := ancestors(ps)
	var victims []int
	for _, p := range ps {
		if !mine[p.pid] && strings.Contains(strings.Join(p.argv, " "), work+"/") {
			victims = append(victims, p.pid)
		}
	}
	for _, pid := range victims {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, pid := range victims {
		for time.Now().Before(deadline) {
			if err := syscall.Kill(pid, 0); err != nil {
				break
			}
			if b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); err == nil && strings.Contains(string(b), ") Z ") {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	entries, err := os.ReadDir(work)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		if e.Name() == "logs" {
			continue
		}
		if err := os.RemoveAll(filepath.Join(work, e.Name())); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// otherBenchmarks lists processes other than this run whose command line
// mentions scripts/bench (what `pgrep -af scripts/bench` shows).
func otherBenchmarks() []string {
	ps := listProcs()
	mine := ancestors(ps)
	var out []string
	for _, p := range ps {
		line := strings.Join(p.argv, " ")
		if mine[p.pid] || !strings.Contains(line, "scripts/bench") || strings.Contains(line, "scripts/bench/dns") ||
			strings.Contains(line, "internal/dns") {
			continue
		}
		out = append(out, fmt.Sprintf("%d %s", p.pid, line))
	}
	return out
}

// waitQuiet waits (up to limit) while another benchmark runs or the
// machine is busier than idleCores (sampled over 3 s: the e2e tests of a
// colleague, say), and says whether it had to give up.
func waitQuiet(ctx context.Context, limit time.Duration, idleCores float64) (busy bool, err error) {
	deadline := time.Now().Add(limit)
	for said := false; ; said = true {
		h0 := readHostCPU()
		if err := sleep(ctx, 3*time.Second); err != nil {
			return false, err
		}
		load := h0.busyCores(readHostCPU())
		others := otherBenchmarks()
		if len(others) == 0 && load <= idleCores {
			if said {
				logf("the machine is quiet (%.2f cores busy)", load)
			}
			return false, nil
		}
		if time.Now().After(deadline) {
			logf("still busy after %v (%.2f cores, %d other benchmark processes); measuring anyway (the report says so)", limit, load, len(others))
			return true, nil
		}
		if !said {
			msg := fmt.Sprintf("waiting for a quiet machine: %.2f cores busy (at most %.2f wanted)", load, idleCores)
			if len(others) > 0 {
				msg += ", another benchmark is running:\n  " + strings.Join(others, "\n  ")
			}
			logf("%s", msg)
		}
		if err := sleep(ctx, 7*time.Second); err != nil {
			return false, err
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// udpRcvbufErrors returns the kernel's count of UDP datagrams dropped
// because a socket's receive buffer was full (RcvbufErrors in
// /proc/net/snmp), for the whole network namespace.
func udpRcvbufErrors() int64 {
	b, err := os.ReadFile("/proc/net/snmp")
	if err != nil {
		return 0
	}
	var names []string
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "Udp:" {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		for i, n := range names {
			if n == "RcvbufErrors" && i < len(f) {
				v, _ := strconv.ParseInt(f[i], 10, 64)
				return v
			}
		}
	}
	return 0
}

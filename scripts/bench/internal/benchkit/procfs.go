package benchkit

// Reading /proc. Fields of /proc/PID/stat are counted from the last ')':
// the command name (field 2) is in parentheses and may itself hold spaces
// and parentheses. Times there are in clock ticks of USER_HZ, which is
// 100 on every Linux architecture Go supports.

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ClockTicks is USER_HZ, the unit of the CPU times in /proc.
const ClockTicks = 100

// Proc is one process of /proc.
type Proc struct {
	PID, PPID int
	// Start is the start time in clock ticks after boot (field 22): with
	// the PID, it tells a process from a later one that reuses the PID.
	Start uint64
	// State is the state letter (field 3): R, S, D, Z, ….
	State string
	// Argv is the command line, if it was asked for and is readable;
	// empty for kernel threads and zombies.
	Argv []string
}

// ReadProc reads /proc/PID/stat.
func ReadProc(pid int) (Proc, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return Proc{}, err
	}
	f, err := statFields(b)
	if err != nil {
		return Proc{}, err
	}
	if len(f) < 20 {
		return Proc{}, fmt.Errorf("/proc/%d/stat: %d fields after the command name, want at least 20", pid, len(f))
	}
	ppid, _ := strconv.Atoi(f[1])
	start, _ := strconv.ParseUint(f[19], 10, 64)
	return Proc{PID: pid, PPID: ppid, State: f[0], Start: start}, nil
}

// statFields returns the fields of a /proc/PID/stat line after the
// command name: field 3 (the state) is the first.
func statFields(b []byte) ([]string, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil, errors.New("no ')' after the command name")
	}
	return strings.Fields(string(b[i+1:])), nil
}

// ListProcs reads every process; with argv, also its command line.
// Processes that exit meanwhile are left out.
func ListProcs(argv bool) []Proc {
	entries, _ := os.ReadDir("/proc")
	var ps []Proc
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		p, err := ReadProc(pid)
		if err != nil {
			continue
		}
		if argv {
			if b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline"); err == nil && len(b) > 0 {
				p.Argv = strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
			}
		}
		ps = append(ps, p)
	}
	return ps
}

// Ancestors returns this process and its ancestors, as of ps.
func Ancestors(ps []Proc) map[int]bool {
	byPID := map[int]Proc{}
	for _, p := range ps {
		byPID[p.PID] = p
	}
	out := map[int]bool{}
	for pid := os.Getpid(); pid > 1 && !out[pid]; pid = byPID[pid].PPID {
		out[pid] = true
	}
	return out
}

// TreeOf returns roots and all their descendants as of ps, leaving out
// init and this process.
func TreeOf(ps []Proc, roots []int) []Proc {
	children := map[int][]int{}
	byPID := map[int]Proc{}
	for _, p := range ps {
		children[p.PPID] = append(children[p.PPID], p.PID)
		byPID[p.PID] = p
	}
	var out []Proc
	seen := map[int]bool{}
	queue := slices.Clone(roots)
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		if seen[pid] || pid <= 1 || pid == os.Getpid() {
			continue
		}
		seen[pid] = true
		if p, ok := byPID[pid]; ok {
			out = append(out, p)
		}
		queue = append(queue, children[pid]...)
	}
	return out
}

// SigKill SIGKILLs each process that is still the same process (same
// start time), without waiting.
func SigKill(victims []Proc) {
	for _, v := range victims {
		if cur, err := ReadProc(v.PID); err == nil && cur.Start == v.Start {
			syscall.Kill(v.PID, syscall.SIGKILL)
		}
	}
}

// WaitDead waits up to timeout until every victim is gone or a zombie,
// and returns the PIDs of those that are not.
func WaitDead(victims []Proc, timeout time.Duration) []int {
	deadline := time.Now().Add(timeout)
	var left []int
	for _, v := range victims {
		for {
			cur, err := ReadProc(v.PID)
			if err != nil || cur.Start != v.Start || cur.State == "Z" {
				break
			}
			if time.Now().After(deadline) {
				left = append(left, v.PID)
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return left
}

// KillTrees SIGKILLs roots and their descendants and waits (up to 10 s)
// until they are gone or zombies.
func KillTrees(ps []Proc, roots []int) {
	v := TreeOf(ps, roots)
	SigKill(v)
	WaitDead(v, 10*time.Second)
}

// ShimAddress returns the -address of a containerd-shim command line, or "".
func ShimAddress(argv []string) string {
	if len(argv) == 0 || !strings.HasPrefix(baseName(argv[0]), "containerd-shim") {
		return ""
	}
	for i, a := range argv {
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if name != "address" || !strings.HasPrefix(a, "-") {
			continue
		}
		if hasVal {
			return val
		}
		if i+1 < len(argv) {
			return argv[i+1]
		}
	}
	return ""
}

func baseName(path string) string {
	return path[strings.LastIndexByte(path, '/')+1:]
}

// ProcCPU returns the CPU time (user + system) pid has used so far.
func ProcCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	d, err := parseStatCPU(b)
	if err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return d, nil
}

// parseStatCPU returns utime + stime (fields 14 and 15) of a
// /proc/PID/stat line.
func parseStatCPU(b []byte) (time.Duration, error) {
	f, err := statFields(b)
	if err != nil {
		return 0, err
	}
	if len(f) < 13 {
		return 0, fmt.Errorf("%d fields after the command name, want at least 13", len(f))
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(ut+st) * time.Second / ClockTicks, nil
}

// Mem is a process's memory from /proc/PID/status, in KiB.
type Mem struct {
	RSS int64 // VmRSS: resident now
	HWM int64 // VmHWM: the peak of RSS; 0 if not reported
}

// ProcMem reads pid's resident memory.
func ProcMem(pid int) (Mem, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return Mem{}, err
	}
	m, err := parseStatus(b)
	if err != nil {
		return Mem{}, fmt.Errorf("/proc/%d/status: %w", pid, err)
	}
	return m, nil
}

// parseStatus reads VmRSS and VmHWM of /proc/PID/status; a status without
// VmRSS (a zombie, a kernel thread) is an error.
func parseStatus(b []byte) (Mem, error) {
	var m Mem
	rss := false
	for line := range strings.Lines(string(b)) {
		key, val, ok := strings.Cut(line, ":")
		if !ok || (key != "VmRSS" && key != "VmHWM") {
			continue
		}
		f := strings.Fields(val)
		if len(f) != 2 || f[1] != "kB" {
			return Mem{}, fmt.Errorf("%s line %q: want \"N kB\"", key, strings.TrimSpace(line))
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return Mem{}, fmt.Errorf("%s: %w", key, err)
		}
		if key == "VmRSS" {
			m.RSS, rss = n, true
		} else {
			m.HWM = n
		}
	}
	if !rss {
		return Mem{}, errors.New("no VmRSS line")
	}
	return m, nil
}

// MemAvailable returns MemAvailable of /proc/meminfo in KiB; 0 if unknown.
func MemAvailable() int64 {
	b, _ := os.ReadFile("/proc/meminfo")
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "MemAvailable:"); ok {
			if f := strings.Fields(v); len(f) >= 1 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n
			}
		}
	}
	return 0
}

// HostCPU is the machine's cumulative CPU time from /proc/stat, in clock
// ticks summed over all CPUs, and when it was read.
type HostCPU struct {
	At          time.Time
	Busy, Total int64
}

// ReadHostCPU reads the first ("cpu") line of /proc/stat.
func ReadHostCPU() (HostCPU, error) {
	at := time.Now()
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return HostCPU{At: at}, err
	}
	h, err := parseHostCPU(b)
	h.At = at
	return h, err
}

// parseHostCPU sums the "cpu" line of /proc/stat: user nice system idle
// iowait irq softirq steal. Guest time, the fields after steal, is already
// counted in user and nice. Idle and iowait are not busy.
func parseHostCPU(b []byte) (HostCPU, error) {
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return HostCPU{}, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	var h HostCPU
	for i, v := range f[1:9] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return HostCPU{}, fmt.Errorf("/proc/stat: %w", err)
		}
		h.Total += n
		if i != 3 && i != 4 { // idle, iowait
			h.Busy += n
		}
	}
	return h, nil
}

// BusyPct is the share of all CPUs, in %, that was busy from h to later;
// NaN if no time passed between them (or a sample failed).
func (h HostCPU) BusyPct(later HostCPU) float64 {
	if later.Total <= h.Total {
		return math.NaN()
	}
	return float64(later.Busy-h.Busy) / float64(later.Total-h.Total) * 100
}

// BusyCores is the average number of busy CPUs from h to later, by the
// wall clock; 0 if no time passed.
func (h HostCPU) BusyCores(later HostCPU) float64 {
	secs := later.At.Sub(h.At).Seconds()
	if secs <= 0 {
		return 0
	}
	return float64(later.Busy-h.Busy) / ClockTicks / secs
}

// HarnessNice is this process's nice value. The scripts run some
// benchmarks at nice -10, so that the harness takes its timestamps
// promptly while what it measures keeps the CPUs busy; what it starts must
// not get that advantage (see [DaemonOptions.Nice]).
func HarnessNice() int {
	p, err := unix.Getpriority(unix.PRIO_PROCESS, 0)
	if err != nil {
		return 0
	}
	return 20 - p // the raw syscall returns 20 - nice
}

// netnsID identifies a network namespace: device and inode of its nsfs
// file.
type netnsID struct{ dev, ino uint64 }

// netnsOf identifies the network namespace at path (/run/netns/NAME,
// /proc/PID/ns/net).
func netnsOf(path string) (netnsID, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return netnsID{}, err
	}
	return netnsID{uint64(st.Dev), st.Ino}, nil
}

// PidsInNetns returns the processes whose network namespace is the one at
// path (what `ip netns pids` prints), without this process.
func PidsInNetns(path string) ([]int, error) {
	want, err := netnsOf(path)
	if err != nil {
		return nil, err
	}
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if id, err := netnsOf("/proc/" + e.Name() + "/ns/net"); err == nil && id == want {
			out = append(out, pid)
		}
	}
	return out, nil
}

// Usage is a process's resource counters at one moment.
type Usage struct {
	RSS int64         // VmRSS, KiB
	CPU time.Duration // user + system time so far
}

// ReadUsage reads pid's RSS and CPU time.
func ReadUsage(pid int) (Usage, error) {
	cpu, err := ProcCPU(pid)
	if err != nil {
		return Usage{}, err
	}
	m, err := ProcMem(pid)
	if err != nil {
		return Usage{}, err
	}
	return Usage{RSS: m.RSS, CPU: cpu}, nil
}

// CPUPct is the CPU the process used from u to later, elapsed apart, in %
// of one core.
func (u Usage) CPUPct(later Usage, elapsed time.Duration) float64 {
	return (later.CPU - u.CPU).Seconds() / elapsed.Seconds() * 100
}

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Paths containerd 1.6 and its runc shim do not let us move (see
// internal/testenv/containerd.go): runc's state is
// /run/containerd/runc/<namespace>/<id> for every containerd on the
// machine, bundles are <state>/<taskDir>/<namespace>/<id>.
const (
	runcStateRoot = "/run/containerd/runc"
	taskDir       = "io.containerd.runtime.v2.task"
)

// daemon is a process started by this program in a lab host: its own
// process group (a Ctrl-C reaches us, and we stop it) and SIGKILLed if we
// die (the parent-death signal survives nice's and nsenter's exec, so the
// PID is the daemon's own).
type daemon struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	done    chan struct{}
}

// startDaemon runs argv in the network namespace at netns (a path; empty:
// ours) at nice value adj relative to ours, with stdout and stderr
// appended to logPath.
func startDaemon(name, logPath, netns string, adj int, argv ...string) (*daemon, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	full := []string{"nice", "-n", strconv.Itoa(adj)}
	if netns != "" {
		full = append(full, "nsenter", "--net="+netns, "--")
	}
	full = append(full, argv...)
	cmd := exec.Command(full[0], full[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Pdeathsig fires when the forking thread exits: fork on a locked
	// thread that lives until the child is reaped.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	d := &daemon{name: name, logPath: logPath, cmd: cmd, done: make(chan struct{})}
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

// waitGone waits up to timeout for the process to be reaped.
func (d *daemon) waitGone(timeout time.Duration) bool {
	if d == nil {
		return true
	}
	select {
	case <-d.done:
		return true
	case <-time.After(timeout):
		return false
	}
}

// exitError describes a daemon that exited on its own, with the end of
// its log.
func (d *daemon) exitError() error {
	return fmt.Errorf("%s exited (%v); end of %s:\n%s", d.name, d.cmd.ProcessState, d.logPath, tailFile(d.logPath, 15))
}

// tailFile returns the last n lines of a file, indented.
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

// harnessNice is this process's nice value; scripts/bench/heal runs the
// program at -10 so that its timestamps are taken promptly while agents
// and containerds (started back at 0) keep the CPUs busy.
func harnessNice() int {
	p, err := unix.Getpriority(unix.PRIO_PROCESS, 0)
	if err != nil {
		return 0
	}
	return 20 - p // the raw syscall returns 20 - nice
}

// proc is one process of /proc.
type proc struct {
	pid, ppid int
	start     uint64
	state     string
	argv      []string
}

func readProc(pid int) (proc, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return proc{}, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return proc{}, errors.New("bad stat")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return proc{}, errors.New("bad stat")
	}
	ppid, _ := strconv.Atoi(f[1])
	start, _ := strconv.ParseUint(f[19], 10, 64)
	return proc{pid: pid, ppid: ppid, state: f[0], start: start}, nil
}

// listProcs reads every process; with argv, also its command line.
func listProcs(argv bool) []proc {
	entries, _ := os.ReadDir("/proc")
	var ps []proc
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		p, err := readProc(pid)
		if err != nil {
			continue
		}
		if argv {
			if b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline"); err == nil {
				p.argv = strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
			}
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

// nsID identifies a network namespace: device and inode of its nsfs file.
type nsID struct{ dev, ino uint64 }

func netnsOf(path string) (nsID, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return nsID{}, err
	}
	return nsID{uint64(st.Dev), st.Ino}, nil
}

// pidsInNetns returns the processes whose network namespace is the one at
// path (what `ip netns pids` prints), without this process.
func pidsInNetns(path string) ([]int, error) {
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

// treeOf returns roots and all their descendants as of ps.
func treeOf(ps []proc, roots []int) []proc {
	children := map[int][]int{}
	byPID := map[int]proc{}
	for _, p := range ps {
		children[p.ppid] = append(children[p.ppid], p.pid)
		byPID[p.pid] = p
	}
	var out []proc
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

// sigkill SIGKILLs each process that is still the same process (same
// start time), without waiting.
func sigkill(victims []proc) {
	for _, v := range victims {
		if cur, err := readProc(v.pid); err == nil && cur.start == v.start {
			syscall.Kill(v.pid, syscall.SIGKILL)
		}
	}
}

// waitDead waits up to timeout until every victim is gone or a zombie.
func waitDead(victims []proc, timeout time.Duration) []int {
	deadline := time.Now().Add(timeout)
	var left []int
	for _, v := range victims {
		for {
			cur, err := readProc(v.pid)
			if err != nil || cur.start != v.start || cur.state == "Z" {
				break
			}
			if time.Now().After(deadline) {
				left = append(left, v.pid)
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return left
}

// killTrees SIGKILLs roots and their descendants and waits (up to 10 s).
func killTrees(ps []proc, roots []int) {
	v := treeOf(ps, roots)
	sigkill(v)
	waitDead(v, 10*time.Second)
}

// shimAddress returns the -address of a containerd-shim process, or "".
func shimAddress(argv []string) string {
	if len(argv) == 0 || !strings.HasPrefix(filepath.Base(argv[0]), "containerd-shim") {
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

// reap removes everything a run with work directory work left but its
// logs: processes naming the directory (containerds, agents) and shims
// whose -address is under it, with their descendants (the containers);
// runc state and cgroup leaves of the bundles in every host's containerd
// state; mounts below the directory (rootfs overlays, replicas' network
// namespaces); and the directory except logs/. The containerd namespace
// "orch" is shared with every other containerd on the machine (tests use
// it too), so its parents (/run/containerd/runc/orch, the cgroup /orch)
// are left alone.
func reap(work string) error {
	work = filepath.Clean(work)
	if work == "/" || work == "" || work == "." {
		return errors.New("refusing to reap " + work)
	}
	var errs []error
	ps := listProcs(true)
	mine := ancestors(ps)
	var roots []int
	for _, p := range ps {
		if mine[p.pid] {
			continue
		}
		addr := strings.TrimPrefix(shimAddress(p.argv), "unix://")
		named := false
		for _, a := range p.argv {
			if strings.Contains(a, work+"/") || a == work {
				named = true
				break
			}
		}
		if named || (addr != "" && strings.HasPrefix(addr, work+"/")) {
			roots = append(roots, p.pid)
		}
	}
	killTrees(ps, roots)

	states, _ := filepath.Glob(filepath.Join(work, "run", "*", "ctd", "state", taskDir))
	var cgroups []string
	for _, tasks := range states {
		nss, _ := os.ReadDir(tasks)
		for _, ns := range nss {
			ids, _ := os.ReadDir(filepath.Join(tasks, ns.Name()))
			for _, id := range ids {
				bundle := filepath.Join(tasks, ns.Name(), id.Name())
				if b, err := os.ReadFile(filepath.Join(bundle, "address")); err == nil {
					os.Remove(strings.TrimPrefix(strings.TrimSpace(string(b)), "unix://"))
				}
				root := filepath.Join(runcStateRoot, ns.Name())
				if _, err := os.Stat(filepath.Join(root, id.Name(), "state.json")); err == nil {
					c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					out, err := exec.CommandContext(c, "runc", "--root", root, "delete", "--force", id.Name()).CombinedOutput()
					cancel()
					if err != nil {
						errs = append(errs, fmt.Errorf("runc delete --force %s: %v: %s", id.Name(), err, bytes.TrimSpace(out)))
					}
				} else {
					os.RemoveAll(filepath.Join(root, id.Name()))
				}
				cgroups = append(cgroups, "/"+ns.Name()+"/"+id.Name())
			}
		}
	}
	removeCgroups(cgroups)

	errs = append(errs, unmountUnder(work))
	entries, err := os.ReadDir(work)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, err)
	}
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

// mountPoints returns mount points and types of /proc/self/mountinfo.
func mountPoints() (points, types []string) {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		sep := slices.Index(f, "-")
		if len(f) < 5 || sep < 5 || sep+1 >= len(f) {
			continue
		}
		points = append(points, unescape(f[4]))
		types = append(types, f[sep+1])
	}
	return points, types
}

func unescape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// removeCgroups rmdirs each cgroup path (deepest first) in every cgroup
// hierarchy; busy or missing ones are left alone.
func removeCgroups(rels []string) {
	slices.SortFunc(rels, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
	points, types := mountPoints()
	for i, p := range points {
		if types[i] != "cgroup" && types[i] != "cgroup2" {
			continue
		}
		for _, rel := range rels {
			syscall.Rmdir(filepath.Join(p, rel))
		}
	}
}

// unmountUnder unmounts everything at or below dir, deepest and newest first.
func unmountUnder(dir string) error {
	var errs []error
	for range 3 { // stacked mounts: repeat
		points, _ := mountPoints()
		var under []string
		for i := len(points) - 1; i >= 0; i-- {
			if p := points[i]; p == dir || strings.HasPrefix(p, dir+"/") {
				under = append(under, p)
			}
		}
		if len(under) == 0 {
			return nil
		}
		slices.SortStableFunc(under, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
		errs = errs[:0]
		for _, p := range under {
			err := syscall.Unmount(p, 0)
			if err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
				err = syscall.Unmount(p, syscall.MNT_DETACH)
			}
			if err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
				errs = append(errs, fmt.Errorf("unmount %s: %w", p, err))
			}
		}
	}
	return errors.Join(errs...)
}

// otherLoad lists what else loads the machine: processes whose command
// line names scripts/bench/ (other benchmarks), test binaries (*.test), Go
// builds (go build/test/vet and the compiler and linker), and network namespaces other than this run's (prefix) with processes
// in them (tests build labs and run agents in them). Empty namespaces
// left by crashed runs cost nothing and are not listed.
func otherLoad(prefix string) []string {
	ps := listProcs(true)
	mine := ancestors(ps)
	var out []string
	for _, p := range ps {
		if mine[p.pid] || len(p.argv) == 0 {
			continue
		}
		line := strings.Join(p.argv, " ")
		bench := strings.Contains(line, "scripts/bench/") && !strings.Contains(line, "scripts/bench/heal") &&
			!strings.Contains(line, "internal/heal") && !strings.Contains(line, "orch-bench-heal")
		if bench || strings.HasSuffix(p.argv[0], ".test") || goTool(p.argv) {
			if len(line) > 100 {
				line = line[:100] + "…"
			}
			out = append(out, fmt.Sprintf("%d %s", p.pid, line))
		}
	}
	dirs, _ := os.ReadDir("/run/netns")
	var ids []nsID
	var names []string
	for _, d := range dirs {
		if strings.HasPrefix(d.Name(), prefix) {
			continue
		}
		if id, err := netnsOf(filepath.Join("/run/netns", d.Name())); err == nil {
			ids = append(ids, id)
			names = append(names, d.Name())
		}
	}
	if len(ids) > 0 {
		count := make([]int, len(ids))
		for _, p := range ps {
			id, err := netnsOf("/proc/" + strconv.Itoa(p.pid) + "/ns/net")
			if err != nil {
				continue
			}
			if i := slices.Index(ids, id); i >= 0 {
				count[i]++
			}
		}
		for i, n := range count {
			if n > 0 {
				out = append(out, fmt.Sprintf("netns %s (%d processes)", names[i], n))
			}
		}
	}
	slices.Sort(out)
	return out
}

// goTool reports whether argv is a Go build or test: `go build|test|vet|run|
// install` or the compiler, linker or vet it runs.
func goTool(argv []string) bool {
	base := filepath.Base(argv[0])
	if base == "go" && len(argv) > 1 {
		return slices.Contains([]string{"build", "test", "vet", "run", "install"}, argv[1])
	}
	return strings.Contains(argv[0], "/pkg/tool/") && slices.Contains([]string{"compile", "link", "vet", "asm", "cgo"}, base)
}

// vmRSS returns VmRSS of pid in KiB.
func vmRSS(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v)
			if len(f) >= 1 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n
			}
		}
	}
	return 0
}

// cpuTime returns utime+stime of pid in clock ticks (USER_HZ, 100).
func cpuTime(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return ut + st
}

// memAvailable returns MemAvailable from /proc/meminfo in KiB.
func memAvailable() int64 {
	b, _ := os.ReadFile("/proc/meminfo")
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "MemAvailable:"); ok {
			f := strings.Fields(v)
			if len(f) >= 1 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n
			}
		}
	}
	return 0
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

func pct(a, b uint64) float64 {
	if b == 0 {
		return 0
	}
	return 100 * float64(a) / float64(b)
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

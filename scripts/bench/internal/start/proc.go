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
)

// Paths containerd 1.6 and its runc shim do not let us move (see
// internal/testenv/containerd.go).
const (
	runcStateRoot = "/run/containerd/runc"
	taskDir       = "io.containerd.runtime.v2.task"
)

// daemon is a background process started by this program: own process
// group (a Ctrl-C reaches us, and we stop it), and SIGKILLed if we die.
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

// writeContainerdConfig writes dir/config.toml for a private containerd
// with root, state, temp and sockets under dir, as internal/testenv does.
func writeContainerdConfig(dir string) (config, socket string, err error) {
	for _, d := range []string{"root", "state", "tmp", "plugins"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o711); err != nil {
			return "", "", err
		}
	}
	socket = filepath.Join(dir, "containerd.sock")
	if len(socket)+len(".ttrpc") >= 108 {
		return "", "", fmt.Errorf("socket path %s too long", socket)
	}
	cfg := fmt.Sprintf(`# written by scripts/bench/internal/start
version = 2
root = %q
state = %q
temp = %q
plugin_dir = %q
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.nri.v1.nri",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
]

[grpc]
  address = %q

[ttrpc]
  address = %q

[debug]
  address = ""
  level = "info"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), filepath.Join(dir, "tmp"), filepath.Join(dir, "plugins"),
		socket, socket+".ttrpc", filepath.Join(dir, "root", "opt"))
	config = filepath.Join(dir, "config.toml")
	return config, socket, os.WriteFile(config, []byte(cfg), 0o644)
}

// waitCtr polls `ctr version` until it answers or timeout passes.
func waitCtr(ctx context.Context, socket string, d *daemon, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		if d.exited() {
			return fmt.Errorf("containerd exited: %v", d.cmd.ProcessState)
		}
		c, cancel := context.WithTimeout(ctx, 2*time.Second)
		out, err := exec.CommandContext(c, "ctr", "-a", socket, "version").CombinedOutput()
		cancel()
		if err == nil {
			return nil
		}
		last = fmt.Errorf("%w: %s", err, bytes.TrimSpace(out))
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
	return fmt.Errorf("containerd did not answer in %v: %v", timeout, last)
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

func listProcs() []proc {
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

// killTrees SIGKILLs roots and all their descendants and waits (up to 10 s)
// until they are gone or zombies.
func killTrees(ps []proc, roots []int) {
	children := map[int][]int{}
	byPID := map[int]proc{}
	for _, p := range ps {
		children[p.ppid] = append(children[p.ppid], p.pid)
		byPID[p.pid] = p
	}
	var victims []proc
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
			victims = append(victims, p)
		}
		queue = append(queue, children[pid]...)
	}
	for _, v := range victims {
		if cur, err := readProc(v.pid); err == nil && cur.start == v.start {
			syscall.Kill(v.pid, syscall.SIGKILL)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, v := range victims {
		for time.Now().Before(deadline) {
			cur, err := readProc(v.pid)
			if err != nil || cur.start != v.start || cur.state == "Z" {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
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

// reap removes everything a run with work directory work left: see the
// package comment. ctrNS is the ctr namespace whose cgroup parent and runc
// state directory belong to the benchmark alone.
func reap(work, ctrNS string) error {
	work = filepath.Clean(work)
	if work == "/" || work == "" {
		return errors.New("refusing to reap /")
	}
	var errs []error
	ps := listProcs()
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

	// Bundles left in containerd's state: runc state, cgroup leaf, shim socket.
	tasks := filepath.Join(work, "ctd", "state", taskDir)
	nss, _ := os.ReadDir(tasks)
	var cgroups []string
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
	// The namespaces' parents, if empty (rmdir and Remove leave a busy or
	// non-empty one, which another containerd on the host may be using):
	// the agent's namespace orch and the ctr one.
	for _, ns := range []string{"orch", ctrNS} {
		cgroups = append(cgroups, "/"+ns)
	}
	removeCgroups(cgroups)
	for _, ns := range []string{"orch", ctrNS} {
		os.Remove(filepath.Join(runcStateRoot, ns))
	}

	errs = append(errs, unmountUnder(work))
	// Everything but the logs.
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

// otherBenchmarks lists processes other than this run whose command line
// mentions scripts/bench (what `pgrep -af scripts/bench` shows).
func otherBenchmarks() []string {
	ps := listProcs()
	mine := ancestors(ps)
	var out []string
	for _, p := range ps {
		line := strings.Join(p.argv, " ")
		if mine[p.pid] || !strings.Contains(line, "scripts/bench") || strings.Contains(line, "scripts/bench/start") ||
			strings.Contains(line, "internal/start") {
			continue
		}
		out = append(out, fmt.Sprintf("%d %s", p.pid, line))
	}
	return out
}

// vmRSS returns VmRSS and VmHWM of pid in KiB.
func vmRSS(pid int) (rss, hwm int64, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, 0, err
	}
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		n, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			rss = n
		case "VmHWM:":
			hwm = n
		}
	}
	return rss, hwm, nil
}

// cpuTicks returns busy and total jiffies of all CPUs (/proc/stat).
func cpuTicks() (busy, total uint64) {
	b, _ := os.ReadFile("/proc/stat")
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	for i, s := range f[1:] {
		n, _ := strconv.ParseUint(s, 10, 64)
		total += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy, total
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

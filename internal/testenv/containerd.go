package testenv

// A private containerd per test.
//
// StartContainerd runs its own containerd process with everything it owns
// under one directory, os.MkdirTemp("", "ctd") (short, because the socket
// path must stay under the 108 bytes of sun_path):
//
//	/tmp/ctdNNN/owner.json       the test process (PID and start time) and the namespace
//	/tmp/ctdNNN/config.toml      written here: no CRI, no debug or metrics socket
//	/tmp/ctdNNN/containerd.log   containerd's stdout and stderr, kept across restarts
//	/tmp/ctdNNN/containerd.sock  gRPC (ttrpc beside it, containerd.sock.ttrpc)
//	/tmp/ctdNNN/root, state      containerd's root and state; overlay snapshots,
//	                             bundles and rootfs mounts live below them
//	/tmp/ctdNNN/tmp              containerd's temp dir (its temporary mounts)
//
// Not everything can be moved there. containerd 1.6 and its runc shim
// hard-code three places under /run/containerd: shim sockets
// (s/<sha256 of address, namespace and id>, unique per instance), runc's
// state (runc/<namespace>/<id>) and ctr's FIFOs (fifo/; ctr removes its
// own, a ctr killed mid-run leaves an empty directory that nobody cleans).
// Containers also get cgroups at the cgroupsPath their client chooses (ctr:
// /<namespace>/<id>, created by runc's cgroupfs driver in every mounted
// hierarchy: each v1 controller and the cgroup2 of a hybrid layout, or the
// single cgroup2 tree), and runc removes the leaf but never the
// /<namespace> parent. So each instance gets its own containerd namespace
// by default ("orchtest-NNN"): two tests running the same container ID
// never share runc state or a cgroup, and cleanup may remove what the
// namespace left.
//
// Shims outlive containerd on purpose (that is what lets a restarted
// containerd find its containers), and containers outlive a killed shim.
// Cleanup therefore does, in order: stop containerd (SIGTERM, then
// SIGKILL); SIGKILL every containerd-shim-* whose -address is this
// instance's socket, with all its descendants (the containers); for each
// bundle left in State, `runc delete --force` (removes runc state and the
// cgroup leaf) and the shim's socket; unmount everything below the
// directory, deepest first; rmdir the namespace's now empty cgroups; and
// only then, with no mount left below it, remove the directory.
//
// A test binary killed with SIGKILL runs no cleanup. containerd itself dies
// with it (parent-death signal), but shims, containers and mounts stay. The
// first StartContainerd of every later test process sweeps: under an flock
// of os.TempDir()/ctd.lock, each ctdNNN directory whose owner.json names a
// dead process is cleaned up as above, and shims pointing into a ctdNNN
// directory without a live owner are killed. Instances of live processes,
// including other test binaries running now, are never touched.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	// ctdPrefix is the os.MkdirTemp pattern of instance directories.
	ctdPrefix = "ctd"
	// ownerFile marks a directory as an instance and names its owner.
	ownerFile = "owner.json"
	// sweepLock serialises instance creation and the sweep across test
	// processes; it sits beside the instance directories.
	sweepLock = "ctd.lock"

	// runcStateRoot is the runc shim's default runc --root, under which
	// each containerd namespace has a directory (containerd 1.6).
	runcStateRoot = "/run/containerd/runc"

	// taskDir is the runtime v2 plugin's directory of bundles, below
	// State: <taskDir>/<namespace>/<id>.
	taskDir = "io.containerd.runtime.v2.task"

	// reapWait bounds the wait for SIGKILLed processes to disappear.
	reapWait = 10 * time.Second
	// maxSocketPath is the size of sun_path in struct sockaddr_un on Linux.
	maxSocketPath = 108

	// logTailLines is how much of containerd's log a failure shows.
	logTailLines = 30
)

// ctdDirRE matches the base names os.MkdirTemp(dir, ctdPrefix) creates.
var ctdDirRE = regexp.MustCompile(`^` + ctdPrefix + `[0-9]+$`)

// RequireContainerd skips the test unless it runs as root with containerd,
// its runc shim, runc and ctr on PATH. Under CI (see [InCI]) a missing
// binary fails the test instead; a missing root is always a skip.
func RequireContainerd(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to run containerd and containers; run as root (CI does)")
	}
	RequireCommand(t, "containerd", "containerd-shim-runc-v2", "runc", "ctr")
}

// ContainerdOptions configures [StartContainerd]. The zero value runs
// containerd in the test's own network namespace.
type ContainerdOptions struct {
	// NetNS is the path of a network namespace to run containerd in, such
	// as a lab host's "/run/netns/NAME". Its shims, and so every container
	// with host networking, run there too. containerd is started through
	// `nsenter --net=NetNS`, which enters only the network namespace: `ip
	// netns exec` would also remount /sys, and runc then finds no cgroup
	// mounts. Empty means the test's own namespace.
	NetNS string

	// Namespace is the containerd namespace tests should use, stored in
	// [Containerd.Namespace]. Empty means a fresh "orchtest-NNN" per
	// instance, which is what tests should use. runc's state
	// (/run/containerd/runc/<namespace>/<id>) and ctr's cgroups
	// (/<namespace>/<id>) are keyed by namespace and container ID, not by
	// containerd, so instances sharing a namespace (say, tests of two
	// packages, which go test runs in parallel) must not reuse container
	// IDs, and their cleanup removes only what their own bundles name.
	Namespace string

	// Snapshotter is the snapshotter [Containerd.Ctr] tells ctr to use;
	// a Go client must pass [Containerd.Snapshotter] itself, as containerd
	// has no default of its own outside CRI. Empty means overlayfs if
	// containerd could load it (the temp directory's filesystem supports
	// overlay), native otherwise (overlay on overlay, as in a container).
	Snapshotter string

	// StartTimeout bounds how long [Containerd.Start] waits for containerd
	// to answer. Zero means 30s.
	StartTimeout time.Duration

	// StopGrace is how long [Containerd.Stop] waits between SIGTERM and
	// SIGKILL. Zero means 5s.
	StopGrace time.Duration
}

// Containerd is a private containerd started by [StartContainerd]. Its
// fields are set once and read-only; its methods are safe for concurrent
// use.
type Containerd struct {
	// Socket is the gRPC address: a unix socket path for ctr --address or
	// the Go client.
	Socket string
	// Root and State are containerd's root and state directories.
	Root, State string
	// Namespace is the containerd namespace the test should use.
	Namespace string
	// Snapshotter is "overlayfs" or "native"; see
	// [ContainerdOptions.Snapshotter].
	Snapshotter string
	// Dir holds everything of this instance; see the file comment.
	Dir string
	// LogPath is the file receiving containerd's output.
	LogPath string
	// NetNS is [ContainerdOptions.NetNS].
	NetNS string

	config       string // config.toml
	ownNamespace bool   // Namespace was made for this instance
	startTimeout time.Duration
	stopGrace    time.Duration

	mu   sync.Mutex // guards proc
	proc *daemon    // nil while stopped
}

// daemon is one run of the containerd process.
type daemon struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd.Wait has returned
}

// exited reports whether the process has exited and been reaped.
func (d *daemon) exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// wait waits up to timeout for the process to exit.
func (d *daemon) wait(timeout time.Duration) bool {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-d.done:
		return true
	case <-timer.C:
		return false
	}
}

// StartContainerd starts a private containerd for the test and returns
// once it answers `ctr version`. A cleanup registered on t stops it and
// removes everything it left: shims, containers, mounts, runc state,
// cgroups of its namespace and its directory (see the file comment). The
// first call in a test process also removes what crashed test processes
// left behind.
//
// It skips the test as [RequireContainerd] does (and also needs nsenter
// for opts.NetNS), and fails it if containerd does not come up.
func StartContainerd(t testing.TB, opts ContainerdOptions) *Containerd {
	t.Helper()
	RequireContainerd(t)
	if opts.NetNS != "" {
		RequireCommand(t, "nsenter")
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = 30 * time.Second
	}
	if opts.StopGrace <= 0 {
		opts.StopGrace = 5 * time.Second
	}
	sweepOnce.Do(func() { sweepStale(t) })

	dir, ns, err := newInstanceDir(opts.Namespace)
	if err != nil {
		t.Fatalf("start containerd: %v", err)
	}
	// sun_path holds 108 bytes with the NUL; the ttrpc socket is the
	// longest name.
	if sock := filepath.Join(dir, "containerd.sock.ttrpc"); len(sock) >= maxSocketPath {
		os.RemoveAll(dir)
		t.Fatalf("start containerd: socket path %s is %d bytes, the limit is %d; set TMPDIR to a shorter directory", sock, len(sock), maxSocketPath-1)
	}
	c := &Containerd{
		Socket:       filepath.Join(dir, "containerd.sock"),
		Root:         filepath.Join(dir, "root"),
		State:        filepath.Join(dir, "state"),
		Namespace:    ns,
		Dir:          dir,
		LogPath:      filepath.Join(dir, "containerd.log"),
		NetNS:        opts.NetNS,
		ownNamespace: opts.Namespace == "",
		config:       filepath.Join(dir, "config.toml"),
		startTimeout: opts.StartTimeout,
		stopGrace:    opts.StopGrace,
	}
	// Before anything can fail: whatever exists is removed.
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("containerd %s: %s", c.Dir, c.logTail())
		}
		if err := c.Stop(); err != nil {
			t.Errorf("stop containerd: %v", err)
		}
		if err := reapInstance(c.Dir, c.Namespace, c.ownNamespace); err != nil {
			t.Errorf("clean up containerd %s: %v", c.Dir, err)
		}
	})
	if err := c.writeConfig(); err != nil {
		t.Fatalf("start containerd: %v", err)
	}
	if err := c.Start(); err != nil {
		t.Fatalf("%v", err)
	}
	c.Snapshotter = opts.Snapshotter
	if c.Snapshotter == "" {
		c.Snapshotter = "native"
		if c.pluginOK(t.Context(), "io.containerd.snapshotter.v1", "overlayfs") {
			c.Snapshotter = "overlayfs"
		}
	}
	return c
}

// writeConfig writes config.toml. Plugins that would touch shared paths
// (NRI's socket) or cost time and memory (CRI, snapshotters that cannot
// work here) are disabled; IDs a containerd version does not know are
// ignored. The v1 linux runtime must stay: in containerd 1.6 the tasks
// service refuses to load without it.
func (c *Containerd) writeConfig() error {
	for _, d := range []string{c.Root, c.State, filepath.Join(c.Dir, "tmp"), filepath.Join(c.Dir, "plugins")} {
		if err := os.Mkdir(d, 0o711); err != nil {
			return err
		}
	}
	cfg := fmt.Sprintf(`# written by orch internal/testenv.StartContainerd
version = 2
root = %q
state = %q
temp = %q
plugin_dir = %q
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.cri.v1.images",
  "io.containerd.cri.v1.runtime",
  "io.containerd.podsandbox.controller.v1.podsandbox",
  "io.containerd.nri.v1.nri",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.blockfile",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
]
required_plugins = ["io.containerd.grpc.v1.tasks", "io.containerd.grpc.v1.images", "io.containerd.grpc.v1.containers"]

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
`, c.Root, c.State, filepath.Join(c.Dir, "tmp"), filepath.Join(c.Dir, "plugins"),
		c.Socket, c.Socket+".ttrpc", filepath.Join(c.Root, "opt"))
	return os.WriteFile(c.config, []byte(cfg), 0o644)
}

// Start starts containerd, after [Containerd.Stop] or [Containerd.Kill],
// with the same configuration, root, state and socket: images, containers
// and running tasks (their shims kept running) are found again. It
// returns once containerd answers `ctr version`, or an error with the tail
// of its log. Starting a running containerd is an error.
func (c *Containerd) Start() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.proc != nil && !c.proc.exited() {
		return fmt.Errorf("start containerd %s: already running (pid %d)", c.Dir, c.proc.cmd.Process.Pid)
	}
	bin, err := exec.LookPath("containerd")
	if err != nil {
		return fmt.Errorf("start containerd: %w", err)
	}
	argv := []string{bin, "--config", c.config}
	if c.NetNS != "" {
		argv = append([]string{"nsenter", "--net=" + c.NetNS, "--"}, argv...)
	}
	logf, err := os.OpenFile(c.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("start containerd: %w", err)
	}
	defer logf.Close() // the child has its own descriptor

	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Own process group: a Ctrl-C of go test reaches the test, whose
		// cleanup stops containerd, rather than containerd directly.
		Setpgid: true,
		// Die with the test process (nsenter execs containerd and the
		// signal survives exec). Pdeathsig fires when the *thread* that
		// forked exits, so the fork happens on a locked thread that lives
		// until the child is reaped.
		Pdeathsig: syscall.SIGKILL,
	}
	d := &daemon{cmd: cmd, done: make(chan struct{})}
	started := make(chan error, 1) // written once by the goroutine below
	// Owned by d: returns once containerd has exited.
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
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
		return fmt.Errorf("start containerd: %w", err)
	}
	c.proc = d
	if err := c.waitReady(d); err != nil {
		c.stopLocked(0)
		return fmt.Errorf("start containerd %s: %w\n%s", c.Dir, err, c.logTail())
	}
	return nil
}

// waitReady polls until containerd answers on its socket: first a plain
// connect, which is cheap, then `ctr version`, which proves the gRPC
// services are up.
func (c *Containerd) waitReady(d *daemon) error {
	ctx, cancel := context.WithTimeout(context.Background(), c.startTimeout)
	defer cancel()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		if d.exited() {
			return fmt.Errorf("containerd exited: %v", d.cmd.ProcessState)
		}
		last = c.answers(ctx)
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no answer after %v: %w", c.startTimeout, last)
		case <-tick.C:
		}
	}
}

// answers returns nil if containerd answers `ctr version`.
func (c *Containerd) answers(ctx context.Context) error {
	conn, err := (&net.Dialer{}).DialContext(ctx, "unix", c.Socket)
	if err != nil {
		return err
	}
	conn.Close()
	out, err := c.Ctr(ctx, "version").CombinedOutput()
	if err != nil {
		return fmt.Errorf("ctr version: %w: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

// pluginOK reports whether `ctr plugins ls` lists the plugin as loaded.
func (c *Containerd) pluginOK(ctx context.Context, typ, id string) bool {
	out, err := c.Ctr(ctx, "plugins", "ls").Output()
	if err != nil {
		return false
	}
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == typ && f[1] == id && f[len(f)-1] == "ok" {
			return true
		}
	}
	return false
}

// Stop stops containerd: SIGTERM, then SIGKILL after the stop grace.
// Shims and their containers keep running, as they would across a
// containerd restart; [Containerd.Start] brings containerd back. Stopping
// a stopped containerd does nothing.
func (c *Containerd) Stop() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stopLocked(c.stopGrace)
}

// Kill stops containerd with SIGKILL at once, like a crash. Shims and
// containers keep running. Killing a stopped containerd does nothing.
func (c *Containerd) Kill() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stopLocked(0)
}

// stopLocked signals containerd's process group with SIGTERM (unless
// grace is zero) and then SIGKILL, and waits for it to be reaped.
func (c *Containerd) stopLocked(grace time.Duration) error {
	d := c.proc
	if d == nil {
		return nil
	}
	defer func() { c.proc = nil }()
	if d.exited() {
		return nil
	}
	pid := d.cmd.Process.Pid
	if grace > 0 {
		// The group: containerd (or nsenter before its exec). Shims have
		// process groups of their own and are not reached.
		syscall.Kill(-pid, syscall.SIGTERM)
		if d.wait(grace) {
			return nil
		}
	}
	if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kill containerd (pid %d): %w", pid, err)
	}
	if !d.wait(reapWait) {
		return fmt.Errorf("containerd (pid %d) still running %v after SIGKILL", pid, reapWait)
	}
	return nil
}

// Pid returns the PID of the running containerd, or 0 if it is stopped.
func (c *Containerd) Pid() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.proc == nil || c.proc.exited() {
		return 0
	}
	return c.proc.cmd.Process.Pid
}

// Ctr returns a command running ctr against this containerd:
// `ctr --address Socket --namespace Namespace args...`, with
// CONTAINERD_SNAPSHOTTER set to [Containerd.Snapshotter] for the
// subcommands that take --snapshotter (images import, run).
func (c *Containerd) Ctr(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "ctr", append([]string{"--address", c.Socket, "--namespace", c.Namespace}, args...)...)
	cmd.Env = append(os.Environ(), "CONTAINERD_SNAPSHOTTER="+c.Snapshotter)
	return cmd
}

// logTail returns the last lines of containerd's log, for messages.
func (c *Containerd) logTail() string {
	b, err := os.ReadFile(c.LogPath)
	if err != nil {
		return "no log: " + err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	lines = lines[max(len(lines)-logTailLines, 0):]
	return "last lines of " + c.LogPath + ":\n" + strings.Join(lines, "\n")
}

// instanceOwner is the content of owner.json.
type instanceOwner struct {
	PID       int    `json:"pid"`
	Start     uint64 `json:"start"` // in clock ticks since boot, /proc/PID/stat field 22
	Namespace string `json:"namespace,omitempty"`
	// OwnNamespace is set when the namespace was made for the instance,
	// so that nobody else has anything in it.
	OwnNamespace bool `json:"own_namespace,omitempty"`
}

// alive reports whether the owner process still runs.
func (o instanceOwner) alive() bool {
	p, err := readProc(o.PID)
	return err == nil && p.state != "Z" && p.start == o.Start
}

// newInstanceDir creates an instance directory and its owner marker under
// the sweep lock, so that a sweep never sees a directory without one, and
// returns the directory (symlinks resolved, to compare with mount points)
// and the namespace: namespace, or a fresh one if that is empty.
func newInstanceDir(namespace string) (dir, ns string, err error) {
	self, err := readProc(os.Getpid())
	if err != nil {
		return "", "", fmt.Errorf("read own start time: %w", err)
	}
	err = withSweepLock(func() error {
		d, err := os.MkdirTemp("", ctdPrefix)
		if err != nil {
			return err
		}
		if dir, err = filepath.EvalSymlinks(d); err != nil {
			return err
		}
		ns = namespace
		if ns == "" {
			ns = "orchtest-" + strings.TrimPrefix(filepath.Base(dir), ctdPrefix)
		}
		b, err := json.Marshal(instanceOwner{PID: self.pid, Start: self.start, Namespace: ns, OwnNamespace: namespace == ""})
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, ownerFile), append(b, '\n'), 0o644)
	})
	if err != nil {
		return "", "", fmt.Errorf("create containerd directory: %w", err)
	}
	return dir, ns, nil
}

// withSweepLock runs f holding an exclusive flock of os.TempDir()/ctd.lock.
func withSweepLock(f func() error) error {
	lf, err := os.OpenFile(filepath.Join(os.TempDir(), sweepLock), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	defer lf.Close() // releases the lock
	for {
		err = syscall.Flock(int(lf.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("lock %s: %w", lf.Name(), err)
	}
	return f()
}

var sweepOnce sync.Once

// sweepStale removes the instances of dead test processes; see the file
// comment. Failures are logged, not fatal: a leftover must not stop new
// tests.
func sweepStale(t testing.TB) {
	t.Helper()
	err := withSweepLock(func() error {
		tmp, err := filepath.EvalSymlinks(os.TempDir())
		if err != nil {
			return err
		}
		entries, err := os.ReadDir(tmp)
		if err != nil {
			return err
		}
		live := map[string]bool{}
		var errs []error
		for _, e := range entries {
			if !e.IsDir() || !ctdDirRE.MatchString(e.Name()) {
				continue
			}
			dir := filepath.Join(tmp, e.Name())
			b, err := os.ReadFile(filepath.Join(dir, ownerFile))
			if errors.Is(err, fs.ErrNotExist) {
				// Not ours, or a creation that died before writing the
				// marker (then it is empty): remove only if empty.
				os.Remove(dir)
				continue
			}
			var o instanceOwner
			if err == nil && json.Unmarshal(b, &o) == nil && o.alive() {
				live[dir] = true
				continue
			}
			// A corrupt marker cannot name a live owner either.
			t.Logf("testenv: removing containerd instance %s of a dead test process (%s)", dir, bytes.TrimSpace(b))
			if err := killInstanceDaemon(dir); err != nil {
				errs = append(errs, err)
			}
			if err := reapInstance(dir, o.Namespace, o.OwnNamespace); err != nil {
				errs = append(errs, err)
			}
		}
		// Shims whose instance directory is gone or has no live owner.
		procs, err := listProcs()
		if err != nil {
			return errors.Join(append(errs, err)...)
		}
		var orphans []int
		for _, p := range procs {
			addr := shimAddress(p.argv)
			d := filepath.Dir(addr)
			if addr != "" && filepath.Dir(d) == tmp && ctdDirRE.MatchString(filepath.Base(d)) && !live[d] {
				orphans = append(orphans, p.pid)
			}
		}
		if len(orphans) > 0 {
			t.Logf("testenv: killing %d orphaned containerd shims and their containers", len(orphans))
			errs = append(errs, killTrees(procs, orphans))
		}
		return errors.Join(errs...)
	})
	if err != nil {
		t.Logf("testenv: sweeping stale containerd instances: %v", err)
	}
}

// killInstanceDaemon kills a containerd still running with dir's config,
// which the parent-death signal should have done already.
func killInstanceDaemon(dir string) error {
	procs, err := listProcs()
	if err != nil {
		return err
	}
	cfg := filepath.Join(dir, "config.toml")
	var pids []int
	for _, p := range procs {
		if len(p.argv) > 0 && filepath.Base(p.argv[0]) == "containerd" && slices.Contains(p.argv, cfg) {
			pids = append(pids, p.pid)
		}
	}
	return killTrees(nil, pids)
}

// reapInstance removes everything an instance in dir, already stopped,
// left behind: shims and containers, runc state, shim sockets, mounts,
// empty cgroups of namespace, and finally dir itself. If the instance owns
// the namespace (ownNS), all of runc's state in it goes, including that of
// a `runc create` killed halfway, which has no bundle any more. It refuses
// to remove dir while anything is still mounted below it.
func reapInstance(dir, namespace string, ownNS bool) error {
	var errs []error
	procs, err := listProcs()
	if err != nil {
		return err
	}
	socket := filepath.Join(dir, "containerd.sock")
	var shims []int
	for _, p := range procs {
		if shimAddress(p.argv) == socket {
			shims = append(shims, p.pid)
		}
	}
	errs = append(errs, killTrees(procs, shims))

	// Bundles of tasks containerd did not delete: State/<taskDir>/<ns>/<id>.
	bundles, _ := filepath.Glob(filepath.Join(dir, "state", taskDir, "*", "*"))
	// Cgroups to remove: with everything below them (only in a namespace
	// of our own: in a shared one, rmdir could race with a runc that
	// just created a cgroup), or one by one.
	cgroupTrees, cgroups := map[string]bool{}, map[string]bool{}
	// runc deletes a container's state but not the namespace's directory
	// above it.
	runcRoots := map[string]bool{}
	if namespace != "" {
		if ownNS {
			cgroupTrees["/"+namespace] = true
		} else {
			cgroups["/"+namespace] = true
		}
		runcRoots[filepath.Join(runcStateRoot, namespace)] = true
	}
	for _, b := range bundles {
		ns := filepath.Base(filepath.Dir(b))
		cgroups["/"+ns] = true
		root, err := deleteRuncContainer(b, ns)
		if err != nil {
			errs = append(errs, err)
		}
		if root != "" {
			runcRoots[root] = true
		}
		if p, ok := bundleCgroupsPath(b); ok {
			cgroups[p] = true
			if parent := filepath.Dir(p); parent != "/" {
				cgroups[parent] = true
			}
		}
		if addr, err := os.ReadFile(filepath.Join(b, "address")); err == nil {
			sock := strings.TrimPrefix(strings.TrimSpace(string(addr)), "unix://")
			if fi, err := os.Lstat(sock); err == nil && fi.Mode().Type() == fs.ModeSocket {
				os.Remove(sock)
			}
		}
	}
	if ownNS && namespace != "" {
		errs = append(errs, deleteRuncNamespace(filepath.Join(runcStateRoot, namespace)))
	}
	errs = append(errs, unmountUnder(dir))
	for root := range runcRoots {
		os.Remove(root) // only if empty: other instances may share a namespace
	}
	errs = append(errs, removeCgroups(slices.Collect(maps.Keys(cgroupTrees)), true))
	errs = append(errs, removeCgroups(slices.Sorted(maps.Keys(cgroups)), false))

	if err := errors.Join(errs...); err != nil {
		return err
	}
	if left, err := mountsUnder(dir); err != nil || len(left) > 0 {
		return fmt.Errorf("not removing %s: still mounted below it: %v %v", dir, left, err)
	}
	return os.RemoveAll(dir)
}

// deleteRuncContainer runs `runc delete --force` on the container of
// bundle, if runc still has state for it and that state belongs to this
// bundle (runc labels it "bundle=PATH"). It returns the runc root of the
// namespace.
func deleteRuncContainer(bundle, ns string) (runcRoot string, err error) {
	var opts struct {
		Root       string `json:"root"`
		BinaryName string `json:"binary_name"`
	}
	if b, err := os.ReadFile(filepath.Join(bundle, "options.json")); err == nil {
		json.Unmarshal(b, &opts) // best effort: defaults below
	}
	if opts.Root == "" {
		opts.Root = runcStateRoot
	}
	if opts.BinaryName == "" {
		opts.BinaryName = "runc"
	}
	root := filepath.Join(opts.Root, ns)
	id := filepath.Base(bundle)
	b, err := os.ReadFile(filepath.Join(root, id, "state.json"))
	if err != nil {
		return root, nil // runc has nothing for it
	}
	var state struct {
		Config struct {
			Labels []string `json:"labels"`
		} `json:"config"`
	}
	if json.Unmarshal(b, &state) != nil || !slices.Contains(state.Config.Labels, "bundle="+bundle) {
		return root, nil // not this bundle's container
	}
	ctx, cancel := context.WithTimeout(context.Background(), reapWait)
	defer cancel()
	if out, err := exec.CommandContext(ctx, opts.BinaryName, "--root", root, "delete", "--force", id).CombinedOutput(); err != nil {
		return root, fmt.Errorf("runc delete --force %s: %w: %s", id, err, bytes.TrimSpace(out))
	}
	return root, nil
}

// deleteRuncNamespace force-deletes every container runc has under root,
// one namespace's runc root, and removes root. A container directory
// without state.json (a `runc create` that was killed) is just removed.
func deleteRuncNamespace(root string) error {
	entries, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		if _, err := os.Stat(filepath.Join(root, e.Name(), "state.json")); err != nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), reapWait)
		out, err := exec.CommandContext(ctx, "runc", "--root", root, "delete", "--force", e.Name()).CombinedOutput()
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("runc delete --force %s: %w: %s", e.Name(), err, bytes.TrimSpace(out)))
		}
	}
	return errors.Join(append(errs, os.RemoveAll(root))...)
}

// bundleCgroupsPath returns the cgroupsPath of the bundle's OCI spec, if it
// is a cgroupfs path (not systemd's "slice:prefix:name").
func bundleCgroupsPath(bundle string) (string, bool) {
	b, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		return "", false
	}
	var spec struct {
		Linux struct {
			CgroupsPath string `json:"cgroupsPath"`
		} `json:"linux"`
	}
	if json.Unmarshal(b, &spec) != nil {
		return "", false
	}
	p := filepath.Clean("/" + spec.Linux.CgroupsPath)
	if spec.Linux.CgroupsPath == "" || strings.Contains(p, ":") || p == "/" {
		return "", false
	}
	return p, true
}

// removeCgroups removes the cgroup directories rels (paths from a
// hierarchy's root; with tree, also every cgroup below them, children
// first; without, deepest path first) in every mounted hierarchy: each
// cgroup v1 controller and cgroup2. It only rmdirs, so a cgroup that still
// has processes or children stays.
func removeCgroups(rels []string, tree bool) error {
	mounts, err := readMountinfo()
	if err != nil {
		return err
	}
	slices.SortFunc(rels, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
	var errs []error
	for _, m := range mounts {
		if m.fstype != "cgroup" && m.fstype != "cgroup2" {
			continue
		}
		for _, rel := range rels {
			rel = filepath.Clean("/" + rel)
			if rel == "/" {
				continue
			}
			errs = append(errs, rmdirCgroup(filepath.Join(m.point, rel), tree))
		}
	}
	return errors.Join(errs...)
}

// rmdirCgroup removes the cgroup dir (with tree, its children first) with
// rmdir only. A missing dir is fine.
func rmdirCgroup(dir string, tree bool) error {
	var errs []error
	if tree {
		entries, err := os.ReadDir(dir)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, e := range entries {
			if e.IsDir() {
				errs = append(errs, rmdirCgroup(filepath.Join(dir, e.Name()), true))
			}
		}
	}
	// EBUSY, ENOTEMPTY: processes or child cgroups are still in it. Ours
	// were killed and deleted by runc, which reports its own failures; so
	// this is a namespace shared with someone else (an explicit
	// [ContainerdOptions.Namespace]).
	err := syscall.Rmdir(dir)
	if err != nil && !errors.Is(err, syscall.ENOENT) && !errors.Is(err, syscall.EBUSY) && !errors.Is(err, syscall.ENOTEMPTY) {
		errs = append(errs, fmt.Errorf("remove cgroup %s: %w", dir, err))
	}
	return errors.Join(errs...)
}

// mount is one line of /proc/self/mountinfo.
type mount struct {
	point  string
	fstype string
}

// readMountinfo parses /proc/self/mountinfo.
func readMountinfo() ([]mount, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	return parseMountinfo(b), nil
}

// parseMountinfo returns the mount point and filesystem type of each line:
// "ID PARENT MAJ:MIN ROOT POINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPER".
func parseMountinfo(b []byte) []mount {
	var ms []mount
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		sep := slices.Index(f, "-")
		if len(f) < 5 || sep < 5 || sep+1 >= len(f) {
			continue
		}
		ms = append(ms, mount{point: unescapeMountinfo(f[4]), fstype: f[sep+1]})
	}
	return ms
}

// unescapeMountinfo undoes the kernel's octal escapes (\040 for space and
// so on) in a mountinfo path.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
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

// mountsUnder returns the mount points at or below dir, deepest first (and
// for one point, the most recent mount first).
func mountsUnder(dir string) ([]string, error) {
	ms, err := readMountinfo()
	if err != nil {
		return nil, err
	}
	var points []string
	for i := len(ms) - 1; i >= 0; i-- {
		if p := ms[i].point; p == dir || strings.HasPrefix(p, dir+"/") {
			points = append(points, p)
		}
	}
	slices.SortStableFunc(points, func(a, b string) int {
		return strings.Count(b, "/") - strings.Count(a, "/")
	})
	return points, nil
}

// unmountUnder unmounts everything at or below dir, deepest first; a
// busy mount is detached lazily.
func unmountUnder(dir string) error {
	points, err := mountsUnder(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range points {
		err := syscall.Unmount(p, 0)
		if errors.Is(err, syscall.EBUSY) {
			err = syscall.Unmount(p, syscall.MNT_DETACH)
		}
		if err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", p, err))
		}
	}
	return errors.Join(errs...)
}

// proc is what the cleanup needs to know of a process.
type proc struct {
	pid, ppid int
	state     string // "R", "S", "Z", …
	start     uint64 // clock ticks after boot
	argv      []string
}

// readProc reads /proc/PID/stat (and not cmdline).
func readProc(pid int) (proc, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return proc{}, err
	}
	return parseStat(pid, string(b))
}

// parseStat parses /proc/PID/stat. The command name (field 2) may hold
// spaces and parentheses, so fields are counted after the last ')'.
func parseStat(pid int, s string) (proc, error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return proc{}, fmt.Errorf("parse /proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3
	if len(f) < 20 {
		return proc{}, fmt.Errorf("parse /proc/%d/stat: only %d fields", pid, len(f)+2)
	}
	ppid, err1 := strconv.Atoi(f[1])                // field 4
	start, err2 := strconv.ParseUint(f[19], 10, 64) // field 22
	if err := errors.Join(err1, err2); err != nil {
		return proc{}, fmt.Errorf("parse /proc/%d/stat: %w", pid, err)
	}
	return proc{pid: pid, ppid: ppid, state: f[0], start: start}, nil
}

// listProcs returns every process with its command line. Processes that
// exit meanwhile are left out.
func listProcs() ([]proc, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
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
	return ps, nil
}

// shimAddress returns the containerd address a containerd-shim-* process
// was started with (its -address flag), or "" for other processes.
func shimAddress(argv []string) string {
	if len(argv) == 0 || !strings.HasPrefix(filepath.Base(argv[0]), "containerd-shim") {
		return ""
	}
	for i, a := range argv[1:] {
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if name != "address" || !strings.HasPrefix(a, "-") {
			continue
		}
		if hasVal {
			return val
		}
		if i+2 < len(argv) {
			return argv[i+2]
		}
	}
	return ""
}

// killTrees SIGKILLs the processes roots and all their descendants (as
// procs shows them; nil means read /proc now), and waits until they are
// gone or zombies. The whole tree is collected before anything is killed:
// a dead parent's children are reparented and could not be found.
func killTrees(procs []proc, roots []int) error {
	if len(roots) == 0 {
		return nil
	}
	if procs == nil {
		var err error
		if procs, err = listProcs(); err != nil {
			return err
		}
	}
	children := map[int][]int{}
	byPID := map[int]proc{}
	for _, p := range procs {
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
		} else if p, err := readProc(pid); err == nil {
			victims = append(victims, p)
		}
		queue = append(queue, children[pid]...)
	}
	for _, v := range victims {
		// Skip a PID reused since the listing.
		if cur, err := readProc(v.pid); err == nil && cur.start == v.start {
			syscall.Kill(v.pid, syscall.SIGKILL)
		}
	}
	// They are not our children (shims are reparented to init), so there
	// is nothing to wait on: poll /proc until each is gone or a zombie.
	deadline := time.NewTimer(reapWait)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for _, v := range victims {
		for {
			cur, err := readProc(v.pid)
			if err != nil || cur.start != v.start || cur.state == "Z" {
				break
			}
			select {
			case <-deadline.C:
				return fmt.Errorf("process %d %q still running %v after SIGKILL", v.pid, v.argv, reapWait)
			case <-tick.C:
			}
		}
	}
	return nil
}

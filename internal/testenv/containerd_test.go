package testenv

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestParseMountinfo(t *testing.T) {
	in := `22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
45 27 0:39 / /tmp/ctd1/state/io.containerd.runtime.v2.task/ns/id2/rootfs rw,relatime - overlay overlay rw,lowerdir=/a,upperdir=/b
46 27 0:40 / /tmp/with\040space rw shared:5 master:1 - tmpfs tmpfs rw
bad line
`
	got := parseMountinfo([]byte(in))
	want := []mount{
		{"/proc", "proc"},
		{"/", "ext4"},
		{"/sys/fs/cgroup/unified", "cgroup2"},
		{"/tmp/ctd1/state/io.containerd.runtime.v2.task/ns/id2/rootfs", "overlay"},
		{"/tmp/with space", "tmpfs"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("parseMountinfo:\ngot  %q\nwant %q", got, want)
	}
}

func TestUnescapeMountinfo(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`/plain`, `/plain`},
		{`/a\040b`, `/a b`},
		{`/tab\011x\134y`, "/tab\tx\\y"},
		{`/end\04`, `/end\04`}, // truncated escape stays
		{`/x\999`, `/x\999`},   // not octal
	} {
		if got := unescapeMountinfo(tc.in); got != tc.want {
			t.Errorf("unescapeMountinfo(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestParseStat(t *testing.T) {
	stat := "4187 (containerd-shim) S 1 4187 4187 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 10 0 288234 1 2 3\n"
	p, err := parseStat(4187, stat)
	if err != nil {
		t.Fatal(err)
	}
	if p.ppid != 1 || p.state != "S" || p.start != 288234 {
		t.Errorf("parseStat = %+v, want ppid 1, state S, start 288234", p)
	}
	// A command name with spaces and parentheses.
	p, err = parseStat(7, "7 (a) b (c)) Z 3 0 0 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 99 0\n")
	if err != nil || p.ppid != 3 || p.state != "Z" || p.start != 99 {
		t.Errorf("parseStat with odd name = %+v, %v", p, err)
	}
	if _, err := parseStat(1, "1 (x) S 0"); err == nil {
		t.Error("parseStat of a short line: no error")
	}
}

func TestShimAddress(t *testing.T) {
	for _, tc := range []struct {
		argv []string
		want string
	}{
		{[]string{"/usr/bin/containerd-shim-runc-v2", "-namespace", "n", "-id", "x", "-address", "/tmp/ctd1/containerd.sock"}, "/tmp/ctd1/containerd.sock"},
		{[]string{"containerd-shim-runc-v2", "--address=/s.sock", "-id", "x"}, "/s.sock"},
		{[]string{"/usr/bin/containerd", "-address", "/s.sock"}, ""},
		{[]string{"containerd-shim-runc-v2", "-id", "address"}, ""},
		{[]string{"containerd-shim-runc-v2", "-address"}, ""},
		{nil, ""},
	} {
		if got := shimAddress(tc.argv); got != tc.want {
			t.Errorf("shimAddress(%q) = %q, want %q", tc.argv, got, tc.want)
		}
	}
}

// TestStartContainerd_Lifecycle starts, stops, kills and restarts one
// containerd, then checks that its cleanup leaves no process or directory.
func TestStartContainerd_Lifecycle(t *testing.T) {
	RequireContainerd(t)
	var c *Containerd
	var pids []int
	t.Run("run", func(t *testing.T) {
		c = StartContainerd(t, ContainerdOptions{})
		if len(c.Socket) >= 108 {
			t.Errorf("socket path %q is %d bytes, too long for sun_path", c.Socket, len(c.Socket))
		}
		if !strings.HasPrefix(c.Namespace, "orchtest-") {
			t.Errorf("namespace %q, want a fresh orchtest-NNN", c.Namespace)
		}
		if c.Snapshotter != "overlayfs" && c.Snapshotter != "native" {
			t.Errorf("snapshotter %q", c.Snapshotter)
		}
		ctr(t, c, "namespaces", "create", c.Namespace)
		pids = append(pids, c.Pid())

		if err := c.Start(); err == nil {
			t.Error("Start of a running containerd: no error")
		}
		if err := c.Stop(); err != nil {
			t.Fatalf("Stop: %v", err)
		}
		if c.Pid() != 0 {
			t.Errorf("Pid after Stop = %d, want 0", c.Pid())
		}
		if conn, err := net.Dial("unix", c.Socket); err == nil {
			conn.Close()
			t.Error("socket still answers after Stop")
		}
		if err := c.Stop(); err != nil {
			t.Errorf("second Stop: %v", err)
		}

		if err := c.Start(); err != nil {
			t.Fatalf("Start after Stop: %v", err)
		}
		pids = append(pids, c.Pid())
		if out := ctr(t, c, "namespaces", "ls", "-q"); !strings.Contains(out, c.Namespace) {
			t.Errorf("namespace lost across Stop/Start: %q", out)
		}
		if err := c.Kill(); err != nil {
			t.Fatalf("Kill: %v", err)
		}
		if err := c.Start(); err != nil {
			t.Fatalf("Start after Kill: %v", err)
		}
		pids = append(pids, c.Pid())
	})
	if _, err := os.Stat(c.Dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("instance directory %s after cleanup: %v", c.Dir, err)
	}
	for _, pid := range pids {
		if p, err := readProc(pid); err == nil && p.state != "Z" {
			t.Errorf("containerd pid %d still running after cleanup", pid)
		}
	}
}

// TestStartContainerd_BadConfigFails checks that a containerd that exits
// at once is reported with its log, not waited for until the timeout.
func TestStartContainerd_ExitReported(t *testing.T) {
	RequireContainerd(t)
	c := StartContainerd(t, ContainerdOptions{})
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(c.config)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(c.config, []byte("version = 2\nroot = [\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = c.Start()
	if err == nil {
		t.Fatal("Start with a broken config: no error")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Start took %v to notice containerd exited", d)
	}
	if !strings.Contains(err.Error(), "last lines of") {
		t.Errorf("error has no log tail: %v", err)
	}
	if err := os.WriteFile(c.config, good, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatalf("Start with the config restored: %v", err)
	}
}

// TestStartContainerd_CleanupKillsContainers leaves a running container
// (with a plain rootfs directory, so no image is needed) and checks that
// cleanup kills it and its shim and removes runc's state and the
// namespace's cgroups.
func TestStartContainerd_CleanupKillsContainers(t *testing.T) {
	RequireContainerd(t)
	RequireCommand(t, "busybox")
	var c *Containerd
	var shim, init int
	t.Run("run", func(t *testing.T) {
		c = StartContainerd(t, ContainerdOptions{})
		rootfs := filepath.Join(t.TempDir(), "rootfs")
		bb, err := exec.LookPath("busybox")
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(bb)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range []string{"bin", "proc", "dev", "sys", "tmp"} {
			if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(rootfs, "bin", "busybox"), b, 0o755); err != nil {
			t.Fatal(err)
		}
		ctr(t, c, "run", "-d", "--null-io", "--rootfs", rootfs, "sleeper", "/bin/busybox", "sleep", "600")
		procs, err := listProcs()
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range procs {
			if shimAddress(p.argv) == c.Socket {
				shim = p.pid
			}
		}
		for _, p := range procs {
			if shim != 0 && p.ppid == shim {
				init = p.pid
			}
		}
		if shim == 0 || init == 0 {
			t.Fatalf("no shim (%d) or container process (%d) found", shim, init)
		}
		// containerd down: the container must not depend on it.
		if err := c.Kill(); err != nil {
			t.Fatal(err)
		}
	})
	for _, pid := range []int{shim, init} {
		if p, err := readProc(pid); err == nil && p.state != "Z" {
			t.Errorf("pid %d (shim %d, container %d) still running after cleanup", pid, shim, init)
		}
	}
	if _, err := os.Stat(filepath.Join(runcStateRoot, c.Namespace)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("runc state of namespace %s after cleanup: %v", c.Namespace, err)
	}
	checkNoCgroup(t, c.Namespace)
	if _, err := os.Stat(c.Dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("instance directory %s after cleanup: %v", c.Dir, err)
	}
}

// checkNoCgroup fails if any cgroup hierarchy has a /ns cgroup.
func checkNoCgroup(t *testing.T, ns string) {
	t.Helper()
	ms, err := readMountinfo()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.fstype != "cgroup" && m.fstype != "cgroup2" {
			continue
		}
		if _, err := os.Stat(filepath.Join(m.point, ns)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("cgroup %s after cleanup: %v", filepath.Join(m.point, ns), err)
		}
	}
}

// TestUnmountUnder mounts two tmpfs, one inside the other, and checks that
// both go, deepest first, and that the directory can then be removed.
func TestUnmountUnder(t *testing.T) {
	RequireRoot(t)
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	outer := filepath.Join(dir, "a b") // a space: escaped in mountinfo
	if err := os.Mkdir(outer, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", outer, "tmpfs", 0, ""); err != nil {
		t.Skipf("cannot mount tmpfs here: %v", err)
	}
	inner := filepath.Join(outer, "in")
	if err := os.Mkdir(inner, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", inner, "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	got, err := mountsUnder(dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{inner, outer}; !slices.Equal(got, want) {
		t.Errorf("mountsUnder = %q, want %q", got, want)
	}
	if err := unmountUnder(dir); err != nil {
		t.Fatal(err)
	}
	if got, _ := mountsUnder(dir); len(got) != 0 {
		t.Errorf("still mounted: %q", got)
	}
}

// ctr runs ctr against c and returns its output, failing the test on error.
func ctr(t *testing.T, c *Containerd, args ...string) string {
	t.Helper()
	out, err := c.Ctr(t.Context(), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ctr %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestDeleteRuncNamespace_HalfCreated: a `runc create` killed halfway
// leaves a container directory with only exec.fifo, which runc itself
// cannot delete; it must go with the namespace's runc root.
func TestDeleteRuncNamespace_HalfCreated(t *testing.T) {
	root := filepath.Join(t.TempDir(), "orchtest-1")
	if err := os.MkdirAll(filepath.Join(root, "sleeper"), 0o711); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(root, "sleeper", "exec.fifo"), 0o622); err != nil {
		t.Fatal(err)
	}
	if err := deleteRuncNamespace(root); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(root); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s after deleteRuncNamespace: %v", root, err)
	}
	if err := deleteRuncNamespace(root); err != nil {
		t.Errorf("second deleteRuncNamespace: %v", err)
	}
}

package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/snapshots"

	"github.com/orchproject/orch/internal/lab"
	"github.com/orchproject/orch/internal/testenv"
	"github.com/orchproject/orch/internal/testimage"
)

const testImage = testimage.DefaultName

// newTestRuntime starts a private containerd, imports the busybox test
// image and returns a Runtime on it.
func newTestRuntime(t *testing.T) (*Runtime, *testenv.Containerd) {
	t.Helper()
	testenv.RequireContainerd(t)
	ctd := testenv.StartContainerd(t, testenv.ContainerdOptions{})
	rt, err := New(Config{Address: ctd.Socket, StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close() })
	f, err := os.Open(testimage.Busybox(t))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	imgs, err := rt.ImportImage(t.Context(), f)
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 1 || imgs[0].Name != testImage || !strings.HasPrefix(imgs[0].Digest, "sha256:") {
		t.Fatalf("imported %+v, want one image named %s with a digest", imgs, testImage)
	}
	return rt, ctd
}

func replicaByID(t *testing.T, rt *Runtime, id string) (Replica, bool) {
	t.Helper()
	reps, err := rt.Replicas(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range reps {
		if r.ID == id {
			return r, true
		}
	}
	return Replica{}, false
}

func allRunning(r Replica, n int) error {
	if len(r.Containers) != n {
		return fmt.Errorf("replica %s has %d containers, want %d", r.ID, len(r.Containers), n)
	}
	for _, c := range r.Containers {
		if c.State != StateRunning || c.PID == 0 {
			return fmt.Errorf("container %s is %s (pid %d)", c.Name, c.State, c.PID)
		}
	}
	return nil
}

func TestRuntime_ReplicaLifecycle(t *testing.T) {
	rt, _ := newTestRuntime(t)
	ctx := t.Context()
	spec := ReplicaSpec{
		Service: "web", Slot: 0, SpecVersion: "3@n1",
		Containers: []ContainerSpec{
			{Name: "web", Image: testImage, Command: []string{"httpd", "-f", "-p", "8080", "-h", "/www"}},
			// The sidecar fetches the web container's page over the
			// replica's shared loopback, then idles.
			{Name: "sidecar", Image: testImage, Command: []string{"sh", "-c",
				"until wget -q -O - http://127.0.0.1:8080/; do sleep 0.2; done; exec sleep 100000"}},
		},
	}
	if err := rt.StartReplica(ctx, spec); err != nil {
		t.Fatal(err)
	}
	var rep Replica
	lab.Eventually(t, 20*time.Second, 100*time.Millisecond, func() error {
		var ok bool
		if rep, ok = replicaByID(t, rt, spec.ID()); !ok {
			return errors.New("replica not listed")
		}
		return allRunning(rep, 2)
	})
	if rep.Service != "web" || rep.Slot != 0 || rep.SpecVersion != "3@n1" || rep.NetNS == "" {
		t.Errorf("replica labels read back as %+v", rep)
	}
	for _, c := range rep.Containers {
		if !strings.HasPrefix(c.Image, "sha256:") {
			t.Errorf("container %s records image %q, want a digest", c.Name, c.Image)
		}
	}

	// The sidecar reached the web container on 127.0.0.1.
	sidecarLog := filepath.Join(logDir(rt.cfg.StateDir), containerID(spec.ID(), "sidecar")+".log")
	lab.Eventually(t, 20*time.Second, 100*time.Millisecond, func() error {
		b, _ := os.ReadFile(sidecarLog)
		if !strings.Contains(string(b), "hello from orch busybox") {
			return fmt.Errorf("sidecar log %q lacks the web page", b)
		}
		return nil
	})

	// Starting again, and from a second Runtime (an agent restart), adopts:
	// same containers, same PIDs.
	pids := map[string]uint32{}
	for _, c := range rep.Containers {
		pids[c.Name] = c.PID
	}
	rt2, err := New(Config{Address: rt.cfg.Address, StateDir: rt.cfg.StateDir})
	if err != nil {
		t.Fatal(err)
	}
	defer rt2.Close()
	if err := rt2.StartReplica(ctx, spec); err != nil {
		t.Fatal(err)
	}
	again, _ := replicaByID(t, rt2, spec.ID())
	for _, c := range again.Containers {
		if c.PID != pids[c.Name] || c.Restarts != 0 {
			t.Errorf("after adoption %s has pid %d (was %d), %d restarts", c.Name, c.PID, pids[c.Name], c.Restarts)
		}
	}

	// A killed container is stopped with its code, and restarts counted.
	if err := syscall.Kill(int(pids["web"]), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	lab.Eventually(t, 10*time.Second, 50*time.Millisecond, func() error {
		r, _ := replicaByID(t, rt, spec.ID())
		for _, c := range r.Containers {
			if c.Name == "web" && (c.State != StateStopped || c.ExitCode != 137) {
				return fmt.Errorf("web is %s with code %d", c.State, c.ExitCode)
			}
		}
		return nil
	})
	if err := rt.StartReplica(ctx, spec); err != nil {
		t.Fatal(err)
	}
	r, _ := replicaByID(t, rt, spec.ID())
	if err := allRunning(r, 2); err != nil {
		t.Fatal(err)
	}
	for _, c := range r.Containers {
		want := map[string]int{"web": 1, "sidecar": 0}[c.Name]
		if c.Restarts != want {
			t.Errorf("%s restarted %d times, want %d", c.Name, c.Restarts, want)
		}
	}

	// Remove leaves nothing: containers, snapshots, network namespace.
	if err := rt.RemoveReplica(ctx, spec.ID(), 2*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, ok := replicaByID(t, rt, spec.ID()); ok {
		t.Error("replica still listed after removal")
	}
	if _, err := os.Stat(rep.NetNS); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("network namespace %s left behind: %v", rep.NetNS, err)
	}
	c, cctx, err := rt.conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var snaps []string
	if err := c.SnapshotService(rt.cfg.Snapshotter).Walk(cctx, func(_ context.Context, info snapshots.Info) error {
		if strings.HasPrefix(info.Name, spec.ID()) {
			snaps = append(snaps, info.Name)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(snaps) > 0 {
		t.Errorf("snapshots left behind: %v", snaps)
	}
	// Removing again is not an error.
	if err := rt.RemoveReplica(ctx, spec.ID(), time.Second); err != nil {
		t.Errorf("second removal: %v", err)
	}
}

func TestRuntime_StopGraceThenKill(t *testing.T) {
	rt, _ := newTestRuntime(t)
	ctx := t.Context()
	spec := ReplicaSpec{Service: "stubborn", Slot: 1, SpecVersion: "1@n1", Containers: []ContainerSpec{
		{Name: "app", Image: testImage, Command: []string{"sh", "-c", "trap '' TERM; while true; do sleep 1; done"}},
	}}
	if err := rt.StartReplica(ctx, spec); err != nil {
		t.Fatal(err)
	}
	lab.Eventually(t, 10*time.Second, 50*time.Millisecond, func() error {
		r, _ := replicaByID(t, rt, spec.ID())
		return allRunning(r, 1)
	})
	start := time.Now()
	if err := rt.RemoveReplica(ctx, spec.ID(), 500*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 500*time.Millisecond {
		t.Errorf("a container ignoring SIGTERM was removed after %v, before its grace", took)
	}
	if _, ok := replicaByID(t, rt, spec.ID()); ok {
		t.Error("replica still listed")
	}
}

func TestRuntime_UnavailableAndMissingImage(t *testing.T) {
	rt, err := New(Config{Address: filepath.Join(t.TempDir(), "nope.sock"), StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.Ping(t.Context()); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Ping without containerd: %v, want ErrUnavailable", err)
	}
	rt2, _ := newTestRuntime(t)
	err = rt2.StartReplica(t.Context(), ReplicaSpec{Service: "ghost", Slot: 0, SpecVersion: "1@a",
		Containers: []ContainerSpec{{Name: "app", Image: "docker.io/library/nosuch:1"}}})
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("a missing image: %v, want ErrNotFound", err)
	}
}

// The OCI spec of a running container carries the defaults a
// security-minded user expects.
func TestRuntime_SecurityDefaults(t *testing.T) {
	rt, _ := newTestRuntime(t)
	ctx := t.Context()
	spec := ReplicaSpec{Node: "n1", Service: "sec", Slot: 0, SpecVersion: "1@n1", Containers: []ContainerSpec{
		{Name: "app", Image: testImage, Command: []string{"sleep", "100000"}, ReadOnlyRoot: true, MemoryBytes: 64 << 20, CPUMillis: 500},
	}}
	if err := rt.StartReplica(ctx, spec); err != nil {
		t.Fatal(err)
	}
	defer rt.RemoveReplica(context.WithoutCancel(ctx), spec.ID(), time.Second)
	c, cctx, err := rt.conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ctr, err := c.LoadContainer(cctx, containerID(spec.ID(), "app"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := ctr.Spec(cctx)
	if err != nil {
		t.Fatal(err)
	}
	if !s.Process.NoNewPrivileges {
		t.Error("no_new_privileges is off")
	}
	if s.Linux.Seccomp == nil || len(s.Linux.Seccomp.Syscalls) == 0 {
		t.Error("no seccomp profile")
	}
	caps := s.Process.Capabilities.Bounding
	for _, forbidden := range []string{"CAP_SYS_ADMIN", "CAP_NET_ADMIN", "CAP_SYS_MODULE", "CAP_SYS_PTRACE"} {
		if slices.Contains(caps, forbidden) {
			t.Errorf("bounding set holds %s: %v", forbidden, caps)
		}
	}
	if !slices.Contains(caps, "CAP_CHOWN") || len(caps) > 16 {
		t.Errorf("bounding set %v is not Docker's default set", caps)
	}
	if len(s.Process.Capabilities.Ambient) != 0 {
		t.Errorf("ambient capabilities %v", s.Process.Capabilities.Ambient)
	}
	// Not privileged: the kernel's sensitive paths stay masked and
	// read-only, no host device is passed through, and no bind mount
	// reaches outside the runtime's own state.
	if !slices.Contains(s.Linux.MaskedPaths, "/proc/kcore") || !slices.Contains(s.Linux.ReadonlyPaths, "/proc/sys") {
		t.Errorf("masked %v, read-only %v: want the default masks", s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
	}
	if len(s.Linux.Devices) != 0 {
		t.Errorf("devices passed through: %v", s.Linux.Devices)
	}
	for _, m := range s.Mounts {
		if m.Type == "bind" && !strings.HasPrefix(m.Source, rt.cfg.StateDir) {
			t.Errorf("bind mount of host path %s at %s", m.Source, m.Destination)
		}
	}
	if !s.Root.Readonly {
		t.Error("root file system is writable despite ReadOnlyRoot")
	}
	if s.Linux.Resources == nil || s.Linux.Resources.Memory == nil || *s.Linux.Resources.Memory.Limit != 64<<20 {
		t.Error("memory limit not applied")
	}
	if cpu := s.Linux.Resources.CPU; cpu == nil || cpu.Quota == nil || *cpu.Quota != 50_000 || *cpu.Period != 100_000 {
		t.Errorf("CPU limit not applied: %+v", cpu)
	}
	for _, ns := range s.Linux.Namespaces {
		if ns.Type == "network" && !strings.HasPrefix(ns.Path, filepath.Join(rt.cfg.StateDir, "netns")) {
			t.Errorf("network namespace %q is not the replica's", ns.Path)
		}
	}
}

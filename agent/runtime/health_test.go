package runtime

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/orchproject/orch/internal/lab"
	"github.com/orchproject/orch/internal/testimage"
)

// TestRuntime_ExecAndRestart runs commands in a running container (exit
// codes, output, a command that outlives its context) and restarts it the
// way an unhealthy container is restarted.
func TestRuntime_ExecAndRestart(t *testing.T) {
	rt, _ := newTestRuntime(t)
	ctx := t.Context()
	spec := ReplicaSpec{Service: "probe", Slot: 0, SpecVersion: "1@n1", Containers: []ContainerSpec{
		{Name: "app", Image: testImage, Command: []string{"sleep", "100000"}, Env: []string{"WHO=orch"}},
	}}
	if err := rt.StartReplica(ctx, spec); err != nil {
		t.Fatal(err)
	}
	// Removed before the state dir is: its network namespace is a mount.
	t.Cleanup(func() { rt.RemoveReplica(context.Background(), spec.ID(), time.Second) })
	lab.Eventually(t, 10*time.Second, 50*time.Millisecond, func() error {
		r, _ := replicaByID(t, rt, spec.ID())
		return allRunning(r, 1)
	})
	id := ContainerID(spec.ID(), "app")

	code, out, err := rt.Exec(ctx, id, []string{"sh", "-c", "echo hello $WHO; echo oops >&2; exit 3"})
	if err != nil || code != 3 || !strings.Contains(string(out), "hello orch") || !strings.Contains(string(out), "oops") {
		t.Errorf("Exec = %d, %q, %v; want 3 with both lines (the container's env applies)", code, out, err)
	}
	if code, _, err := rt.Exec(ctx, id, []string{"true"}); err != nil || code != 0 {
		t.Errorf("Exec true = %d, %v", code, err)
	}
	if _, _, err := rt.Exec(ctx, id, []string{"/no/such/binary"}); err == nil {
		// runc reports a missing binary as a start error or exit 127;
		// either way it is not a success.
		if code, _, _ := rt.Exec(ctx, id, []string{"/no/such/binary"}); code == 0 {
			t.Error("Exec of a missing binary succeeded")
		}
	}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	start := time.Now()
	_, _, err = rt.Exec(short, id, []string{"sleep", "30"})
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 10*time.Second {
		t.Errorf("Exec beyond its deadline = %v after %v, want DeadlineExceeded promptly", err, time.Since(start))
	}

	before, _ := replicaByID(t, rt, spec.ID())
	if err := rt.RestartContainerNow(ctx, id, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	after, _ := replicaByID(t, rt, spec.ID())
	if err := allRunning(after, 1); err != nil {
		t.Fatal(err)
	}
	if after.Containers[0].PID == before.Containers[0].PID || after.Containers[0].Restarts != before.Containers[0].Restarts+1 {
		t.Errorf("after restart: pid %d → %d, restarts %d → %d; want a new process and one more restart",
			before.Containers[0].PID, after.Containers[0].PID, before.Containers[0].Restarts, after.Containers[0].Restarts)
	}
}

// TestRuntime_ImageHealthcheck reads a Docker HEALTHCHECK from an image's
// config, and nothing from an image without one.
func TestRuntime_ImageHealthcheck(t *testing.T) {
	rt, _ := newTestRuntime(t)
	ctx := t.Context()
	path, _ := testimage.Build(t, testimage.Options{Name: "docker.io/orch/busybox:hc", Healthcheck: []string{"CMD-SHELL", "wget -q -O /dev/null http://127.0.0.1:8080/"},
		HealthInterval: 2 * time.Second, HealthTimeout: time.Second, HealthStartPeriod: 3 * time.Second, HealthStartInterval: 250 * time.Millisecond, HealthRetries: 4})
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := rt.ImportImage(ctx, f); err != nil {
		t.Fatal(err)
	}
	h, err := rt.ImageHealthcheck(ctx, "docker.io/orch/busybox:hc")
	if err != nil {
		t.Fatal(err)
	}
	if h == nil || strings.Join(h.Test, "|") != "CMD-SHELL|wget -q -O /dev/null http://127.0.0.1:8080/" ||
		h.Interval != 2*time.Second || h.Timeout != time.Second || h.StartPeriod != 3*time.Second || h.StartInterval != 250*time.Millisecond || h.Retries != 4 {
		t.Errorf("ImageHealthcheck = %+v", h)
	}
	if h, err := rt.ImageHealthcheck(ctx, testImage); err != nil || h != nil {
		t.Errorf("an image without HEALTHCHECK gave %+v, %v", h, err)
	}
}

package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/orchproject/orch/internal/lab"
	"github.com/orchproject/orch/internal/testenv"
)

// freePort returns a TCP port free on loopback now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startLoopbackAgent runs an agent on loopback in this namespace, with no
// overlay, DNS or containerd (nothing it does touches the host).
func startLoopbackAgent(t *testing.T, extra ...string) string {
	t.Helper()
	dir := t.TempDir()
	// The unprivileged CLI must reach the socket's directory: only the
	// socket's own mode may keep it out.
	os.Chmod(dir, 0o755)
	os.Chmod(filepath.Dir(dir), 0o755)
	sock := filepath.Join(dir, "orch.sock")
	args := append([]string{"agent", "--name", "api1", "--bind", fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		"--data-dir", filepath.Join(dir, "data"), "--socket", sock, "--containerd", "none", "--overlay", "none", "--dns", "none"}, extra...)
	cmd := exec.Command(orchBin(t), args...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		if t.Failed() {
			t.Logf("agent log:\n%s", out.String())
		}
	})
	lab.Eventually(t, 10*time.Second, 50*time.Millisecond, func() error {
		_, _, code := runCLI(t, "--socket", sock, "members")
		if code != 0 {
			return fmt.Errorf("agent not answering on %s", sock)
		}
		return nil
	})
	return sock
}

// asNobody runs the CLI as user nobody, with only the given extra group.
func asNobody(t *testing.T, group string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	groups := "--clear-groups"
	if group != "" {
		groups = "--groups=" + group
	}
	cmd := exec.CommandContext(ctx, "setpriv", append([]string{"--reuid=nobody", "--regid=nogroup", groups, orchBin(t)}, args...)...)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code
}

// TestAPIAccess: the API socket is root-only by default and the CLI says
// why it is refused; --socket-group opens it to a group; every mutating
// call is an event naming its caller.
func TestAPIAccess(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "setpriv")
	// orchBin builds into a temp dir the unprivileged user must traverse.
	os.Chmod(filepath.Dir(orchBin(t)), 0o755)

	sock := startLoopbackAgent(t)
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("default socket: %v, %v; want mode 0600", fi.Mode(), err)
	}
	out, code := asNobody(t, "", "--socket", sock, "members")
	if code == 0 || !strings.Contains(out, "permission denied") || !strings.Contains(out, "root") || !strings.Contains(out, "--socket-group") {
		t.Errorf("a non-root CLI on a root-only socket: exit %d, %q; want a refusal that says why", code, out)
	}

	gsock := startLoopbackAgent(t, "--socket-group", "nogroup")
	if fi, err := os.Stat(gsock); err != nil || fi.Mode().Perm() != 0o660 {
		t.Fatalf("socket with --socket-group: %v, %v; want mode 0660", fi.Mode(), err)
	}
	events := exec.Command(orchBin(t), "--socket", gsock, "events", "--filter", "type=api")
	evOut := &eventLog{} // written by exec's copier, read below: locked
	events.Stdout = evOut
	if err := events.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { events.Process.Kill(); events.Wait() }()
	time.Sleep(300 * time.Millisecond)
	if out, code := asNobody(t, "nogroup", "--socket", gsock, "service", "create", "--name", "audited", "busybox:stable"); code != 0 {
		t.Fatalf("a member of the socket group: exit %d: %s", code, out)
	}
	lab.Eventually(t, 5*time.Second, 50*time.Millisecond, func() error {
		s := strings.Join(evOut.lines(), "\n")
		if !strings.Contains(s, `"subject":"POST /v1/services"`) || !strings.Contains(s, `"uid":"65534"`) || !strings.Contains(s, `"status":"201"`) && !strings.Contains(s, `"status":"200"`) {
			return fmt.Errorf("no api call event naming uid 65534: %q", s)
		}
		return nil
	})
}

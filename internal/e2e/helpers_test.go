package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orchproject/orch/agent/api"
	"github.com/orchproject/orch/internal/lab"
	"github.com/orchproject/orch/internal/testenv"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// orchBin builds cmd/orch once per test binary.
func orchBin(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "orch-e2e-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "orch")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/orch")
		cmd.Dir = testenv.RepoRoot(t)
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/orch: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// node is one orch agent on a lab host.
type node struct {
	name    string
	host    *lab.Host
	dataDir string
	socket  string
	proc    *lab.Process
}

// newNode prepares (but does not start) an agent named name on host h.
func newNode(h *lab.Host, name string) *node {
	dir := filepath.Join(h.Dir, name)
	return &node{name: name, host: h, dataDir: filepath.Join(dir, "data"), socket: filepath.Join(dir, "orch.sock")}
}

// start runs `orch agent` on the node's host with extra flags. Without a
// --containerd flag the agent runs no containers (claims only).
func (n *node) start(t *testing.T, extra ...string) *lab.Process {
	t.Helper()
	if !slices.Contains(extra, "--containerd") {
		extra = append(extra, "--containerd", "none")
	}
	if err := os.MkdirAll(filepath.Dir(n.socket), 0o755); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"agent", "--name", n.name, "--bind", n.host.Addr.String() + ":7946",
		"--data-dir", n.dataDir, "--socket", n.socket, "--log-level", "debug"}, extra...)
	n.proc = n.host.Start(t, orchBin(t), args...)
	return n.proc
}

// waitReady waits until the agent's API answers and it is a member.
func (n *node) waitReady(t *testing.T) {
	t.Helper()
	lab.Eventually(t, 20*time.Second, 50*time.Millisecond, func() error {
		if n.proc != nil && n.proc.Exited() {
			return fmt.Errorf("agent %s exited", n.name)
		}
		_, err := n.members(t)
		return err
	})
}

func (n *node) client() *api.Client { return api.NewClient(n.socket) }

func (n *node) members(t *testing.T) ([]api.Member, error) {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	return n.client().Members(ctx)
}

// cli runs the orch CLI against the node's socket.
func (n *node) cli(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return runCLI(t, append([]string{"--socket", n.socket}, args...)...)
}

func runCLI(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, orchBin(t), args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	code = 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("run orch %v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	return o.String(), e.String(), code
}

// statusesOn returns name → status as n sees the cluster.
func statusesOn(t *testing.T, n *node) (map[string]string, error) {
	ms, err := n.members(t)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(ms))
	for _, m := range ms {
		out[m.Name] = m.Status
	}
	return out, nil
}

// wantView checks that n sees exactly the members in want with their statuses.
func wantView(t *testing.T, n *node, want map[string]string) error {
	got, err := statusesOn(t, n)
	if err != nil {
		return fmt.Errorf("%s: %w", n.name, err)
	}
	if len(got) != len(want) {
		return fmt.Errorf("%s sees %v, want %v", n.name, got, want)
	}
	for k, v := range want {
		if got[k] != v {
			return fmt.Errorf("%s sees %v, want %v", n.name, got, want)
		}
	}
	return nil
}

// allSee polls until every node in ns sees want.
func allSee(t *testing.T, timeout time.Duration, ns []*node, want map[string]string) {
	t.Helper()
	lab.Eventually(t, timeout, 50*time.Millisecond, func() error {
		for _, n := range ns {
			if err := wantView(t, n, want); err != nil {
				return err
			}
		}
		return nil
	})
}

func names(ns []*node) []string {
	var out []string
	for _, n := range ns {
		out = append(out, n.name)
	}
	slices.Sort(out)
	return out
}

func statusMap(status string, ns ...*node) map[string]string {
	m := map[string]string{}
	for _, n := range ns {
		m[n.name] = status
	}
	return m
}

// eventLog runs `orch events` against a node and collects its lines.
type eventLog struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	cmd   *exec.Cmd
	stopC context.CancelFunc
}

func (n *node) streamEvents(t *testing.T, args ...string) *eventLog {
	t.Helper()
	return startEventLog(t, func(ctx context.Context) *exec.Cmd {
		return exec.CommandContext(ctx, orchBin(t), append([]string{"--socket", n.socket, "events"}, args...)...)
	})
}

// startEventLog starts the command cmd makes and collects its stdout until
// the test ends.
func startEventLog(t *testing.T, cmd func(context.Context) *exec.Cmd) *eventLog {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	el := &eventLog{stopC: cancel}
	el.cmd = cmd(ctx)
	el.cmd.Stdout = el
	if err := el.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		el.cmd.Wait()
	})
	return el
}

func (el *eventLog) Write(p []byte) (int, error) {
	el.mu.Lock()
	defer el.mu.Unlock()
	return el.buf.Write(p)
}

func (el *eventLog) lines() []string {
	el.mu.Lock()
	defer el.mu.Unlock()
	return strings.Split(strings.TrimSpace(el.buf.String()), "\n")
}

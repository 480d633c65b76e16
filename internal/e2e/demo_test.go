package e2e

import (
	"context"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/orchproject/orch/internal/testenv"
)

// TestDemo runs the README's first command non-interactively and checks
// its final summary: the cluster healed to 3 healthy replicas, and the
// client calling web by name ended with successful requests.
func TestDemo(t *testing.T) {
	testenv.RequireContainerd(t)
	testenv.RequireCommand(t, "dig", "bc", "nsenter", "setsid")
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(testenv.RepoRoot(t), "scripts", "demo"), "--quiet")
	cmd.Dir = testenv.RepoRoot(t)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("scripts/demo --quiet: %v\n%s", err, out)
	}
	re := regexp.MustCompile(`(?m)^demo summary: hosts=3 profile=fast killed=h\d+ t1=([0-9.]+)s t2=([0-9.]+)s replicas=3 healthy=(\d+) client_ok=(\w+)$`)
	m := re.FindSubmatch(out)
	if m == nil {
		t.Fatalf("no summary line in the demo's output:\n%s", out)
	}
	t2, _ := strconv.ParseFloat(string(m[2]), 64)
	if string(m[3]) != "3" || string(m[4]) != "yes" || t2 <= 0 {
		t.Errorf("summary %q: want 3 healthy replicas, a positive heal time and the client's last requests ok\n%s", m[0], out)
	}
	t.Logf("%s", m[0])
}

package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/orchproject/orch/agent/events"
	"github.com/orchproject/orch/internal/lab"
)

// TestEventHandlers runs h1 with an event handler for member failures and
// kills h3's agent: the handler's command receives the member failed event
// about h3 as JSON on stdin.
func TestEventHandlers(t *testing.T) {
	l := lab.New(t, lab.Config{Hosts: 3})
	var ns []*node
	for i := 1; i <= 3; i++ {
		h := l.Host(i)
		ns = append(ns, newNode(h, h.Name))
	}
	h1, h3 := ns[0], ns[2]
	out := filepath.Join(t.TempDir(), "failed.json")

	start := time.Now()
	h1.start(t, "--profile", "fast", "--event-handler", "member:failed=cat > "+out)
	h1.waitReady(t)
	tok, errOut, code := h1.cli(t, "token")
	if code != 0 {
		t.Fatalf("orch token: exit %d: %s", code, errOut)
	}
	for _, n := range ns[1:] {
		n.start(t, "--profile", "fast", "--token", strings.TrimSpace(tok), "--join", h1.host.Addr.String())
	}
	for _, n := range ns[1:] {
		n.waitReady(t)
	}
	allSee(t, 10*time.Second, ns, statusMap("alive", ns...))
	t.Logf("cluster of 3 formed in %v", time.Since(start).Round(time.Millisecond))

	if _, err := os.Stat(out); err == nil {
		t.Fatalf("%s exists before any member failed", out)
	}
	killed := time.Now()
	if err := h3.proc.Kill(); err != nil { // SIGKILL: no leave
		t.Fatal(err)
	}
	var ev events.Event
	lab.Eventually(t, 20*time.Second, 50*time.Millisecond, func() error {
		b, err := os.ReadFile(out)
		if err != nil {
			return err
		}
		// The command may still be writing: retry until it is one whole
		// JSON line.
		if !strings.HasSuffix(string(b), "\n") {
			return fmt.Errorf("%s is incomplete: %q", out, b)
		}
		return json.Unmarshal(b, &ev)
	})
	t.Logf("handler output %v after the kill", time.Since(killed).Round(time.Millisecond))
	if ev.Type != events.TypeMember || ev.Action != events.ActionFailed || ev.Subject != h3.name {
		t.Errorf("handler got %+v, want type member, action failed, subject %s", ev, h3.name)
	}
	if ev.Node != h1.name || ev.Seq == 0 || ev.Time.IsZero() || !strings.HasPrefix(ev.Attributes["address"], h3.host.Addr.String()+":") {
		t.Errorf("handler got %+v, want node %s, a seq, a time and h3's address", ev, h1.name)
	}
	if h1.proc.Exited() {
		t.Error("agent h1 exited")
	}
}

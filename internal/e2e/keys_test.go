package e2e

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/orchproject/orch/agent/api"
	"github.com/orchproject/orch/internal/lab"
)

// TestKeyRotation rotates the gossip key of a five-host cluster while a
// service is being scaled: no member flaps, the scale completes, every
// member ends with the new key only, and an agent that was down during the
// rotation (so it holds only the old key) is refused when it comes back.
// It also rotates the join token: the old one admits nobody afterwards.
func TestKeyRotation(t *testing.T) {
	l := lab.New(t, lab.Config{Hosts: 5})
	var ns []*node
	for _, h := range l.Hosts() {
		ns = append(ns, newNode(h, h.Name))
	}
	formCluster(t, ns, "--profile", "lan")
	h1, h2, h5 := ns[0], ns[1], ns[4]
	mustCLI(t, h1, "service", "create", "--name", "web", "--replicas", "1", "busybox:stable")

	// h5 sleeps through the rotation: it will hold only the old key.
	if err := h5.proc.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if _, err := h5.proc.Wait(15 * time.Second); err != nil {
		t.Fatal(err)
	}
	live := ns[:4]
	allSee(t, 30*time.Second, live, map[string]string{"h1": "alive", "h2": "alive", "h3": "alive", "h4": "alive", "h5": "failed"})
	var streams []*eventLog
	for _, n := range live {
		streams = append(streams, n.streamEvents(t, "--filter", "type=member"))
	}

	scaled := make(chan error, 1)
	go func() {
		for r := 2; r <= 20; r++ {
			if _, errOut, code := runCLI(t, "--socket", h1.socket, "service", "scale", "web="+strconv.Itoa(r)); code != 0 {
				scaled <- fmt.Errorf("scale to %d: %s", r, errOut)
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		scaled <- nil
	}()
	out, errOut, code := h2.cli(t, "keys", "rotate")
	if code != 0 {
		t.Fatalf("orch keys rotate: exit %d\n%s%s", code, out, errOut)
	}
	t.Logf("orch keys rotate:\n%s", out)
	for _, op := range []string{"install: 4 of 4 nodes ok", "use: 4 of 4 nodes ok", "remove: 4 of 4 nodes ok"} {
		if !strings.Contains(out, op) {
			t.Errorf("rotate output lacks %q", op)
		}
	}
	if err := <-scaled; err != nil {
		t.Fatal(err)
	}
	tasksUntil(t, h1, "web", 20*time.Second, func(ts []api.Task) error {
		n := 0
		for _, tk := range ts {
			if tk.State == "assigned" {
				n++
			}
		}
		if n != 20 {
			return fmt.Errorf("%d of 20 assigned", n)
		}
		return nil
	})
	var keys api.KeyResult
	if err := json.Unmarshal([]byte(mustCLI(t, h1, "keys", "list", "--format", "json")), &keys); err != nil {
		t.Fatal(err)
	}
	if len(keys.Keys) != 1 || keys.Nodes != 4 {
		t.Errorf("after rotation: %+v, want one key on the 4 live nodes", keys)
	}
	for k, n := range keys.Keys {
		if n != 4 || keys.Primary[k] != 4 {
			t.Errorf("key held by %d, primary on %d; want 4 and 4", n, keys.Primary[k])
		}
	}
	for i, el := range streams {
		for _, line := range el.lines() {
			if strings.Contains(line, `"action":"failed"`) && !strings.Contains(line, `"subject":"h5"`) {
				t.Errorf("%s saw a member fail during the rotation: %s", live[i].name, line)
			}
		}
	}

	// orch token --rotate: every member adopts the new join secret; the
	// old token admits nobody, the new one does.
	oldToken := strings.TrimSpace(mustCLI(t, h1, "token"))
	newToken := strings.TrimSpace(mustCLI(t, ns[2], "token", "--rotate"))
	if newToken == oldToken || !strings.HasPrefix(newToken, "ORCH1-") {
		t.Fatalf("token --rotate printed %q (old %q)", newToken, oldToken)
	}
	lab.Eventually(t, 10*time.Second, 100*time.Millisecond, func() error {
		for _, n := range live {
			if got := strings.TrimSpace(mustCLI(t, n, "token")); got != newToken {
				return fmt.Errorf("%s still has token %s", n.name, got)
			}
		}
		return nil
	})
	h6 := newNode(l.Host(5), "h6")
	h6.start(t, "--profile", "lan", "--token", oldToken, "--join", h1.host.Addr.String())
	if code, err := h6.proc.Wait(30 * time.Second); err != nil || code == 0 {
		t.Errorf("an agent with the old token: exit %d, %v; want it refused", code, err)
	}
	h6b := newNode(l.Host(5), "h6b")
	h6b.start(t, "--profile", "lan", "--token", newToken, "--join", h1.host.Addr.String())
	h6b.waitReady(t)
	lab.Eventually(t, 15*time.Second, 100*time.Millisecond, func() error { return wantStatusOf(t, h1, "h6b", "alive") })
	mustCLI(t, h6b, "leave")
	if _, err := h6b.proc.Wait(30 * time.Second); err != nil {
		t.Fatal(err)
	}

	// h5 returns with the old key only: nobody can read it, it reads
	// nobody, so it stays out.
	h5.start(t, "--profile", "lan")
	h5.waitReady(t)
	time.Sleep(15 * time.Second)
	if err := wantStatusOf(t, h1, "h5", "failed"); err != nil {
		t.Errorf("h5 (old key only): %v", err)
	}
	ms, err := h5.members(t)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.Name != "h5" && m.Status == "alive" {
			t.Errorf("h5, holding only the old key, sees %s alive", m.Name)
		}
	}
}

package e2e

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/orchproject/orch/internal/lab"
	"github.com/orchproject/orch/internal/testenv"
)

// TestMembership walks through the membership acceptance points on six lab
// hosts: five agents form a cluster by token; h6 plays the outsider.
func TestMembership(t *testing.T) {
	l := lab.New(t, lab.Config{Hosts: 6})
	var ns []*node
	for i := 1; i <= 5; i++ {
		h := l.Host(i)
		ns = append(ns, newNode(h, h.Name))
	}
	h1 := ns[0]
	// Steps share the agents, so they run in the test's own goroutine
	// (processes started in a subtest would stop when it ends).
	step := func(name string, f func(t *testing.T)) {
		t.Logf("step: %s", name)
		f(t)
	}

	var token string
	step("five agents join with a token", func(t *testing.T) {
		h1.start(t, "--label", "zone=a")
		h1.waitReady(t)
		out, errOut, code := h1.cli(t, "token")
		if code != 0 {
			t.Fatalf("orch token: exit %d: %s", code, errOut)
		}
		token = strings.TrimSpace(out)
		for _, n := range ns[1:] {
			n.start(t, "--token", token, "--join", h1.host.Addr.String())
		}
		// Every agent lists five alive members within 5 s of the last join.
		for _, n := range ns[1:] {
			n.waitReady(t)
		}
		allSee(t, 5*time.Second, ns, statusMap("alive", ns...))
	})

	events := h1.streamEvents(t, "--filter", "type=member")

	step("a killed agent is failed on every survivor", func(t *testing.T) {
		victim := ns[2]
		if err := victim.proc.Kill(); err != nil {
			t.Fatal(err)
		}
		want := statusMap("alive", ns...)
		want[victim.name] = "failed"
		survivors := append(append([]*node{}, ns[:2]...), ns[3:]...)
		allSee(t, 30*time.Second, survivors, want)

		// The survivor's event stream holds a member failed event with all
		// six fields, as JSON.
		lab.Eventually(t, 5*time.Second, 50*time.Millisecond, func() error {
			for _, line := range events.lines() {
				var ev map[string]any
				if err := json.Unmarshal([]byte(line), &ev); err != nil {
					return fmt.Errorf("event line %q is not JSON: %v", line, err)
				}
				if ev["action"] != "failed" || ev["subject"] != victim.name {
					continue
				}
				for _, k := range []string{"time", "seq", "type", "action", "node", "subject", "attributes"} {
					if _, ok := ev[k]; !ok {
						return fmt.Errorf("failed event %s lacks %q", line, k)
					}
				}
				if ev["type"] != "member" || ev["node"] != h1.name {
					return fmt.Errorf("failed event %s: want type member from node %s", line, h1.name)
				}
				ts, _ := ev["time"].(string)
				if !regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$`).MatchString(ts) {
					return fmt.Errorf("event time %q is not RFC 3339 with nanoseconds", ts)
				}
				return nil
			}
			return fmt.Errorf("no member failed event for %s in %q", victim.name, events.lines())
		})
	})

	step("restarted with its data dir and no token it is alive again", func(t *testing.T) {
		victim := ns[2]
		victim.start(t)
		victim.waitReady(t)
		allSee(t, 30*time.Second, ns, statusMap("alive", ns...))
	})

	outsider := l.Host(6)
	step("a wrong token is refused and changes nothing", func(t *testing.T) {
		o := newNode(outsider, "h6")
		o.start(t)
		o.waitReady(t)
		bad := wrongSecret(token)
		_, errOut, code := o.cli(t, "join", "--token", string(bad), h1.host.Addr.String())
		if code == 0 {
			t.Fatal("orch join with a wrong token exited 0")
		}
		if !strings.Contains(errOut, "wrong join secret") {
			t.Errorf("orch join with a wrong token: stderr %q does not name the cause", errOut)
		}
		// Another cluster's token (o's own) pointed at h1: identity mismatch.
		ownTok, _, _ := o.cli(t, "token")
		_, errOut, code = o.cli(t, "join", "--token", strings.TrimSpace(ownTok), h1.host.Addr.String())
		if code == 0 || !strings.Contains(errOut, "does not match the token") {
			t.Errorf("orch join with another cluster's token: exit %d, stderr %q", code, errOut)
		}
		allSee(t, 5*time.Second, ns, statusMap("alive", ns...))
		if err := o.proc.Kill(); err != nil {
			t.Fatal(err)
		}
	})

	step("an agent started with a wrong token exits and names the cause", func(t *testing.T) {
		o := newNode(outsider, "h6b")
		bad := wrongSecret(token)
		p := o.start(t, "--token", bad, "--join", h1.host.Addr.String())
		code, err := p.Wait(30 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if code == 0 {
			t.Fatal("agent with a wrong token exited 0")
		}
		allSee(t, 5*time.Second, ns, statusMap("alive", ns...))
	})

	step("a second node under a taken name is refused", func(t *testing.T) {
		o := newNode(outsider, "h2") // h2 is alive on host 2
		p := o.start(t, "--token", token, "--join", h1.host.Addr.String())
		code, err := p.Wait(30 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if code == 0 {
			t.Fatal("agent claiming a taken name exited 0")
		}
		allSee(t, 5*time.Second, ns, statusMap("alive", ns...))
	})

	step("a stock serf agent without the key cannot join", func(t *testing.T) {
		testenv.RequireCommand(t, "serf")
		p := outsider.Start(t, "serf", "agent", "-node", "intruder", "-bind", outsider.Addr.String()+":7946",
			"-rpc-addr", "127.0.0.1:7373", "-join", h1.host.Addr.String()+":7946", "-log-level", "debug")
		// serf exits when its -join fails; give it the chance.
		code, err := p.Wait(20 * time.Second)
		if err == nil && code == 0 {
			t.Errorf("stock serf agent exited 0")
		}
		p.Kill()
		allSee(t, 5*time.Second, ns, statusMap("alive", ns...))
	})

	step("junk on the gossip port changes nothing", func(t *testing.T) {
		testenv.RequireCommand(t, "bash", "head")
		target := h1.host.Addr.String()
		for i := range 20 {
			size := 1 + rand.IntN(3000)
			proto := []string{"udp", "tcp"}[i%2]
			script := fmt.Sprintf("head -c %d /dev/urandom > /dev/%s/%s/7946", size, proto, target)
			// TCP junk may be reset by the agent; only the agent's fate counts.
			outsider.Command(t.Context(), "bash", "-c", script).Run()
		}
		if h1.proc.Exited() {
			t.Fatal("agent h1 died after junk on its gossip port")
		}
		allSee(t, 5*time.Second, ns, statusMap("alive", ns...))
		// And it still admits a legitimate node.
	})

	step("the same node on a new address is the same member", func(t *testing.T) {
		moved := ns[3] // h4
		if err := moved.proc.Kill(); err != nil {
			t.Fatal(err)
		}
		want := statusMap("alive", ns...)
		want[moved.name] = "failed"
		allSee(t, 30*time.Second, []*node{h1}, want)
		id := memberID(t, h1, moved.name)
		// Same data dir, same name, another host (address).
		moved2 := &node{name: moved.name, host: outsider, dataDir: moved.dataDir, socket: moved.socket}
		moved2.start(t)
		moved2.waitReady(t)
		ns[3] = moved2
		allSee(t, 30*time.Second, ns, statusMap("alive", ns...))
		ms, _ := h1.members(t)
		for _, m := range ms {
			if m.Name == moved.name {
				if !strings.HasPrefix(m.Address, outsider.Addr.String()+":") {
					t.Errorf("%s is at %s, want %s", m.Name, m.Address, outsider.Addr)
				}
				if m.ID != id {
					t.Errorf("%s has id %s after moving, want %s", m.Name, m.ID, id)
				}
			}
		}
	})

	step("orch leave: the others show left and the agent exits 0", func(t *testing.T) {
		leaver := ns[4]
		out, errOut, code := leaver.cli(t, "leave")
		if code != 0 {
			t.Fatalf("orch leave: exit %d: %s %s", code, out, errOut)
		}
		exit, err := leaver.proc.Wait(20 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if exit != 0 {
			t.Errorf("agent exited %d after leave, want 0", exit)
		}
		want := statusMap("alive", ns...)
		want[leaver.name] = "left"
		allSee(t, 10*time.Second, ns[:4], want)
	})

	step("the CLI without an agent names the socket and exits 1", func(t *testing.T) {
		sock := ns[4].socket // the agent that left removed it
		_, errOut, code := runCLI(t, "--socket", sock, "members")
		if code != 1 {
			t.Errorf("exit %d, want 1", code)
		}
		if !strings.Contains(errOut, "cannot reach the agent at "+sock+": ") {
			t.Errorf("stderr %q", errOut)
		}
		_, errOut, code = runCLI(t, "members", "--no-such-flag")
		if code != 2 || !strings.Contains(errOut, "Usage:") {
			t.Errorf("bad flag: exit %d, stderr %q; want 2 and usage", code, errOut)
		}
	})
	_ = names
}

func memberID(t *testing.T, n *node, name string) string {
	t.Helper()
	ms, err := n.members(t)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.Name == name {
			return m.ID
		}
	}
	t.Fatalf("%s does not know %s", n.name, name)
	return ""
}

// wrongSecret keeps the token's cluster identity and changes its secret:
// one character in the middle of the secret part.
func wrongSecret(token string) string {
	b := []byte(token)
	i := strings.LastIndex(token, "-") + 10
	if b[i] == 'a' {
		b[i] = 'b'
	} else {
		b[i] = 'a'
	}
	return string(b)
}

package gossip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"
)

// testNode is a node running on loopback with the fast profile.
type testNode struct {
	*Node
	cancel context.CancelFunc
	done   chan error
	once   sync.Once

	mu     sync.Mutex
	events []MemberEvent
}

// stop cancels Run and checks that it returns; later calls do nothing.
func (tn *testNode) stop(t *testing.T) {
	t.Helper()
	tn.once.Do(func() { tn.stopOnce(t) })
}

func (tn *testNode) stopOnce(t *testing.T) {
	t.Helper()
	tn.cancel()
	select {
	case err := <-tn.done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		buf := make([]byte, 1<<20)
		t.Errorf("Run did not return after cancel; goroutines:\n%s", buf[:runtime.Stack(buf, true)])
	}
}

func (tn *testNode) sawEvent(a Action, name string) bool {
	tn.mu.Lock()
	defer tn.mu.Unlock()
	for _, e := range tn.events {
		for _, m := range e.Members {
			if e.Action == a && m.Name == name {
				return true
			}
		}
	}
	return false
}

func startTestNode(t *testing.T, name, dir string, tok *Token, join ...string) *testNode {
	t.Helper()
	return startTestNodeCfg(t, name, dir, tok, nil, join...)
}

// startTestNodeCfg is startTestNode with mut applied to the config last.
func startTestNodeCfg(t *testing.T, name, dir string, tok *Token, mut func(*Config), join ...string) *testNode {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Name = name
	cfg.ID = "id-" + name
	cfg.Bind = netip.MustParseAddrPort("127.0.0.1:0")
	cfg.DataDir = dir
	cfg.Profile = ProfileFast
	cfg.Token = tok
	cfg.Join = join
	if testing.Verbose() {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", name)
	}
	if mut != nil {
		mut(&cfg)
	}
	tn := &testNode{done: make(chan error, 1)}
	cfg.OnEvent = func(e MemberEvent) {
		tn.mu.Lock()
		tn.events = append(tn.events, e)
		tn.mu.Unlock()
	}
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tn.Node = n
	ctx, cancel := context.WithCancel(context.Background())
	tn.cancel = cancel
	go func() { tn.done <- n.Run(ctx) }()
	select {
	case <-n.Ready():
	case err := <-tn.done:
		t.Fatalf("node %s stopped before it was ready: %v", name, err)
	case <-time.After(10 * time.Second):
		t.Fatalf("node %s not ready", name)
	}
	return tn
}

func waitFor(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		if err = cond(); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: %v", what, err)
}

func statusOf(n *Node, name string) Status {
	for _, m := range n.Members() {
		if m.Name == name {
			return m.Status
		}
	}
	return ""
}

func wantStatus(n *Node, name string, want Status) func() error {
	return func() error {
		if got := statusOf(n, name); got != want {
			return fmt.Errorf("%s sees %s as %q, want %q", n.LocalName(), name, got, want)
		}
		return nil
	}
}

func TestNode_TokenJoinFailureAndLeave(t *testing.T) {
	a := startTestNode(t, "a", t.TempDir(), nil)
	defer a.stop(t)
	tok, err := a.Token()
	if err != nil {
		t.Fatal(err)
	}
	addr := a.Addr().String()
	b := startTestNode(t, "b", t.TempDir(), &tok, addr)
	defer b.stop(t)
	cDir := t.TempDir()
	c := startTestNode(t, "c", cDir, &tok, addr)

	for _, n := range []*testNode{a, b, c} {
		for _, name := range []string{"a", "b", "c"} {
			waitFor(t, "join", wantStatus(n.Node, name, StatusAlive))
		}
	}
	for _, m := range a.Members() {
		if !m.Orch || m.ID != "id-"+m.Name {
			t.Errorf("member %+v: want an orch member with its ID tag", m)
		}
	}

	// Stop c without leaving: the others must mark it failed.
	c.stop(t)
	waitFor(t, "failure detection", wantStatus(a.Node, "c", StatusFailed))
	waitFor(t, "failed event", func() error {
		if !a.sawEvent(ActionFailed, "c") {
			return errors.New("no failed event for c")
		}
		return nil
	})

	// Restart c from its data dir alone: no token, no join address.
	c2 := startTestNode(t, "c", cDir, nil)
	waitFor(t, "rejoin", wantStatus(a.Node, "c", StatusAlive))
	waitFor(t, "rejoin", wantStatus(b.Node, "c", StatusAlive))

	// A graceful leave shows as left. b leaves rather than the freshly
	// restarted c: a leave inside another member's suspicion window of the
	// leaver is recorded as a failure by memberlist, a race this test is
	// not about.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	b.stop(t)
	waitFor(t, "leave", wantStatus(a.Node, "b", StatusLeft))
	waitFor(t, "leave", wantStatus(c2.Node, "b", StatusLeft))
	c2.stop(t)
}

func TestNode_WrongTokenRefused(t *testing.T) {
	a := startTestNode(t, "a", t.TempDir(), nil)
	defer a.stop(t)
	good, err := a.Token()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	badSecret := good
	badSecret.Secret = make([]byte, 32)
	_, err = FetchSecrets(ctx, a.Addr().String(), badSecret, "x", "id-x")
	if !errors.Is(err, ErrJoinRefused) {
		t.Errorf("wrong secret: got %v, want ErrJoinRefused", err)
	}

	other, err := NewSecrets()
	if err != nil {
		t.Fatal(err)
	}
	otherTok, _ := other.Token()
	_, err = FetchSecrets(ctx, a.Addr().String(), otherTok, "x", "id-x")
	if !errors.Is(err, ErrIdentityMismatch) {
		t.Errorf("another cluster's token: got %v, want ErrIdentityMismatch", err)
	}

	// A second node under a taken name is refused.
	_, err = FetchSecrets(ctx, a.Addr().String(), good, "a", "id-someone-else")
	if !errors.Is(err, ErrJoinRefused) {
		t.Errorf("taken name: got %v, want ErrJoinRefused", err)
	}

	// A lone node asked to join with a wrong token keeps its own cluster.
	lone := startTestNode(t, "lone", t.TempDir(), nil)
	defer lone.stop(t)
	before, _ := lone.ClusterID()
	if _, err := lone.Join(ctx, []string{a.Addr().String()}, &badSecret); err == nil {
		t.Error("join with a wrong token succeeded")
	}
	after, _ := lone.ClusterID()
	if before != after {
		t.Errorf("cluster changed from %s to %s after a refused join", before, after)
	}
	if got := len(a.Members()); got != 1 {
		t.Errorf("a has %d members after refused joins, want 1", got)
	}

	// With the right token the lone node switches clusters.
	if _, err := lone.Join(ctx, []string{a.Addr().String()}, &good); err != nil {
		t.Fatalf("join with the right token: %v", err)
	}
	waitFor(t, "switch", wantStatus(a.Node, "lone", StatusAlive))
}

func TestNode_JunkOnGossipPort(t *testing.T) {
	a := startTestNode(t, "a", t.TempDir(), nil)
	defer a.stop(t)
	tok, _ := a.Token()
	b := startTestNode(t, "b", t.TempDir(), &tok, a.Addr().String())
	defer b.stop(t)
	waitFor(t, "join", wantStatus(a.Node, "b", StatusAlive))

	junk := make([]byte, 2000)
	for i := range junk {
		junk[i] = byte(i*7 + 3)
	}
	for i := range 50 {
		u, err := net.Dial("udp", a.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		u.Write(junk[:1+i*37%len(junk)])
		u.Close()
		c, err := net.Dial("tcp", a.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		junk[0] = byte(i * 5) // vary the first byte, streamMagic included
		c.Write(junk[:1+i*41%len(junk)])
		c.Close()
	}
	// Still a working member: b stays alive, and a new node can join.
	c := startTestNode(t, "c", t.TempDir(), &tok, a.Addr().String())
	defer c.stop(t)
	waitFor(t, "join after junk", wantStatus(a.Node, "c", StatusAlive))
	if got := statusOf(a.Node, "b"); got != StatusAlive {
		t.Errorf("b is %q after junk, want alive", got)
	}
}

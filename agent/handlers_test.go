package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/orchproject/orch/agent/events"
)

func TestParseEventHandler(t *testing.T) {
	tests := []struct {
		in      string
		want    EventHandler
		wantErr string // empty: must parse
	}{
		{in: "member=cat", want: EventHandler{Type: "member", Command: "cat"}},
		{in: "member:failed=cat > /tmp/x", want: EventHandler{Type: "member", Action: "failed", Command: "cat > /tmp/x"}},
		{in: "network:peer-added=echo a=b", want: EventHandler{Type: "network", Action: "peer-added", Command: "echo a=b"}},
		{in: "stream:lagged=logger lagged", want: EventHandler{Type: "stream", Action: "lagged", Command: "logger lagged"}},
		{in: "health=x=1", want: EventHandler{Type: "health", Command: "x=1"}},
		// No '=' before the first space, or text that is not a filter
		// before the first '=': the whole string is the command.
		{in: "logger -t orch", want: EventHandler{Command: "logger -t orch"}},
		{in: "echo a=b", want: EventHandler{Command: "echo a=b"}},
		{in: "FOO=1 ./notify", want: EventHandler{Command: "FOO=1 ./notify"}},
		{in: " x=1 ./notify", want: EventHandler{Command: " x=1 ./notify"}},
		{in: "member:Failed=cmd", want: EventHandler{Command: "member:Failed=cmd"}},
		{in: "member:=cmd", want: EventHandler{Command: "member:=cmd"}},
		{in: "/usr/local/bin/on-event", want: EventHandler{Command: "/usr/local/bin/on-event"}},
		// Errors.
		{in: "", wantErr: "empty command"},
		{in: "   ", wantErr: "empty command"},
		{in: "member=", wantErr: "empty command"},
		{in: "member:failed= ", wantErr: "empty command"},
		{in: "members=cat", wantErr: `unknown event type "members": want one of member, service, task, node, image, network, health, cluster, secret, api, stream`},
		{in: "x=1 ./notify", wantErr: `unknown event type "x"`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseEventHandler(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseEventHandler(%q) = %+v, %v; want an error containing %q", tt.in, got, err, tt.wantErr)
				}
				if got != (EventHandler{}) {
					t.Errorf("ParseEventHandler(%q) returned %+v with its error", tt.in, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseEventHandler(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Fatalf("ParseEventHandler(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
			if s := got.String(); s != tt.in {
				t.Errorf("String() = %q, want the input %q", s, tt.in)
			}
		})
	}
}

func TestConfigValidate_EventHandlers(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Name = "n1"
	if err := cfg.Validate(); err != nil {
		t.Fatalf("default config with a name: %v", err)
	}
	cfg.EventHandlers = []EventHandler{
		{Type: "member", Action: "failed", Command: "true"},
		{Type: "bogus", Command: "true"},
		{Action: "failed", Command: "true"},
		{Type: "task"},
	}
	cfg.EventHandlerTimeout = -time.Second
	err := cfg.Validate()
	if err == nil {
		t.Fatal("Validate accepted bad event handlers")
	}
	for _, want := range []string{
		`event handler 2 ("bogus=true"): unknown event type "bogus": want one of member, service, task, node, image, network, health, cluster, secret, api, stream`,
		`event handler 3`, `without a type`,
		`event handler 4`, `empty command`,
		`event handler timeout -1s`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not contain %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "event handler 1 ") {
		t.Errorf("the valid handler is reported: %v", err)
	}
}

func TestHandlerEnv(t *testing.T) {
	ev := events.Event{
		Time:    time.Date(2025, 3, 1, 12, 0, 0, 5000, time.FixedZone("x", 3600)),
		Seq:     42,
		Type:    "member",
		Action:  "failed",
		Node:    "h1",
		Subject: "h3",
		Attributes: map[string]string{
			"address":   "10.0.0.3:7946",
			"first-seq": "7",
			"Zone.Name": "a",
			"é":         "nul\x00dropped",
		},
	}
	want := []string{
		"ORCH_EVENT_TYPE=member",
		"ORCH_EVENT_ACTION=failed",
		"ORCH_EVENT_SUBJECT=h3",
		"ORCH_EVENT_NODE=h1",
		"ORCH_EVENT_SEQ=42",
		"ORCH_EVENT_TIME=2025-03-01T11:00:00.000005000Z",
		"ORCH_EVENT_ATTR_ZONE_NAME=a",
		"ORCH_EVENT_ATTR_ADDRESS=10.0.0.3:7946",
		"ORCH_EVENT_ATTR_FIRST_SEQ=7",
		"ORCH_EVENT_ATTR__=nuldropped",
	}
	if got := handlerEnv(ev); !slices.Equal(got, want) {
		t.Errorf("handlerEnv:\n got %q\nwant %q", got, want)
	}
	for in, want := range map[string]string{
		"exit_code": "EXIT_CODE", "peer_subnet": "PEER_SUBNET", "a.b/c-d": "A_B_C_D", "X9": "X9", "": "",
	} {
		if got := envKey(in); got != want {
			t.Errorf("envKey(%q) = %q, want %q", in, got, want)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for a logger and a test to share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// handlerRig is a bus and a handler runner on it, with the runner's log.
type handlerRig struct {
	bus *events.Bus
	r   *handlerRunner
	log *syncBuffer
}

// newHandlerRig parses specs into handlers and starts a runner for them,
// with tune applied before the start. The runner is stopped in t.Cleanup.
func newHandlerRig(t *testing.T, timeout time.Duration, tune func(*handlerRunner), specs ...string) *handlerRig {
	t.Helper()
	if _, err := os.Stat(handlerShell); err != nil {
		t.Skipf("no %s: %v", handlerShell, err)
	}
	var hs []EventHandler
	for _, s := range specs {
		h, err := ParseEventHandler(s)
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
	}
	bus, err := events.New(events.Config{Node: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	lb := &syncBuffer{}
	r := newHandlerRunner(hs, timeout, slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if tune != nil {
		tune(r)
	}
	if err := r.start(bus); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	t.Cleanup(func() {
		once.Do(r.stop)
		bus.Close()
		if t.Failed() {
			t.Logf("handler log:\n%s", lb.String())
		}
	})
	return &handlerRig{bus: bus, r: r, log: lb}
}

// waitStats polls the runner's stats until ok accepts them.
func (rig *handlerRig) waitStats(t *testing.T, timeout time.Duration, ok func([]HandlerStats) bool) []HandlerStats {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st := rig.r.stats()
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("handler stats after %v: %+v", timeout, st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func jsonLine(t *testing.T, ev events.Event) string {
	t.Helper()
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return string(b) + "\n"
}

// TestHandlerRunner_FilterStdinEnv runs three handlers with real shell
// commands: each sees exactly the events its filter selects, in order, with
// the event's JSON line on stdin and the ORCH_EVENT_* variables.
func TestHandlerRunner_FilterStdinEnv(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("ORCH_TEST_INHERITED", "yes")
	t.Setenv("ORCH_EVENT_ATTR_STALE", "from the agent's own environment")
	rig := newHandlerRig(t, 10*time.Second, nil,
		"cat >> "+dir+"/all.ndjson",
		"member=cat >> "+dir+"/member.ndjson",
		"member:failed=cat > "+dir+"/failed.json; env > "+dir+"/failed.env",
	)
	evs := []events.Event{
		rig.bus.Publish(events.TypeMember, events.ActionJoin, "h2", map[string]string{"address": "10.0.0.2:7946"}),
		rig.bus.Publish(typeService, actCreated, "web", map[string]string{"version": "1"}),
		rig.bus.Publish(events.TypeMember, events.ActionFailed, "h3", map[string]string{"address": "10.0.0.3:7946", "orch": "true"}),
		rig.bus.Publish(typeTask, "running", "web.1", nil),
	}
	rig.waitStats(t, 10*time.Second, func(st []HandlerStats) bool {
		return st[0].Runs == 4 && st[1].Runs == 2 && st[2].Runs == 1
	})

	if got, want := readFile(t, dir+"/all.ndjson"), jsonLine(t, evs[0])+jsonLine(t, evs[1])+jsonLine(t, evs[2])+jsonLine(t, evs[3]); got != want {
		t.Errorf("unfiltered handler's stdin:\n got %s\nwant %s", got, want)
	}
	if got, want := readFile(t, dir+"/member.ndjson"), jsonLine(t, evs[0])+jsonLine(t, evs[2]); got != want {
		t.Errorf("member handler's stdin:\n got %s\nwant %s", got, want)
	}
	failed := readFile(t, dir+"/failed.json")
	if want := jsonLine(t, evs[2]); failed != want {
		t.Errorf("member:failed handler's stdin:\n got %s\nwant %s", failed, want)
	}
	var dec events.Event
	if err := json.Unmarshal([]byte(failed), &dec); err != nil {
		t.Fatal(err)
	}
	if dec.Seq != 3 || dec.Type != "member" || dec.Action != "failed" || dec.Subject != "h3" || dec.Node != "n1" ||
		!dec.Time.Equal(evs[2].Time) || dec.Attributes["orch"] != "true" {
		t.Errorf("decoded stdin %+v, want %+v", dec, evs[2])
	}

	env := strings.Split(readFile(t, dir+"/failed.env"), "\n")
	for _, want := range append(handlerEnv(evs[2]), "ORCH_TEST_INHERITED=yes") {
		if !slices.Contains(env, want) {
			t.Errorf("environment lacks %s", want)
		}
	}
	for _, kv := range env {
		if strings.HasPrefix(kv, "ORCH_EVENT_ATTR_STALE=") {
			t.Errorf("the agent's own %s reached the handler", kv)
		}
	}
	for i, st := range rig.r.stats() {
		if st.Failures != 0 || st.Timeouts != 0 || st.Dropped != 0 {
			t.Errorf("handler %d: %+v, want no failures, timeouts or drops", i, st)
		}
	}
}

// TestHandlerRunner_Failures checks that a non-zero exit and a command that
// cannot start are counted and logged with the handler, the seq, the exit
// code and the start of stderr.
func TestHandlerRunner_Failures(t *testing.T) {
	rig := newHandlerRig(t, 10*time.Second, nil,
		"echo boom >&2; exit 3",
		"head -c 5000 /dev/zero | tr '\\0' x >&2; exit 1",
		"true",
	)
	rig.bus.Publish(typeNode, "eligible", "n1", nil)
	st := rig.waitStats(t, 10*time.Second, func(st []HandlerStats) bool {
		return st[0].Runs == 1 && st[1].Runs == 1 && st[2].Runs == 1
	})
	want := []HandlerStats{
		{Handler: "echo boom >&2; exit 3", Runs: 1, Failures: 1},
		{Handler: "head -c 5000 /dev/zero | tr '\\0' x >&2; exit 1", Runs: 1, Failures: 1},
		{Handler: "true", Runs: 1},
	}
	if !slices.Equal(st, want) {
		t.Errorf("stats:\n got %+v\nwant %+v", st, want)
	}
	log := rig.log.String()
	for _, want := range []string{
		`msg="event handler failed" component=handlers handler="echo boom >&2; exit 3" seq=1 type=node action=eligible subject=n1`,
		`exit_code=3`, `stderr="boom\n"`,
		`exit_code=1`, `stderr="` + strings.Repeat("x", handlerOutputLimit) + `… (3976 more bytes)"`,
	} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %s:\n%s", want, log)
		}
	}

	// A command that cannot start: the shell is missing.
	rig2 := newHandlerRig(t, 10*time.Second, func(r *handlerRunner) { r.shell = "/nonexistent/sh" }, "true")
	rig2.bus.Publish(typeNode, "eligible", "n1", nil)
	st = rig2.waitStats(t, 10*time.Second, func(st []HandlerStats) bool { return st[0].Runs == 1 })
	if st[0].Failures != 1 || st[0].Timeouts != 0 {
		t.Errorf("start failure: %+v, want 1 failure", st[0])
	}
	if log := rig2.log.String(); !strings.Contains(log, `msg="event handler could not run" component=handlers handler=true seq=1`) {
		t.Errorf("log lacks the start failure:\n%s", log)
	}
}

// gone reports whether pid has exited (or is a zombie awaiting its reaper).
func gone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// pid (comm) STATE ...: comm may hold spaces, so look after the last ')'.
	s := string(stat)
	rest := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(rest) > 0 && (rest[0] == "Z" || rest[0] == "X")
}

func readPid(t *testing.T, path string) int {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && perr == nil && pid > 0 {
			return pid
		}
		if time.Now().After(deadline) {
			t.Fatalf("no pid in %s: %v", path, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestHandlerRunner_TimeoutKillsGroup runs a command that starts a
// background child and then sleeps: on the timeout, the shell and the child
// both die, and the timeout is counted and logged.
func TestHandlerRunner_TimeoutKillsGroup(t *testing.T) {
	dir := t.TempDir()
	const timeout = 300 * time.Millisecond
	rig := newHandlerRig(t, timeout, nil,
		"echo $$ > "+dir+"/sh.pid; sleep 100 & echo $! > "+dir+"/bg.pid; sleep 100")
	start := time.Now()
	rig.bus.Publish(events.TypeMember, events.ActionFailed, "h3", nil)
	shPid, bgPid := readPid(t, dir+"/sh.pid"), readPid(t, dir+"/bg.pid")
	st := rig.waitStats(t, 10*time.Second, func(st []HandlerStats) bool { return st[0].Runs == 1 })
	took := time.Since(start)
	if st[0].Failures != 1 || st[0].Timeouts != 1 {
		t.Errorf("stats %+v, want 1 failure, 1 timeout", st[0])
	}
	if took < timeout || took > timeout+handlerWaitDelay {
		t.Errorf("the run took %v, want about the timeout %v", took, timeout)
	}
	deadline := time.Now().Add(2 * time.Second)
	for !gone(shPid) || !gone(bgPid) {
		if time.Now().After(deadline) {
			t.Fatalf("after the timeout: shell %d gone %v, background sleep %d gone %v", shPid, gone(shPid), bgPid, gone(bgPid))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if log := rig.log.String(); !strings.Contains(log, `msg="event handler timed out; killed its process group"`) ||
		!strings.Contains(log, "seq=1") {
		t.Errorf("log lacks the timeout:\n%s", log)
	}
	t.Logf("timed out and killed after %v (timeout %v)", took.Round(time.Millisecond), timeout)
}

// TestHandlerRunner_SlowHandlerDoesNotBlockPublish blocks one handler in
// its first command while 10,000 events are published: Publish stays fast,
// the slow handler's drops are counted, another handler still runs, and
// once unblocked the slow one runs what it kept, then the lagged marker.
func TestHandlerRunner_SlowHandlerDoesNotBlockPublish(t *testing.T) {
	dir := t.TempDir()
	gate := dir + "/go"
	rig := newHandlerRig(t, time.Minute, nil,
		`cat > /dev/null; while [ ! -e `+gate+` ]; do sleep 0.01; done; echo "$ORCH_EVENT_TYPE $ORCH_EVENT_ACTION $ORCH_EVENT_ATTR_MISSED" >> `+dir+`/slow.log`,
		"member:failed=cat > "+dir+"/fast.json",
	)
	const n = 10_000
	start := time.Now()
	var slowest time.Duration
	for i := range n {
		t0 := time.Now()
		rig.bus.Publish(typeService, actUpdated, "web", map[string]string{"version": strconv.Itoa(i)})
		slowest = max(slowest, time.Since(t0))
	}
	failed := rig.bus.Publish(events.TypeMember, events.ActionFailed, "h3", nil)
	took := time.Since(start)
	t.Logf("published %d events in %v (slowest Publish %v) while a handler was blocked", n+1, took.Round(time.Microsecond), slowest.Round(time.Microsecond))
	if took > 2*time.Second {
		t.Errorf("publishing %d events took %v with a blocked handler", n+1, took)
	}

	// The other handler is not held up by the slow one.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if b, err := os.ReadFile(dir + "/fast.json"); err == nil && string(b) == jsonLine(t, failed) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the fast handler did not run while the slow one was blocked")
		}
		time.Sleep(5 * time.Millisecond)
	}
	st := rig.r.stats()
	if st[0].Runs != 0 {
		t.Fatalf("the slow handler finished %d runs before its gate opened", st[0].Runs)
	}
	// One event is in the blocked command and 256 are queued (or 256 in
	// all, if the command had not taken its event before the queue filled).
	buf := uint64(events.DefaultSubscriberBuffer)
	if d := st[0].Dropped; d != n+1-buf-1 && d != n+1-buf {
		t.Errorf("slow handler dropped %d events, want %d or %d", d, n+1-buf-1, n+1-buf)
	}
	if st[1].Dropped != 0 {
		t.Errorf("fast handler dropped %d events", st[1].Dropped)
	}

	// Unblocked, it runs every event it kept and a lagged marker for each
	// run of dropped events (one, or two if its command took its first
	// event only after the queue had filled).
	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	dropped := st[0].Dropped
	var lines []string
	deadline = time.Now().Add(60 * time.Second)
	for {
		b, _ := os.ReadFile(dir + "/slow.log")
		lines = strings.Split(strings.TrimSpace(string(b)), "\n")
		var real, missed uint64
		for _, l := range lines {
			if m, ok := strings.CutPrefix(l, "stream lagged "); ok {
				k, err := strconv.ParseUint(m, 10, 64)
				if err != nil {
					t.Fatalf("marker run %q", l)
				}
				missed += k
			} else if l != "" {
				real++
			}
		}
		if real == n+1-dropped && missed == dropped {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("slow handler ran %d events and markers for %d; want %d and %d", real, missed, n+1-dropped, dropped)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.HasPrefix(lines[len(lines)-1], "stream lagged ") {
		t.Errorf("last run %q, want a lagged marker (the last events were dropped)", lines[len(lines)-1])
	}
	st = rig.waitStats(t, 10*time.Second, func(st []HandlerStats) bool { return st[0].Runs == uint64(len(lines)) })
	if st[0].Failures != 0 {
		t.Errorf("slow handler: %+v", st[0])
	}
	if log := rig.log.String(); !strings.Contains(log, `msg="event handler fell behind; events dropped" component=handlers handler="cat > /dev/null;`) {
		t.Errorf("log lacks the lag:\n%s", log)
	}
}

// TestHandlerRunner_StopKillsAfterGrace stops the runner while a command
// runs: stop waits for the grace period, then kills it.
func TestHandlerRunner_StopKillsAfterGrace(t *testing.T) {
	dir := t.TempDir()
	rig := newHandlerRig(t, time.Minute, func(r *handlerRunner) { r.grace = 200 * time.Millisecond },
		"echo $$ > "+dir+"/sh.pid; sleep 100")
	rig.bus.Publish(events.TypeMember, events.ActionJoin, "h2", nil)
	pid := readPid(t, dir+"/sh.pid")
	start := time.Now()
	rig.r.stop()
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("stop took %v", took)
	}
	st := rig.r.stats()[0]
	if st.Runs != 1 || st.Failures != 1 || st.Timeouts != 0 {
		t.Errorf("stats %+v, want 1 run, 1 failure, no timeout", st)
	}
	deadline := time.Now().Add(2 * time.Second)
	for !gone(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("shell %d still runs after stop", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Events after stop run nothing.
	rig.bus.Publish(events.TypeMember, events.ActionJoin, "h4", nil)
	time.Sleep(50 * time.Millisecond)
	if st := rig.r.stats()[0]; st.Runs != 1 {
		t.Errorf("a handler ran after stop: %+v", st)
	}
}

// TestAgent_EventHandlers runs a real agent (loopback, no containers) with a
// handler for its own member join: Run starts the handlers before gossip
// publishes, HandlerStats reports them, and Run stops them.
func TestAgent_EventHandlers(t *testing.T) {
	if _, err := os.Stat(handlerShell); err != nil {
		t.Skipf("no %s: %v", handlerShell, err)
	}
	dir := t.TempDir()
	sockDir, err := os.MkdirTemp("", "orch")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	h, err := ParseEventHandler("member:join=cat > " + dir + "/join.json")
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Name = "n1"
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.Socket = filepath.Join(sockDir, "n1.sock")
	cfg.Bind = netip.MustParseAddrPort("127.0.0.1:0")
	cfg.Profile = "fast"
	cfg.Containerd = ContainerdNone
	cfg.Overlay = netip.Prefix{}
	cfg.DNS = netip.AddrPort{}
	cfg.EventHandlers = []EventHandler{h}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if st := a.HandlerStats(); !slices.Equal(st, []HandlerStats{{Handler: h.String()}}) {
		t.Errorf("HandlerStats before Run = %+v", st)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("Run did not return")
		}
	}()

	deadline := time.Now().Add(15 * time.Second)
	for a.HandlerStats()[0].Runs == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the join handler did not run: %+v", a.HandlerStats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	var ev events.Event
	if err := json.Unmarshal([]byte(readFile(t, dir+"/join.json")), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Type != events.TypeMember || ev.Action != events.ActionJoin || ev.Subject != "n1" || ev.Node != "n1" || ev.Seq == 0 {
		t.Errorf("join handler got %+v", ev)
	}
	if st := a.HandlerStats()[0]; st.Failures != 0 || st.Dropped != 0 {
		t.Errorf("stats %+v", st)
	}
}

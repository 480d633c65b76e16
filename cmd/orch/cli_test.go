package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/orchproject/orch/agent"
	"github.com/orchproject/orch/agent/api"
)

// Timeouts of the CLI tests. They bound waits that normally end in
// milliseconds; the fast gossip profile detects a leave in about a second.
const (
	startTimeout = 10 * time.Second // agent.Run until Ready
	stopTimeout  = 10 * time.Second // cancel until agent.Run returns
	cliTimeout   = 20 * time.Second // one CLI invocation
	waitTimeout  = 15 * time.Second // a membership change to show up
)

// testAgent is an agent running in-process on loopback with the fast profile.
type testAgent struct {
	*agent.Agent
	name   string
	socket string
	cancel context.CancelFunc
	done   chan struct{} // closed when Run has returned; err is set then
	err    error
}

// startAgent starts an agent named name with its own data dir and a socket
// under a short temporary directory (unix socket paths are limited to about
// 107 bytes, and t.TempDir paths can be longer). The agent is stopped, and
// Run's result checked, in t.Cleanup.
func startAgent(t *testing.T, name string, labels map[string]string, opts ...func(*agent.Config)) *testAgent {
	t.Helper()
	sockDir, err := os.MkdirTemp("", "orch")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })

	cfg := agent.DefaultConfig()
	cfg.Name = name
	cfg.DataDir = t.TempDir()
	cfg.Socket = filepath.Join(sockDir, name+".sock")
	cfg.Bind = netip.MustParseAddrPort("127.0.0.1:0")
	cfg.Profile = "fast"
	cfg.Labels = labels
	cfg.Containerd = agent.ContainerdNone // placement and claims only
	cfg.Overlay = netip.Prefix{}          // agents sharing one network namespace cannot each own orch0
	cfg.DNS = netip.AddrPort{}            // nor one DNS port
	if testing.Verbose() {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", name)
	}
	for _, o := range opts {
		o(&cfg)
	}
	a, err := agent.New(cfg)
	if err != nil {
		t.Fatalf("agent.New(%s): %v", name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ta := &testAgent{Agent: a, name: name, socket: cfg.Socket, cancel: cancel, done: make(chan struct{})}
	go func() {
		ta.err = a.Run(ctx)
		close(ta.done)
	}()
	t.Cleanup(func() { ta.stop(t) })
	select {
	case <-a.Ready():
	case <-ta.done:
		t.Fatalf("agent %s: Run returned before it was ready: %v", name, ta.err)
	case <-time.After(startTimeout):
		t.Fatalf("agent %s not ready after %v", name, startTimeout)
	}
	return ta
}

// stop cancels the agent and checks that Run returns nil. Safe to call more
// than once, and after Run has returned by itself (after a leave).
func (ta *testAgent) stop(t *testing.T) {
	t.Helper()
	ta.cancel()
	if err := ta.wait(stopTimeout); err != nil {
		t.Errorf("agent %s: %v", ta.name, err)
	}
}

// wait waits for Run to return and reports Run's error, or a timeout.
func (ta *testAgent) wait(d time.Duration) error {
	select {
	case <-ta.done:
		if ta.err != nil {
			return fmt.Errorf("Run returned %v, want nil", ta.err)
		}
		return nil
	case <-time.After(d):
		return fmt.Errorf("Run did not return within %v", d)
	}
}

// gossipAddr is the agent's advertised gossip address, from its API.
func (ta *testAgent) gossipAddr(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), cliTimeout)
	defer cancel()
	info, err := api.NewClient(ta.socket).Info(ctx)
	if err != nil {
		t.Fatalf("info from %s: %v", ta.name, err)
	}
	if info.GossipAddr == "" {
		t.Fatalf("agent %s reports no gossip address", ta.name)
	}
	return info.GossipAddr
}

// cliResult is what one invocation of the CLI produced.
type cliResult struct {
	code           int
	stdout, stderr string
}

func (r cliResult) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// runCLI runs the CLI with args under a deadline and returns what it printed.
func runCLI(t *testing.T, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), cliTimeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	code := run(ctx, args, &stdout, &stderr)
	return cliResult{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// membersJSON returns `orch members --format json` on the agent at socket.
func membersJSON(t *testing.T, socket string) []api.Member {
	t.Helper()
	r := runCLI(t, "--socket", socket, "members", "--format", "json")
	if r.code != exitOK {
		t.Fatalf("members --format json: %v", r)
	}
	var ms []api.Member
	if err := json.Unmarshal([]byte(r.stdout), &ms); err != nil {
		t.Fatalf("members --format json: output is not a JSON array of members: %v\n%s", err, r.stdout)
	}
	return ms
}

func findMember(ms []api.Member, name string) (api.Member, bool) {
	i := slices.IndexFunc(ms, func(m api.Member) bool { return m.Name == name })
	if i < 0 {
		return api.Member{}, false
	}
	return ms[i], true
}

// waitMemberStatus polls `orch members` on socket until member name has the
// given status, and fails the test at the deadline.
func waitMemberStatus(t *testing.T, socket, name, status string) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		ms := membersJSON(t, socket)
		m, ok := findMember(ms, name)
		if ok && m.Status == status {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("member %s not %q after %v; members: %+v", name, status, waitTimeout, ms)
		}
		select {
		case <-tick.C:
		case <-t.Context().Done():
			t.Fatalf("test ended waiting for member %s to be %q", name, status)
		}
	}
}

// wantUsage checks a usage error: exit 2, the error and the usage on stderr,
// nothing on stdout.
func wantUsage(t *testing.T, r cliResult, wantErr string) {
	t.Helper()
	if r.code != exitUsage {
		t.Errorf("exit code %d, want %d (usage)\n%v", r.code, exitUsage, r)
	}
	if !strings.Contains(r.stderr, wantErr) {
		t.Errorf("stderr does not contain %q:\n%s", wantErr, r.stderr)
	}
	if !strings.Contains(r.stderr, "Usage:") {
		t.Errorf("stderr has no usage:\n%s", r.stderr)
	}
	if r.stdout != "" {
		t.Errorf("stdout not empty on a usage error:\n%s", r.stdout)
	}
}

// lineWriter is an io.Writer for a command's stdout that calls onLine once,
// when the first full line has been written: the moment a user watching
// `orch events` would press ^C, or a test would stop the agent.
type lineWriter struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	once   sync.Once
	onLine func()
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := w.buf.Write(p)
	if bytes.IndexByte(w.buf.Bytes(), '\n') >= 0 {
		w.once.Do(w.onLine)
	}
	return n, err
}

func (w *lineWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// nanoRFC3339 is api.EventTimeFormat as a pattern: UTC, nine fractional digits.
var nanoRFC3339 = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$`)

// TestCLI_Agent runs the client verbs against one in-process agent.
func TestCLI_Agent(t *testing.T) {
	n1 := startAgent(t, "n1", map[string]string{"zone": "a", "disk": "ssd"})
	sock := []string{"--socket", n1.socket}
	cli := func(t *testing.T, args ...string) cliResult {
		t.Helper()
		return runCLI(t, append(slices.Clone(sock), args...)...)
	}

	t.Run("MembersTable", func(t *testing.T) {
		r := cli(t, "members")
		if r.code != exitOK {
			t.Fatalf("members: %v", r)
		}
		lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
		if len(lines) != 2 {
			t.Fatalf("members printed %d lines, want header and one row:\n%s", len(lines), r.stdout)
		}
		if got, want := strings.Fields(lines[0]), []string{"NAME", "ADDRESS", "STATUS", "SUBNET", "LABELS", "AGE"}; !slices.Equal(got, want) {
			t.Errorf("header = %q, want %q", got, want)
		}
		row := strings.Fields(lines[1])
		// n1 * ADDRESS alive SUBNET LABELS AGE: the '*' marks the agent
		// answering; no subnet with the overlay off.
		want := []string{"n1", "*", n1.gossipAddr(t), "alive", "-", "disk=ssd,zone=a"}
		if len(row) != 7 || !slices.Equal(row[:6], want) {
			t.Errorf("row = %q, want %q followed by an age", row, want)
		}
		if r.stderr != "" {
			t.Errorf("stderr not empty: %s", r.stderr)
		}
	})

	t.Run("MembersJSON", func(t *testing.T) {
		ms := membersJSON(t, n1.socket)
		if len(ms) != 1 {
			t.Fatalf("got %d members, want 1: %+v", len(ms), ms)
		}
		m := ms[0]
		if m.Name != "n1" || m.Status != "alive" || !m.Orch || !m.Self {
			t.Errorf("member = {name %q status %q orch %v self %v}, want {n1 alive true true}", m.Name, m.Status, m.Orch, m.Self)
		}
		if want := map[string]string{"zone": "a", "disk": "ssd"}; !maps.Equal(m.Labels, want) {
			t.Errorf("labels = %v, want %v", m.Labels, want)
		}
		if m.Address != n1.gossipAddr(t) {
			t.Errorf("address = %q, want %q", m.Address, n1.gossipAddr(t))
		}
		if m.Created == nil {
			t.Error("created is missing for an orch member")
		}
	})

	t.Run("MembersBadFormat", func(t *testing.T) {
		wantUsage(t, cli(t, "members", "--format", "yaml"), `--format "yaml": want table or json`)
	})

	t.Run("Token", func(t *testing.T) {
		r := cli(t, "token")
		if r.code != exitOK {
			t.Fatalf("token: %v", r)
		}
		lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
		if len(lines) != 1 || !strings.HasPrefix(lines[0], "ORCH1-") {
			t.Errorf("token printed %q, want one line starting with ORCH1-", r.stdout)
		}
	})

	t.Run("EventsSince", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), cliTimeout)
		defer cancel()
		stdout := &lineWriter{onLine: cancel}
		var stderr bytes.Buffer
		code := run(ctx, append(slices.Clone(sock), "events", "--since", "1m"), stdout, &stderr)
		if code != exitOK {
			t.Errorf("events interrupted: exit %d, want 0; stderr:\n%s", code, stderr.String())
		}
		if msg := stderr.String(); msg != "" {
			t.Errorf("stderr not empty after an interrupt: %s", msg)
		}
		out := stdout.String()
		line, _, ok := strings.Cut(out, "\n")
		if !ok {
			t.Fatalf("no complete event line before the deadline; stdout: %q", out)
		}
		var ev map[string]json.RawMessage
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("event line is not a JSON object: %v\n%s", err, line)
		}
		keys := slices.Sorted(maps.Keys(ev))
		if want := []string{"action", "attributes", "node", "seq", "subject", "time", "type"}; !slices.Equal(keys, want) {
			t.Errorf("event keys = %q, want %q\n%s", keys, want, line)
		}
		var e struct {
			Time       string            `json:"time"`
			Seq        uint64            `json:"seq"`
			Type       string            `json:"type"`
			Node       string            `json:"node"`
			Attributes map[string]string `json:"attributes"`
		}
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("event fields have the wrong types: %v\n%s", err, line)
		}
		if !nanoRFC3339.MatchString(e.Time) {
			t.Errorf("time %q is not RFC 3339 UTC with nine fractional digits", e.Time)
		}
		if _, err := time.Parse(time.RFC3339Nano, e.Time); err != nil {
			t.Errorf("time %q does not parse as RFC 3339: %v", e.Time, err)
		}
		if e.Seq == 0 || e.Type == "" || e.Node != "n1" || e.Attributes == nil {
			t.Errorf("event = %+v, want seq > 0, a type, node n1 and attributes", e)
		}
	})

	t.Run("EventsBadFilter", func(t *testing.T) {
		r := cli(t, "events", "--filter", "bogus=1")
		if r.code == exitOK {
			t.Fatalf("events --filter bogus=1 succeeded: %v", r)
		}
		if !strings.Contains(r.stderr, `"bogus=1"`) || !strings.Contains(r.stderr, "invalid filter") {
			t.Errorf("stderr does not name the bad filter \"bogus=1\":\n%s", r.stderr)
		}
	})

	t.Run("JoinGarbageToken", func(t *testing.T) {
		r := cli(t, "join", "--token", "not-a-token", "127.0.0.1:1")
		if r.code != exitError {
			t.Errorf("exit code %d, want %d\n%v", r.code, exitError, r)
		}
		if !strings.Contains(r.stderr, "token") {
			t.Errorf("stderr does not mention the token:\n%s", r.stderr)
		}
		if got := len(membersJSON(t, n1.socket)); got != 1 {
			t.Errorf("n1 has %d members after a refused join, want 1", got)
		}
	})

	t.Run("SocketFromEnv", func(t *testing.T) {
		t.Setenv(api.SocketEnv, n1.socket)
		// The default of --socket is read when run builds the root command,
		// so setting the variable now must take effect.
		r := runCLI(t, "members", "--format", "json")
		if r.code != exitOK {
			t.Fatalf("members with %s=%s: %v", api.SocketEnv, n1.socket, r)
		}
		if !strings.Contains(r.stdout, `"name": "n1"`) {
			t.Errorf("members did not reach n1 through %s:\n%s", api.SocketEnv, r.stdout)
		}
		// --socket wins over the variable.
		r = runCLI(t, "--socket", "/nonexistent/flag.sock", "members")
		if r.code != exitError || !strings.Contains(r.stderr, "/nonexistent/flag.sock") {
			t.Errorf("--socket did not override %s: %v", api.SocketEnv, r)
		}
	})
}

// TestCLI_JoinWrongTokenLeave joins a second agent with `orch join`,
// refuses a third one with a damaged token, and makes the second leave.
func TestCLI_JoinWrongTokenLeave(t *testing.T) {
	n1 := startAgent(t, "n1", nil)
	n2 := startAgent(t, "n2", nil)
	n3 := startAgent(t, "n3", nil)
	addr1 := n1.gossipAddr(t)

	r := runCLI(t, "--socket", n1.socket, "token")
	if r.code != exitOK {
		t.Fatalf("token: %v", r)
	}
	token := strings.TrimSpace(r.stdout)

	r = runCLI(t, "--socket", n2.socket, "join", "--token", token, addr1)
	if r.code != exitOK {
		t.Fatalf("join n2 to n1: %v", r)
	}
	if !strings.HasPrefix(r.stdout, "joined: contacted 1 member(s)") {
		t.Errorf("join printed %q", r.stdout)
	}
	waitMemberStatus(t, n1.socket, "n2", "alive")
	waitMemberStatus(t, n2.socket, "n1", "alive")

	// Same cluster fingerprint, another secret: n1 must refuse n3.
	wrong := damageSecret(t, token)
	before := len(membersJSON(t, n1.socket))
	r = runCLI(t, "--socket", n3.socket, "join", "--token", wrong, addr1)
	if r.code != exitError {
		t.Errorf("join with a wrong secret: exit %d, want %d\n%v", r.code, exitError, r)
	}
	if !strings.Contains(r.stderr, "wrong join secret") || !strings.Contains(r.stderr, "refused") {
		t.Errorf("stderr does not say the join was refused for a wrong secret:\n%s", r.stderr)
	}
	ms := membersJSON(t, n1.socket)
	if len(ms) != before {
		t.Errorf("n1 has %d members after a refused join, want %d: %+v", len(ms), before, ms)
	}
	if _, ok := findMember(ms, "n3"); ok {
		t.Errorf("n1 lists n3 after refusing it: %+v", ms)
	}
	if got := len(membersJSON(t, n3.socket)); got != 1 {
		t.Errorf("n3 has %d members after being refused, want 1 (still alone)", got)
	}

	r = runCLI(t, "--socket", n2.socket, "leave")
	if r.code != exitOK {
		t.Fatalf("leave n2: %v", r)
	}
	if err := n2.wait(stopTimeout); err != nil {
		t.Errorf("agent n2 after leave: %v", err)
	}
	waitMemberStatus(t, n1.socket, "n2", "left")
}

// damageSecret flips the first character of the token's secret part, so the
// token still parses and names the same cluster but proves nothing. The
// first character is changed rather than the last, whose low bits may be
// padding that decoding ignores.
func damageSecret(t *testing.T, token string) string {
	t.Helper()
	i := strings.LastIndex(token, "-")
	if i < 0 || i+1 >= len(token) {
		t.Fatalf("token %q has no secret part", token)
	}
	c := byte('a')
	if token[i+1] == 'a' {
		c = 'b'
	}
	return token[:i+1] + string(c) + token[i+2:]
}

// TestCLI_NoAgent checks the error when no agent answers on the socket:
// exit 1 and the path, not a usage error.
func TestCLI_NoAgent(t *testing.T) {
	// Longer than a unix socket address can hold: dialing fails with EINVAL,
	// "invalid argument", which must not pass for cobra's usage error.
	long := "/tmp/" + strings.Repeat("x", 200) + ".sock"
	tests := []struct {
		name   string
		socket string
	}{
		{"Missing", "/nonexistent/x.sock"},
		{"NotASocket", t.TempDir()},
		{"PathTooLong", long},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, "--socket", tt.socket, "members")
			if r.code != exitError {
				t.Errorf("exit code %d, want %d\n%v", r.code, exitError, r)
			}
			if want := "cannot reach the agent at " + tt.socket + ": "; !strings.Contains(r.stderr, want) {
				t.Errorf("stderr does not contain %q:\n%s", want, r.stderr)
			}
			if strings.Contains(r.stderr, "Usage:") {
				t.Errorf("usage printed for an unreachable agent:\n%s", r.stderr)
			}
			if r.stdout != "" {
				t.Errorf("stdout not empty: %s", r.stdout)
			}
		})
	}
}

// TestCLI_EventsAgentStops checks that `orch events` fails, rather than
// exiting 0 as if interrupted, when the agent ends the stream.
func TestCLI_EventsAgentStops(t *testing.T) {
	n1 := startAgent(t, "n1", nil)
	ctx, cancel := context.WithTimeout(t.Context(), cliTimeout)
	defer cancel()
	firstLine := make(chan struct{})
	stdout := &lineWriter{onLine: func() { close(firstLine) }}
	var stderr bytes.Buffer
	code := make(chan int, 1) // buffered: read once below, or never if the test fails first
	go func() { code <- run(ctx, []string{"--socket", n1.socket, "events", "--since", "1m"}, stdout, &stderr) }()
	select {
	case <-firstLine:
	case <-ctx.Done():
		t.Fatal("no event before the deadline")
	}
	n1.stop(t)
	select {
	case c := <-code:
		if c != exitError {
			t.Errorf("exit code %d, want %d; stderr:\n%s", c, exitError, stderr.String())
		}
		if !strings.Contains(stderr.String(), "closed the event stream") {
			t.Errorf("stderr does not say the agent closed the stream:\n%s", stderr.String())
		}
	case <-ctx.Done():
		t.Fatal("events did not return after the agent stopped")
	}
}

// TestCLI_UsageErrors checks that mistakes in the command line exit 2 with
// the usage, before any agent is contacted (the socket leads nowhere, which
// would exit 1).
func TestCLI_UsageErrors(t *testing.T) {
	dir := t.TempDir()
	unknownKey := filepath.Join(dir, "unknown.json")
	if err := os.WriteFile(unknownKey, []byte(`{"name":"n1","colour":"blue"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"BadFlag", []string{"members", "--bogus"}, "unknown flag: --bogus"},
		{"UnknownCommand", []string{"bogus"}, `unknown command "bogus"`},
		{"ExtraArgs", []string{"token", "extra"}, `unknown command "extra"`},
		{"BadFlagValue", []string{"events", "--since", "soon"}, `invalid argument "soon" for "--since"`},
		{"EventsSinceAndAfter", []string{"events", "--since", "1m", "--after", "3"}, "either --since or --after"},
		{"JoinNoAddress", []string{"join"}, "requires at least 1 arg"},
		{"AgentBadBind", []string{"agent", "--bind", "nonsense"}, `--bind "nonsense"`},
		{"AgentUpperName", []string{"agent", "--name", "UPPER"}, `name "UPPER"`},
		{"AgentUnknownConfigKey", []string{"agent", "--config", unknownKey}, `unknown field "colour"`},
		{"AgentBadEventHandler", []string{"agent", "--name", "n1", "--event-handler", "members=true"}, `unknown event type "members": want one of member, service`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"--socket", "/nonexistent/x.sock"}, tt.args...)
			wantUsage(t, runCLI(t, args...), tt.wantErr)
		})
	}
}

func TestCLI_Version(t *testing.T) {
	r := runCLI(t, "version")
	if r.code != exitOK || !strings.HasPrefix(r.stdout, "orch ") {
		t.Errorf("version: %v", r)
	}
}

// parseAgentFlags parses args with the real flags of `orch agent` and
// returns the values its RunE would pass to toConfig, with the flag set
// that says which flags were given.
func parseAgentFlags(t *testing.T, args ...string) (agentFlags, *pflag.FlagSet) {
	t.Helper()
	fs := newAgentCmd(&globals{}).Flags()
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parse %q: %v", args, err)
	}
	get := func(name string) string {
		t.Helper()
		v, err := fs.GetString(name)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	getArray := func(name string) []string {
		t.Helper()
		v, err := fs.GetStringArray(name)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	f := agentFlags{
		name: get("name"), bind: get("bind"), advertise: get("advertise"), dataDir: get("data-dir"),
		token: get("token"), profile: get("profile"), configFile: get("config"), containerd: get("containerd"),
		logLevel: get("log-level"), logFormat: get("log-format"),
		labels: getArray("label"), join: getArray("join"),
		overlay: get("overlay"), subnet: get("subnet"), domain: get("domain"), dns: get("dns"), metrics: get("metrics"), socketGroup: get("socket-group"),
		apiTLSAddr: get("api-tls-addr"), apiTLSCert: get("api-tls-cert"), apiTLSKey: get("api-tls-key"), apiTLSClientCA: get("api-tls-client-ca"),
	}
	vni, err := fs.GetInt("vni")
	if err != nil {
		t.Fatal(err)
	}
	f.vni = vni
	f.eventHandlers = getArray("event-handler")
	if f.eventHandlerTimeout, err = fs.GetDuration("event-handler-timeout"); err != nil {
		t.Fatal(err)
	}
	return f, fs
}

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "orch.json")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestAgentFlags_Precedence checks defaults < --config FILE < flags.
func TestAgentFlags_Precedence(t *testing.T) {
	file := writeConfig(t, `{
		"name": "fromfile",
		"bind": "127.0.0.1:7000",
		"data_dir": "/tmp/orch-fromfile",
		"socket": "/tmp/fromfile.sock",
		"labels": {"zone": "file"},
		"profile": "fast",
		"log_level": "warn"
	}`)

	t.Run("FlagsWin", func(t *testing.T) {
		f, fs := parseAgentFlags(t, "--config", file, "--name", "fromflag", "--label", "zone=flag", "--bind", "127.0.0.1:7001")
		cfg, err := f.toConfig(fs, "/tmp/fromflag.sock", true)
		if err != nil {
			t.Fatalf("toConfig: %v", err)
		}
		if cfg.Name != "fromflag" {
			t.Errorf("name = %q, want the flag's fromflag", cfg.Name)
		}
		if want := netip.MustParseAddrPort("127.0.0.1:7001"); cfg.Bind != want {
			t.Errorf("bind = %v, want the flag's %v", cfg.Bind, want)
		}
		if want := map[string]string{"zone": "flag"}; !maps.Equal(cfg.Labels, want) {
			t.Errorf("labels = %v, want the flag's %v", cfg.Labels, want)
		}
		if cfg.Socket != "/tmp/fromflag.sock" {
			t.Errorf("socket = %q, want the flag's /tmp/fromflag.sock", cfg.Socket)
		}
		// Not given as flags: the file's values.
		if cfg.DataDir != "/tmp/orch-fromfile" || cfg.Profile != "fast" {
			t.Errorf("data dir %q, profile %q: want the file's /tmp/orch-fromfile and fast", cfg.DataDir, cfg.Profile)
		}
	})

	t.Run("FileOverDefaults", func(t *testing.T) {
		f, fs := parseAgentFlags(t, "--config", file)
		cfg, err := f.toConfig(fs, api.DefaultSocket, false)
		if err != nil {
			t.Fatalf("toConfig: %v", err)
		}
		want := agent.DefaultConfig()
		want.Name = "fromfile"
		want.Bind = netip.MustParseAddrPort("127.0.0.1:7000")
		want.DataDir = "/tmp/orch-fromfile"
		want.Socket = "/tmp/fromfile.sock"
		want.Labels = map[string]string{"zone": "file"}
		want.Profile = "fast"
		checkConfig(t, cfg, want)
		if cfg.Logger.Enabled(context.Background(), slog.LevelInfo) || !cfg.Logger.Enabled(context.Background(), slog.LevelWarn) {
			t.Error("log level is not the file's warn")
		}
	})

	t.Run("Defaults", func(t *testing.T) {
		want := agent.DefaultConfig()
		if err := want.Validate(); err != nil {
			t.Skipf("the defaults do not validate on this host (%v); they need --name here", err)
		}
		f, fs := parseAgentFlags(t)
		cfg, err := f.toConfig(fs, api.DefaultSocket, false)
		if err != nil {
			t.Fatalf("toConfig: %v", err)
		}
		checkConfig(t, cfg, want)
	})

	t.Run("BadFileIsUsageError", func(t *testing.T) {
		bad := writeConfig(t, `{"name":"n1","colour":"blue"}`)
		f, fs := parseAgentFlags(t, "--config", bad)
		_, err := f.toConfig(fs, api.DefaultSocket, false)
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), `unknown field "colour"`) {
			t.Errorf("toConfig = %v, want a usage error naming the unknown key", err)
		}
	})

	t.Run("AllErrorsReported", func(t *testing.T) {
		f, fs := parseAgentFlags(t, "--bind", "nonsense", "--advertise", "x", "--label", "novalue", "--log-level", "loud")
		_, err := f.toConfig(fs, api.DefaultSocket, false)
		if err == nil {
			t.Fatal("toConfig accepted bad flags")
		}
		for _, want := range []string{"--bind", "--advertise", `label "novalue"`, "--log-level"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error does not mention %s: %v", want, err)
			}
		}
	})
}

// TestAgentFlags_EventHandlers checks --event-handler and
// --event-handler-timeout, their config file keys and their errors.
func TestAgentFlags_EventHandlers(t *testing.T) {
	file := writeConfig(t, `{
		"name": "n1",
		"event_handlers": ["member:failed=cat > /tmp/failed.json", "logger -t orch"],
		"event_handler_timeout": "5s"
	}`)
	fromFile := []agent.EventHandler{
		{Type: "member", Action: "failed", Command: "cat > /tmp/failed.json"},
		{Command: "logger -t orch"},
	}

	t.Run("Flags", func(t *testing.T) {
		f, fs := parseAgentFlags(t, "--name", "n1",
			"--event-handler", "member:failed=cat > /tmp/x.json",
			"--event-handler", "task=echo a=b",
			"--event-handler", "echo $ORCH_EVENT_SEQ",
			"--event-handler-timeout", "2m")
		cfg, err := f.toConfig(fs, api.DefaultSocket, false)
		if err != nil {
			t.Fatalf("toConfig: %v", err)
		}
		want := []agent.EventHandler{
			{Type: "member", Action: "failed", Command: "cat > /tmp/x.json"},
			{Type: "task", Command: "echo a=b"},
			{Command: "echo $ORCH_EVENT_SEQ"},
		}
		if !slices.Equal(cfg.EventHandlers, want) || cfg.EventHandlerTimeout != 2*time.Minute {
			t.Errorf("handlers %+v, timeout %v; want %+v, 2m", cfg.EventHandlers, cfg.EventHandlerTimeout, want)
		}
	})

	t.Run("Defaults", func(t *testing.T) {
		f, fs := parseAgentFlags(t, "--name", "n1")
		cfg, err := f.toConfig(fs, api.DefaultSocket, false)
		if err != nil {
			t.Fatalf("toConfig: %v", err)
		}
		if cfg.EventHandlers != nil || cfg.EventHandlerTimeout != agent.DefaultEventHandlerTimeout {
			t.Errorf("handlers %+v, timeout %v; want none, %v", cfg.EventHandlers, cfg.EventHandlerTimeout, agent.DefaultEventHandlerTimeout)
		}
	})

	t.Run("File", func(t *testing.T) {
		f, fs := parseAgentFlags(t, "--config", file)
		cfg, err := f.toConfig(fs, api.DefaultSocket, false)
		if err != nil {
			t.Fatalf("toConfig: %v", err)
		}
		if !slices.Equal(cfg.EventHandlers, fromFile) || cfg.EventHandlerTimeout != 5*time.Second {
			t.Errorf("handlers %+v, timeout %v; want the file's %+v, 5s", cfg.EventHandlers, cfg.EventHandlerTimeout, fromFile)
		}
	})

	t.Run("FlagsWinOverFile", func(t *testing.T) {
		f, fs := parseAgentFlags(t, "--config", file, "--event-handler", "node=true", "--event-handler-timeout", "1s")
		cfg, err := f.toConfig(fs, api.DefaultSocket, false)
		if err != nil {
			t.Fatalf("toConfig: %v", err)
		}
		if want := []agent.EventHandler{{Type: "node", Command: "true"}}; !slices.Equal(cfg.EventHandlers, want) || cfg.EventHandlerTimeout != time.Second {
			t.Errorf("handlers %+v, timeout %v; want the flags' %+v, 1s", cfg.EventHandlers, cfg.EventHandlerTimeout, want)
		}
	})

	t.Run("Errors", func(t *testing.T) {
		f, fs := parseAgentFlags(t, "--name", "n1", "--event-handler", "bogus=true", "--event-handler", "member=",
			"--event-handler-timeout", "-1s")
		_, err := f.toConfig(fs, api.DefaultSocket, false)
		var ue usageError
		if !errors.As(err, &ue) {
			t.Fatalf("toConfig = %v, want a usage error", err)
		}
		for _, want := range []string{
			`--event-handler: event handler "bogus=true": unknown event type "bogus": want one of member, service, task, node, image, network, health, cluster, secret, api, stream`,
			`--event-handler: event handler "member=": empty command`,
		} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error lacks %q:\n%v", want, err)
			}
		}
		// The timeout is checked with the rest of the config once the
		// flags parse.
		f, fs = parseAgentFlags(t, "--name", "n1", "--event-handler-timeout", "-1s")
		if _, err := f.toConfig(fs, api.DefaultSocket, false); err == nil || !strings.Contains(err.Error(), "event handler timeout -1s") {
			t.Errorf("negative timeout: %v", err)
		}
		bad := writeConfig(t, `{"name":"n1","event_handler_timeout":"soon"}`)
		f, fs = parseAgentFlags(t, "--config", bad)
		if _, err := f.toConfig(fs, api.DefaultSocket, false); !errors.As(err, &ue) || !strings.Contains(err.Error(), `event_handler_timeout "soon"`) {
			t.Errorf("bad timeout in the file: %v", err)
		}
	})
}

// checkConfig compares two agent configs, except their loggers, which it
// only checks are set.
func checkConfig(t *testing.T, got, want agent.Config) {
	t.Helper()
	if got.Logger == nil {
		t.Error("config has no logger")
	}
	got.Logger, want.Logger = nil, nil
	if len(got.Join) == 0 && len(want.Join) == 0 {
		got.Join, want.Join = nil, nil
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("config:\n got %+v\nwant %+v", got, want)
	}
}

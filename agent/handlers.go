package agent

// Event handlers: serf's "event scripts" for orch. Each handler has its own
// subscription on the bus and one goroutine that runs its command once per
// matching event, one at a time, in Seq order. The bus never waits for a
// handler: a handler that falls more than the subscription's buffer behind
// loses events, which its subscription counts (HandlerStats.Dropped), and
// then receives a lagged marker.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/orchproject/orch/agent/events"
)

// DefaultEventHandlerTimeout bounds one run of an event handler's command.
const DefaultEventHandlerTimeout = 30 * time.Second

const (
	// handlerShell runs a handler's command as `handlerShell -c COMMAND`.
	handlerShell = "/bin/sh"
	// handlerOutputLimit is how much of a run's stdout and stderr is kept
	// for the log.
	handlerOutputLimit = 1024
	// handlerWaitDelay is how long a run may keep its output open after
	// the shell exited (a background process holding stdout), or after its
	// process group was killed, before the agent closes the pipes.
	handlerWaitDelay = 2 * time.Second
	// handlerStopGrace is how long the agent's shutdown waits for commands
	// that are running before it kills their process groups.
	handlerStopGrace = 5 * time.Second
	// handlerEnvPrefix starts every variable the agent sets for a command.
	handlerEnvPrefix = "ORCH_EVENT_"
)

// EventHandlerTypes are the event types a handler may filter on.
var EventHandlerTypes = []events.Type{
	events.TypeMember, typeService, typeTask, typeNode, typeImage, typeNetwork, typeHealth, typeCluster, typeSecret, typeAPI, events.TypeStream,
}

// handlerFilterRE matches the text before the first '=' of a handler that
// has a filter: TYPE or TYPE:ACTION.
var handlerFilterRE = regexp.MustCompile(`^[a-z]+(:[a-z-]+)?$`)

// handlerActionRE matches an action a handler may filter on.
var handlerActionRE = regexp.MustCompile(`^[a-z-]+$`)

// EventHandler is a command run for every event that matches its filter:
// `--event-handler [TYPE[:ACTION]=]COMMAND`.
type EventHandler struct {
	// Type selects the events by type; empty means every event. It must be
	// one of [EventHandlerTypes].
	Type events.Type
	// Action selects the events by action, with Type; empty means any.
	Action events.Action
	// Command is run as `/bin/sh -c Command` with the event as JSON on
	// stdin and ORCH_EVENT_* in the environment.
	Command string
}

// ParseEventHandler parses [TYPE[:ACTION]=]COMMAND. The text before the
// first '=' is a filter if it looks like one (lower-case letters, then
// optionally ':' and an action of lower-case letters and '-'); otherwise
// the whole text is the command, so `echo a=b` has no filter. The type must
// be one of [EventHandlerTypes].
func ParseEventHandler(s string) (EventHandler, error) {
	var h EventHandler
	if filter, cmd, ok := strings.Cut(s, "="); ok && handlerFilterRE.MatchString(filter) {
		typ, action, _ := strings.Cut(filter, ":")
		h = EventHandler{Type: events.Type(typ), Action: events.Action(action), Command: cmd}
	} else {
		h = EventHandler{Command: s}
	}
	if err := h.validate(); err != nil {
		return EventHandler{}, fmt.Errorf("event handler %q: %w", s, err)
	}
	return h, nil
}

// String returns h as written to --event-handler.
func (h EventHandler) String() string {
	switch {
	case h.Type == "":
		return h.Command
	case h.Action == "":
		return string(h.Type) + "=" + h.Command
	}
	return string(h.Type) + ":" + string(h.Action) + "=" + h.Command
}

// validate reports the first problem with h.
func (h EventHandler) validate() error {
	if h.Type != "" && !slices.Contains(EventHandlerTypes, h.Type) {
		return fmt.Errorf("unknown event type %q: want one of %s (a command that starts with NAME=VALUE needs a filter, or a space before it)",
			h.Type, handlerTypeList())
	}
	if h.Action != "" {
		if h.Type == "" {
			return fmt.Errorf("action %q without a type: want TYPE:ACTION=COMMAND", h.Action)
		}
		if !handlerActionRE.MatchString(string(h.Action)) {
			return fmt.Errorf("action %q: want lower-case letters and '-'", h.Action)
		}
	}
	if strings.TrimSpace(h.Command) == "" {
		return errors.New("empty command: want [TYPE[:ACTION]=]COMMAND")
	}
	return nil
}

func handlerTypeList() string {
	names := make([]string, len(EventHandlerTypes))
	for i, t := range EventHandlerTypes {
		names[i] = string(t)
	}
	return strings.Join(names, ", ")
}

// filter is the bus filter that selects h's events.
func (h EventHandler) filter() (events.Filter, error) {
	var exprs []string
	if h.Type != "" {
		exprs = append(exprs, events.FilterType+"="+string(h.Type))
	}
	if h.Action != "" {
		exprs = append(exprs, events.FilterAction+"="+string(h.Action))
	}
	return events.ParseFilter(exprs)
}

// HandlerStats are one event handler's counters, for metrics.
type HandlerStats struct {
	// Handler is the handler as configured: [TYPE[:ACTION]=]COMMAND.
	Handler string
	// Runs is how many runs of the command have finished, failed or not.
	Runs uint64
	// Failures is how many runs failed: a non-zero exit, a command that
	// could not start, a timeout, a kill at shutdown.
	Failures uint64
	// Timeouts is how many of the failures were timeouts.
	Timeouts uint64
	// Dropped is how many matching events the handler missed because it
	// was too far behind (its queue on the bus was full).
	Dropped uint64
}

// HandlerStats returns the counters of each configured event handler, in
// the order configured. Before Run they are zero.
func (a *Agent) HandlerStats() []HandlerStats {
	a.mu.Lock()
	r := a.handlers
	a.mu.Unlock()
	if r != nil {
		return r.stats()
	}
	out := make([]HandlerStats, len(a.cfg.EventHandlers))
	for i, h := range a.cfg.EventHandlers {
		out[i].Handler = h.String()
	}
	return out
}

// startHandlers subscribes every configured handler to the bus and starts
// running their commands; Run calls it before anything publishes.
func (a *Agent) startHandlers() (*handlerRunner, error) {
	r := newHandlerRunner(a.cfg.EventHandlers, a.cfg.EventHandlerTimeout, a.log)
	if err := r.start(a.bus); err != nil {
		return nil, err
	}
	a.mu.Lock()
	a.handlers = r
	a.mu.Unlock()
	return r, nil
}

// handlerRunner runs the commands of a set of handlers.
type handlerRunner struct {
	log     *slog.Logger
	timeout time.Duration
	shell   string        // handlerShell; tests change it
	grace   time.Duration // handlerStopGrace; tests change it
	hs      []*handlerState

	env  []string           // the agent's environment, without ORCH_EVENT_*
	ctx  context.Context    // canceled to kill the running commands
	kill context.CancelFunc // cancels ctx
	wg   sync.WaitGroup     // one per handler goroutine
}

// handlerState is one handler's subscription and counters.
type handlerState struct {
	h      EventHandler
	name   string // h.String(), for logs and stats
	filter events.Filter
	sub    *events.Subscription // set by start

	runs, failures, timeouts atomic.Uint64
}

func newHandlerRunner(hs []EventHandler, timeout time.Duration, log *slog.Logger) *handlerRunner {
	if timeout <= 0 {
		timeout = DefaultEventHandlerTimeout
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &handlerRunner{
		log:     log.With("component", "handlers"),
		timeout: timeout,
		shell:   handlerShell,
		grace:   handlerStopGrace,
	}
	for _, h := range hs {
		r.hs = append(r.hs, &handlerState{h: h, name: h.String()})
	}
	return r
}

// start subscribes each handler and starts its goroutine. On error it
// closes the subscriptions it made.
func (r *handlerRunner) start(bus *events.Bus) error {
	for _, hs := range r.hs {
		f, err := hs.h.filter()
		if err == nil {
			hs.filter = f
			hs.sub, err = bus.Subscribe(events.SubscribeOptions{Filter: f})
		}
		if err != nil {
			for _, o := range r.hs {
				if o.sub != nil {
					o.sub.Close()
				}
			}
			return fmt.Errorf("event handler %q: %w", hs.name, err)
		}
	}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, handlerEnvPrefix) {
			r.env = append(r.env, kv)
		}
	}
	r.ctx, r.kill = context.WithCancel(context.Background())
	for _, hs := range r.hs {
		r.wg.Go(func() { r.loop(hs) })
	}
	if len(r.hs) > 0 {
		r.log.Info("event handlers started", "handlers", len(r.hs), "timeout", r.timeout)
	}
	return nil
}

// stop ends the subscriptions, discarding the events not yet handled, waits
// up to the grace period for the commands that are running, then kills
// their process groups.
func (r *handlerRunner) stop() {
	for _, hs := range r.hs {
		hs.sub.Close()
	}
	done := make(chan struct{})
	go func() {
		r.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(r.grace):
		r.log.Warn("event handlers still running at shutdown; killing them", "grace", r.grace)
		r.kill()
		<-done
	}
	r.kill()
}

func (r *handlerRunner) stats() []HandlerStats {
	out := make([]HandlerStats, len(r.hs))
	for i, hs := range r.hs {
		out[i] = HandlerStats{
			Handler:  hs.name,
			Runs:     hs.runs.Load(),
			Failures: hs.failures.Load(),
			Timeouts: hs.timeouts.Load(),
			Dropped:  hs.sub.Dropped(),
		}
	}
	return out
}

// loop runs hs's command for each event, in order, until the subscription
// closes.
func (r *handlerRunner) loop(hs *handlerState) {
	for ev := range hs.sub.C() {
		if ev.IsMarker() {
			r.log.Warn("event handler fell behind; events dropped", "handler", hs.name,
				"missed", ev.Attributes[events.AttrMissed],
				"first_seq", ev.Attributes[events.AttrFirstSeq], "last_seq", ev.Attributes[events.AttrLastSeq])
			// Markers reach every subscription; only a handler that asked
			// for them (no filter, or type stream) runs on them.
			if !hs.filter.Match(ev) {
				continue
			}
		}
		r.run(hs, ev)
	}
}

// run runs hs's command for ev and waits for it, at most r.timeout.
func (r *handlerRunner) run(hs *handlerState, ev events.Event) {
	defer hs.runs.Add(1)
	payload, err := json.Marshal(ev)
	if err != nil { // cannot happen: the event is strings and numbers
		hs.failures.Add(1)
		r.log.Error("event handler: encode event", "handler", hs.name, "seq", ev.Seq, "err", err)
		return
	}
	payload = append(payload, '\n') // as a line of `orch events`

	ctx, cancel := context.WithTimeout(r.ctx, r.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, r.shell, "-c", hs.h.Command)
	cmd.Env = append(slices.Clip(r.env), handlerEnv(ev)...)
	cmd.Stdin = bytes.NewReader(payload)
	stdout, stderr := &capBuffer{limit: handlerOutputLimit}, &capBuffer{limit: handlerOutputLimit}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	// Its own process group, so that a timeout kills what it started too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			return err
		}
		return nil
	}
	cmd.WaitDelay = handlerWaitDelay

	start := time.Now()
	err = cmd.Run()
	took := time.Since(start).Round(time.Millisecond)
	attrs := []any{"handler", hs.name, "seq", ev.Seq, "type", string(ev.Type), "action", string(ev.Action),
		"subject", ev.Subject, "duration", took}

	var exitErr *exec.ExitError
	switch {
	case err == nil || errors.Is(err, exec.ErrWaitDelay) && cmd.ProcessState != nil && cmd.ProcessState.Success():
		if err != nil {
			r.log.Debug("event handler left a process holding its output; closed it", attrs...)
		}
		r.log.Debug("event handler ran", append(attrs, "stdout", stdout.String())...)
	case errors.Is(ctx.Err(), context.DeadlineExceeded) && r.ctx.Err() == nil:
		hs.failures.Add(1)
		hs.timeouts.Add(1)
		r.log.Warn("event handler timed out; killed its process group",
			append(attrs, "timeout", r.timeout, "exit_code", cmd.ProcessState.ExitCode(), "stderr", stderr.String())...)
	case r.ctx.Err() != nil:
		hs.failures.Add(1)
		r.log.Warn("event handler killed at shutdown", append(attrs, "stderr", stderr.String())...)
	case errors.As(err, &exitErr):
		hs.failures.Add(1)
		r.log.Warn("event handler failed",
			append(attrs, "exit_code", exitErr.ExitCode(), "err", err, "stderr", stderr.String())...)
	default:
		hs.failures.Add(1)
		r.log.Warn("event handler could not run", append(attrs, "err", err)...)
	}
}

// handlerEnv returns the variables that describe ev to a handler's
// command: ORCH_EVENT_TYPE, _ACTION, _SUBJECT, _NODE, _SEQ, _TIME, and
// ORCH_EVENT_ATTR_<KEY> per attribute, KEY upper-cased with every character
// other than A-Z, 0-9 and '_' replaced by '_'. Attributes whose keys map to
// the same name are set in key order, so the last key wins.
func handlerEnv(ev events.Event) []string {
	env := []string{
		handlerEnvPrefix + "TYPE=" + envValue(string(ev.Type)),
		handlerEnvPrefix + "ACTION=" + envValue(string(ev.Action)),
		handlerEnvPrefix + "SUBJECT=" + envValue(ev.Subject),
		handlerEnvPrefix + "NODE=" + envValue(ev.Node),
		handlerEnvPrefix + "SEQ=" + strconv.FormatUint(ev.Seq, 10),
		handlerEnvPrefix + "TIME=" + ev.Time.UTC().Format(events.TimeFormat),
	}
	keys := make([]string, 0, len(ev.Attributes))
	for k := range ev.Attributes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, handlerEnvPrefix+"ATTR_"+envKey(k)+"="+envValue(ev.Attributes[k]))
	}
	return env
}

// envKey upper-cases k and replaces every character other than A-Z, 0-9
// and '_' with '_'.
func envKey(k string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z':
			return r - 'a' + 'A'
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_':
			return r
		}
		return '_'
	}, k)
}

// envValue drops NUL bytes, which an environment cannot hold.
func envValue(v string) string { return strings.ReplaceAll(v, "\x00", "") }

// capBuffer keeps the first limit bytes written to it and counts the rest.
// exec's copying goroutine is its only writer, and Wait returns after it.
type capBuffer struct {
	limit int
	buf   []byte
	extra int
}

func (b *capBuffer) Write(p []byte) (int, error) {
	n := min(len(p), b.limit-len(b.buf))
	b.buf = append(b.buf, p[:n]...)
	b.extra += len(p) - n
	return len(p), nil
}

func (b *capBuffer) String() string {
	if b.extra > 0 {
		return fmt.Sprintf("%s… (%d more bytes)", b.buf, b.extra)
	}
	return string(b.buf)
}

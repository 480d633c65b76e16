package healthcheck

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Kind is the kind of probe a [Check] runs.
type Kind string

// The probe kinds.
const (
	// KindHTTP probes with GET http://ADDR:PORT/PATH.
	KindHTTP Kind = "http"
	// KindTCP probes by connecting to ADDR:PORT.
	KindTCP Kind = "tcp"
	// KindExec probes by running a command in the target through
	// [Config.Exec].
	KindExec Kind = "exec"
)

// Defaults: what the zero value of the matching [Check] field means. They
// are Docker's (and agent/spec's) defaults.
const (
	DefaultInterval = 30 * time.Second
	DefaultTimeout  = 30 * time.Second
	DefaultRetries  = 3
)

// Limits.
const (
	// MaxOutput is the most bytes of a probe's output kept in
	// [ProbeResult.Output] and [Status.LastOutput], and the most of an HTTP
	// body read. Docker keeps 4 KiB too: enough for an error message, small
	// enough to copy into events and observed state on every probe.
	MaxOutput = 4096
	// minDuration is the smallest Interval or Timeout accepted when set:
	// agent/spec's limit. Anything shorter is a typo for seconds.
	minDuration = time.Millisecond
	// jitterFraction is the share of the interval that delays the first
	// probe of a target at random, so targets set together (a node's
	// replicas after an agent restart) do not probe in lockstep.
	jitterFraction = 10
)

// Check says how to probe a target and how to judge the results. The zero
// value of each timing field means its default.
type Check struct {
	// Kind selects the probe.
	Kind Kind
	// Path is the HTTP request path and optional query; it starts with '/'.
	// Empty means "/". Only for KindHTTP.
	Path string
	// Port is the port probed on [Target.Addr], 1–65535. For KindHTTP and
	// KindTCP only.
	Port int
	// Command is the argv run by an exec probe, as given to [Config.Exec]
	// (the agent turns Docker's CMD-SHELL into ["/bin/sh", "-c", line]).
	// Only for KindExec.
	Command []string
	// Interval is the time from the end of one probe to the start of the
	// next. Zero means DefaultInterval (30s); at least 1ms when set.
	Interval time.Duration
	// Timeout bounds one probe; a probe that exceeds it fails. Zero means
	// DefaultTimeout (30s); at least 1ms when set.
	Timeout time.Duration
	// StartPeriod is a grace period counted from [Target.Started] in which
	// failures do not count while the target is still starting. Zero (the
	// default) means none.
	StartPeriod time.Duration
	// StartInterval, if set with a StartPeriod, replaces Interval while
	// the target is still starting within its start period (Docker's
	// --health-start-interval): a new replica is found healthy soon
	// without probing a running one as often. Zero means Interval.
	StartInterval time.Duration
	// InitialDelay is the time from [Monitor.Set] (or a restart, see
	// [Monitor.Reset]) to the first probe. Zero means the interval in
	// force at the start (StartInterval with a start period, else
	// Interval), as in Docker; there is no way to ask for an immediate
	// first probe, because a replica just started is rarely ready.
	InitialDelay time.Duration
	// Retries is how many consecutive failures make the target unhealthy.
	// Zero means DefaultRetries (3).
	Retries int
}

// Validate reports every problem of c, joined.
func (c Check) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	switch c.Kind {
	case KindHTTP:
		if c.Path != "" {
			if !strings.HasPrefix(c.Path, "/") {
				bad("path %q: must start with '/'", c.Path)
			} else if _, err := url.ParseRequestURI(c.Path); err != nil {
				bad("path %q: %w", c.Path, err)
			}
		}
	case KindTCP, KindExec:
		if c.Path != "" {
			bad("path is only for http checks, not %s", c.Kind)
		}
	case "":
		bad("kind is missing (want http, tcp or exec)")
	default:
		bad("unknown kind %q (want http, tcp or exec)", c.Kind)
	}
	switch c.Kind {
	case KindHTTP, KindTCP:
		if c.Port < 1 || c.Port > 65535 {
			bad("port %d: must be 1-65535", c.Port)
		}
		if len(c.Command) > 0 {
			bad("command is only for exec checks, not %s", c.Kind)
		}
	case KindExec:
		if c.Port != 0 {
			bad("port is only for http and tcp checks, not exec")
		}
		if len(c.Command) == 0 || c.Command[0] == "" {
			bad("command is missing")
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
		min  time.Duration
	}{
		{"interval", c.Interval, minDuration},
		{"timeout", c.Timeout, minDuration},
		{"start period", c.StartPeriod, 0},
		{"start interval", c.StartInterval, minDuration},
		{"initial delay", c.InitialDelay, 0},
	} {
		if d.v < 0 || d.v != 0 && d.v < d.min {
			bad("%s %v: must be zero (the default) or at least %v", d.name, d.v, max(d.min, 0))
		}
	}
	if c.Retries < 0 {
		bad("retries %d: must not be negative", c.Retries)
	}
	return errors.Join(errs...)
}

// withDefaults returns c with the zero timings replaced by their defaults.
func (c Check) withDefaults() Check {
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.StartInterval == 0 || c.StartPeriod == 0 {
		c.StartInterval = c.Interval
	}
	if c.InitialDelay == 0 {
		c.InitialDelay = c.StartInterval
	}
	if c.Retries == 0 {
		c.Retries = DefaultRetries
	}
	if c.Kind == KindHTTP && c.Path == "" {
		c.Path = "/"
	}
	return c
}

// equal reports whether c and o are the same check as written (defaults
// not applied: the agent passes the same spec every pass).
func (c Check) equal(o Check) bool {
	return c.Kind == o.Kind && c.Path == o.Path && c.Port == o.Port &&
		c.Interval == o.Interval && c.Timeout == o.Timeout &&
		c.StartPeriod == o.StartPeriod && c.StartInterval == o.StartInterval && c.InitialDelay == o.InitialDelay &&
		c.Retries == o.Retries && slices.Equal(c.Command, o.Command)
}

// Target is one thing to probe.
type Target struct {
	// ID names the target; it is opaque to the package (the agent uses
	// the replica ID) and unique within one [Monitor.Set].
	ID string
	// Addr is the address HTTP and TCP probes connect to. Unused by exec.
	Addr netip.Addr
	// Check says how to probe. The monitor copies it; the caller keeps
	// ownership of Command.
	Check Check
	// Started is when the target (the replica) started; StartPeriod counts
	// from it. Zero means "when the monitor first saw it". A later Started
	// than the monitor knows means the replica restarted: the target goes
	// back to starting (see [Monitor.Set]). It must therefore be stable
	// across passes, not re-stamped.
	Started time.Time
}

// validate checks t as the monitor would probe it; exec reports whether
// the monitor has an Exec function.
func (t Target) validate(exec bool) error {
	var errs []error
	if t.ID == "" {
		errs = append(errs, errors.New("id is missing"))
	}
	if err := t.Check.Validate(); err != nil {
		errs = append(errs, err)
	}
	switch t.Check.Kind {
	case KindHTTP, KindTCP:
		if !t.Addr.IsValid() {
			errs = append(errs, fmt.Errorf("%s check needs an address", t.Check.Kind))
		}
	case KindExec:
		if !exec {
			errs = append(errs, errors.New("exec check, but the monitor has no Config.Exec"))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("target %q: %w", t.ID, err)
	}
	return nil
}

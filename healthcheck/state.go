package healthcheck

import "time"

// State is a target's health.
type State string

// The states, with Docker's names.
const (
	// StateStarting is the state of a new (or restarted) target until its
	// first success, or until Retries failures after its start period.
	StateStarting State = "starting"
	// StateHealthy follows a successful probe.
	StateHealthy State = "healthy"
	// StateUnhealthy follows Retries consecutive failures.
	StateUnhealthy State = "unhealthy"
)

// Status is what the monitor knows of one target.
type Status struct {
	// State is the target's current state.
	State State
	// FailingStreak counts the consecutive failed probes that counted
	// (failures inside the start period do not); zero after a success.
	FailingStreak int
	// LastOutput is the last probe's output or error, at most MaxOutput
	// bytes of valid UTF-8.
	LastOutput string
	// LastProbe is when the last probe started; zero before the first.
	LastProbe time.Time
	// Since is when the target entered State.
	Since time.Time
}

// Transition reports that a target's state changed.
type Transition struct {
	// ID is the target's ID.
	ID string
	// From and To are the states before and after.
	From, To State
	// Status is the target's status after the change.
	Status Status
	// At is when the change happened (a probe finished, or the target was
	// restarted).
	At time.Time
}

// ProbeResult is the outcome of one probe, for metrics.
type ProbeResult struct {
	// ID is the target's ID.
	ID string
	// Kind is the check's kind.
	Kind Kind
	// OK reports a healthy outcome.
	OK bool
	// TimedOut reports a failure because the probe exceeded its Timeout.
	TimedOut bool
	// Duration is how long the probe took (its latency).
	Duration time.Duration
	// Output is the probe's output or error, at most MaxOutput bytes.
	Output string
	// At is when the probe started.
	At time.Time
}

// step applies one probe result r to st and returns the new status. It is
// Docker's handleProbeResult (daemon/health.go): a success resets the
// streak and makes the target healthy; a failure counts unless the target
// is still starting and the probe started within the start period, and
// Retries counted failures make it unhealthy. start is the origin of the
// start period. step does no I/O so table tests cover it.
func step(st Status, c Check, start time.Time, r ProbeResult) Status {
	st.LastProbe = r.At
	st.LastOutput = r.Output
	next := st.State
	if r.OK {
		st.FailingStreak = 0
		next = StateHealthy
	} else if st.State != StateStarting || r.At.Sub(start) >= c.StartPeriod {
		st.FailingStreak++
		if st.FailingStreak >= c.Retries {
			next = StateUnhealthy
		}
	}
	if next != st.State {
		st.State = next
		st.Since = r.At.Add(r.Duration)
	}
	return st
}

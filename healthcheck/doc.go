// Package healthcheck runs health probes against replicas and reports their
// state transitions, with the semantics of Docker's HEALTHCHECK that users
// already know.
//
// The agent hands a [Monitor] the full list of [Target]s on every reconcile
// pass ([Monitor.Set], level-triggered and cheap when nothing changed); the
// monitor probes each target on its own schedule and reports transitions
// through [Config.OnTransition] and the [Monitor.Changed] wake-up channel.
// The package knows nothing of where targets come from, of containers or of
// gossip: an exec probe runs through [Config.Exec], which the agent wires to
// its container runtime. It imports only the standard library and orch's
// internal/...; never agent/..., cmd/... or the other leaves (internal/deps
// enforces this).
//
// # States
//
// A new target is [StateStarting]. A probe runs every [Check.Interval]
// (the first one after [Check.InitialDelay], which defaults to the
// interval, as in Docker, plus up to 10% of the interval of random jitter
// so targets added together do not probe in lockstep). A probe that takes
// longer than [Check.Timeout] fails.
//
//	starting ──success──▶ healthy ◀──success── unhealthy
//	    │                    │                     ▲
//	    │                    └──Retries failures───┤
//	    └────────Retries failures (after StartPeriod)
//
// [Check.Retries] consecutive failures make a target unhealthy; one success
// makes it healthy. While a target is still starting and within
// [Check.StartPeriod] of [Target.Started], failures do not count; a success
// ends the start period for good (Docker's rule: the grace applies only
// until the first success).
//
// # Probes
//
//   - http: GET http://ADDR:PORT/PATH; a status of 200–399 is healthy.
//     Redirects are not followed (a 3xx is healthy, as in Docker and
//     Kubernetes), every probe uses a fresh connection (no keep-alive), no
//     proxy from the environment is used, and at most [MaxOutput] bytes of
//     the body are read.
//   - tcp: connecting to ADDR:PORT is healthy; the connection is closed at
//     once.
//   - exec: [Config.Exec] runs the command in the target; exit code 0 is
//     healthy, anything else or an error is a failure.
//
// Every probe's result goes to [Config.OnProbe] (for metrics) and its
// output, clipped to [MaxOutput] bytes, into [Status.LastOutput].
//
// # Concurrency
//
// Every method of [Monitor] is safe to call from any goroutine. Each target
// is probed by its own goroutine, so targets probe concurrently, while the
// probes of one target never overlap: the next probe is scheduled an
// interval after the previous one finished. The goroutines belong to the
// monitor; [Monitor.Close] stops them and waits for them.
//
// [Config.OnTransition] is called in order per target and never
// concurrently for one target (different targets may call it concurrently).
// Once [Monitor.Set] has returned, a target it removed never produces
// another transition; Set waits for a callback of that target already in
// progress. The callback must therefore not block long and must not call
// Set, Reset or Close (Status and Statuses are fine).
package healthcheck

package lab

import (
	"testing"
	"time"
)

// Eventually calls f every interval until it returns nil, and fails the
// test with f's last error if that has not happened within timeout. It
// also gives up, with the same failure, when the test's context ends. Use
// it instead of sleeping: it returns as soon as the condition holds.
func Eventually(t testing.TB, timeout, interval time.Duration, f func() error) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	start := time.Now()
	for {
		err := f()
		if err == nil {
			return
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			t.Fatalf("condition not met after %v: %v", time.Since(start).Round(time.Millisecond), err)
		case <-t.Context().Done():
			t.Fatalf("test ended after %v with condition not met: %v", time.Since(start).Round(time.Millisecond), err)
		}
	}
}

package benchkit

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Sleep waits for d, or less if ctx ends first, and then returns ctx's
// error.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Retry calls f every interval until it succeeds or ctx ends; it then
// returns f's last error, wrapped with ctx's. An error wrapped in
// [StopRetry] ends it at once, with the wrapped error.
func Retry(ctx context.Context, interval time.Duration, f func() error) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		err := f()
		if err == nil {
			return nil
		}
		if s := (StopRetry{}); errors.As(err, &s) {
			return s.Err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
		case <-t.C:
		}
	}
}

// StopRetry makes [Retry] give up at once with Err: for a failure that
// no waiting cures, such as a daemon that exited.
type StopRetry struct{ Err error }

func (e StopRetry) Error() string { return e.Err.Error() }
func (e StopRetry) Unwrap() error { return e.Err }

// WaitIdle calls busy every poll until it returns nothing or limit has
// passed, and returns how long it waited and what busy last returned (so
// a caller can go on anyway and say why). The first time busy returns
// something, notify, if not nil, gets it.
func WaitIdle(ctx context.Context, limit, poll time.Duration, busy func() []string, notify func(others []string)) (waited time.Duration, others []string, err error) {
	start := time.Now()
	for said := false; ; said = true {
		others = busy()
		if len(others) == 0 || time.Since(start) >= limit {
			return time.Since(start), others, nil
		}
		if !said && notify != nil {
			notify(others)
		}
		if err := Sleep(ctx, poll); err != nil {
			return time.Since(start), others, err
		}
	}
}

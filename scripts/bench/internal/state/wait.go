package main

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// sleepCtx waits for d, or less if ctx ends first; it reports whether ctx
// is still live.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// retry calls f every interval until it succeeds or ctx ends; it returns
// f's last error, wrapped with ctx's. A [stopRetry] error ends it at once.
func retry(ctx context.Context, interval time.Duration, f func() error) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		err := f()
		if err == nil {
			return nil
		}
		if s := (stopRetry{}); errors.As(err, &s) {
			return s.error
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
		case <-t.C:
		}
	}
}

// stopRetry makes retry give up at once with the wrapped error.
type stopRetry struct{ error }

func (e stopRetry) Unwrap() error { return e.error }

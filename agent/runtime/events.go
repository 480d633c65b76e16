package runtime

import (
	"context"
	"fmt"
	"strconv"
)

// WatchExits calls wake whenever a task in orch's namespace exits, until
// ctx ends (it returns nil) or the event stream fails (it returns the error;
// the caller retries). wake must not block.
func (r *Runtime) WatchExits(ctx context.Context, wake func()) error {
	c, cctx, err := r.conn(ctx)
	if err != nil {
		return err
	}
	ch, errs := c.Subscribe(cctx, `topic=="/tasks/exit",namespace==`+strconv.Quote(r.cfg.Namespace))
	for {
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-ch:
			if !ok {
				return fmt.Errorf("%w: event stream closed", ErrUnavailable)
			}
			wake()
		case err := <-errs:
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("%w: event stream: %v", ErrUnavailable, err)
		}
	}
}

package events

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

const (
	// DefaultRingSize is how many past events the bus keeps for replay.
	// Events are a few hundred bytes, so 4096 is about 1 MiB: enough for a
	// client to reconnect after a few minutes of a busy cluster.
	DefaultRingSize = 4096
	// MaxRingSize bounds Config.RingSize so that a typo cannot make the
	// agent hold gigabytes of history.
	MaxRingSize = 1 << 20

	// DefaultSubscriberBuffer is how many live events a subscription holds
	// for a consumer that has not received them yet. It absorbs a burst
	// (a whole rack failing) while an NDJSON client flushes over a socket.
	DefaultSubscriberBuffer = 256
	// MaxSubscriberBuffer bounds Config.SubscriberBuffer, per subscription.
	MaxSubscriberBuffer = 1 << 16
)

// Config configures a [Bus].
type Config struct {
	// Node is the name of this agent, stamped into every event's Node.
	// Required.
	Node string
	// RingSize is how many past events are kept for replay
	// ([SubscribeOptions.After], [SubscribeOptions.Since]). Zero means
	// [DefaultRingSize]; at most [MaxRingSize].
	RingSize int
	// SubscriberBuffer is how many live events each subscription holds for
	// a consumer that has not received them; beyond that, events are
	// dropped for that subscription and a lagged marker follows. Zero
	// means [DefaultSubscriberBuffer]; at most [MaxSubscriberBuffer].
	SubscriberBuffer int
	// Now returns the current time for [Event.Time]. It is called with the
	// bus's lock held, so it must be cheap and must not call into the bus.
	// Nil means time.Now.
	Now func() time.Time
	// Logger receives operator logs (lagging subscribers, subscribe and
	// close). Nil means discard.
	Logger *slog.Logger
}

// DefaultConfig returns a Config with every default spelled out. Node is
// left empty: the caller must set it.
func DefaultConfig() Config {
	return Config{
		RingSize:         DefaultRingSize,
		SubscriberBuffer: DefaultSubscriberBuffer,
		Now:              time.Now,
		Logger:           nil, // discard
	}
}

// Validate reports every problem with c, joined.
func (c Config) Validate() error {
	var errs []error
	if c.Node == "" {
		errs = append(errs, errors.New("node name is empty: set Config.Node to this agent's name"))
	}
	if c.RingSize < 0 || c.RingSize > MaxRingSize {
		errs = append(errs, fmt.Errorf("ring size %d out of range: want 0 (default %d) to %d", c.RingSize, DefaultRingSize, MaxRingSize))
	}
	if c.SubscriberBuffer < 0 || c.SubscriberBuffer > MaxSubscriberBuffer {
		errs = append(errs, fmt.Errorf("subscriber buffer %d out of range: want 0 (default %d) to %d", c.SubscriberBuffer, DefaultSubscriberBuffer, MaxSubscriberBuffer))
	}
	return errors.Join(errs...)
}

// withDefaults returns c with zero values replaced by their defaults.
func (c Config) withDefaults() Config {
	if c.RingSize == 0 {
		c.RingSize = DefaultRingSize
	}
	if c.SubscriberBuffer == 0 {
		c.SubscriberBuffer = DefaultSubscriberBuffer
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

package gossip

import (
	"log/slog"
	"testing"
)

// memberlist's and serf's refusal lines are counted, whatever the log
// keeps of them.
func TestStdLoggerCountsRefusals(t *testing.T) {
	c := &refusals{}
	std := newStdLogger(slog.New(slog.DiscardHandler), c)
	for range 1000 {
		std.Printf("[ERR] memberlist: Decrypt packet failed: no installed keys could decrypt the message from=10.0.0.1:7946")
	}
	std.Printf("[ERR] memberlist: failed to receive: no installed keys could decrypt the message from=10.0.0.1:7946")
	std.Printf("[WARN] serf: received old event o.sd from time 3 (current: 900)")
	if got := [3]uint64{c.undecryptablePackets.Load(), c.undecryptableStreams.Load(), c.staleEvents.Load()}; got != [3]uint64{1000, 1, 1} {
		t.Errorf("counted packets, streams, stale events = %v, want [1000 1 1]", got)
	}
}

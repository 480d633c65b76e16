package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/orchproject/orch/scripts/bench/internal/benchkit"
)

// The machine is small (2 cores in the reference runs) and shared: other
// benchmarks, e2e tests and their labs would distort both their figures
// and ours. Before each phase, with its own lab down, the benchmark waits
// until nothing else is running; after each phase it notes whether
// something started meanwhile, and the report says so.

// otherActivity lists other benchmarks' processes and lab namespaces not
// carrying prefix; empty when the machine is idle.
func otherActivity(prefix string) []string {
	return benchkit.OtherLoad(benchkit.LoadFilter{
		Markers: []string{"scripts/bench/", "/tmp/orch-bench-", "bin/membership "},
		Own:     []string{"bench/state", "orch-bench-state"},
		Netns:   benchkit.NetnsAll,
		Prefix:  prefix,
	})
}

// waitIdle waits until otherActivity is empty, checking every poll, for
// at most limit (zero: do not check). It returns an error if the machine
// is still busy then.
func waitIdle(ctx context.Context, prefix string, limit, poll time.Duration, phase string, stderr io.Writer) error {
	if limit == 0 {
		return nil
	}
	_, busy, err := benchkit.WaitIdle(ctx, limit, poll, func() []string { return otherActivity(prefix) }, func(busy []string) {
		fmt.Fprintf(stderr, "before %s: waiting up to %s for other benchmarks to finish: %s\n", phase, limit, strings.Join(busy, "; "))
	})
	if err != nil {
		return err
	}
	if len(busy) > 0 {
		return fmt.Errorf("before %s: the machine is still busy after waiting %s: %s (rerun later, or pass --wait-idle 0 to measure anyway)", phase, limit, strings.Join(busy, "; "))
	}
	return nil
}

package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/orchproject/orch/scripts/bench/internal/benchkit"
)

// waitQuiet waits (up to limit) while another benchmark runs or the
// machine is busier than idleCores (sampled over 3 s: the e2e tests of a
// colleague, say), and says whether it had to give up.
func waitQuiet(ctx context.Context, limit time.Duration, idleCores float64) (busy bool, err error) {
	var load float64
	check := func() []string {
		h0, _ := benchkit.ReadHostCPU()
		if benchkit.Sleep(ctx, 3*time.Second) != nil {
			return nil // WaitIdle returns; ctx's error is reported below
		}
		h1, _ := benchkit.ReadHostCPU()
		load = h0.BusyCores(h1)
		others := benchkit.OtherLoad(benchkit.LoadFilter{Own: []string{"scripts/bench/dns", "internal/dns"}})
		if load > idleCores {
			others = append(others, fmt.Sprintf("%.2f cores busy (at most %.2f wanted)", load, idleCores))
		}
		return others
	}
	said := false
	_, others, err := benchkit.WaitIdle(ctx, limit, 7*time.Second, check, func(others []string) {
		said = true
		logf("waiting for a quiet machine:\n  %s", strings.Join(others, "\n  "))
	})
	if err == nil {
		err = ctx.Err()
	}
	switch {
	case err != nil:
		return false, err
	case len(others) > 0:
		logf("still busy after %v (%s); measuring anyway (the report says so)", limit, strings.Join(others, "; "))
		return true, nil
	case said:
		logf("the machine is quiet (%.2f cores busy)", load)
	}
	return false, nil
}

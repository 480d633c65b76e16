package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The machine is small (2 cores in the reference runs) and shared: other
// benchmarks, e2e tests and their labs would distort both their figures
// and ours. Before each phase, with its own lab down, the benchmark waits
// until nothing else is running; after each phase it notes whether
// something started meanwhile, and the report says so.

// benchMarkers are command-line fragments of other benchmarks' processes.
var benchMarkers = []string{"scripts/bench/", "/tmp/orch-bench-", "bin/membership "}

// ownMarkers exclude this benchmark's own processes.
var ownMarkers = []string{"bench/state", "orch-bench-state"}

// otherActivity lists other benchmarks' processes and lab namespaces not
// carrying prefix; empty when the machine is idle.
func otherActivity(prefix string) []string {
	var out []string
	if b, err := exec.Command("ip", "netns", "list").Output(); err == nil {
		var foreign []string
		for line := range strings.SplitSeq(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) > 0 && !strings.HasPrefix(f[0], prefix) {
				foreign = append(foreign, f[0])
			}
		}
		if len(foreign) > 0 {
			slices.Sort(foreign)
			out = append(out, fmt.Sprintf("%d network namespaces of another lab (%s)", len(foreign), strings.Join(foreign[:min(3, len(foreign))], ", ")))
		}
	}
	self, parent := os.Getpid(), os.Getppid()
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, _ := strconv.Atoi(filepath.Base(d))
		if pid == self || pid == parent {
			continue
		}
		b, err := os.ReadFile(d + "/cmdline")
		if err != nil || len(b) == 0 {
			continue
		}
		cmd := strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
		if containsAny(cmd, benchMarkers) && !containsAny(cmd, ownMarkers) {
			out = append(out, fmt.Sprintf("pid %d: %s", pid, truncate(cmd, 120)))
		}
	}
	return out
}

func containsAny(s string, subs []string) bool {
	return slices.ContainsFunc(subs, func(sub string) bool { return strings.Contains(s, sub) })
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// waitIdle waits until otherActivity is empty, checking every poll, for
// at most limit (zero: do not check). It returns an error if the machine
// is still busy then.
func waitIdle(ctx context.Context, prefix string, limit, poll time.Duration, phase string, stderr io.Writer) error {
	if limit == 0 {
		return nil
	}
	deadline := time.Now().Add(limit)
	for {
		busy := otherActivity(prefix)
		if len(busy) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("before %s: the machine is still busy after waiting %s: %s (rerun later, or pass --wait-idle 0 to measure anyway)", phase, limit, strings.Join(busy, "; "))
		}
		fmt.Fprintf(stderr, "before %s: waiting for other benchmarks to finish (%s left): %s\n", phase, time.Until(deadline).Round(time.Second), strings.Join(busy, "; "))
		if !sleepCtx(ctx, poll) {
			return ctx.Err()
		}
	}
}

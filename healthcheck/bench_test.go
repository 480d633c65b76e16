package healthcheck

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkMonitor probes 1000 targets, each every 50ms, against one local
// TCP listener; an op is 1000 probes (one round). probes/s is the rate the
// monitor sustained (on a small machine the CPU, not the interval, limits
// it); allocs/probe counts every allocation of the process per probe, the
// listener's accepts included.
func BenchmarkMonitor(b *testing.B) {
	const n = 1000
	port := newTCPListener(b)
	var probes, failed atomic.Int64
	m, err := New(Config{OnProbe: func(r ProbeResult) {
		probes.Add(1)
		if !r.OK {
			failed.Add(1)
		}
	}})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	targets := make([]Target, n)
	for i := range targets {
		c := Check{Kind: KindTCP, Port: port, Interval: 50 * time.Millisecond, Timeout: 5 * time.Second}
		targets[i] = Target{ID: fmt.Sprint("t", i), Addr: localhost, Check: c}
	}
	if err := m.Set(targets); err != nil {
		b.Fatal(err)
	}
	waitN := func(k int64) {
		for probes.Load() < k {
			time.Sleep(time.Millisecond)
		}
	}
	waitN(n) // warm up: every target has probed about once

	b.ReportAllocs()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	p0, a0, t0 := probes.Load(), ms.Mallocs, time.Now()
	for b.Loop() {
		waitN(probes.Load() + n)
	}
	elapsed := time.Since(t0)
	runtime.ReadMemStats(&ms)
	p := probes.Load() - p0
	b.ReportMetric(float64(p)/elapsed.Seconds(), "probes/s")
	b.ReportMetric(float64(ms.Mallocs-a0)/float64(p), "allocs/probe")
	if f := failed.Load(); f > 0 {
		b.Errorf("%d of %d probes failed", f, probes.Load())
	}
}

// BenchmarkMonitor_SetUnchanged measures the reconcile loop's steady-state
// call: Set with the same 1000 targets.
func BenchmarkMonitor_SetUnchanged(b *testing.B) {
	const n = 1000
	m, err := New(Config{Exec: newFakeExec().exec})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	targets := make([]Target, n)
	for i := range targets {
		c := Check{Kind: KindExec, Command: []string{"/bin/check", "--quick"}, Interval: time.Hour}
		targets[i] = Target{ID: fmt.Sprint("t", i), Check: c, Started: time.Now()}
	}
	if err := m.Set(targets); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := m.Set(targets); err != nil {
			b.Fatal(err)
		}
	}
}

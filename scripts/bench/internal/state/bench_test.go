package main

// Micro-benchmarks behind the full-sync figures of scripts/bench/state,
// without a lab:
//
//	go test -run '^$' -bench . -benchtime 3x ./scripts/bench/internal/state/
//
// They need no root: the gossip nodes run in-process on 127.0.0.1.

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/orchproject/orch/agent/spec"
	"github.com/orchproject/orch/gossip"
)

// canonicalBulk is a bulk service's spec as the store holds it.
func canonicalBulk(tb testing.TB, i int) []byte {
	tb.Helper()
	s, err := spec.Decode(bulkSpec(bulkName(i), 0))
	if err != nil {
		tb.Fatal(err)
	}
	b, err := s.Marshal()
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// BenchmarkSpecDecode is the per-service cost of every API call and every
// reconcile pass: the agent decodes (and validates) every stored spec
// from a store snapshot each time.
func BenchmarkSpecDecode(b *testing.B) {
	raw := canonicalBulk(b, 1)
	for b.Loop() {
		if _, err := spec.Decode(raw); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSpecMarshal is the further per-service cost of ListServices,
// which encodes each decoded spec again for its answer.
func BenchmarkSpecMarshal(b *testing.B) {
	s, err := spec.Decode(canonicalBulk(b, 1))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := s.Marshal(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSyncFrame is the wire format of a sync answer carrying S
// entries: gzip'd JSON, values base64, encoded by one side and decoded by
// the other (gossip writeGzFrame/readGzFrame do the same).
func BenchmarkSyncFrame(b *testing.B) {
	for _, s := range []int{1000, 10000} {
		es := make([]gossip.Entry, s)
		for i := range es {
			es[i] = gossip.Entry{Table: "svc", Key: bulkName(i), Value: canonicalBulk(b, i), Version: gossip.Version{LTime: uint64(i + 1), Writer: "h1"}}
		}
		b.Run("S="+strconv.Itoa(s), func(b *testing.B) {
			var size int
			for b.Loop() {
				var buf bytes.Buffer
				zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
				if err := json.NewEncoder(zw).Encode(struct{ Entries []gossip.Entry }{es}); err != nil {
					b.Fatal(err)
				}
				zw.Close()
				size = buf.Len()
				zr, err := gzip.NewReader(&buf)
				if err != nil {
					b.Fatal(err)
				}
				var back struct{ Entries []gossip.Entry }
				if err := json.NewDecoder(zr).Decode(&back); err != nil || len(back.Entries) != s {
					b.Fatalf("decode: %v (%d entries)", err, len(back.Entries))
				}
			}
			b.ReportMetric(float64(size), "frame-bytes")
		})
	}
}

// BenchmarkJoinSync is gossip alone: a cluster of M in-process nodes holds
// S entries; each iteration starts a fresh node that joins the first and
// waits until its store holds all S. It reports the time from the
// joiner's Run to that point (ms/join) and the store syncs the joiner
// logged with entries received (syncs/join), plus the entries those
// carried (entries/join): more than S when several members send
// everything.
func BenchmarkJoinSync(b *testing.B) {
	for _, m := range []int{1, 5} {
		for _, s := range []int{1000, 10000} {
			b.Run(fmt.Sprintf("M=%d/S=%d", m, s), func(b *testing.B) { benchJoinSync(b, m, s) })
		}
	}
}

func benchJoinSync(b *testing.B, m, s int) {
	ctx := b.Context()
	seeds := make([]*gossip.Node, m)
	for k := range m {
		var join []string
		var tok *gossip.Token
		if k > 0 {
			t, err := seeds[0].Token()
			if err != nil {
				b.Fatal(err)
			}
			tok, join = &t, []string{seeds[0].Addr().String()}
		}
		// A short sync interval only to fill the seeds quickly.
		seeds[k] = startBenchNode(b, fmt.Sprintf("s%d", k+1), tok, join, time.Second, nil)
	}
	for i := range s {
		if _, err := seeds[0].Store().Put("svc", bulkName(i), canonicalBulk(b, i)); err != nil {
			b.Fatal(err)
		}
	}
	waitUntil(b, 2*time.Minute, func() bool {
		for _, n := range seeds {
			if live, _ := n.Store().Len(); live != s {
				return false
			}
		}
		return true
	})
	tok, err := seeds[0].Token()
	if err != nil {
		b.Fatal(err)
	}
	var total time.Duration
	var syncs, entries int
	i := 0
	for b.Loop() {
		i++
		rec := &syncRecorder{}
		start := time.Now()
		n := startBenchNode(b, fmt.Sprintf("j%d", i), &tok, []string{seeds[0].Addr().String()}, 0, rec)
		waitUntil(b, time.Minute, func() bool { live, _ := n.Store().Len(); return live == s })
		total += time.Since(start)
		// Let the other syncs finish, to count them.
		time.Sleep(500 * time.Millisecond)
		c, e := rec.counts()
		syncs += c
		entries += e
		lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_ = n.Leave(lctx)
		cancel()
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(i), "ms/join")
	b.ReportMetric(float64(syncs)/float64(i), "syncs/join")
	b.ReportMetric(float64(entries)/float64(i), "entries/join")
}

// startBenchNode runs a gossip node on 127.0.0.1 with the fast profile
// until the benchmark ends, and waits until it is ready.
func startBenchNode(b *testing.B, name string, tok *gossip.Token, join []string, syncInterval time.Duration, rec *syncRecorder) *gossip.Node {
	b.Helper()
	cfg := gossip.DefaultConfig()
	cfg.Name, cfg.ID = name, "id-"+name
	cfg.Bind = netip.MustParseAddrPort("127.0.0.1:0")
	cfg.DataDir = b.TempDir()
	cfg.Profile = gossip.ProfileFast
	cfg.Token, cfg.Join = tok, join
	cfg.SyncInterval = syncInterval
	if rec != nil {
		cfg.Logger = slog.New(rec)
	}
	n, err := gossip.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := n.Run(ctx); err != nil {
			b.Error(err)
		}
	}()
	b.Cleanup(func() {
		cancel()
		<-done
	})
	select {
	case <-n.Ready():
	case <-time.After(30 * time.Second):
		b.Fatalf("node %s not ready", name)
	}
	return n
}

func waitUntil(b *testing.B, timeout time.Duration, f func() bool) {
	b.Helper()
	deadline := time.Now().Add(timeout)
	for !f() {
		if time.Now().After(deadline) {
			b.Fatalf("not done after %s", timeout)
		}
		time.Sleep(time.Millisecond)
	}
}

// syncRecorder is a slog handler that counts the node's "store sync"
// debug lines with entries received.
type syncRecorder struct {
	mu              sync.Mutex
	syncs, received int
}

func (r *syncRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *syncRecorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *syncRecorder) WithGroup(string) slog.Handler            { return r }

func (r *syncRecorder) Handle(_ context.Context, rec slog.Record) error {
	if rec.Message != "store sync" {
		return nil
	}
	rec.Attrs(func(a slog.Attr) bool {
		if a.Key == "received" && a.Value.Int64() > 0 {
			r.mu.Lock()
			r.syncs++
			r.received += int(a.Value.Int64())
			r.mu.Unlock()
		}
		return true
	})
	return nil
}

func (r *syncRecorder) counts() (syncs, entries int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.syncs, r.received
}

// TestSpecs_Paths checks that the two propagation kinds take the two
// delta paths: the small one fits the user-event limit at the lab's usual
// MTU (1400 − 48 − 400 bytes), the large one exceeds even serf's 9 KiB
// ceiling.
func TestSpecs_Paths(t *testing.T) {
	const ueLimit = 1400 - 48 - 400
	for _, c := range []struct {
		kind  string
		fits  bool
		about int // canonical size
	}{{kindSmall, true, 300}, {kindLarge, false, 8 << 10}} {
		s, err := spec.Decode(specFor(c.kind, fmt.Sprintf("%s-n50-r20", c.kind)))
		if err != nil {
			t.Fatalf("%s: %v", c.kind, err)
		}
		canon, err := s.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		delta, err := json.Marshal([]gossip.Entry{{Table: "svc", Key: s.Name, Value: canon, Version: gossip.Version{LTime: 1 << 20, Writer: "h50"}}})
		if err != nil {
			t.Fatal(err)
		}
		if fits := len(delta) <= ueLimit; fits != c.fits {
			t.Errorf("%s: delta of %d bytes, fits in %d: %v, want %v", c.kind, len(delta), ueLimit, fits, c.fits)
		}
		if len(canon) < c.about || len(canon) > c.about*5/4 {
			t.Errorf("%s: canonical spec of %d bytes, want about %d", c.kind, len(canon), c.about)
		}
		if !c.fits && len(delta) <= 9*1024 {
			t.Errorf("%s: delta of %d bytes fits serf's 9 KiB ceiling", c.kind, len(delta))
		}
	}
}

package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/orchproject/orch/healthcheck"
)

// Metrics in the Prometheus text format (version 0.0.4), written by hand:
// the format is small and stable, and a client library would be the
// agent's largest dependency for a few dozen lines.

// histogram is a Prometheus histogram with fixed buckets.
type histogram struct {
	mu      sync.Mutex
	buckets []float64 // upper bounds, ascending; +Inf is implied
	counts  []uint64  // per bucket, not cumulative
	sum     float64
	count   uint64
}

func newHistogram(buckets ...float64) *histogram {
	return &histogram{buckets: buckets, counts: make([]uint64, len(buckets))}
}

func (h *histogram) observe(v float64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if i := sort.SearchFloat64s(h.buckets, v); i < len(h.buckets) {
		h.counts[i]++
	}
	h.sum += v
	h.count++
}

// latencyBuckets suit probes, syncs and reconcile passes: 1 ms to 10 s.
var latencyBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// metrics holds what the agent measures itself; the rest is read from the
// components when scraped.
type metrics struct {
	reconcile *histogram

	mu           sync.Mutex
	probes       map[[2]string]uint64  // (kind, result) → count
	probeLatency map[string]*histogram // kind → seconds
}

func newMetrics() *metrics {
	return &metrics{reconcile: newHistogram(latencyBuckets...), probes: map[[2]string]uint64{}, probeLatency: map[string]*histogram{}}
}

// probe records one health probe (healthcheck's OnProbe).
func (m *metrics) probe(r healthcheck.ProbeResult) {
	result := "healthy"
	switch {
	case r.TimedOut:
		result = "timeout"
	case !r.OK:
		result = "unhealthy"
	}
	m.mu.Lock()
	m.probes[[2]string{string(r.Kind), result}]++
	h := m.probeLatency[string(r.Kind)]
	if h == nil {
		h = newHistogram(latencyBuckets...)
		m.probeLatency[string(r.Kind)] = h
	}
	m.mu.Unlock()
	h.observe(r.Duration.Seconds())
}

// promWriter writes metric families in the text format.
type promWriter struct{ b bytes.Buffer }

func (w *promWriter) family(name, typ, help string) {
	fmt.Fprintf(&w.b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
}

// sample writes one sample; labels alternate name and value.
func (w *promWriter) sample(name string, v float64, labels ...string) {
	w.b.WriteString(name)
	if len(labels) > 0 {
		w.b.WriteByte('{')
		for i := 0; i+1 < len(labels); i += 2 {
			if i > 0 {
				w.b.WriteByte(',')
			}
			fmt.Fprintf(&w.b, "%s=%s", labels[i], strconv.Quote(labels[i+1]))
		}
		w.b.WriteByte('}')
	}
	w.b.WriteByte(' ')
	w.b.WriteString(formatFloat(v))
	w.b.WriteByte('\n')
}

func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case v == math.Trunc(v) && math.Abs(v) < 1e15:
		return strconv.FormatInt(int64(v), 10)
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// histogram writes h's samples under name (a family already declared).
func (w *promWriter) histogram(name string, h *histogram, labels ...string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var cum uint64
	for i, ub := range h.buckets {
		cum += h.counts[i]
		w.sample(name+"_bucket", float64(cum), append(slices.Clone(labels), "le", formatFloat(ub))...)
	}
	w.sample(name+"_bucket", float64(h.count), append(slices.Clone(labels), "le", "+Inf")...)
	w.sample(name+"_sum", h.sum, labels...)
	w.sample(name+"_count", float64(h.count), labels...)
}

// counts writes one sample per key of m, sorted, with the key as label.
func counts[V int | uint64](w *promWriter, name, label string, m map[string]V) {
	for _, k := range slices.Sorted(maps.Keys(m)) {
		w.sample(name, float64(m[k]), label, k)
	}
}

// writeMetrics gathers every metric of the agent.
func (a *Agent) writeMetrics() []byte {
	var w promWriter
	members := map[string]int{}
	for _, m := range a.node.Members() {
		st := string(m.Status)
		if m.Suspect {
			st = "suspect"
		}
		members[st]++
	}
	w.family("orch_members", "gauge", "Members this agent knows, by status (alive, suspect, failed, leaving, left).")
	for _, st := range []string{"alive", "suspect", "failed", "leaving", "left"} {
		w.sample("orch_members", float64(members[st]), "status", st)
	}

	gs := a.node.Stats()
	w.family("orch_gossip_packets_total", "counter", "Gossip UDP packets, by direction.")
	w.sample("orch_gossip_packets_total", float64(gs.UDPInPackets), "direction", "in")
	w.sample("orch_gossip_packets_total", float64(gs.UDPOutPackets), "direction", "out")
	w.family("orch_gossip_bytes_total", "counter", "Gossip UDP bytes, by direction.")
	w.sample("orch_gossip_bytes_total", float64(gs.UDPInBytes), "direction", "in")
	w.sample("orch_gossip_bytes_total", float64(gs.UDPOutBytes), "direction", "out")
	w.family("orch_gossip_junk_connections_total", "counter", "TCP connections to the gossip port that spoke no known protocol.")
	w.sample("orch_gossip_junk_connections_total", float64(gs.JunkConns))
	w.family("orch_gossip_refused_total", "counter", "Gossip refused: packets and streams no installed key opens, user events too old, orch streams refused at their handshake.")
	w.sample("orch_gossip_refused_total", float64(gs.UndecryptablePackets), "kind", "undecryptable_packet")
	w.sample("orch_gossip_refused_total", float64(gs.UndecryptableStreams), "kind", "undecryptable_stream")
	w.sample("orch_gossip_refused_total", float64(gs.StaleEvents), "kind", "stale_event")
	w.sample("orch_gossip_refused_total", float64(gs.RefusedStreams), "kind", "orch_stream")
	w.family("orch_store_entries", "gauge", "Entries of the replicated store, by kind.")
	w.sample("orch_store_entries", float64(gs.StoreLive), "kind", "live")
	w.sample("orch_store_entries", float64(gs.StoreTombstones), "kind", "tombstone")
	w.family("orch_store_syncs_total", "counter", "Anti-entropy syncs this agent started, by result.")
	w.sample("orch_store_syncs_total", float64(gs.SyncsOK), "result", "ok")
	w.sample("orch_store_syncs_total", float64(gs.SyncsFailed), "result", "failed")
	w.family("orch_store_sync_seconds_total", "counter", "Time spent in successful anti-entropy syncs.")
	w.sample("orch_store_sync_seconds_total", gs.SyncSeconds)
	w.family("orch_store_gap_syncs_total", "counter", "Syncs started because this agent missed a numbered store delta.")
	w.sample("orch_store_gap_syncs_total", float64(gs.GapSyncs))

	replicas, health := map[string]int{}, map[string]int{}
	for _, t := range decodeTasks(a.node.Store().Snapshot().Tables[tableTasks]) {
		if t.Node == a.cfg.Name {
			replicas[t.State]++
			if t.Health != "" {
				health[t.Health]++
			}
		}
	}
	w.family("orch_replicas", "gauge", "Slots this node holds, by state.")
	counts(&w, "orch_replicas", "state", replicas)
	w.family("orch_replicas_health", "gauge", "Checked replicas this node runs, by health.")
	counts(&w, "orch_replicas_health", "health", health)

	a.metrics.mu.Lock()
	probes := maps.Clone(a.metrics.probes)
	lat := maps.Clone(a.metrics.probeLatency)
	a.metrics.mu.Unlock()
	w.family("orch_health_probes_total", "counter", "Health probes run, by kind and result (healthy, unhealthy, timeout).")
	keys := make([][2]string, 0, len(probes))
	for k := range probes {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i][0]+keys[i][1] < keys[j][0]+keys[j][1] })
	for _, k := range keys {
		w.sample("orch_health_probes_total", float64(probes[k]), "kind", k[0], "result", k[1])
	}
	w.family("orch_health_probe_duration_seconds", "histogram", "Health probe latency, by kind.")
	for _, k := range slices.Sorted(maps.Keys(lat)) {
		w.histogram("orch_health_probe_duration_seconds", lat[k], "kind", k)
	}

	if a.dns != nil {
		st := a.dns.stats()
		w.family("orch_dns_queries_total", "counter", "DNS queries, by type.")
		counts(&w, "orch_dns_queries_total", "qtype", st.Queries)
		w.family("orch_dns_responses_total", "counter", "DNS responses, by response code.")
		counts(&w, "orch_dns_responses_total", "rcode", st.Responses)
		for _, c := range []struct {
			name, help string
			v          uint64
		}{
			{"orch_dns_forwarded_total", "Queries forwarded to an upstream (cache misses).", st.Forwarded},
			{"orch_dns_cache_hits_total", "Queries answered from the forward cache.", st.CacheHits},
			{"orch_dns_forward_failures_total", "Forwarded queries no upstream answered.", st.ForwardFailures},
			{"orch_dns_truncated_total", "UDP answers sent truncated.", st.Truncated},
			{"orch_dns_malformed_total", "Packets that were not a query the server could parse.", st.Malformed},
			{"orch_dns_dropped_total", "Queries and connections refused for lack of capacity.", st.Dropped},
		} {
			w.family(c.name, "counter", c.help)
			w.sample(c.name, float64(c.v))
		}
	}

	w.family("orch_reconcile_duration_seconds", "histogram", "Duration of the reconcile loop's passes.")
	w.histogram("orch_reconcile_duration_seconds", a.metrics.reconcile)

	if hs := a.HandlerStats(); len(hs) > 0 {
		for _, c := range []struct {
			name, help string
			v          func(HandlerStats) uint64
		}{
			{"orch_event_handler_runs_total", "Event handler runs, by handler.", func(h HandlerStats) uint64 { return h.Runs }},
			{"orch_event_handler_failures_total", "Event handler runs that failed (exit, start, timeout), by handler.", func(h HandlerStats) uint64 { return h.Failures }},
			{"orch_event_handler_timeouts_total", "Event handler runs killed at their timeout, by handler.", func(h HandlerStats) uint64 { return h.Timeouts }},
			{"orch_event_handler_dropped_total", "Events an event handler missed because it fell behind, by handler.", func(h HandlerStats) uint64 { return h.Dropped }},
		} {
			w.family(c.name, "counter", c.help)
			for _, h := range hs {
				w.sample(c.name, float64(c.v(h)), "handler", h.Handler)
			}
		}
	}

	bs := a.bus.Stats()
	w.family("orch_events_published_total", "counter", "Events published on the agent's bus.")
	w.sample("orch_events_published_total", float64(bs.Published))
	w.family("orch_events_subscribers", "gauge", "Current event subscribers (event streams, handlers).")
	w.sample("orch_events_subscribers", float64(bs.Subscribers))
	w.family("orch_events_dropped_total", "counter", "Events dropped for slow subscribers.")
	w.sample("orch_events_dropped_total", float64(bs.Dropped))
	return w.b.Bytes()
}

// serveMetrics serves GET /metrics on the listener until ctx ends.
func (a *Agent) serveMetrics(ctx context.Context, ln net.Listener) error {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		w.Write(a.writeMetrics())
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("metrics: %w", err)
	}
	return nil
}

// MetricsAddr is where the metrics endpoint listens (its port resolved);
// invalid when it is off or not listening yet.
func (a *Agent) MetricsAddr() netip.AddrPort {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.metricsAddr
}

// listenMetrics binds the metrics address. Binding in New, not Run, makes
// a taken port an error the operator sees at once.
func listenMetrics(addr netip.AddrPort) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr.String())
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	return ln, nil
}

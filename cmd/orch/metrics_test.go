package main

import (
	"fmt"
	"net/http"
	"net/netip"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/orchproject/orch/agent"
	"github.com/orchproject/orch/internal/lab"
)

// scrape fetches and parses the agent's metrics with Prometheus's own
// text parser.
func scrape(t *testing.T, addr netip.AddrPort) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + addr.String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("the metrics do not parse: %v", err)
	}
	return fams
}

func value(fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.Metric {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, lp := range m.Label {
				if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

// TestMetrics scrapes --metrics, parses it with the Prometheus text parser,
// and checks that the counters move when things happen.
func TestMetrics(t *testing.T) {
	// Health probes need containers (the e2e tests cover them); an event
	// handler shows its counters here.
	a := startAgent(t, "m1", nil, func(c *agent.Config) {
		c.Metrics = netip.MustParseAddrPort("127.0.0.1:0")
		h, err := agent.ParseEventHandler("service:created=cat >/dev/null")
		if err != nil {
			t.Fatal(err)
		}
		c.EventHandlers = []agent.EventHandler{h}
	})
	addr := a.MetricsAddr()
	if !addr.IsValid() || addr.Port() == 0 {
		t.Fatalf("metrics address %v", addr)
	}
	before := scrape(t, addr)
	for _, name := range []string{"orch_members", "orch_gossip_packets_total", "orch_store_entries", "orch_store_syncs_total", "orch_store_gap_syncs_total", "orch_gossip_refused_total",
		"orch_reconcile_duration_seconds", "orch_events_published_total", "orch_events_subscribers", "orch_events_dropped_total",
		"orch_event_handler_runs_total"} {
		if before[name] == nil {
			t.Errorf("no %s family", name)
		}
	}
	if v, _ := value(before, "orch_members", "status", "alive"); v != 1 {
		t.Errorf("orch_members{status=alive} = %v, want 1", v)
	}
	pub0, _ := value(before, "orch_events_published_total")
	entries0, _ := value(before, "orch_store_entries", "kind", "live")

	if r := runCLI(t, "--socket", a.socket, "service", "create", "--name", "metered", "--replicas", "2", "busybox:stable"); r.code != exitOK {
		t.Fatalf("service create: %v", r)
	}
	lab.Eventually(t, 10*time.Second, 50*time.Millisecond, func() error {
		after := scrape(t, addr)
		pub, _ := value(after, "orch_events_published_total")
		entries, _ := value(after, "orch_store_entries", "kind", "live")
		passes, _ := value(after, "orch_reconcile_duration_seconds")
		assigned, _ := value(after, "orch_replicas", "state", "assigned")
		runs, _ := value(after, "orch_event_handler_runs_total")
		if pub <= pub0 || entries < entries0+3 || passes == 0 || assigned != 2 || runs != 1 {
			return fmt.Errorf("published %v (was %v), live entries %v (was %v), reconcile passes %v, assigned replicas %v, handler runs %v",
				pub, pub0, entries, entries0, passes, assigned, runs)
		}
		return nil
	})
}

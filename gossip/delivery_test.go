package gossip

import (
	"encoding/json"
	"fmt"
	"math"
	"testing"
	"time"
)

func TestDeltaGaps(t *testing.T) {
	g := &deltaGaps{self: "me", writers: map[string]writerSeen{}}
	t0 := time.Unix(1000, 0)
	e := []Entry{{Table: "t", Key: "k"}}
	steps := []struct {
		name string
		m    deltaMsg
		at   time.Duration
		want bool
	}{
		{"own delta", deltaMsg{Writer: "me", Epoch: 1, Seq: 5, Entries: e}, 0, false},
		{"first delta of a run", deltaMsg{Writer: "a", Epoch: 1, Seq: 1, Entries: e}, 0, false},
		{"next", deltaMsg{Writer: "a", Epoch: 1, Seq: 2, Entries: e}, 0, false},
		{"duplicate", deltaMsg{Writer: "a", Epoch: 1, Seq: 2, Entries: e}, 0, false},
		{"gap", deltaMsg{Writer: "a", Epoch: 1, Seq: 4, Entries: e}, 0, true},
		{"late 3 after the sync", deltaMsg{Writer: "a", Epoch: 1, Seq: 3, Entries: e}, 0, false},
		{"heartbeat, up to date", deltaMsg{Writer: "a", Epoch: 1, Seq: 4}, time.Second, false},
		{"gap a while after the last sync", deltaMsg{Writer: "a", Epoch: 1, Seq: 6, Entries: e}, 1500 * time.Millisecond, true},
		{"second gap within a second: held", deltaMsg{Writer: "a", Epoch: 1, Seq: 8, Entries: e}, 1600 * time.Millisecond, false},
		{"held gap reported by the heartbeat", deltaMsg{Writer: "a", Epoch: 1, Seq: 8}, 3 * time.Second, true},
		{"heartbeat reveals a lost last delta", deltaMsg{Writer: "a", Epoch: 1, Seq: 9}, 5 * time.Second, true},
		{"older run ignored", deltaMsg{Writer: "a", Epoch: 0, Seq: 50, Entries: e}, 7 * time.Second, false},
		{"new run from its start", deltaMsg{Writer: "a", Epoch: 2, Seq: 1, Entries: e}, 7 * time.Second, false},
		{"unknown writer mid-run", deltaMsg{Writer: "b", Epoch: 1, Seq: 7, Entries: e}, 7 * time.Second, true},
		{"unknown writer's heartbeat", deltaMsg{Writer: "c", Epoch: 1, Seq: 3}, 7 * time.Second, true},
	}
	for _, s := range steps {
		if got := g.saw(s.m, t0.Add(s.at)); got != s.want {
			t.Errorf("%s: saw = %v, want %v", s.name, got, s.want)
		}
	}
}

func TestDeltaFraming(t *testing.T) {
	for _, name := range []string{"a", "node-17", "ünïcode\"quoted\\"} {
		raw := []byte(`[{"table":"t"}]`)
		b, err := json.Marshal(deltaOut{Writer: name, Epoch: math.MinInt64, Seq: math.MaxUint64, Entries: raw})
		if err != nil {
			t.Fatal(err)
		}
		if got, bound := len(b), len(raw)+deltaFraming(name); got > bound {
			t.Errorf("%q: message of %d bytes, framing bound %d", name, got, bound)
		}
	}
}

// TestNode_DeltasReachEveryMember writes a burst of deltas from every
// member of a five-node cluster whose periodic anti-entropy is off: gossip
// alone misses a member now and then (a few in a thousand deliveries,
// measured), and the numbered deltas and heartbeats must repair every miss
// within seconds. So that the test does not depend on luck, one member
// also loses every 37th delta and the last delta of each writer.
func TestNode_DeltasReachEveryMember(t *testing.T) {
	const members, writes = 5, 400
	noSync := func(c *Config) { c.SyncInterval = time.Hour; c.Profile = ProfileLAN }
	a := startTestNodeCfg(t, "a", t.TempDir(), nil, noSync)
	defer a.stop(t)
	tok, _ := a.Token()
	nodes := []*testNode{a}
	lossy := func(c *Config) {
		noSync(c)
		c.dropDelta = func(m deltaMsg) bool {
			return len(m.Entries) > 0 && (m.Seq%37 == 0 || m.Seq == writes/members)
		}
	}
	for i := 1; i < members; i++ {
		cfg := noSync
		if i == members-1 {
			cfg = lossy
		}
		x := startTestNodeCfg(t, fmt.Sprint("n", i), t.TempDir(), &tok, cfg, a.Addr().String())
		defer x.stop(t)
		nodes = append(nodes, x)
	}
	waitFor(t, "all alive", func() error {
		for _, x := range nodes {
			for _, y := range nodes {
				if err := wantStatus(x.Node, y.LocalName(), StatusAlive)(); err != nil {
					return err
				}
			}
		}
		return nil
	})
	for i := range writes {
		if _, err := nodes[i%members].Store().Put("t", fmt.Sprint(i), []byte("v")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	last := time.Now()
	waitFor(t, "every delta everywhere", func() error {
		for _, x := range nodes {
			if got := len(x.Store().Snapshot().Tables["t"]); got != writes {
				return fmt.Errorf("%s has %d of %d entries", x.LocalName(), got, writes)
			}
		}
		return nil
	})
	var gapSyncs uint64
	for _, x := range nodes {
		gapSyncs += x.Stats().GapSyncs
	}
	t.Logf("complete everywhere %v after the last write; %d syncs after missed deltas", time.Since(last).Round(time.Millisecond), gapSyncs)
}

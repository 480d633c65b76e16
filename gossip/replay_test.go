//go:build linux

package gossip

// Replayed gossip (#9). memberlist encrypts every packet and stream with
// AES-GCM but has no replay protection: anyone on the path can record a
// member's traffic and send it again later, without the key. What keeps
// that harmless is the meaning of the messages, not the crypto:
//
//   - memberlist orders a member's alive, suspect and dead messages by
//     incarnation numbers, and ignores any older than what it holds (an
//     alive message about the local node at its own incarnation is ignored
//     only if its metadata is the same; an older one always is);
//   - serf orders member intents and user events by Lamport times and
//     keeps the recent user events and queries, so a user event or query
//     seen before, or older than its buffer (512 Lamport ticks), is dropped;
//   - the store merges last-writer-wins by version, refuses entries of
//     owners that are not alive, and keeps tombstones;
//   - orch's own streams (join, sync, push) are TLS 1.3, whose handshake
//     cannot be replayed.
//
// The test records, with an AF_PACKET socket on lo, everything sent to one
// node's gossip port (UDP datagrams and the client side of every TCP
// stream) while the cluster changes: store keys rewritten and deleted,
// owned entries written and deleted, tags changed twice, a member leaving
// and the gossip key rotated. Then it sends all of it again, many times, in
// order and shuffled, and checks that nothing moved.

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestNode_ReplayedGossip records the traffic to node a while the cluster
// changes, replays it at a, and checks that a's store, members and tags
// stay the newest, nobody is suspected, packets under the removed key are
// refused, and a keeps serving.
func TestNode_ReplayedGossip(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("recording the gossip traffic needs an AF_PACKET socket on lo, that is root (CAP_NET_RAW); run as root (CI does)")
	}
	tap := &logTap{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log of the cluster (info and above):\n%s", tap.dump())
		}
	})
	a := startReplayNode(t, "a", nil, tap)
	defer a.stop(t)
	lo := startCapture(t, a.Addr())
	tok, err := a.Token()
	if err != nil {
		t.Fatal(err)
	}
	b := startReplayNode(t, "b", &tok, tap, a.Addr().String())
	defer b.stop(t)
	c := startReplayNode(t, "c", &tok, tap, a.Addr().String())
	defer c.stop(t)
	d := startReplayNode(t, "d", &tok, tap, a.Addr().String())
	defer d.stop(t)
	healthy := []*replayNode{a, b, c}
	for _, n := range append(healthy, d) {
		waitFor(t, "four members", wantAllAlive(n.Node, "a", "b", "c", "d"))
	}
	cid, err := a.ClusterID()
	if err != nil {
		t.Fatal(err)
	}
	label := "orch-" + cid
	k1 := a.currentKeys()[0]

	// Under the first key: values that will all be replaced.
	b.put(t, "svc", "k1", "stale-k1-v1")
	c.put(t, "svc", "k2", "keep-k2")
	b.put(t, "svc", "gone", "stale-gone")
	d.putOwned(t, "task", "d/0", "stale-claim-d")
	c.putOwned(t, "task", "c/0", "stale-claim-c-1")
	c.putOwned(t, "task", "c/1", "stale-claim-c-x")
	c.setTag(t, "color", "stale-red")
	a.setTag(t, "zone", "stale-z1")
	waitFor(t, "first values at a", wantStore(a.Node, "svc//k1=stale-k1-v1", "svc//k2=keep-k2", "svc//gone=stale-gone",
		"task/d/d/0=stale-claim-d", "task/c/c/0=stale-claim-c-1", "task/c/c/1=stale-claim-c-x"))
	waitFor(t, "first tags at a", wantTag(a.Node, "c", "color", "stale-red"))
	b.pushPullWith(t, a)

	// Half a rotation: everyone encrypts with k2 from now on.
	k2s, err := NewGossipKey()
	if err != nil {
		t.Fatal(err)
	}
	wantKeyOp(t, "install", b.InstallKey, k2s, 4)
	wantKeyOp(t, "use", c.UseKey, k2s, 4)
	k2, _ := base64.StdEncoding.DecodeString(k2s)

	// Under the second key: more values that will be replaced. Each
	// writer first sees the value it replaces, so its write is the newer
	// (concurrent writes are ordered by Lamport time, not by when they
	// were made).
	waitFor(t, "k1 v1 at c", wantStore(c.Node, "svc//k1=stale-k1-v1"))
	c.put(t, "svc", "k1", "stale-k1-v2")
	waitFor(t, "k1 v2 at a", wantStore(a.Node, "svc//k1=stale-k1-v2"))
	a.put(t, "svc", "k1", "stale-k1-v3")
	if _, err := b.Store().Delete("svc", "gone"); err != nil {
		t.Fatal(err)
	}
	c.putOwned(t, "task", "c/0", "stale-claim-c-2")
	if _, err := c.Store().DeleteOwned("task", "c/1"); err != nil {
		t.Fatal(err)
	}
	c.setTag(t, "color", "stale-blue")
	a.setTag(t, "zone", "z2")
	waitFor(t, "second values at a", wantStore(a.Node, "svc//k1=stale-k1-v3", "svc//gone=(deleted)", "task/c/c/0=stale-claim-c-2", "task/c/c/1=(deleted)"))
	waitFor(t, "second tags at a", wantTag(a.Node, "c", "color", "stale-blue"))
	b.pushPullWith(t, a)

	// d leaves; its owned entry goes with it.
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	if err := d.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	d.stop(t)
	for _, n := range healthy {
		waitFor(t, "d left", wantStatus(n.Node, "d", StatusLeft))
	}

	// The newest state.
	waitFor(t, "k1 v3 at b", wantStore(b.Node, "svc//k1=stale-k1-v3"))
	b.put(t, "svc", "k1", "k1-final")
	c.putOwned(t, "task", "c/0", "claim-c-final")
	c.setTag(t, "color", "green")
	want := []string{"svc//gone=(deleted)", "svc//k1=k1-final", "svc//k2=keep-k2", "task/c/c/0=claim-c-final", "task/c/c/1=(deleted)"}
	for _, n := range healthy {
		waitFor(t, "final state at "+n.LocalName(), func() error {
			if got := storeLines(n.store); !slices.Equal(got, want) {
				return fmt.Errorf("store %q, want %q", got, want)
			}
			if err := wantTag(n.Node, "c", "color", "green")(); err != nil {
				return err
			}
			return wantTag(n.Node, "a", "zone", "z2")()
		})
	}
	b.pushPullWith(t, a)
	items := lo.stop(t)

	rec := examineRecording(t, items, label, [][]byte{k1, k2}, map[string]string{
		"k1 v1 (key 1)":          base64Of("stale-k1-v1"),
		"d's claim (key 1)":      base64Of("stale-claim-d"),
		"c's red tag (key 1)":    "stale-red",
		"k1 v2 (key 2)":          base64Of("stale-k1-v2"),
		"c's blue tag (key 2)":   "stale-blue",
		"c/1's delete (any key)": `"k":"c/1","o":"c","d":true`,
	})
	t.Logf("recorded %d datagrams (%d under the first key, %d under the second) and %d streams (memberlist: %d under the first key, %d under the second; %d orch TLS; %d incomplete, dropped)",
		rec.udpByKey[0]+rec.udpByKey[1], rec.udpByKey[0], rec.udpByKey[1], rec.memberlistByKey[0]+rec.memberlistByKey[1]+rec.tlsStreams,
		rec.memberlistByKey[0], rec.memberlistByKey[1], rec.tlsStreams, lo.incomplete)
	if t.Failed() {
		t.FailNow()
	}

	rp := &replayer{t: t, target: a, items: items}
	check := func(phase string) {
		t.Helper()
		for _, n := range healthy {
			if got := storeLines(n.store); !slices.Equal(got, want) {
				t.Errorf("%s: %s's store %q, want %q", phase, n.LocalName(), got, want)
			}
			for _, m := range n.Members() {
				switch {
				case m.Name == "d" && m.Status != StatusLeft:
					t.Errorf("%s: %s sees d (who left) as %s", phase, n.LocalName(), m.Status)
				case m.Name != "d" && (m.Status != StatusAlive || m.Suspect):
					t.Errorf("%s: %s sees %s as %s (suspect %t)", phase, n.LocalName(), m.Name, m.Status, m.Suspect)
				}
			}
			if err := wantTag(n.Node, "c", "color", "green")(); err != nil {
				t.Errorf("%s: %v", phase, err)
			}
			if err := wantTag(n.Node, "a", "zone", "z2")(); err != nil {
				t.Errorf("%s: %v", phase, err)
			}
		}
	}
	check("before the replay")

	// Replay 1, both keys installed: every packet opens, and every user
	// event in them is one serf has seen.
	r1 := rp.run(healthy, 3, 3)
	check("after replay 1")
	if r1.decryptFailed != 0 || r1.streamsRefusedByKey != 0 {
		t.Errorf("replay 1: %d datagrams and %d streams refused for their key, want none (both keys are installed)", r1.decryptFailed, r1.streamsRefusedByKey)
	}

	// Finish the rotation; the first key is gone. Then move the event
	// clock on by more than serf's event buffer (512), as a busy cluster
	// would, so that the recorded user events are not merely seen
	// before but too old. The filler events are not store deltas: the
	// store ignores them.
	wantKeyOp(t, "remove", a.RemoveKey, base64.StdEncoding.EncodeToString(k1), 3)
	recorded := serfEventTime(t, a)
	for range 520 {
		if err := b.currentSerf().UserEvent("o.filler", nil, false); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "a's event clock past serf's buffer", func() error {
		if now := serfEventTime(t, a); now <= recorded+512 {
			return fmt.Errorf("a's event clock at %d, want past %d", now, recorded+512)
		}
		return nil
	})

	// Replay 2: everything under the first key is refused, and serf
	// drops the user events under the second as too old.
	r2 := rp.run(healthy, 2, 3)
	check("after replay 2")
	if want := rec.udpByKey[0] * 5; r2.decryptFailed != want {
		t.Errorf("replay 2: %d datagrams refused for their key, want %d (every one under the removed key, 5 passes)", r2.decryptFailed, want)
	}
	if want := rec.memberlistByKey[0] * 5; r2.streamsRefusedByKey != want {
		t.Errorf("replay 2: %d memberlist streams refused for their key, want %d", r2.streamsRefusedByKey, want)
	}
	if r2.oldEvents == 0 {
		t.Error("replay 2: serf dropped no user event as too old; the replayed deltas under the second key did not reach it")
	}

	// a still serves: writes on either side replicate everywhere.
	a.put(t, "svc", "after-a", "1")
	b.put(t, "svc", "after-b", "1")
	for _, n := range healthy {
		waitFor(t, "writes after the replay at "+n.LocalName(), wantStore(n.Node, "svc//after-a=1", "svc//after-b=1"))
	}
	for i, r := range []replayStats{r1, r2} {
		t.Logf("replay %d: %d datagrams, %d streams sent; refused: %d datagrams and %d memberlist streams for their key, %d orch streams at TLS; serf dropped %d user events as too old; a sent %d datagrams meanwhile",
			i+1, r.datagrams, r.streams, r.decryptFailed, r.streamsRefusedByKey, r.tlsRefused, r.oldEvents, r.udpOut)
	}
}

// replayer sends recorded traffic to a node and checks the cluster while
// it does.
type replayer struct {
	t      *testing.T
	target *replayNode
	items  []capItem
}

// replayStats counts what one replay did, from the nodes' logs and
// counters.
type replayStats struct {
	datagrams, streams  int
	decryptFailed       int // datagrams memberlist could not open
	streamsRefusedByKey int // memberlist streams it could not open
	tlsRefused          int // orch streams refused at the TLS handshake
	oldEvents           int // user events serf dropped as too old
	udpOut              uint64
}

// run sends the recorded items inOrder times in recorded order, then
// shuffled times in random orders, while a watcher checks that the
// healthy nodes see each other alive and unsuspected and record no member
// event. It waits until every refusal has been logged.
func (rp *replayer) run(healthy []*replayNode, inOrder, shuffled int) replayStats {
	t := rp.t
	t.Helper()
	tap := rp.target.tap
	mark := tap.mark()
	events := make([]int, len(healthy))
	for i, n := range healthy {
		events[i] = n.eventCount()
	}
	before := rp.target.Stats()

	stopWatch := make(chan struct{})
	var watchWG sync.WaitGroup
	var anomalies []string
	watchWG.Go(func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			for _, n := range healthy {
				for _, m := range n.Members() {
					if m.Name != "d" && (m.Status != StatusAlive || m.Suspect) || m.Name == "d" && m.Status != StatusLeft {
						if len(anomalies) < 20 {
							anomalies = append(anomalies, fmt.Sprintf("%s saw %s %s (suspect %t)", n.LocalName(), m.Name, m.Status, m.Suspect))
						}
					}
				}
			}
			select {
			case <-stopWatch:
				return
			case <-tick.C:
			}
		}
	})

	var st replayStats
	var tlsStreams int
	rng := rand.New(rand.NewPCG(9, uint64(inOrder*10+shuffled)))
	for pass := range inOrder + shuffled {
		order := slices.Clone(rp.items)
		if pass >= inOrder {
			rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		}
		d, s, tl := rp.send(order)
		st.datagrams += d
		st.streams += s
		tlsStreams += tl
	}

	// Every refusal is logged once the packet or stream has been handled.
	// Orch streams are refused at their handshake: wait for all. For
	// datagrams, wait until memberlist has handled everything sent.
	waitFor(t, "replayed orch streams refused", func() error {
		if n := int(rp.target.Stats().RefusedStreams - before.RefusedStreams); n < tlsStreams {
			return fmt.Errorf("%d of %d replayed orch streams refused", n, tlsStreams)
		}
		return nil
	})
	rp.drain()
	close(stopWatch)
	watchWG.Wait()

	after := rp.target.Stats()
	st.decryptFailed = int(after.UndecryptablePackets - before.UndecryptablePackets)
	st.streamsRefusedByKey = int(after.UndecryptableStreams - before.UndecryptableStreams)
	st.tlsRefused = int(after.RefusedStreams - before.RefusedStreams)
	st.oldEvents = int(after.StaleEvents - before.StaleEvents)
	st.udpOut = after.UDPOutPackets - before.UDPOutPackets
	for _, line := range tap.since(mark) {
		for _, bad := range []string{"memberlist: Suspect", "memberlist: Marking", "memberlist: Refuting", "Conflicting address"} {
			if strings.Contains(line, bad) {
				t.Errorf("during the replay: %s", line)
			}
		}
	}
	for _, a := range anomalies {
		t.Errorf("during the replay: %s", a)
	}
	for i, n := range healthy {
		if got := n.eventsSince(events[i]); len(got) > 0 {
			t.Errorf("during the replay %s saw member events %v, want none", n.LocalName(), got)
		}
	}
	if st.tlsRefused != tlsStreams {
		t.Errorf("%d orch streams refused at TLS, want all %d replayed", st.tlsRefused, tlsStreams)
	}
	return st
}

// recording is what examineRecording found in the recorded traffic.
type recording struct {
	udpByKey        [2]int // datagrams by the key that opens them
	memberlistByKey [2]int // memberlist streams by the key that opens them
	tlsStreams      int    // orch streams (TLS)
}

// examineRecording sorts the recorded items by the key (of two) that opens them
// and checks that every datagram opens, that there are streams of each
// kind, and that each marker (a byte string; its name ends in "(key N)"
// or "(any key)") is in a datagram under that key, so the replay carries
// the stale state it is meant to.
func examineRecording(t *testing.T, items []capItem, label string, keys [][]byte, markers map[string]string) recording {
	t.Helper()
	var rec recording
	found := map[string]bool{}
	for _, it := range items {
		if it.stream != nil {
			if it.stream[0] == streamMagic {
				rec.tlsStreams++
			} else if k := streamKey(it.stream, label, keys); k >= 0 {
				rec.memberlistByKey[k]++
			}
			continue
		}
		k := packetKey(it.udp, label, keys)
		if k < 0 {
			t.Errorf("recorded a %d-byte datagram to a that neither key opens", len(it.udp))
			continue
		}
		rec.udpByKey[k]++
		plain, _ := openPacket(it.udp, label, keys[k])
		flat := flattenGossip(plain)
		for what, m := range markers {
			if bytes.Contains(flat, []byte(m)) && (strings.HasSuffix(what, "(any key)") || strings.HasSuffix(what, fmt.Sprintf("(key %d)", k+1))) {
				found[what] = true
			}
		}
	}
	for what := range markers {
		if !found[what] {
			t.Errorf("no recorded datagram carries %s: the replay would prove less than it claims", what)
		}
	}
	if rec.memberlistByKey[0] == 0 || rec.memberlistByKey[1] == 0 || rec.tlsStreams == 0 {
		t.Errorf("recorded memberlist streams %v by key and %d orch streams; want some of each", rec.memberlistByKey, rec.tlsStreams)
	}
	return rec
}

// drain waits until memberlist has handled every datagram the node has
// read: its receive loop hands datagrams over in order, one channel, to
// one goroutine that handles them one by one. Once two more datagrams
// have been read (so the first was handed over) and the channel is
// empty, everything before them has been handled. Legitimate gossip
// supplies the two datagrams within a probe interval or so.
func (rp *replayer) drain() {
	rp.t.Helper()
	n := rp.target.Node
	n.mu.Lock()
	view := n.view
	n.mu.Unlock()
	start := rp.target.Stats().UDPInPackets
	waitFor(rp.t, "memberlist handles the replayed datagrams", func() error {
		if in, queued := rp.target.Stats().UDPInPackets, len(view.packetCh); in < start+2 || queued > 0 {
			return fmt.Errorf("%d datagrams read since the replay, %d queued", in-start, queued)
		}
		return nil
	})
}

// send replays items once: datagrams from one socket, paced so the
// node's receive buffer never overflows; streams concurrently, four at a
// time, each written whole, then read until the node closes it.
func (rp *replayer) send(items []capItem) (datagrams, streams, tlsStreams int) {
	t := rp.t
	to := net.UDPAddrFromAddrPort(rp.target.Addr())
	u, err := net.DialUDP("udp", nil, to)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	sem := make(chan struct{}, 4) // streams in flight; memberlist allows 128 push-pulls
	var wg sync.WaitGroup
	base := rp.target.Stats().UDPInPackets
	for _, it := range items {
		if it.stream == nil {
			if _, err := u.Write(it.udp); err != nil {
				t.Fatalf("replay a datagram: %v", err)
			}
			datagrams++
			if datagrams%16 == 0 {
				waitFor(t, "a reads the replayed datagrams", func() error {
					if got := rp.target.Stats().UDPInPackets - base; got < uint64(datagrams) {
						return fmt.Errorf("a read %d of %d", got, datagrams)
					}
					return nil
				})
			}
			continue
		}
		streams++
		if it.stream[0] == streamMagic {
			tlsStreams++
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			replayStream(rp.target.Addr(), it.stream)
		})
	}
	wg.Wait()
	waitFor(t, "a reads the replayed datagrams", func() error {
		if got := rp.target.Stats().UDPInPackets - base; got < uint64(datagrams) {
			return fmt.Errorf("a read %d of %d", got, datagrams)
		}
		return nil
	})
	return datagrams, streams, tlsStreams
}

// replayStream sends one recorded client stream and reads the answer
// until the node closes the connection.
func replayStream(to netip.AddrPort, b []byte) {
	c, err := net.DialTCP("tcp", nil, net.TCPAddrFromAddrPort(to))
	if err != nil {
		return
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(b); err != nil {
		return // the node may hang up before reading everything
	}
	_ = c.CloseWrite()
	_, _ = io.Copy(io.Discard, c)
}

// startReplayNode starts a node on 127.0.0.1 with the LAN profile (its
// 500 ms probe timeout does not mistake a loaded test machine for a
// failure) and a 1 s sync interval, logging into tap.
func startReplayNode(t *testing.T, name string, tok *Token, tap *logTap, join ...string) *replayNode {
	t.Helper()
	tn := startTestNodeCfg(t, name, t.TempDir(), tok, func(c *Config) {
		c.Profile = ProfileLAN
		c.SyncInterval = time.Second
		c.Logger = slog.New(tapHandler{tap: tap, node: name})
	}, join...)
	return &replayNode{testNode: tn, tap: tap}
}

// replayNode is a test node whose logs go to a shared tap.
type replayNode struct {
	*testNode
	tap *logTap
}

func (n *replayNode) eventCount() int {
	n.testNode.mu.Lock()
	defer n.testNode.mu.Unlock()
	return len(n.events)
}

// eventsSince describes the member events after the first k.
func (n *replayNode) eventsSince(k int) []string {
	n.testNode.mu.Lock()
	defer n.testNode.mu.Unlock()
	var out []string
	for _, e := range n.events[k:] {
		for _, m := range e.Members {
			out = append(out, string(e.Action)+" "+m.Name)
		}
	}
	return out
}

func wantAllAlive(n *Node, names ...string) func() error {
	return func() error {
		for _, name := range names {
			if err := wantStatus(n, name, StatusAlive)(); err != nil {
				return err
			}
		}
		return nil
	}
}

func (n *replayNode) put(t *testing.T, table, key, value string) {
	t.Helper()
	if _, err := n.Store().Put(table, key, []byte(value)); err != nil {
		t.Fatal(err)
	}
}

func (n *replayNode) putOwned(t *testing.T, table, key, value string) {
	t.Helper()
	if _, err := n.Store().PutOwned(table, key, []byte(value)); err != nil {
		t.Fatal(err)
	}
}

func (n *replayNode) setTag(t *testing.T, k, v string) {
	t.Helper()
	if err := n.SetTags(map[string]string{k: v}); err != nil {
		t.Fatal(err)
	}
}

// pushPullWith makes n run a memberlist push-pull with to (a join of a
// member it already has), so the recording holds one at this point.
func (n *replayNode) pushPullWith(t *testing.T, to *replayNode) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := n.Join(ctx, []string{to.Addr().String()}, nil); err != nil {
		t.Fatal(err)
	}
}

// wantKeyOp runs a key operation and checks that all nodes did it.
func wantKeyOp(t *testing.T, what string, op func(string) (KeyResult, error), key string, nodes int) {
	t.Helper()
	res, err := op(key)
	if err != nil || !res.OK() || res.Nodes != nodes {
		t.Fatalf("%s key: %+v, %v; want all %d nodes to succeed", what, res, err, nodes)
	}
}

// storeLines describes every entry of s, tombstones included, as
// "table/owner/key=value" or "…=(deleted)", sorted.
func storeLines(s *Store) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.entries))
	for _, e := range s.entries {
		v := string(e.Value)
		if e.Deleted {
			v = "(deleted)"
		}
		out = append(out, e.Table+"/"+e.Owner+"/"+e.Key+"="+v)
	}
	slices.Sort(out)
	return out
}

// wantStore checks that n's store holds each of the lines (see storeLines).
func wantStore(n *Node, lines ...string) func() error {
	return func() error {
		got := storeLines(n.store)
		for _, l := range lines {
			if !slices.Contains(got, l) {
				return fmt.Errorf("%s's store %q lacks %q", n.LocalName(), got, l)
			}
		}
		return nil
	}
}

// wantTag checks member's tag k as n sees it.
func wantTag(n *Node, member, k, v string) func() error {
	return func() error {
		for _, m := range n.Members() {
			if m.Name == member {
				if m.Tags[k] != v {
					return fmt.Errorf("%s sees %s's tag %s=%q, want %q", n.LocalName(), member, k, m.Tags[k], v)
				}
				return nil
			}
		}
		return fmt.Errorf("%s does not know %s", n.LocalName(), member)
	}
}

// serfEventTime is n's serf event clock.
func serfEventTime(t *testing.T, n *replayNode) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(n.currentSerf().Stats()["event_time"], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// base64Of is how the store's JSON carries s.
func base64Of(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

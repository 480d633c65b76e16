package gossip

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"

	"github.com/orchproject/orch/internal/loglimit"
)

const (
	snapshotFile = "serf.snapshot"
	// serfEventBuf lets serf hand over bursts of member events (a mass
	// failure, a large join) without waiting for the pump.
	serfEventBuf = 1024
	// deadNodeReclaim is how soon a failed node may come back on a new
	// address: at once. memberlist's default (never) would leave a node that
	// restarts on another address shown as failed until its next push/pull.
	// A different node (another ID) claiming a failed member's name is
	// refused by the join handshake and the merge guard instead.
	deadNodeReclaim = time.Nanosecond
	// joinBackoffMax caps the wait between attempts to join.
	joinBackoffMax = 30 * time.Second
)

var (
	// ErrNotRunning is returned by methods that need a running member.
	ErrNotRunning = errors.New("not a cluster member yet")
	// ErrNotAlone is returned when a node that already has peers is asked
	// to join another cluster.
	ErrNotAlone = errors.New("this node already has peers in its cluster")
)

// Node is this agent's membership in a cluster: the gossip sockets, the
// cluster secrets and a serf instance.
//
// New starts nothing; Run binds the port, founds or joins a cluster and
// serves until its context ends. Other methods are safe for concurrent use
// and return ErrNotRunning before Run has started serf.
type Node struct {
	cfg Config
	log *slog.Logger

	syncStats syncCounters
	// synced is set by the first completed store sync with a peer.
	synced atomic.Bool
	// keyring is the gossip keyring serf runs with; key rotations change
	// it in place.
	keyring   *memberlist.Keyring
	ready     chan struct{} // closed once serf runs for the first time
	readyOnce sync.Once

	switchMu sync.Mutex // serialises cluster switches and Leave

	mu       sync.Mutex
	mux      *muxTransport
	advert   netip.Addr
	serf     *serf.Serf
	view     *transportView
	secrets  *Secrets
	pumpDone chan struct{}
	left     bool
	ueLimit  int // largest store delta sent as a serf user event

	store    *Store
	syncReq  chan Member
	pushQ    chan []Entry
	deltas   *deltaNumbers // numbers this node's deltas
	gapSyncs atomic.Uint64 // syncs started because a delta was missed
	refused  refusals

	// rememberedPeers is how many peers the node remembered at start.
	rememberedPeers int
}

// New validates cfg and returns a Node that has not started.
func New(cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("gossip config: %w", err)
	}
	lg := cfg.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	cfg.Tags = cloneTags(cfg.Tags)
	cfg.Join = append([]string(nil), cfg.Join...)
	n := &Node{
		cfg:     cfg,
		log:     loglimit.New(lg).With("component", "gossip"),
		ready:   make(chan struct{}),
		store:   newStore(cfg.Name, cfg.TombstoneTTL),
		syncReq: make(chan Member, syncReqBuf),
		pushQ:   make(chan []Entry, pushQueueBuf),
	}
	n.deltas = newDeltaNumbers(n.sendHeartbeat)
	n.store.spread = n.spread
	return n, nil
}

// Ready is closed once the node gossips (it has founded or joined a cluster).
func (n *Node) Ready() <-chan struct{} { return n.ready }

// Addr is the bound gossip address, valid once Ready is closed.
func (n *Node) Addr() netip.AddrPort {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.mux == nil {
		return netip.AddrPort{}
	}
	return n.mux.Addr()
}

// Synced reports whether a store sync with another member has completed
// since the node started: until then its store may lack the others' owned
// entries (their claims), which a node does not keep for them across a
// restart.
func (n *Node) Synced() bool { return n.synced.Load() }

// Stats are counters of the node's gossip, for metrics.
type Stats struct {
	UDPInPackets, UDPInBytes, UDPOutPackets, UDPOutBytes uint64
	JunkConns                                            uint64
	// Syncs counts anti-entropy syncs this node started, by outcome, and
	// SyncSeconds the time the successful ones took.
	SyncsOK, SyncsFailed uint64
	SyncSeconds          float64
	// GapSyncs counts syncs started because a numbered delta was missed.
	GapSyncs uint64
	// UndecryptablePackets and UndecryptableStreams count gossip that no
	// installed key opens (junk, another cluster's, or a removed key's);
	// StaleEvents user events serf dropped as too old (replays, or a
	// member far behind); RefusedStreams orch streams (join, sync, push)
	// refused at their handshake.
	UndecryptablePackets, UndecryptableStreams, StaleEvents, RefusedStreams uint64
	// StoreLive and StoreTombstones count the store's entries.
	StoreLive, StoreTombstones int
}

// Stats returns the node's counters.
func (n *Node) Stats() Stats {
	var st Stats
	n.mu.Lock()
	mux := n.mux
	n.mu.Unlock()
	if mux != nil {
		st.UDPInPackets, st.UDPInBytes = mux.udpInPackets.Load(), mux.udpInBytes.Load()
		st.UDPOutPackets, st.UDPOutBytes = mux.udpOutPackets.Load(), mux.udpOutBytes.Load()
		st.JunkConns = mux.junkConns.Load()
	}
	n.syncStats.mu.Lock()
	st.SyncsOK, st.SyncsFailed, st.SyncSeconds = n.syncStats.ok, n.syncStats.fail, n.syncStats.seconds
	n.syncStats.mu.Unlock()
	st.GapSyncs = n.gapSyncs.Load()
	st.UndecryptablePackets, st.UndecryptableStreams = n.refused.undecryptablePackets.Load(), n.refused.undecryptableStreams.Load()
	st.StaleEvents, st.RefusedStreams = n.refused.staleEvents.Load(), n.refused.streams.Load()
	st.StoreLive, st.StoreTombstones = n.store.Len()
	return st
}

// JunkConns counts TCP connections to the gossip port that spoke no known
// protocol.
func (n *Node) JunkConns() uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.mux == nil {
		return 0
	}
	return n.mux.JunkConns()
}

// Run binds the gossip port, obtains the cluster secrets (loading them,
// fetching them with the configured token, or founding a new cluster),
// starts serf and serves until ctx ends. It does not leave the cluster on
// the way out: a stopped agent is a failed member until it returns, which
// is what a restart wants. Call Leave first for a graceful goodbye.
func (n *Node) Run(ctx context.Context) error {
	mux, err := listenMux(n.cfg.Bind)
	if err != nil {
		return fmt.Errorf("bind gossip port: %w", err)
	}
	advert, err := n.cfg.advertiseAddr()
	if err != nil {
		mux.Close()
		return err
	}
	n.mu.Lock()
	n.mux, n.advert = mux, advert
	n.mu.Unlock()
	mux.Handle(StreamJoin, n.serveJoinStream)
	mux.Handle(StreamSync, n.serveSync)
	mux.Handle(StreamPush, n.servePush)
	defer func() {
		n.deltas.stop()
		n.stopSerf()
		if err := mux.Close(); err != nil {
			n.log.Warn("close gossip sockets", "err", err)
		}
	}()

	secrets, err := n.obtainSecrets(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	// The store is loaded before joining, so what this node knew is in
	// its first sync.
	if err := n.store.load(n.cfg.DataDir); err != nil {
		return err
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	bg, stopBg := context.WithCancel(context.Background())
	defer stopBg() // the saver's final save runs once serf has stopped
	wg.Go(func() {
		n.store.runSaver(bg, n.cfg.DataDir, func(err error) { n.log.Error("cannot save the store", "err", err) })
	})
	if err := n.startSerf(secrets); err != nil {
		return err
	}
	wg.Go(func() { n.runSync(ctx) })
	wg.Go(func() { n.runPusher(ctx) })
	switch {
	case len(n.cfg.Join) > 0:
		wg.Go(func() { n.joinWithRetry(ctx, n.cfg.Join, false) })
	default:
		// A restart: find the cluster again through the members this node
		// knew, until one answers or somebody else reaches us first.
		peers, err := loadPeers(n.cfg.DataDir)
		if err != nil {
			n.log.Warn("cannot read remembered peers", "err", err)
		}
		n.mu.Lock()
		n.rememberedPeers = len(peers)
		n.mu.Unlock()
		if len(peers) > 0 {
			wg.Go(func() { n.joinWithRetry(ctx, peers, true) })
		}
	}
	<-ctx.Done()
	return nil
}

// obtainSecrets loads the node's secrets, or fetches them with the token
// from a join address, or founds a new cluster.
func (n *Node) obtainSecrets(ctx context.Context) (*Secrets, error) {
	s, err := LoadSecrets(n.cfg.DataDir)
	if err == nil {
		if n.cfg.Token != nil {
			if fp, _ := s.Fingerprint(); fp != n.cfg.Token.Fingerprint {
				return nil, fmt.Errorf("the data dir %s holds the secrets of another cluster than --token names; remove the data dir to switch clusters", n.cfg.DataDir)
			}
		}
		n.log.Info("loaded cluster secrets", "data_dir", n.cfg.DataDir)
		return s, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if len(n.cfg.Join) > 0 {
		if n.cfg.Token == nil {
			return nil, errors.New("joining a cluster for the first time needs its join token (--token; print it with \"orch token\" on a member)")
		}
		s, err := n.fetchWithRetry(ctx, n.cfg.Join, *n.cfg.Token)
		if err != nil {
			return nil, err
		}
		if err := s.Save(n.cfg.DataDir); err != nil {
			return nil, fmt.Errorf("save cluster secrets: %w", err)
		}
		return s, nil
	}
	if n.cfg.Token != nil {
		return nil, errors.New("--token needs --join ADDR: the token says which cluster, the address which member to ask")
	}
	s, err = NewSecrets()
	if err != nil {
		return nil, err
	}
	if err := s.Save(n.cfg.DataDir); err != nil {
		return nil, fmt.Errorf("save cluster secrets: %w", err)
	}
	id, _ := s.ClusterID()
	n.log.Info("founded a new cluster", "cluster", id)
	return s, nil
}

// fetchWithRetry asks each join address in turn for the secrets. Network
// failures are retried with backoff; a refusal or an identity mismatch is
// final, since retrying cannot change the answer.
func (n *Node) fetchWithRetry(ctx context.Context, addrs []string, tok Token) (*Secrets, error) {
	backoff := 500 * time.Millisecond
	for {
		var errs []error
		for _, a := range addrs {
			s, err := FetchSecrets(ctx, withDefaultPort(a), tok, n.cfg.Name, n.cfg.ID)
			if err == nil {
				n.log.Info("received cluster secrets", "peer", a)
				return s, nil
			}
			if errors.Is(err, ErrJoinRefused) || errors.Is(err, ErrIdentityMismatch) {
				return nil, err
			}
			errs = append(errs, err)
		}
		n.log.Warn("join attempt failed, retrying", "err", errors.Join(errs...), "retry_in", backoff)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, joinBackoffMax)
	}
}

// joinWithRetry gossips with the join addresses until one answers. With
// untilPeer it also stops as soon as any other member is alive.
func (n *Node) joinWithRetry(ctx context.Context, addrs []string, untilPeer bool) {
	backoff := 500 * time.Millisecond
	for {
		s := n.currentSerf()
		if s == nil || (untilPeer && n.livePeers() > 0) {
			return
		}
		joined, err := s.Join(withDefaultPorts(addrs), true)
		if joined > 0 {
			n.log.Info("joined cluster", "contacted", joined)
			return
		}
		n.log.Warn("join failed, retrying", "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, joinBackoffMax)
	}
}

// Join makes this node gossip with the given members. With a token for
// another cluster than the node's own, the node must be alone: it fetches
// that cluster's secrets, drops its own and joins. It returns how many
// addresses it contacted.
func (n *Node) Join(ctx context.Context, addrs []string, tok *Token) (int, error) {
	n.switchMu.Lock()
	defer n.switchMu.Unlock()
	s := n.currentSerf()
	if s == nil {
		return 0, ErrNotRunning
	}
	if tok != nil {
		// Always shake hands: it proves the addresses belong to the
		// token's cluster and the token's secret is right, whether or not
		// that cluster is already ours.
		sec, err := n.fetchFirst(ctx, addrs, *tok)
		if err != nil {
			return 0, err
		}
		cur := n.currentSecrets()
		if fp, _ := cur.Fingerprint(); fp != tok.Fingerprint {
			if peers := n.livePeers(); peers > 0 {
				return 0, fmt.Errorf("%w (%d alive); a member cannot switch clusters (remove its data dir and start it with --token)", ErrNotAlone, peers)
			}
			if err := n.switchCluster(sec); err != nil {
				return 0, err
			}
			s = n.currentSerf()
		}
	}
	joined, err := s.Join(withDefaultPorts(addrs), true)
	if joined == 0 {
		return 0, fmt.Errorf("join %v: %w", addrs, err)
	}
	return joined, nil
}

func (n *Node) fetchFirst(ctx context.Context, addrs []string, tok Token) (*Secrets, error) {
	var errs []error
	for _, a := range addrs {
		sec, err := FetchSecrets(ctx, withDefaultPort(a), tok, n.cfg.Name, n.cfg.ID)
		if err == nil {
			return sec, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

// switchCluster replaces a lone node's cluster with another's.
func (n *Node) switchCluster(sec *Secrets) error {
	n.stopSerf()
	if err := os.Remove(filepath.Join(n.cfg.DataDir, snapshotFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove old snapshot: %w", err)
	}
	if err := sec.Save(n.cfg.DataDir); err != nil {
		return fmt.Errorf("save cluster secrets: %w", err)
	}
	id, _ := sec.ClusterID()
	n.log.Info("switched to another cluster", "cluster", id)
	return n.startSerf(sec)
}

// Leave says goodbye to the cluster and waits until the others have heard
// it or ctx ends. The node stays up, answering nothing, until Run returns.
func (n *Node) Leave(ctx context.Context) error {
	n.switchMu.Lock()
	defer n.switchMu.Unlock()
	s := n.currentSerf()
	if s == nil {
		return ErrNotRunning
	}
	done := make(chan error, 1) // buffered: the goroutine must not block if ctx wins
	go func() { done <- s.Leave() }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("leave: %w", err)
		}
	case <-ctx.Done():
		return fmt.Errorf("leave: %w", ctx.Err())
	}
	n.mu.Lock()
	n.left = true
	n.mu.Unlock()
	return nil
}

// SetTags replaces the agent's tags (the reserved ones are kept).
//
// memberlist applies new tags locally, then waits for their broadcast to
// be sent; on a busy cluster that wait can time out. The tags are set all
// the same and reach every member with the next push-pull, so that timeout
// is logged, not returned.
func (n *Node) SetTags(tags map[string]string) error {
	c := n.cfg
	c.Tags = tags
	if err := c.Validate(); err != nil {
		return err
	}
	n.mu.Lock()
	n.cfg.Tags = cloneTags(tags)
	s := n.serf
	n.mu.Unlock()
	if s == nil {
		return nil
	}
	err := s.SetTags(c.allTags())
	if err != nil && strings.Contains(err.Error(), "timeout waiting for update broadcast") {
		n.log.Warn("tag update broadcast slow; it spreads with the next push-pull", "err", err)
		return nil
	}
	return err
}

// RememberedPeers is how many other members the node remembered when it
// started (from a previous run), before it heard from any of them.
func (n *Node) RememberedPeers() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.rememberedPeers
}

// Token returns the cluster's join token.
func (n *Node) Token() (Token, error) {
	s := n.currentSecrets()
	if s == nil {
		return Token{}, ErrNotRunning
	}
	return s.Token()
}

// ClusterID returns the cluster's short ID.
func (n *Node) ClusterID() (string, error) {
	s := n.currentSecrets()
	if s == nil {
		return "", ErrNotRunning
	}
	return s.ClusterID()
}

func (n *Node) currentSerf() *serf.Serf {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.serf
}

func (n *Node) currentSecrets() *Secrets {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.secrets
}

// startSerf creates serf on the mux with the given secrets.
func (n *Node) startSerf(sec *Secrets) error {
	clusterID, err := sec.ClusterID()
	if err != nil {
		return err
	}
	mlc, err := n.cfg.Profile.memberlistConfig()
	if err != nil {
		return err
	}
	keyring, err := memberlist.NewKeyring(sec.Keys, sec.Keys[0])
	if err != nil {
		return fmt.Errorf("gossip keyring: %w", err)
	}
	n.mu.Lock()
	mux, advert := n.mux, n.advert
	n.keyring = keyring // serf's key manager changes it in place
	n.mu.Unlock()
	view := mux.attach(advert)

	stdlog := newStdLogger(n.log, &n.refused)
	mlc.Name = n.cfg.Name
	mlc.Transport = view
	mlc.AdvertiseAddr = advert.String()
	mlc.AdvertisePort = int(mux.Addr().Port())
	mlc.Keyring = keyring
	mlc.GossipVerifyIncoming = true
	mlc.GossipVerifyOutgoing = true
	mlc.Label = "orch-" + clusterID
	mlc.DeadNodeReclaimTime = deadNodeReclaim
	mlc.UDPBufferSize = udpBufferSize(advert)
	ueLimit := min(mlc.UDPBufferSize-userEventHeadroom, 9*1024)
	mlc.Logger = stdlog

	eventCh := make(chan serf.Event, serfEventBuf)
	sc := serf.DefaultConfig()
	sc.NodeName = n.cfg.Name
	sc.Tags = n.cfg.allTags()
	sc.MemberlistConfig = mlc
	sc.EventCh = eventCh
	sc.SnapshotPath = filepath.Join(n.cfg.DataDir, snapshotFile)
	sc.KeyringFile = filepath.Join(n.cfg.DataDir, keyringFile)
	sc.Merge = mergeGuard{n}
	sc.ValidateNodeNames = true
	sc.UserEventSizeLimit = 9 * 1024 // serf's ceiling; spread keeps deltas within ueLimit
	// Try failed members again every 10 s rather than 30 s, so a healed
	// partition is noticed sooner even after gossip to the dead stopped.
	sc.ReconnectInterval = 10 * time.Second
	sc.Logger = stdlog
	sc.LogOutput = nil

	s, err := serf.Create(sc)
	if err != nil {
		view.Shutdown()
		return fmt.Errorf("start serf: %w", err)
	}
	pumpDone := make(chan struct{})
	go n.pump(eventCh, s.ShutdownCh(), pumpDone)
	n.mu.Lock()
	n.serf, n.view, n.secrets, n.pumpDone, n.ueLimit = s, view, sec, pumpDone, ueLimit
	n.mu.Unlock()
	n.readyOnce.Do(func() { close(n.ready) })
	n.log.Info("gossip started", "node", n.cfg.Name, "addr", netip.AddrPortFrom(advert, mux.Addr().Port()), "cluster", clusterID, "profile", n.cfg.Profile)
	return nil
}

func (n *Node) stopSerf() {
	n.mu.Lock()
	s, view, done := n.serf, n.view, n.pumpDone
	n.serf, n.view, n.pumpDone = nil, nil, nil
	n.mu.Unlock()
	if s == nil {
		return
	}
	if err := s.Shutdown(); err != nil {
		n.log.Warn("stop serf", "err", err)
	}
	view.Shutdown()
	<-done
}

// pump turns serf events into MemberEvents for OnEvent until serf stops.
// It also keeps the peers file current, written once a burst of events
// has been handled.
func (n *Node) pump(ch <-chan serf.Event, shutdown <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	// The book starts empty and is written only once an event changes it,
	// so a restart keeps the previous file until the node hears of peers.
	book := newPeerBook(n.cfg.DataDir, n.cfg.Name)
	// live is the set of orch members whose store entries are accepted;
	// owned in this goroutine, handed to the store as a copy.
	live := map[string]bool{n.cfg.Name: true}
	gaps := &deltaGaps{self: n.cfg.Name, writers: map[string]writerSeen{}}
	for {
		select {
		case ev := <-ch:
			if ue, ok := ev.(serf.UserEvent); ok {
				n.receiveDelta(ue, gaps)
				continue
			}
			me, ok := ev.(serf.MemberEvent)
			if !ok {
				continue
			}
			out := MemberEvent{Action: memberAction(me.Type)}
			for _, m := range me.Members {
				out.Members = append(out.Members, fromSerf(m))
			}
			if updateLive(live, out, n.cfg.Name) {
				n.store.setLive(maps.Clone(live))
			}
			if out.Action == ActionJoin {
				for _, m := range out.Members {
					if m.Name != n.cfg.Name && m.Orch {
						n.requestSync(m)
					}
				}
			}
			book.apply(out)
			if n.cfg.OnEvent != nil {
				n.cfg.OnEvent(out)
			}
			if len(ch) == 0 {
				if err := book.flush(); err != nil {
					n.log.Warn("cannot save peers", "err", err)
				}
			}
		case <-shutdown:
			return
		}
	}
}

// receiveDelta merges a store delta from a user event and, when it shows
// that this node missed one, syncs with its writer.
func (n *Node) receiveDelta(ue serf.UserEvent, gaps *deltaGaps) {
	switch ue.Name {
	case userEventDelta:
		var m deltaMsg
		if err := json.Unmarshal(ue.Payload, &m); err != nil {
			n.log.Warn("undecodable store delta", "err", err)
			return
		}
		if n.cfg.dropDelta != nil && n.cfg.dropDelta(m) {
			return
		}
		n.store.merge(m.Entries)
		if gaps.saw(m, time.Now()) {
			n.syncWithWriter(m.Writer)
		}
	case userEventStore:
		var es []Entry
		if err := json.Unmarshal(ue.Payload, &es); err != nil {
			n.log.Warn("undecodable store delta", "err", err)
			return
		}
		n.store.merge(es)
	}
}

// syncWithWriter asks for a sync with the named member, which has all its
// own deltas, or with any live member if it is not alive.
func (n *Node) syncWithWriter(name string) {
	var other *Member
	for _, m := range n.Members() {
		if m.Name == n.cfg.Name || !m.Orch || m.Status != StatusAlive {
			continue
		}
		if m.Name == name {
			other = &m
			break
		}
		if other == nil {
			other = &m
		}
	}
	if other == nil {
		return
	}
	n.gapSyncs.Add(1)
	n.log.Debug("missed a store delta; syncing", "writer", name, "peer", other.Name)
	n.requestSync(*other)
}

// updateLive applies a member event to the set of live orch members and
// reports whether it changed. The local node is always live.
func updateLive(live map[string]bool, ev MemberEvent, self string) bool {
	changed := false
	for _, m := range ev.Members {
		if m.Name == self {
			continue
		}
		want := m.Orch && m.Status == StatusAlive
		if live[m.Name] != want {
			changed = true
			if want {
				live[m.Name] = true
			} else {
				delete(live, m.Name)
			}
		}
	}
	return changed
}

// serveJoinStream answers a join handshake with the current secrets.
func (n *Node) serveJoinStream(conn net.Conn) {
	sec := n.currentSecrets()
	if sec == nil {
		conn.Close()
		return
	}
	if keys := n.currentKeys(); len(keys) > 0 {
		// After a rotation the keys loaded at start are stale.
		cp := *sec
		cp.Keys = keys
		sec = &cp
	}
	if err := serveJoin(conn, sec, n.admit); err != nil {
		n.refused.streams.Add(1)
		n.log.Warn("join handshake failed", "remote", conn.RemoteAddr().String(), "err", err)
		return
	}
	n.log.Info("admitted a node", "remote", conn.RemoteAddr().String())
}

// admit refuses a name that a different node (another ID) holds, unless
// that node has left.
func (n *Node) admit(name, id string) error {
	if !ValidName(name) {
		return fmt.Errorf("node name %q is not a lower-case DNS label", name)
	}
	if id == "" {
		return errors.New("the joining node sent no node ID")
	}
	if name == n.cfg.Name && id != n.cfg.ID {
		return fmt.Errorf("node name %q is taken by the member answering this join; start the new node with another --name", name)
	}
	for _, m := range n.Members() {
		if m.Name == name && m.ID != id && m.Status != StatusLeft {
			return fmt.Errorf("node name %q is taken by another node (id %s, %s at %s); start the new node with another --name", name, m.ID, m.Status, m.Addr)
		}
	}
	return nil
}

// livePeers counts other members that are alive.
func (n *Node) livePeers() int {
	c := 0
	for _, m := range n.Members() {
		if m.Name != n.cfg.Name && m.Status == StatusAlive {
			c++
		}
	}
	return c
}

// mergeGuard refuses to merge state in which a known name comes with a
// different node ID: two nodes claiming one name must not both be members.
type mergeGuard struct{ n *Node }

func (g mergeGuard) NotifyMerge(members []*serf.Member) error {
	known := make(map[string]Member)
	s := g.n.currentSerf()
	if s == nil {
		return nil
	}
	// Not Members(): memberlist calls this with its node lock held.
	for _, m := range g.n.serfMembers(s) {
		known[m.Name] = m
	}
	for _, m := range members {
		id, ok := m.Tags[TagID]
		if !ok {
			continue // not an orch agent; shown, never trusted
		}
		if m.Name == g.n.cfg.Name && id != g.n.cfg.ID {
			return fmt.Errorf("member %q with node ID %s claims this node's name", m.Name, id)
		}
		if k, ok := known[m.Name]; ok && k.ID != "" && k.ID != id && k.Status == StatusAlive {
			return fmt.Errorf("member %q with node ID %s conflicts with alive node ID %s", m.Name, id, k.ID)
		}
	}
	return nil
}

func withDefaultPorts(addrs []string) []string {
	out := make([]string, len(addrs))
	for i, a := range addrs {
		out[i] = withDefaultPort(a)
	}
	return out
}

// withDefaultPort adds the gossip port to an address given without one.
func withDefaultPort(a string) string {
	if _, _, err := net.SplitHostPort(a); err == nil {
		return a
	}
	return net.JoinHostPort(a, strconv.Itoa(DefaultPort))
}

func cloneTags(t map[string]string) map[string]string {
	c := make(map[string]string, len(t))
	for k, v := range t {
		c[k] = v
	}
	return c
}

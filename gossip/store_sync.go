package gossip

// How store entries travel.
//
// Deltas: a local write is spread at once. If its encoding fits in a gossip
// packet it rides a serf user event (encrypted with the gossip keyring like
// all gossip); if not (a large service spec), it is pushed to every live
// orch member over an orch stream (StreamPush). Both are best effort; user
// events are numbered so that a member notices one it missed and syncs at
// once (delivery.go).
//
// Anti-entropy repairs the rest. A member syncs with every member that
// joins (so a new or returning node, or the other side of a healed
// partition, converges within one exchange) and with one random live member
// every SyncInterval. A sync is three messages over an orch stream
// (StreamSync): the initiator's digest (id → version), the answer with the
// entries the initiator lacks plus the ids the answerer wants, and those
// entries. Messages are gzip-compressed JSON.
//
// Both stream types run over mutual TLS 1.3 in which each side presents the
// cluster identity certificate and accepts only a peer presenting the same
// one: only holders of the cluster's private key, that is members, can read
// or write the store.

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/serf/serf"
)

const (
	// StreamSync is an anti-entropy exchange.
	StreamSync StreamType = 2
	// StreamPush carries entries too large for a gossip packet.
	StreamPush StreamType = 3

	// userEventStore names the serf user events that carry store deltas.
	userEventStore = "o.st"
	// userEventHeadroom is what serf, memberlist's encryption, label and
	// compound framing add around a user event's payload.
	userEventHeadroom = 400
	// syncTimeout bounds one sync or push exchange.
	syncTimeout = 30 * time.Second
	// maxSyncFrame bounds one compressed message; maxSyncPlain its content.
	maxSyncFrame = 64 << 20
	maxSyncPlain = 512 << 20
	// syncReqBuf holds sync requests from member joins; when full, a
	// request is dropped and the periodic sync covers it.
	syncReqBuf = 64
	// pushQueueBuf holds large deltas waiting to be pushed; when full, a
	// delta is dropped and anti-entropy covers it.
	pushQueueBuf = 64
	// collectInterval is how often tombstones past their TTL are removed.
	collectInterval = time.Minute
)

type syncDigest struct {
	Digest map[string]Version `json:"digest"`
}

type syncAnswer struct {
	Entries []Entry  `json:"entries"`
	Want    []string `json:"want"`
}

type syncEntries struct {
	Entries []Entry `json:"entries"`
}

// Store returns the node's replicated store.
func (n *Node) Store() *Store { return n.store }

// spread sends locally written entries to the other members.
func (n *Node) spread(es []Entry) {
	s := n.currentSerf()
	if s == nil {
		return // not gossiping yet: the first sync carries it
	}
	raw, err := json.Marshal(es)
	if err != nil {
		n.log.Error("encode store delta", "err", err)
		return
	}
	if len(raw)+deltaFraming(n.cfg.Name) <= n.userEventLimit() {
		epoch, seq := n.deltas.next()
		n.sendDelta(s, deltaOut{Writer: n.cfg.Name, Epoch: epoch, Seq: seq, Entries: raw})
		return
	}
	select {
	case n.pushQ <- es:
	default:
		n.log.Warn("push queue full; anti-entropy will carry the entries", "entries", len(es))
	}
}

// deltaFraming bounds what a deltaOut adds around its entries: the keys
// and punctuation, the writer's quoted name and two numbers of at most 20
// digits.
func deltaFraming(writer string) int {
	q, _ := json.Marshal(writer)
	return len(`{"w":,"ep":,"s":,"e":}`) + len(q) + 2*20
}

// deltaOut is a deltaMsg as sent: the entries already encoded.
type deltaOut struct {
	Writer  string          `json:"w"`
	Epoch   int64           `json:"ep"`
	Seq     uint64          `json:"s"`
	Entries json.RawMessage `json:"e,omitempty"`
}

// sendHeartbeat gossips this node's latest delta number.
func (n *Node) sendHeartbeat(epoch int64, seq uint64) {
	if s := n.currentSerf(); s != nil {
		n.sendDelta(s, deltaOut{Writer: n.cfg.Name, Epoch: epoch, Seq: seq})
	}
}

// sendDelta gossips a numbered delta or heartbeat.
func (n *Node) sendDelta(s *serf.Serf, m deltaOut) {
	payload, err := json.Marshal(m)
	if err != nil {
		n.log.Error("encode store delta", "err", err)
		return
	}
	if err := s.UserEvent(userEventDelta, payload, false); err != nil {
		n.log.Warn("gossip store delta", "err", err)
	}
}

func (n *Node) userEventLimit() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.ueLimit
}

// runPusher pushes large deltas to every live orch member, one delta at a
// time, until ctx ends.
func (n *Node) runPusher(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case es := <-n.pushQ:
			for _, m := range n.Members() {
				if m.Name == n.cfg.Name || !m.Orch || m.Status != StatusAlive {
					continue
				}
				if err := n.push(ctx, m.Addr.String(), es); err != nil {
					n.log.Warn("push store entries", "peer", m.Name, "err", err)
				}
			}
		}
	}
}

// runSync serves sync requests from member joins and syncs with a random
// live member every interval, until ctx ends.
func (n *Node) runSync(ctx context.Context) {
	interval := n.cfg.SyncInterval
	if interval <= 0 {
		interval = DefaultSyncInterval
	}
	// Jitter keeps a cluster started at once from syncing in lockstep.
	next := func() time.Duration { return interval/2 + rand.N(interval) }
	timer := time.NewTimer(next())
	defer timer.Stop()
	collect := time.NewTicker(collectInterval)
	defer collect.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-collect.C:
			if k := n.store.collect(); k > 0 {
				n.log.Debug("collected tombstones", "count", k)
			}
		case m := <-n.syncReq:
			n.syncLogged(ctx, m)
		case <-timer.C:
			var peers []Member
			for _, m := range n.Members() {
				if m.Name != n.cfg.Name && m.Orch && m.Status == StatusAlive {
					peers = append(peers, m)
				}
			}
			if len(peers) > 0 {
				n.syncLogged(ctx, peers[rand.N(len(peers))])
			}
			timer.Reset(next())
		}
	}
}

func (n *Node) syncLogged(ctx context.Context, m Member) {
	start := time.Now()
	got, sent, err := n.syncWith(ctx, m.Addr.String())
	n.syncStats.record(time.Since(start), err)
	if err == nil {
		n.synced.Store(true)
	}
	if err != nil {
		if ctx.Err() == nil {
			n.log.Warn("store sync failed", "peer", m.Name, "err", err)
		}
		return
	}
	n.log.Debug("store sync", "peer", m.Name, "received", got, "sent", sent, "took", time.Since(start))
}

// requestSync asks the syncer to sync with m soon; it never blocks.
func (n *Node) requestSync(m Member) {
	select {
	case n.syncReq <- m:
	default:
	}
}

// syncWith runs the initiator's side of an anti-entropy exchange and
// returns how many entries it received and sent.
func (n *Node) syncWith(ctx context.Context, addr string) (received, sent int, err error) {
	conn, err := n.dialTLS(ctx, addr, StreamSync)
	if err != nil {
		return 0, 0, err
	}
	defer conn.Close()
	if err := writeGzFrame(conn, syncDigest{Digest: n.store.digest()}); err != nil {
		return 0, 0, fmt.Errorf("send digest: %w", err)
	}
	var ans syncAnswer
	if err := readGzFrame(conn, &ans); err != nil {
		return 0, 0, fmt.Errorf("read answer: %w", err)
	}
	n.store.merge(ans.Entries)
	back := n.store.lookup(ans.Want)
	if err := writeGzFrame(conn, syncEntries{Entries: back}); err != nil {
		return len(ans.Entries), 0, fmt.Errorf("send entries: %w", err)
	}
	return len(ans.Entries), len(back), nil
}

// push sends entries to one member.
func (n *Node) push(ctx context.Context, addr string, es []Entry) error {
	conn, err := n.dialTLS(ctx, addr, StreamPush)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := writeGzFrame(conn, syncEntries{Entries: es}); err != nil {
		return err
	}
	// Wait for the peer to close, so the entries are applied when push
	// returns (tests and `apply --wait` rely on that ordering).
	_, _ = io.Copy(io.Discard, conn)
	return nil
}

// serveSync answers an anti-entropy exchange.
func (n *Node) serveSync(raw net.Conn) {
	conn, err := n.acceptTLS(raw)
	if err != nil {
		n.refused.streams.Add(1)
		n.log.Warn("refused store sync", "remote", raw.RemoteAddr().String(), "err", err)
		return
	}
	defer conn.Close()
	var d syncDigest
	if err := readGzFrame(conn, &d); err != nil {
		n.log.Warn("read sync digest", "remote", raw.RemoteAddr().String(), "err", err)
		return
	}
	send, want := n.store.diff(d.Digest)
	if err := writeGzFrame(conn, syncAnswer{Entries: send, Want: want}); err != nil {
		n.log.Warn("send sync answer", "remote", raw.RemoteAddr().String(), "err", err)
		return
	}
	var back syncEntries
	if err := readGzFrame(conn, &back); err != nil {
		n.log.Warn("read sync entries", "remote", raw.RemoteAddr().String(), "err", err)
		return
	}
	n.store.merge(back.Entries)
	n.synced.Store(true)
}

// servePush applies pushed entries.
func (n *Node) servePush(raw net.Conn) {
	conn, err := n.acceptTLS(raw)
	if err != nil {
		n.refused.streams.Add(1)
		n.log.Warn("refused store push", "remote", raw.RemoteAddr().String(), "err", err)
		return
	}
	defer conn.Close()
	var es syncEntries
	if err := readGzFrame(conn, &es); err != nil {
		n.log.Warn("read pushed entries", "remote", raw.RemoteAddr().String(), "err", err)
		return
	}
	n.store.merge(es.Entries)
}

// clusterTLS is the mutual TLS configuration for member-to-member streams.
func (n *Node) clusterTLS() (*tls.Config, error) {
	sec := n.currentSecrets()
	if sec == nil {
		return nil, ErrNotRunning
	}
	cert, err := sec.tlsCertificate()
	if err != nil {
		return nil, err
	}
	pin, err := sec.Fingerprint()
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAnyClientCert,
		// Pinned by fingerprint in verify; there is no CA chain to check.
		InsecureSkipVerify:    true,
		VerifyPeerCertificate: pinnedIdentity(pin),
	}, nil
}

func (n *Node) dialTLS(ctx context.Context, addr string, st StreamType) (*tls.Conn, error) {
	cfg, err := n.clusterTLS()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, syncTimeout)
	defer cancel()
	raw, err := dialStream(ctx, addr, st)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", addr, err)
	}
	_ = raw.SetDeadline(time.Now().Add(syncTimeout))
	conn := tls.Client(raw, cfg)
	if err := conn.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, fmt.Errorf("tls handshake with %s: %w", addr, err)
	}
	return conn, nil
}

func (n *Node) acceptTLS(raw net.Conn) (*tls.Conn, error) {
	cfg, err := n.clusterTLS()
	if err != nil {
		raw.Close()
		return nil, err
	}
	_ = raw.SetDeadline(time.Now().Add(syncTimeout))
	conn := tls.Server(raw, cfg)
	if err := conn.Handshake(); err != nil {
		raw.Close()
		return nil, err
	}
	return conn, nil
}

// writeGzFrame writes v as length-prefixed gzip-compressed JSON.
func writeGzFrame(w io.Writer, v any) error {
	var buf bytes.Buffer
	buf.Write(make([]byte, 4))
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	if err := json.NewEncoder(zw).Encode(v); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	b := buf.Bytes()
	if len(b)-4 > maxSyncFrame {
		return fmt.Errorf("message of %d bytes exceeds %d", len(b)-4, maxSyncFrame)
	}
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	_, err := w.Write(b)
	return err
}

// readGzFrame reads a message written by writeGzFrame.
func readGzFrame(r io.Reader, v any) error {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return err
	}
	size := binary.BigEndian.Uint32(hdr[:])
	if size > maxSyncFrame {
		return fmt.Errorf("message of %d bytes exceeds %d", size, maxSyncFrame)
	}
	// Read the whole frame first: the decoder may stop before gzip's
	// trailer, which must not be left for the next frame.
	frame := make([]byte, size)
	if _, err := io.ReadFull(r, frame); err != nil {
		return err
	}
	zr, err := gzip.NewReader(bytes.NewReader(frame))
	if err != nil {
		return err
	}
	dec := json.NewDecoder(io.LimitReader(zr, maxSyncPlain))
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data in message")
	}
	return nil
}

// syncCounters counts anti-entropy syncs this node started, for metrics.
type syncCounters struct {
	mu       sync.Mutex
	ok, fail uint64
	seconds  float64
}

func (c *syncCounters) record(d time.Duration, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.fail++
		return
	}
	c.ok++
	c.seconds += d.Seconds()
}

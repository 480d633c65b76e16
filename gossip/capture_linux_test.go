//go:build linux

package gossip

// Helpers of TestNode_ReplayedGossip: a tap on the nodes' logs, an
// AF_PACKET recorder of the traffic to one port on lo, and the decoding of
// memberlist's encrypted packets and streams.

import (
	"bytes"
	"compress/lzw"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/memberlist"
)

// logTap keeps the log messages of every node of a test, in order.
type logTap struct {
	mu    sync.Mutex
	lines []tapLine
}

type tapLine struct{ node, msg string }

// mark is the position of the next message.
func (l *logTap) mark() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.lines)
}

// since returns every node's messages from mark on.
func (l *logTap) since(mark int) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]string, 0, len(l.lines)-mark)
	for _, ln := range l.lines[mark:] {
		out = append(out, ln.node+": "+ln.msg)
	}
	return out
}

func (l *logTap) dump() string { return strings.Join(l.since(0), "\n") }

// tapHandler is a slog.Handler writing info and above into a logTap.
type tapHandler struct {
	tap  *logTap
	node string
}

func (h tapHandler) Enabled(_ context.Context, lv slog.Level) bool { return lv >= slog.LevelInfo }

func (h tapHandler) Handle(_ context.Context, r slog.Record) error {
	msg := r.Message
	r.Attrs(func(a slog.Attr) bool {
		msg += " " + a.String()
		return true
	})
	h.tap.mu.Lock()
	h.tap.lines = append(h.tap.lines, tapLine{h.node, msg})
	h.tap.mu.Unlock()
	return nil
}

func (h tapHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h tapHandler) WithGroup(string) slog.Handler      { return h }

// capItem is one recorded datagram, or the client side of one TCP stream.
type capItem struct {
	udp    []byte
	stream []byte
}

// loCapture records what arrives at one address on lo, with an AF_PACKET
// socket: each UDP datagram, and each TCP stream opened while it runs,
// reassembled by sequence number.
type loCapture struct {
	fd   int
	dst  netip.AddrPort
	quit atomic.Bool
	done chan struct{}

	// owned by the reading goroutine until done is closed
	items      []*capEntry
	open       map[netip.AddrPort]*capEntry
	incomplete int
}

// capEntry is a recorded datagram or a stream being reassembled.
type capEntry struct {
	udp  []byte
	isn  uint32
	segs map[uint32][]byte // stream bytes by offset
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// startCapture starts recording what arrives at dst (on 127.0.0.1).
func startCapture(t *testing.T, dst netip.AddrPort) *loCapture {
	t.Helper()
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Skipf("no loopback interface to record on: %v", err)
	}
	fd, err := syscall.Socket(syscall.AF_PACKET, syscall.SOCK_DGRAM, int(htons(syscall.ETH_P_IP)))
	if err != nil {
		t.Skipf("cannot open an AF_PACKET socket (needs CAP_NET_RAW): %v", err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrLinklayer{Protocol: htons(syscall.ETH_P_IP), Ifindex: lo.Index}); err != nil {
		syscall.Close(fd)
		t.Fatalf("bind the capture socket to lo: %v", err)
	}
	// Room for bursts while the reader is descheduled, and a read
	// timeout so that it notices stop.
	_ = syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_RCVBUFFORCE, 32<<20)
	if err := syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &syscall.Timeval{Usec: 100_000}); err != nil {
		syscall.Close(fd)
		t.Fatal(err)
	}
	c := &loCapture{fd: fd, dst: dst, done: make(chan struct{}), open: map[netip.AddrPort]*capEntry{}}
	go c.read()
	t.Cleanup(func() { c.quit.Store(true); <-c.done })
	return c
}

func (c *loCapture) read() {
	defer close(c.done)
	defer syscall.Close(c.fd)
	buf := make([]byte, 1<<17)
	for !c.quit.Load() {
		n, from, err := syscall.Recvfrom(c.fd, buf, 0)
		if err != nil {
			continue // the read timeout (EAGAIN) or EINTR
		}
		// On lo every packet passes twice, going out and coming in.
		if ll, ok := from.(*syscall.SockaddrLinklayer); !ok || ll.Pkttype != syscall.PACKET_HOST {
			continue
		}
		c.packet(buf[:n])
	}
}

// packet records one IPv4 packet if it goes to dst.
func (c *loCapture) packet(p []byte) {
	if len(p) < 20 || p[0]>>4 != 4 {
		return
	}
	ihl := int(p[0]&0xf) * 4
	if total := int(binary.BigEndian.Uint16(p[2:4])); total >= ihl && total < len(p) {
		p = p[:total]
	}
	if len(p) < ihl+20 || netip.AddrFrom4([4]byte(p[16:20])) != c.dst.Addr() {
		return
	}
	src := netip.AddrFrom4([4]byte(p[12:16]))
	l4 := p[ihl:]
	if binary.BigEndian.Uint16(l4[2:4]) != c.dst.Port() {
		return
	}
	from := netip.AddrPortFrom(src, binary.BigEndian.Uint16(l4[0:2]))
	switch p[9] {
	case syscall.IPPROTO_UDP:
		if n := int(binary.BigEndian.Uint16(l4[4:6])); n > 8 && n <= len(l4) {
			c.items = append(c.items, &capEntry{udp: slices.Clone(l4[8:n])})
		}
	case syscall.IPPROTO_TCP:
		const syn, ack = 0x02, 0x10
		seq := binary.BigEndian.Uint32(l4[4:8])
		off := int(l4[12]>>4) * 4
		if off < 20 || off > len(l4) {
			return
		}
		if l4[13]&(syn|ack) == syn {
			s := &capEntry{isn: seq, segs: map[uint32][]byte{}}
			c.open[from] = s
			c.items = append(c.items, s)
			return
		}
		if s := c.open[from]; s != nil && off < len(l4) {
			at := seq - s.isn - 1
			if len(l4)-off > len(s.segs[at]) {
				s.segs[at] = slices.Clone(l4[off:])
			}
		}
	}
}

// stop ends the recording and returns the datagrams and the complete
// streams, in the order they began.
func (c *loCapture) stop(t *testing.T) []capItem {
	t.Helper()
	c.quit.Store(true)
	<-c.done
	var out []capItem
	for _, it := range c.items {
		if it.segs == nil {
			out = append(out, capItem{udp: it.udp})
			continue
		}
		offs := slices.Sorted(maps.Keys(it.segs))
		var b []byte
		ok := true
		for _, o := range offs {
			seg := it.segs[o]
			switch {
			case int(o) > len(b):
				ok = false // a segment the capture missed
			case int(o)+len(seg) > len(b):
				b = append(b, seg[len(b)-int(o):]...)
			}
		}
		switch {
		case !ok:
			c.incomplete++
		case len(b) > 0:
			out = append(out, capItem{stream: b})
		}
	}
	return out
}

// openPacket decrypts a recorded memberlist datagram with key: the label
// header, then version 1 (no padding), a 12-byte nonce and AES-GCM with
// the label as additional data.
func openPacket(pkt []byte, label string, key []byte) ([]byte, bool) {
	buf, l, err := memberlist.RemoveLabelHeaderFromPacket(pkt)
	if err != nil || l != label || len(buf) < 1+12+16 || buf[0] != 1 {
		return nil, false
	}
	return gcmOpen(key, buf[1:13], buf[13:], []byte(label))
}

func gcmOpen(key, nonce, ct, ad []byte) ([]byte, bool) {
	blk, err := aes.NewCipher(key)
	if err != nil {
		return nil, false
	}
	gcm, err := cipher.NewGCM(blk)
	if err != nil {
		return nil, false
	}
	plain, err := gcm.Open(nil, nonce, ct, ad)
	return plain, err == nil
}

// packetKey is the index of the key that opens a recorded datagram, or -1.
func packetKey(pkt []byte, label string, keys [][]byte) int {
	for i, k := range keys {
		if _, ok := openPacket(pkt, label, k); ok {
			return i
		}
	}
	return -1
}

// streamKey is the index of the key that opens the first message of a
// recorded memberlist stream, or -1: after the label header, an
// encrypted message is its type (10), a 4-byte length and the ciphertext,
// whose additional data is those 5 bytes and the label.
func streamKey(b []byte, label string, keys [][]byte) int {
	const hasLabel, encrypt = 244, 10
	if len(b) < 2 || b[0] != hasLabel || len(b) < 2+int(b[1]) || string(b[2:2+int(b[1])]) != label {
		return -1
	}
	b = b[2+int(b[1]):]
	if len(b) < 5 || b[0] != encrypt {
		return -1
	}
	n := int(binary.BigEndian.Uint32(b[1:5]))
	if len(b) < 5+n || n < 1+12+16 {
		return -1
	}
	ct := b[5 : 5+n]
	ad := append(slices.Clone(b[:5]), label...)
	for i, k := range keys {
		if _, ok := gcmOpen(k, ct[1:13], ct[13:], ad); ok {
			return i
		}
	}
	return -1
}

// flattenGossip undoes memberlist's framing of a decrypted datagram (a
// checksum, LZW compression, compound messages) and returns the messages
// concatenated, for searching.
func flattenGossip(b []byte) []byte {
	const compound, compress, hasCRC = 7, 9, 12
	if len(b) >= 5 && b[0] == hasCRC {
		b = b[5:]
	}
	if len(b) == 0 {
		return nil
	}
	switch b[0] {
	case compress:
		var c struct {
			Algo int
			Buf  []byte
		}
		if err := codec.NewDecoderBytes(b[1:], &codec.MsgpackHandle{}).Decode(&c); err != nil || c.Algo != 0 {
			return b
		}
		out, err := io.ReadAll(lzw.NewReader(bytes.NewReader(c.Buf), lzw.LSB, 8))
		if err != nil {
			return b
		}
		return flattenGossip(out)
	case compound:
		if len(b) < 2 {
			return b
		}
		k := int(b[1])
		if len(b) < 2+2*k {
			return b
		}
		rest := b[2+2*k:]
		var out []byte
		for i := range k {
			n := int(binary.BigEndian.Uint16(b[2+2*i:]))
			if n > len(rest) {
				break
			}
			out = append(out, flattenGossip(rest[:n])...)
			rest = rest[n:]
		}
		return out
	}
	return b
}

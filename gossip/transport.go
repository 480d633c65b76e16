package gossip

// The gossip port carries three kinds of traffic: memberlist's UDP packets,
// memberlist's TCP streams (push/pull, fallback probes), and orch's own TCP
// streams (the token join handshake now, bulk state sync later). One port is
// easier to run than two, so the transport owns the sockets and sorts
// incoming TCP connections by their first byte: memberlist streams start with
// a message type below 32 or with its label marker (244), orch streams with
// streamMagic followed by a stream type byte.
//
// The sockets outlive any one memberlist instance: when an agent that is
// still alone adopts another cluster's secrets, memberlist is recreated on
// the same sockets (see [muxTransport.attach]).

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// streamMagic opens every orch stream on the gossip port. memberlist's own
// stream messages begin with a message type (0–13) or its label marker (244).
const streamMagic byte = 0xE7

// StreamType names the protocol an orch stream speaks after the magic byte.
type StreamType byte

const (
	// StreamJoin is the token join handshake (TLS, pinned cluster identity).
	StreamJoin StreamType = 1
)

const (
	// udpPacketBufSize is the largest UDP datagram memberlist may send us.
	udpPacketBufSize = 65536
	// packetChBuf absorbs bursts of gossip while memberlist's packet handler
	// is busy; memberlist's own NetTransport does not buffer at all.
	packetChBuf = 256
	// peekTimeout bounds how long a TCP peer may take to send its first
	// byte, so junk connections cannot pin goroutines.
	peekTimeout = 10 * time.Second
)

// StreamHandler serves an orch stream. It owns conn and must close it.
type StreamHandler func(conn net.Conn)

// muxTransport implements memberlist.NodeAwareTransport over sockets it owns.
type muxTransport struct {
	tcp *net.TCPListener
	udp *net.UDPConn

	mu       sync.Mutex
	handlers map[StreamType]StreamHandler
	view     *transportView // the memberlist instance currently attached, or nil

	closed    atomic.Bool
	wg        sync.WaitGroup
	junkConns atomic.Uint64
	// Gossip traffic over UDP, for metrics.
	udpInPackets, udpInBytes, udpOutPackets, udpOutBytes atomic.Uint64

	// heard is when a UDP packet last came from each address: a node that
	// hears nothing from a peer (not even the acks of its own probes)
	// suspects it. started stands in for addresses never heard.
	heardMu  sync.Mutex
	heard    map[netip.AddrPort]time.Time
	heardAny time.Time // the last packet from anyone
	started  time.Time
}

// listenMux binds TCP and UDP on the same address. Port 0 picks a free port
// for both (tried a few times, since UDP may already hold the TCP port).
func listenMux(bind netip.AddrPort) (*muxTransport, error) {
	var lastErr error
	for range 10 {
		tcp, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(bind))
		if err != nil {
			return nil, fmt.Errorf("listen tcp %s: %w", bind, err)
		}
		port := tcp.Addr().(*net.TCPAddr).Port
		udp, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(bind.Addr(), uint16(port))))
		if err != nil {
			tcp.Close()
			lastErr = fmt.Errorf("listen udp %s: %w", netip.AddrPortFrom(bind.Addr(), uint16(port)), err)
			if bind.Port() != 0 {
				return nil, lastErr
			}
			continue
		}
		// A large receive buffer keeps gossip bursts from being dropped by
		// the kernel while memberlist is busy (memberlist does the same).
		_ = udp.SetReadBuffer(2 << 20)
		t := &muxTransport{tcp: tcp, udp: udp, handlers: make(map[StreamType]StreamHandler), heard: map[netip.AddrPort]time.Time{}, started: time.Now()}
		t.wg.Add(2)
		go t.acceptLoop()
		go t.udpLoop()
		return t, nil
	}
	return nil, lastErr
}

// Addr is the bound address (TCP and UDP share it).
func (t *muxTransport) Addr() netip.AddrPort {
	return t.tcp.Addr().(*net.TCPAddr).AddrPort()
}

// Handle registers the handler for an orch stream type.
func (t *muxTransport) Handle(st StreamType, h StreamHandler) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.handlers[st] = h
}

// JunkConns counts TCP connections dropped because they spoke neither
// memberlist nor an orch stream.
func (t *muxTransport) JunkConns() uint64 { return t.junkConns.Load() }

// lastHeardAny is when the last UDP packet came from anyone; the
// transport's start if never.
func (t *muxTransport) lastHeardAny() time.Time {
	t.heardMu.Lock()
	defer t.heardMu.Unlock()
	if t.heardAny.After(t.started) {
		return t.heardAny
	}
	return t.started
}

// lastHeard is when a UDP packet last came from ap; the transport's start
// if never.
func (t *muxTransport) lastHeard(ap netip.AddrPort) time.Time {
	t.heardMu.Lock()
	defer t.heardMu.Unlock()
	if h, ok := t.heard[ap]; ok {
		return h
	}
	return t.started
}

// Close stops both sockets and waits for the loops to exit. Idempotent.
func (t *muxTransport) Close() error {
	if t.closed.Swap(true) {
		return nil
	}
	err := errors.Join(t.tcp.Close(), t.udp.Close())
	t.wg.Wait()
	return err
}

// attach returns a fresh memberlist-facing view; packets and streams go to
// the most recently attached view only.
func (t *muxTransport) attach(advertise netip.Addr) *transportView {
	v := &transportView{
		mux:       t,
		advertise: advertise,
		packetCh:  make(chan *memberlist.Packet, packetChBuf),
		streamCh:  make(chan net.Conn),
		done:      make(chan struct{}),
	}
	t.mu.Lock()
	t.view = v
	t.mu.Unlock()
	return v
}

func (t *muxTransport) currentView() *transportView {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.view
}

func (t *muxTransport) detach(v *transportView) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.view == v {
		t.view = nil
	}
}

func (t *muxTransport) acceptLoop() {
	defer t.wg.Done()
	var delay time.Duration
	for {
		conn, err := t.tcp.Accept()
		if err != nil {
			if t.closed.Load() {
				return
			}
			// Temporary failures (EMFILE and friends): back off like
			// net/http does instead of spinning.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			time.Sleep(delay)
			continue
		}
		delay = 0
		t.wg.Go(func() { t.route(conn) })
	}
}

// route peeks at a connection's first byte and hands it to memberlist or to
// an orch stream handler.
func (t *muxTransport) route(conn net.Conn) {
	_ = conn.SetReadDeadline(time.Now().Add(peekTimeout))
	br := bufio.NewReader(conn)
	first, err := br.Peek(1)
	if err != nil {
		t.junkConns.Add(1)
		conn.Close()
		return
	}
	if first[0] != streamMagic {
		_ = conn.SetReadDeadline(time.Time{})
		v := t.currentView()
		if v == nil {
			conn.Close()
			return
		}
		select {
		case v.streamCh <- &peekedConn{Conn: conn, r: br}:
		case <-v.done:
			conn.Close()
		}
		return
	}
	hdr := make([]byte, 2)
	if _, err := io.ReadFull(br, hdr); err != nil {
		t.junkConns.Add(1)
		conn.Close()
		return
	}
	t.mu.Lock()
	h := t.handlers[StreamType(hdr[1])]
	t.mu.Unlock()
	if h == nil {
		t.junkConns.Add(1)
		conn.Close()
		return
	}
	_ = conn.SetReadDeadline(time.Time{})
	h(&peekedConn{Conn: conn, r: br})
}

func (t *muxTransport) udpLoop() {
	defer t.wg.Done()
	for {
		buf := make([]byte, udpPacketBufSize)
		n, addr, err := t.udp.ReadFrom(buf)
		ts := time.Now()
		if err != nil {
			if t.closed.Load() {
				return
			}
			continue
		}
		// memberlist itself rejects empty packets with a log line; drop them here.
		if n < 1 {
			continue
		}
		t.udpInPackets.Add(1)
		t.udpInBytes.Add(uint64(n))
		if ua, ok := addr.(*net.UDPAddr); ok {
			ap := ua.AddrPort()
			t.heardMu.Lock()
			t.heard[netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())] = ts
			t.heardAny = ts
			t.heardMu.Unlock()
		}
		v := t.currentView()
		if v == nil {
			continue
		}
		select {
		case v.packetCh <- &memberlist.Packet{Buf: buf[:n], From: addr, Timestamp: ts}:
		case <-v.done:
		}
	}
}

// dialStream opens an orch stream of the given type to addr.
func dialStream(ctx context.Context, addr string, st StreamType) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetWriteDeadline(dl)
	}
	if _, err := conn.Write([]byte{streamMagic, byte(st)}); err != nil {
		conn.Close()
		return nil, err
	}
	_ = conn.SetWriteDeadline(time.Time{})
	return conn, nil
}

// transportView is what one memberlist instance sees of the mux.
type transportView struct {
	mux       *muxTransport
	advertise netip.Addr
	packetCh  chan *memberlist.Packet
	streamCh  chan net.Conn
	done      chan struct{}
	once      sync.Once
}

var _ memberlist.NodeAwareTransport = (*transportView)(nil)

func (v *transportView) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	if ip != "" {
		a := net.ParseIP(ip)
		if a == nil {
			return nil, 0, fmt.Errorf("parse advertise address %q", ip)
		}
		return a, port, nil
	}
	return v.advertise.AsSlice(), int(v.mux.Addr().Port()), nil
}

func (v *transportView) WriteTo(b []byte, addr string) (time.Time, error) {
	ap, err := resolveUDP(addr)
	if err != nil {
		return time.Time{}, err
	}
	n, err := v.mux.udp.WriteToUDPAddrPort(b, ap)
	if err == nil {
		v.mux.udpOutPackets.Add(1)
		v.mux.udpOutBytes.Add(uint64(n))
	}
	return time.Now(), err
}

func (v *transportView) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	return v.WriteTo(b, a.Addr)
}

func (v *transportView) PacketCh() <-chan *memberlist.Packet { return v.packetCh }

func (v *transportView) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return net.DialTimeout("tcp", addr, timeout)
}

func (v *transportView) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	return v.DialTimeout(a.Addr, timeout)
}

func (v *transportView) StreamCh() <-chan net.Conn { return v.streamCh }

// Shutdown detaches this view; the sockets stay open for the next one.
func (v *transportView) Shutdown() error {
	v.once.Do(func() {
		close(v.done)
		v.mux.detach(v)
	})
	return nil
}

func resolveUDP(addr string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(addr); err == nil {
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("parse address %q: %w", addr, err)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("parse port in %q: %w", addr, err)
	}
	ua, err := net.ResolveUDPAddr("udp", net.JoinHostPort(host, port))
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("resolve %q: %w", addr, err)
	}
	ip, _ := netip.AddrFromSlice(ua.IP)
	return netip.AddrPortFrom(ip.Unmap(), uint16(p)), nil
}

// peekedConn replays the bytes the router already buffered.
type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *peekedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

package dnsdisc

// Listeners. miekg/dns's own Server starts a goroutine per UDP packet and
// sets a read deadline before every read; at tens of thousands of queries
// a second both show up in profiles. Here each UDP socket has one
// long-lived reader with its own buffers: read, parse, answer from the
// zone, pack into the buffer, write, with no goroutine and no allocation
// beyond parsing and the reply itself. On Linux it reads and writes up to
// udpBatch datagrams per system call (recvmmsg, sendmmsg): under load the
// system calls, not the answering, are most of the cost (pprof at 50,000
// queries/s: three quarters in sendto and recvfrom, the handler under a
// tenth). Only a query that must be forwarded leaves the reader, for a
// goroutine of its own (at most maxForwards at a time), so a slow
// upstream never stalls local answers.
// TCP has one goroutine per connection (at most maxTCPConns), which serves
// its queries in order, forwarding inline.

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// listener is one address the server answers on: a UDP and a TCP socket.
type listener struct {
	asked netip.AddrPort // as passed to Listen (port may be 0)
	addr  netip.AddrPort // as bound
	udp   *net.UDPConn
	tcp   *net.TCPListener

	wg     sync.WaitGroup // the UDP reader, the accept loop, connections
	nconns atomic.Int32

	mu     sync.Mutex // guards conns and closed
	conns  map[net.Conn]struct{}
	closed bool
}

// start runs the listener's goroutines: one UDP reader and the TCP
// accept loop. One reader: reads of a socket are serialised by the
// runtime anyway, and a second reader only adds lock hand-offs between
// them (measured: 30% more CPU per query at 50,000 queries/s). One core
// answers well over 100,000 queries a second; if that is ever too few,
// the way up is more sockets (SO_REUSEPORT), not more readers.
func (l *listener) start(s *Server) {
	l.wg.Go(func() { s.serveUDP(l) })
	l.wg.Go(func() { s.serveTCP(l) })
}

// close closes the sockets and every open TCP connection, then waits for
// the listener's goroutines.
func (l *listener) close() error {
	l.mu.Lock()
	l.closed = true
	for c := range l.conns {
		c.Close()
	}
	l.mu.Unlock()
	err := errors.Join(l.udp.Close(), l.tcp.Close())
	l.wg.Wait()
	return err
}

// maxPacket is the buffer size for one DNS message: the largest a TCP
// length prefix allows, and more than any UDP datagram we accept.
const maxPacket = dns.MaxMsgSize

// serveUDP is the reader of l's UDP socket; it returns when the socket
// is closed. It reads in batches where the platform allows (see
// batch_linux.go), one datagram at a time elsewhere.
func (s *Server) serveUDP(l *listener) {
	if !s.noBatch && s.serveUDPBatch(l) {
		return
	}
	in := make([]byte, maxUDPQuery)
	out := make([]byte, maxPacket)
	for {
		n, from, err := l.udp.ReadFromUDPAddrPort(in)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.readError(l, err)
			continue
		}
		if reply := s.handlePacket(l, in[:n], from, out); reply != nil {
			if _, err := l.udp.WriteToUDPAddrPort(reply, from); err != nil {
				s.log.Debug("write udp", "client", from.String(), "err", err)
			}
		}
	}
}

// maxUDPQuery is the largest UDP query read; a longer datagram is cut
// and fails to parse. Queries are a question and perhaps an OPT record:
// tens of bytes; 4096 leaves room for any EDNS options.
const maxUDPQuery = 4096

// readError logs a failed read of a UDP socket that is not closed.
// Nothing a client sends makes reads fail; it waits a little, so that a
// persistent error cannot spin.
func (s *Server) readError(l *listener, err error) {
	s.log.Warn("read udp", "addr", l.addr.String(), "err", err)
	time.Sleep(10 * time.Millisecond)
}

// handlePacket answers one UDP datagram pkt from from and returns the
// reply to send, packed into out if it fits, or nil when there is nothing
// to send now: the packet is dropped, or it is forwarded and answered
// later by a goroutine of its own.
func (s *Server) handlePacket(l *listener, pkt []byte, from netip.AddrPort, out []byte) []byte {
	req := new(dns.Msg)
	if err := req.Unpack(pkt); err != nil {
		s.stats.malformed.Add(1)
		fe := formErr(pkt)
		if fe != nil {
			s.stats.response(dns.RcodeFormatError)
		}
		return fe
	}
	reply, act := s.answer(req, from.Addr().Unmap())
	switch act {
	case actDrop:
		return nil
	case actForward:
		s.forwardUDP(l, req, from)
		return nil
	}
	s.finish(req, reply, true)
	b, err := reply.PackBuffer(out)
	if err != nil {
		s.log.Debug("pack answer", "err", err)
		return nil
	}
	return b
}

// forwardUDP forwards req in a goroutine of its own and sends the answer
// to from; SERVFAIL at once when maxForwards are already in flight.
func (s *Server) forwardUDP(l *listener, req *dns.Msg, from netip.AddrPort) {
	send := func(reply *dns.Msg) {
		s.finish(req, reply, true)
		b, err := reply.Pack()
		if err != nil {
			s.log.Debug("pack answer", "err", err)
			return
		}
		l.udp.WriteToUDPAddrPort(b, from) // fails only once the listener is closed
	}
	s.mu.Lock() // so that Close cannot be waiting for fwdWG already
	closed := s.closed
	if !closed {
		select {
		case s.forwards <- struct{}{}:
			s.fwdWG.Add(1)
		default:
			s.mu.Unlock()
			s.stats.dropped.Add(1)
			m := new(dns.Msg)
			m.SetRcode(req, dns.RcodeServerFailure)
			m.RecursionAvailable = true
			send(m)
			return
		}
	}
	s.mu.Unlock()
	if closed {
		return
	}
	go func() {
		defer s.fwdWG.Done()
		defer func() { <-s.forwards }()
		send(s.forward(s.ctx, req))
	}()
}

// serveTCP accepts connections on l until it is closed.
func (s *Server) serveTCP(l *listener) {
	var delay time.Duration
	for {
		c, err := l.tcp.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off as
			// net/http does, up to a second.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.log.Warn("accept tcp", "addr", l.addr.String(), "err", err)
			time.Sleep(delay)
			continue
		}
		delay = 0
		if l.nconns.Add(1) > maxTCPConns {
			l.nconns.Add(-1)
			s.stats.dropped.Add(1)
			c.Close()
			continue
		}
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			l.nconns.Add(-1)
			c.Close()
			continue
		}
		l.conns[c] = struct{}{}
		l.mu.Unlock()
		l.wg.Go(func() {
			defer func() {
				l.mu.Lock()
				delete(l.conns, c)
				l.mu.Unlock()
				l.nconns.Add(-1)
				c.Close()
			}()
			s.serveConn(c)
		})
	}
}

// serveConn answers the queries on one TCP connection, in order, until the
// client closes it, sends something that is not a DNS message, or is idle
// too long.
func (s *Server) serveConn(c *net.TCPConn) {
	src := c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap()
	buf := make([]byte, 512)
	timeout := tcpFirstReadTimeout
	for {
		var prefix [2]byte
		c.SetReadDeadline(time.Now().Add(timeout))
		if _, err := io.ReadFull(c, prefix[:]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint16(prefix[:]))
		if n < 12 {
			s.stats.malformed.Add(1)
			return // not DNS; the framing cannot be trusted any more
		}
		if cap(buf) < n {
			buf = make([]byte, n)
		}
		pkt := buf[:n]
		if _, err := io.ReadFull(c, pkt); err != nil {
			return
		}
		timeout = tcpIdleTimeout

		var reply []byte
		req := new(dns.Msg)
		if err := req.Unpack(pkt); err != nil {
			s.stats.malformed.Add(1)
			if reply = formErr(pkt); reply == nil {
				continue
			}
			s.stats.response(dns.RcodeFormatError)
		} else {
			m, act := s.answer(req, src)
			switch act {
			case actDrop:
				continue
			case actForward:
				m = s.forward(s.ctx, req)
			}
			s.finish(req, m, false)
			if reply, err = m.Pack(); err != nil {
				s.log.Debug("pack answer", "err", err)
				return
			}
		}
		binary.BigEndian.PutUint16(prefix[:], uint16(len(reply)))
		c.SetWriteDeadline(time.Now().Add(tcpWriteTimeout))
		if _, err := (&net.Buffers{prefix[:], reply}).WriteTo(c); err != nil {
			return
		}
	}
}

//go:build linux && (amd64 || arm64)

package dnsdisc

// Batched UDP on Linux: one recvmmsg takes every datagram waiting (up to
// udpBatch), the reader answers them all, and one sendmmsg sends the
// replies. Under load that is two system calls per batch instead of two
// (plus a failed read) per query; with a single query waiting it is the
// same as recvfrom and sendto. The calls go through the socket's
// syscall.RawConn, so waiting for data still parks the goroutine in Go's
// poller, and Close still wakes it. Measured with dnsperf on 2 CPUs, at
// saturation: 25-30% less CPU per query than recvfrom and sendto.

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"syscall"
	"unsafe"
)

// udpBatch is how many datagrams one system call reads or writes. 32
// covers the bursts a few busy clients produce; the buffers cost 32 ×
// (4 KiB + 1232 B) per listener.
const udpBatch = 32

// mmsghdr is struct mmsghdr of <sys/socket.h>; Go pads it to 64 bytes
// on 64-bit platforms, as C does.
type mmsghdr struct {
	hdr syscall.Msghdr
	n   uint32
}

// udpBatcher holds one reader's buffers and the headers that point into
// them.
type udpBatcher struct {
	rc     syscall.RawConn
	in     [udpBatch][maxUDPQuery]byte
	names  [udpBatch]syscall.RawSockaddrAny
	inIov  [udpBatch]syscall.Iovec
	inHdr  [udpBatch]mmsghdr
	out    [udpBatch][maxUDPSize]byte
	outIov [udpBatch]syscall.Iovec
	outHdr [udpBatch]mmsghdr

	// Results of the last raw call, set by the closures below (built
	// once, so a call allocates nothing).
	n     int
	errno syscall.Errno
	sent  int // replies sent so far in this batch
	todo  int // replies in this batch
	recvF func(fd uintptr) bool
	sendF func(fd uintptr) bool
}

func newUDPBatcher(c *net.UDPConn) (*udpBatcher, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	b := &udpBatcher{rc: rc}
	for i := range udpBatch {
		b.inIov[i].Base = &b.in[i][0]
		b.inIov[i].SetLen(maxUDPQuery)
		b.inHdr[i].hdr.Iov = &b.inIov[i]
		b.inHdr[i].hdr.Iovlen = 1
		b.inHdr[i].hdr.Name = (*byte)(unsafe.Pointer(&b.names[i]))
		b.outHdr[i].hdr.Iov = &b.outIov[i]
		b.outHdr[i].hdr.Iovlen = 1
	}
	b.recvF = func(fd uintptr) bool {
		for i := range udpBatch {
			b.inHdr[i].hdr.Namelen = syscall.SizeofSockaddrAny
			b.inHdr[i].hdr.Flags = 0
		}
		r, _, e := syscall.Syscall6(sysRecvmmsg, fd, uintptr(unsafe.Pointer(&b.inHdr[0])), udpBatch, syscall.MSG_DONTWAIT, 0, 0)
		if e == syscall.EAGAIN {
			return false // wait until readable, then again
		}
		b.n, b.errno = int(r), e
		return true
	}
	b.sendF = func(fd uintptr) bool {
		for b.sent < b.todo {
			r, _, e := syscall.Syscall6(sysSendmmsg, fd, uintptr(unsafe.Pointer(&b.outHdr[b.sent])), uintptr(b.todo-b.sent), syscall.MSG_DONTWAIT, 0, 0)
			switch {
			case e == syscall.EAGAIN:
				return false // socket buffer full: wait until writable
			case e == syscall.EINTR:
			case e != 0:
				// The first reply could not be sent (its client is
				// unreachable, say): drop it and send the rest.
				b.errno = e
				b.sent++
			default:
				b.sent += int(r)
			}
		}
		return true
	}
	return b, nil
}

// serveUDPBatch serves l's UDP socket in batches until it is closed, and
// reports true; false if batching is unavailable, and nothing was read.
func (s *Server) serveUDPBatch(l *listener) bool {
	b, err := newUDPBatcher(l.udp)
	if err != nil {
		return false
	}
	for {
		b.n, b.errno = 0, 0
		if err := b.rc.Read(b.recvF); err != nil {
			if errors.Is(err, net.ErrClosed) {
				return true
			}
			s.readError(l, err)
			continue
		}
		if b.errno != 0 {
			if b.errno != syscall.EINTR {
				s.readError(l, b.errno)
			}
			continue
		}
		b.todo, b.sent = 0, 0
		for i := range b.n {
			h := &b.inHdr[i]
			if h.hdr.Flags&syscall.MSG_TRUNC != 0 {
				s.stats.malformed.Add(1) // longer than any query we take
				continue
			}
			from, ok := sockaddrAddrPort(&b.names[i])
			if !ok {
				continue
			}
			reply := s.handlePacket(l, b.in[i][:h.n], from, b.out[b.todo][:])
			if reply == nil {
				continue
			}
			o := &b.outHdr[b.todo]
			// The reply goes back to the sender's address as received.
			o.hdr.Name, o.hdr.Namelen = h.hdr.Name, h.hdr.Namelen
			b.outIov[b.todo].Base = &reply[0]
			b.outIov[b.todo].SetLen(len(reply))
			b.todo++
		}
		if b.todo == 0 {
			continue
		}
		b.errno = 0
		if err := b.rc.Write(b.sendF); err != nil && !errors.Is(err, net.ErrClosed) {
			s.log.Debug("write udp", "addr", l.addr.String(), "err", err)
		}
		if b.errno != 0 {
			s.log.Debug("write udp", "addr", l.addr.String(), "err", b.errno)
		}
		// Replies larger than out (PackBuffer allocated them) are kept
		// alive by outIov until here; drop the references.
		for i := range b.todo {
			b.outIov[i].Base = nil
		}
	}
}

// sockaddrAddrPort converts a received IPv4 or IPv6 socket address.
func sockaddrAddrPort(sa *syscall.RawSockaddrAny) (netip.AddrPort, bool) {
	switch sa.Addr.Family {
	case syscall.AF_INET:
		p := (*syscall.RawSockaddrInet4)(unsafe.Pointer(sa))
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&p.Port))[:])
		return netip.AddrPortFrom(netip.AddrFrom4(p.Addr), port), true
	case syscall.AF_INET6:
		p := (*syscall.RawSockaddrInet6)(unsafe.Pointer(sa))
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&p.Port))[:])
		return netip.AddrPortFrom(netip.AddrFrom16(p.Addr), port), true
	}
	return netip.AddrPort{}, false
}

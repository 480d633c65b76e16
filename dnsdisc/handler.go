package dnsdisc

// Answering a query, in order:
//
//  1. Not a query we take: a response (QR set) is dropped, never answered
//     (two servers must not bounce packets forever); an opcode other than
//     QUERY gets NOTIMP; not exactly one question FORMERR; an EDNS version
//     other than 0 BADVERS (RFC 6891 §6.1.3); a class other than IN
//     REFUSED.
//  2. A name in the zone is answered from the zone, for every client:
//     records, or NODATA (NOERROR, no answer, SOA in authority) for a name
//     that exists with other types or none (empty non-terminals), or
//     NXDOMAIN with the SOA. The answer is authoritative (AA).
//  3. A reverse name (in-addr.arpa, ip6.arpa) with our PTR records is
//     answered from the zone. Other reverse names are forwarded if the
//     client may forward; else NODATA if the name is an ancestor of one
//     of ours, NXDOMAIN otherwise, so that replicas' reverse lookups of
//     unknown addresses fail fast instead of being REFUSED.
//  4. Any other name is forwarded (from the cache if it holds the answer)
//     when the client's address is in Config.ForwardFrom and there are
//     upstreams; otherwise REFUSED.
//
// Then EDNS and size: when the query had an OPT record the answer has one
// (our UDP size 1232, the DO bit echoed), and a UDP answer is cut to the
// client's size (512 without EDNS; with EDNS the client's, between 512 and
// 1232) with TC set, unless only additional records had to go (RFC 2181
// §9: TC means the answer itself is incomplete). TCP answers are whole.

import (
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"

	"github.com/miekg/dns"
)

// action is what the server does with a query.
type action uint8

const (
	actReply   action = iota // send the reply
	actForward               // ask the upstreams, then reply
	actDrop                  // send nothing
)

// ServeDNS answers r on w: the handler behind the server's own listeners,
// usable with any miekg/dns server or a test's recording writer. The
// client's address (w.RemoteAddr) decides forwarding; a *net.UDPAddr means
// UDP and its size limits, anything else TCP. A forwarded query blocks
// until the upstreams answer or time out. Safe for concurrent use.
func (s *Server) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	var src netip.Addr
	udp := false
	switch a := w.RemoteAddr().(type) {
	case *net.UDPAddr:
		src, udp = a.AddrPort().Addr(), true
	case *net.TCPAddr:
		src = a.AddrPort().Addr()
	}
	reply, act := s.answer(r, src.Unmap())
	switch act {
	case actDrop:
		return
	case actForward:
		reply = s.forward(s.ctx, r)
	}
	s.finish(r, reply, udp)
	if err := w.WriteMsg(reply); err != nil {
		s.log.Debug("write answer", "client", w.RemoteAddr(), "err", err)
	}
}

// answer decides what to do with req from src and, unless it must be
// forwarded or dropped, builds the reply from the zone or the cache.
func (s *Server) answer(req *dns.Msg, src netip.Addr) (*dns.Msg, action) {
	if req.Response {
		s.stats.malformed.Add(1)
		return nil, actDrop
	}
	m := new(dns.Msg)
	m.SetReply(req)
	if req.Opcode != dns.OpcodeQuery {
		m.Rcode = dns.RcodeNotImplemented
		return m, actReply
	}
	if len(req.Question) != 1 {
		s.stats.malformed.Add(1)
		m.Question = nil
		m.Rcode = dns.RcodeFormatError
		return m, actReply
	}
	q := req.Question[0]
	s.stats.query(q.Qtype)
	if opt := req.IsEdns0(); opt != nil && opt.Version() != 0 {
		m.Rcode = dns.RcodeBadVers
		return m, actReply
	}
	if q.Qclass != dns.ClassINET && q.Qclass != dns.ClassANY {
		m.Rcode = dns.RcodeRefused
		return m, actReply
	}

	name := strings.ToLower(q.Name)
	z := s.zone.Load()
	mayForward := s.mayForward(src)
	m.RecursionAvailable = mayForward
	e := z.names[name]

	switch {
	case z.inZone(name):
		m.Authoritative = true
		if e == nil {
			m.Rcode = dns.RcodeNameError
			m.Ns = z.soa
			return m, actReply
		}
		if !fill(m, e, name, q.Qtype, z.ttl) {
			m.Ns = z.soa
		}
		return m, actReply
	case e != nil && (q.Qtype == dns.TypePTR || q.Qtype == dns.TypeANY) && len(e.ptr) > 0:
		m.Authoritative = true
		fill(m, e, name, q.Qtype, z.ttl)
		return m, actReply
	case mayForward:
		if c := s.fromCache(req, name); c != nil {
			return c, actReply
		}
		return nil, actForward
	case e != nil && e.reverse:
		return m, actReply // NODATA: an ancestor of our reverse names
	case isReverse(name):
		m.Rcode = dns.RcodeNameError
		return m, actReply
	default:
		m.Rcode = dns.RcodeRefused
		return m, actReply
	}
}

// fill puts e's records of type t into m and reports whether there were
// any. Sets of more than one record are rotated by a random offset, so
// that clients that take the first address spread over the replicas; ANY
// gets the RFC 8482 answer, with TTL ttl.
func fill(m *dns.Msg, e *entry, name string, t uint16, ttl uint32) bool {
	if t == dns.TypeANY {
		// RFC 8482 §4.2: one synthesised HINFO instead of every record,
		// so ANY cannot be used to amplify. The name exists, so NOERROR.
		m.Answer = []dns.RR{&dns.HINFO{
			Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeHINFO, Class: dns.ClassINET, Ttl: ttl},
			Cpu: "RFC8482",
		}}
		return true
	}
	ans, extra := e.rrs(t)
	if len(ans) == 0 {
		return false
	}
	m.Answer = rotate(ans)
	m.Extra = extra
	return true
}

// rotate returns rrs rotated by a random offset, in a new slice when it
// has more than one record. The zone's slice is never modified.
func rotate(rrs []dns.RR) []dns.RR {
	if len(rrs) < 2 {
		return rrs
	}
	k := rand.IntN(len(rrs))
	out := make([]dns.RR, len(rrs))
	n := copy(out, rrs[k:])
	copy(out[n:], rrs[:k])
	return out
}

// mayForward reports whether names outside the zone are forwarded for
// src: there are upstreams and src is in Config.ForwardFrom.
func (s *Server) mayForward(src netip.Addr) bool {
	if len(s.cfg.Upstreams) == 0 || !src.IsValid() {
		return false
	}
	for _, p := range *s.forwardFrom.Load() {
		if p.Contains(src) {
			return true
		}
	}
	return false
}

// finish adds the OPT record when the query had one, fits a UDP answer
// to the client's size, and counts the response.
func (s *Server) finish(req, m *dns.Msg, udp bool) {
	size := dns.MaxMsgSize
	if opt := req.IsEdns0(); opt != nil {
		o := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
		o.SetUDPSize(maxUDPSize)
		if opt.Do() {
			o.SetDo()
		}
		// m.Extra is the zone's (clipped) or the reply's own slice, so
		// this append never writes into the zone.
		m.Extra = append(m.Extra, o)
		if udp {
			size = min(max(int(opt.UDPSize()), dns.MinMsgSize), maxUDPSize)
		}
	} else if udp {
		size = dns.MinMsgSize
	}
	nAns, nNs := len(m.Answer), len(m.Ns)
	m.Truncate(size)
	if m.Truncated && len(m.Answer) == nAns && len(m.Ns) == nNs {
		m.Truncated = false // only additional records were left out
	}
	if m.Truncated {
		s.stats.truncated.Add(1)
	}
	s.stats.response(m.Rcode)
}

// formErr returns the FORMERR answer to a packet that did not parse: its
// header with QR set and no sections, or nil when it should get no answer
// (shorter than a header, or itself a response). The answer is never
// larger than the packet, so it cannot amplify.
func formErr(pkt []byte) []byte {
	const headerLen = 12
	if len(pkt) < headerLen || pkt[2]&0x80 != 0 {
		return nil
	}
	out := make([]byte, headerLen)
	copy(out, pkt[:2])                     // ID
	out[2] = 0x80 | pkt[2]&0x78 | pkt[2]&1 // QR, the opcode, RD
	out[3] = dns.RcodeFormatError
	return out
}

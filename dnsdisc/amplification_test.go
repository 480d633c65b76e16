package dnsdisc

// Amplification (#9). A UDP source address can be forged, so whatever the
// server sends to it may land on a victim: the response/query byte ratio is
// what a reflector multiplies an attacker's bandwidth by. These tests ask a
// real server on loopback, over real sockets, for every kind of name it
// has, from a source that may not forward, and measure the datagrams.
//
// What bounds the ratio:
//
//   - A UDP answer is at most 512 bytes without EDNS and at most
//     maxUDPSize (1232) with it, whatever size the client advertises.
//   - ANY gets one synthesised HINFO (RFC 8482): the answer is the query
//     plus the record, that is the name again (miekg/dns packs answers
//     that fit without compression), 10 bytes of type, class, TTL and
//     length, "RFC8482" and an empty string.
//   - A name with no records of the asked type gets at most the SOA (62
//     bytes for the default domain, uncompressed); out-of-zone names from
//     a client that may not forward get REFUSED, which is the query
//     echoed.
//   - So only a name with a large record set (a service's A, AAAA or SRV)
//     yields a large answer, and that answer is a true one. The worst ratio
//     is the size cap over the smallest query that can reach such a set:
//     with EDNS, 12 bytes of header, "x.svc.orch." (12 bytes), 4 bytes of
//     type and class and an 11-byte OPT make 39 bytes, and 1232/39 ≈ 31.6;
//     without EDNS, 512/28 ≈ 18.3. Limiting that further would mean not
//     answering a large service over UDP at all (or response rate
//     limiting), which the agent does not need: it listens on loopback and
//     on its replicas' bridge.

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

const (
	// hinfoRData is the RFC 8482 HINFO's type, class, TTL and length (10
	// bytes) and data ("RFC8482" and "" as character strings).
	hinfoRData = 10 + 1 + len("RFC8482") + 1
	// anyRatio bounds ANY: the answer is at most the query plus the name
	// plus hinfoRData, the most relative to the shortest query, for the
	// apex "orch." without EDNS: 22 bytes answered with 47 (2.14).
	anyRatio = 2.2
	// smallRatio bounds answers that carry at most one record (and its
	// glue): ANY, NODATA and NXDOMAIN with the SOA, REFUSED, one address,
	// one PTR. The largest additions are the SOA (62 bytes) on the
	// shortest query, "orch." without EDNS (22 bytes): 84/22 = 3.82, and
	// the PTR of a replica of a service with a 63-character name, whose
	// target cannot be compressed against the reverse name: 153/40 = 3.83.
	// That holds for the default domain: a longer one lengthens the PTR
	// target but not the reverse name asked.
	smallRatio = 4.0
	// worstRatio bounds every answer: maxUDPSize over the shortest EDNS
	// query that can name a service's records (39 bytes), see above.
	worstRatio = float64(maxUDPSize) / 39
)

// bigServices is a cluster whose answers do not fit in a datagram: 60
// replicas behind a one-letter name (the smallest query for the largest
// answer), the same over IPv6, and 60 behind the longest names a service
// and a port may have.
func bigServices() ([]Service, []Node) {
	long := strings.Repeat("l", 63)
	longPort := strings.Repeat("p", 62)
	w := Service{Name: "w", Ports: []Port{{Name: "h", Proto: "tcp", Port: 80}, {Name: "dns", Proto: "udp", Port: 53}}}
	w6 := Service{Name: "w6", Ports: []Port{{Name: "h", Proto: "tcp", Port: 80}}}
	lg := Service{Name: long, Ports: []Port{{Name: longPort, Proto: "tcp", Port: 8080}}}
	for i := range 60 {
		w.Replicas = append(w.Replicas, Replica{Slot: i, Addr: netip.AddrFrom4([4]byte{10, 1, 0, byte(i + 1)}), Node: "n1"})
		w6.Replicas = append(w6.Replicas, Replica{Slot: i, Addr: netip.AddrFrom16([16]byte{0: 0xfd, 1: 1, 15: byte(i + 1)}), Node: "n2"})
		lg.Replicas = append(lg.Replicas, Replica{Slot: 1000 + i, Addr: netip.AddrFrom4([4]byte{10, 2, 0, byte(i + 1)}), Node: "n1"})
	}
	nodes := []Node{
		{Name: "n1", Addr: netip.MustParseAddr("192.168.1.1")},
		{Name: "n2", Addr: netip.MustParseAddr("192.168.1.2")},
	}
	return []Service{w, w6, lg}, nodes
}

// ampServer starts a server for bigServices on 127.0.0.1 that forwards
// only for 127.0.0.1 itself, to a test upstream. Queries from any other
// address (127.0.0.2 in these tests) stand for a forged source.
func ampServer(t *testing.T) (*Server, string) {
	t.Helper()
	up := startUpstream(t)
	s := newTestServer(t, Config{
		Upstreams:   []string{up.addr},
		ForwardFrom: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
		NSAddr:      netip.MustParseAddr("192.168.1.1"),
	})
	s.Update(NewSnapshot(bigServices()))
	return s, listenTest(t, s)
}

// udpAsker sends queries from one local address and returns the raw
// answer datagrams.
type udpAsker struct {
	t    *testing.T
	conn *net.UDPConn
	to   netip.AddrPort
	buf  []byte
}

func newUDPAsker(t *testing.T, from, to string) *udpAsker {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(from)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &udpAsker{t: t, conn: c, to: netip.MustParseAddrPort(to), buf: make([]byte, 65536)}
}

// ask sends q and returns the packed query and the raw answer with q's ID.
// A datagram lost on a loaded machine is sent again, up to three times.
func (a *udpAsker) ask(q *dns.Msg) (query, answer []byte) {
	a.t.Helper()
	q.Id = dns.Id()
	query, err := q.Pack()
	if err != nil {
		a.t.Fatal(err)
	}
	for attempt := 1; ; attempt++ {
		if _, err := a.conn.WriteToUDPAddrPort(query, a.to); err != nil {
			a.t.Fatal(err)
		}
		a.conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		for {
			n, _, err := a.conn.ReadFromUDPAddrPort(a.buf)
			if err != nil {
				if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
					break
				}
				a.t.Fatal(err)
			}
			if n >= 2 && int(a.buf[0])<<8|int(a.buf[1]) == int(q.Id) {
				return query, slices.Clone(a.buf[:n])
			}
		}
		if attempt == 3 {
			a.t.Fatalf("%s %s: no answer in %d attempts", q.Question[0].Name, dns.TypeToString[q.Question[0].Qtype], attempt)
		}
	}
}

// exchangeFrom asks addr over TCP from the local address from.
func exchangeFrom(t *testing.T, from, addr string, q *dns.Msg) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: "tcp", Timeout: 5 * time.Second,
		Dialer: &net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(from), 0))}}
	r, _, err := c.Exchange(q, addr)
	if err != nil {
		t.Fatalf("tcp %s %s: %v", q.Question[0].Name, typeName(q.Question[0].Qtype), err)
	}
	return r
}

func typeName(t uint16) string {
	if s, ok := dns.TypeToString[t]; ok {
		return s
	}
	return fmt.Sprintf("TYPE%d", t)
}

// TestAmplification_Sizes: a large answer is cut to 512 bytes without
// EDNS and to 1232 with EDNS 4096, with TC set; a client's larger
// buffer is not used.
func TestAmplification_Sizes(t *testing.T) {
	_, addr := ampServer(t)
	ask := newUDPAsker(t, "127.0.0.2:0", addr)
	for _, c := range []struct {
		qname string
		qtype uint16
	}{
		{"w.svc.orch.", dns.TypeA},
		{"w6.svc.orch.", dns.TypeAAAA},
		{"_h._tcp.w.svc.orch.", dns.TypeSRV},
		{"_" + strings.Repeat("p", 62) + "._tcp." + strings.Repeat("l", 63) + ".svc.orch.", dns.TypeSRV},
	} {
		full := exchange(t, "tcp", addr, query(c.qname, c.qtype, 0))
		if len(full.Answer) != 60 {
			t.Fatalf("%s %s over TCP: %d answers, want 60", c.qname, typeName(c.qtype), len(full.Answer))
		}
		for _, edns := range []uint16{0, 4096, 65535} {
			limit := dns.MinMsgSize
			if edns > 0 {
				limit = maxUDPSize
			}
			_, raw := ask.ask(query(c.qname, c.qtype, edns))
			r := new(dns.Msg)
			if err := r.Unpack(raw); err != nil {
				t.Fatalf("%s %s edns %d: %v", c.qname, typeName(c.qtype), edns, err)
			}
			if len(raw) > limit {
				t.Errorf("%s %s edns %d: %d-byte answer over UDP, want at most %d", c.qname, typeName(c.qtype), edns, len(raw), limit)
			}
			// Every one of these needs more than the limit for its
			// answer section alone, except 60 A records with EDNS.
			fits := c.qtype == dns.TypeA && edns > 0
			if r.Truncated == fits || (!fits && len(r.Answer) >= 60) || (fits && len(r.Answer) != 60) {
				t.Errorf("%s %s edns %d: TC %t with %d answers in %d bytes; want TC %t", c.qname, typeName(c.qtype), edns, r.Truncated, len(r.Answer), len(raw), !fits)
			}
			if opt := r.IsEdns0(); (opt != nil) != (edns > 0) || opt != nil && opt.UDPSize() != maxUDPSize {
				t.Errorf("%s %s edns %d: OPT %v, want one advertising %d exactly when asked with one", c.qname, typeName(c.qtype), edns, opt, maxUDPSize)
			}
		}
	}
}

// TestAmplification_ANY: ANY gets the RFC 8482 answer, the query plus the
// name and 19 bytes, for names with hundreds of records at or below them.
func TestAmplification_ANY(t *testing.T) {
	_, addr := ampServer(t)
	ask := newUDPAsker(t, "127.0.0.2:0", addr)
	worst, worstQ := 0.0, ""
	for _, name := range []string{"orch.", "w.svc.orch.", "w6.svc.orch.", "_h._tcp.w.svc.orch.", "0.w.svc.orch.", "n1.node.orch.", mustReverse("10.1.0.1")} {
		for _, edns := range []uint16{0, 4096} {
			q, raw := ask.ask(query(name, dns.TypeANY, edns))
			r := new(dns.Msg)
			if err := r.Unpack(raw); err != nil {
				t.Fatal(err)
			}
			h, ok := func() (*dns.HINFO, bool) {
				if len(r.Answer) != 1 {
					return nil, false
				}
				h, ok := r.Answer[0].(*dns.HINFO)
				return h, ok
			}()
			if r.Rcode != dns.RcodeSuccess || !ok || h.Cpu != "RFC8482" || len(r.Ns) != 0 || len(r.Extra) != boolInt(edns > 0) {
				t.Errorf("ANY %s edns %d: %s with answer %v, authority %v, additional %v; want NOERROR with one HINFO RFC8482 and nothing else",
					name, edns, dns.RcodeToString[r.Rcode], r.Answer, r.Ns, r.Extra)
			}
			if limit := len(q) + len(name) + 1 + hinfoRData; len(raw) > limit { // a name's wire form is one byte longer than its text
				t.Errorf("ANY %s edns %d: %d-byte answer to a %d-byte query, want at most %d", name, edns, len(raw), len(q), limit)
			}
			if ratio := float64(len(raw)) / float64(len(q)); ratio > worst {
				worst, worstQ = ratio, fmt.Sprintf("ANY %s edns %d (%d/%d bytes)", name, edns, len(raw), len(q))
			}
		}
	}
	if worst > anyRatio {
		t.Errorf("worst ANY ratio %.2f (%s), want at most %.1f", worst, worstQ, anyRatio)
	}
	t.Logf("worst ANY amplification: %.2f, %s", worst, worstQ)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestAmplification_RefusedForForeignSource: a source that may not
// forward gets REFUSED for names outside the zone, an answer no larger
// than its query, while the allowed source has the same name forwarded.
func TestAmplification_RefusedForForeignSource(t *testing.T) {
	s, addr := ampServer(t)
	foreign := newUDPAsker(t, "127.0.0.2:0", addr)
	allowed := newUDPAsker(t, "127.0.0.1:0", addr)

	// The allowed source really is forwarded for: the refusals below are
	// about the source, not a server that forwards nothing.
	_, raw := allowed.ask(query("known.example.", dns.TypeA, 0))
	r := new(dns.Msg)
	if err := r.Unpack(raw); err != nil || r.Rcode != dns.RcodeSuccess || firstAnswer(r) != "192.0.2.7" {
		t.Fatalf("allowed source: %v %v, want known.example. forwarded and answered", r, err)
	}

	before := s.Stats().Responses["REFUSED"]
	withCookie := query("known.example.", dns.TypeA, 4096)
	withCookie.IsEdns0().Option = append(withCookie.IsEdns0().Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"})
	refused := 0
	for _, q := range []*dns.Msg{
		query("known.example.", dns.TypeA, 0),
		query("known.example.", dns.TypeANY, 4096),
		query("big.example.", dns.TypeTXT, 4096), // 4 KB upstream
		query(".", dns.TypeNS, 0),
		query("example.", dns.TypeDNSKEY, 65535),
		query("xorch.", dns.TypeANY, 0),
		withCookie,
	} {
		qb, raw := foreign.ask(q)
		r := new(dns.Msg)
		if err := r.Unpack(raw); err != nil {
			t.Fatal(err)
		}
		name := q.Question[0].Name + " " + typeName(q.Question[0].Qtype)
		if r.Rcode != dns.RcodeRefused || len(r.Answer)+len(r.Ns) != 0 || r.RecursionAvailable {
			t.Errorf("%s from a foreign source: %s with %d answers, %d authority, RA %t; want REFUSED, empty, no RA",
				name, dns.RcodeToString[r.Rcode], len(r.Answer), len(r.Ns), r.RecursionAvailable)
		}
		if len(raw) > len(qb) {
			t.Errorf("%s from a foreign source: %d-byte REFUSED to a %d-byte query, want no larger", name, len(raw), len(qb))
		}
		refused++
	}
	if got := s.Stats().Responses["REFUSED"] - before; got < uint64(refused) {
		t.Errorf("REFUSED counted %d times, want %d", got, refused)
	}
}

// TestAmplification_Sweep asks every kind of name for every query type,
// with and without EDNS, from a source that may not forward, and checks
// each UDP answer against the TCP one: the size caps, TC exactly when
// records had to go, and the ratios. It logs the worst ratio.
func TestAmplification_Sweep(t *testing.T) {
	_, addr := ampServer(t)
	ask := newUDPAsker(t, "127.0.0.2:0", addr)
	long := strings.Repeat("l", 63)
	names := []string{
		"orch.", "svc.orch.", "node.orch.", "ns.orch.", "x.orch.",
		"w.svc.orch.", "0.w.svc.orch.", "_tcp.w.svc.orch.", "_h._tcp.w.svc.orch.", "_dns._udp.w.svc.orch.", "_x._tcp.w.svc.orch.",
		"w6.svc.orch.", "59.w6.svc.orch.", "_h._tcp.w6.svc.orch.",
		long + ".svc.orch.", "1059." + long + ".svc.orch.", "_" + strings.Repeat("p", 62) + "._tcp." + long + ".svc.orch.",
		"n1.node.orch.", "n9.node.orch.",
		mustReverse("10.1.0.1"), mustReverse("10.2.0.60"), mustReverse("fd00:1::3c"), mustReverse("192.168.1.2"),
		"1.10.in-addr.arpa.", mustReverse("9.9.9.9"),
		"known.example.", ".",
	}
	types := []uint16{
		dns.TypeA, dns.TypeAAAA, dns.TypeSRV, dns.TypeANY, dns.TypeTXT, dns.TypePTR, dns.TypeNS, dns.TypeSOA,
		dns.TypeCNAME, dns.TypeMX, dns.TypeCAA, dns.TypeHTTPS, dns.TypeDNSKEY, dns.TypeRRSIG,
		dns.TypeAXFR, dns.TypeIXFR, dns.TypeMAILB, 0, 4242, 65280, 65535,
	}
	type result struct {
		ratio float64
		what  string
	}
	var worst, worstSmall result
	byType := map[uint16]result{}
	asked := 0
	for _, name := range names {
		for _, qt := range types {
			// The TCP answer, from the same source, is whole: it tells
			// whether the UDP one left records out.
			tcp := exchangeFrom(t, "127.0.0.2", addr, query(name, qt, 0))
			tcp.Compress = true
			tcpWire, err := tcp.Pack()
			if err != nil {
				t.Fatal(err)
			}
			for _, edns := range []uint16{0, 4096} {
				what := fmt.Sprintf("%s %s edns %d", name, typeName(qt), edns)
				qb, raw := ask.ask(query(name, qt, edns))
				asked++
				r := new(dns.Msg)
				if err := r.Unpack(raw); err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				limit := dns.MinMsgSize
				if edns > 0 {
					limit = maxUDPSize
				}
				if len(raw) > limit {
					t.Errorf("%s: %d-byte answer, want at most %d", what, len(raw), limit)
				}
				cut := len(r.Answer) < len(tcp.Answer) || len(r.Ns) < len(tcp.Ns)
				if r.Truncated != cut {
					t.Errorf("%s: TC %t, but %d/%d answers and %d/%d authority records of the TCP answer were sent", what, r.Truncated, len(r.Answer), len(tcp.Answer), len(r.Ns), len(tcp.Ns))
				}
				if r.Truncated && len(tcpWire)+11*boolInt(edns > 0) <= limit { // 11: our OPT
					t.Errorf("%s: TC set, but the whole answer is %d bytes, within %d", what, len(tcpWire), limit)
				}
				ratio := float64(len(raw)) / float64(len(qb))
				res := result{ratio, fmt.Sprintf("%s: %d bytes for %d (%s, %d answers)", what, len(raw), len(qb), dns.RcodeToString[r.Rcode], len(r.Answer))}
				if ratio > worst.ratio {
					worst = res
				}
				if ratio > byType[qt].ratio {
					byType[qt] = res
				}
				if len(tcp.Answer) <= 1 {
					if ratio > worstSmall.ratio {
						worstSmall = res
					}
					if ratio > smallRatio {
						t.Errorf("%s: ratio %.2f for an answer of at most one record, want at most %.0f", what, ratio, smallRatio)
					}
				}
			}
		}
	}
	if worst.ratio > worstRatio {
		t.Errorf("worst ratio %.2f (%s), want at most %.1f (1232 bytes over a 39-byte query)", worst.ratio, worst.what, worstRatio)
	}
	t.Logf("%d UDP queries; worst amplification %.2f: %s", asked, worst.ratio, worst.what)
	t.Logf("worst for answers of at most one record: %.2f: %s", worstSmall.ratio, worstSmall.what)
	for _, qt := range types {
		t.Logf("  %-6s worst %.2f: %s", typeName(qt), byType[qt].ratio, byType[qt].what)
	}
}

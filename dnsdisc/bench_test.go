package dnsdisc

import (
	"fmt"
	"net"
	"net/netip"
	"testing"

	"github.com/miekg/dns"
)

// packWriter packs each answer into one reused buffer, as the server's
// UDP readers do, and keeps nothing.
type packWriter struct {
	remote net.Addr
	buf    []byte
	n      int
}

func (w *packWriter) LocalAddr() net.Addr  { return w.remote }
func (w *packWriter) RemoteAddr() net.Addr { return w.remote }
func (w *packWriter) WriteMsg(m *dns.Msg) error {
	b, err := m.PackBuffer(w.buf)
	w.n += len(b)
	return err
}
func (w *packWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *packWriter) Close() error                { return nil }
func (w *packWriter) TsigStatus() error           { return nil }
func (w *packWriter) TsigTimersOnly(bool)         {}
func (w *packWriter) Hijack()                     {}

var benchQueries = []struct {
	name  string
	qname string
	qtype uint16
	edns  uint16
}{
	{"A", "web.svc.orch.", dns.TypeA, 0},
	{"SRV", "_http._tcp.web.svc.orch.", dns.TypeSRV, 0},
	{"A_EDNS", "Web.Svc.Orch.", dns.TypeA, 1232},
	{"NXDOMAIN", "nope.svc.orch.", dns.TypeA, 0},
}

// BenchmarkServeDNS is the handler alone: answer, EDNS and size, pack.
func BenchmarkServeDNS(b *testing.B) {
	s := newTestServer(b, Config{})
	for _, bq := range benchQueries {
		b.Run(bq.name, func(b *testing.B) {
			q := query(bq.qname, bq.qtype, bq.edns)
			w := &packWriter{remote: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5353}, buf: make([]byte, maxPacket)}
			b.ReportAllocs()
			for b.Loop() {
				s.ServeDNS(w, q)
			}
		})
	}
}

// BenchmarkQueryPath is what a UDP reader does per packet, without the
// two system calls: unpack, answer, finish, pack.
func BenchmarkQueryPath(b *testing.B) {
	s := newTestServer(b, Config{})
	for _, bq := range benchQueries {
		b.Run(bq.name, func(b *testing.B) {
			pkt, err := query(bq.qname, bq.qtype, bq.edns).Pack()
			if err != nil {
				b.Fatal(err)
			}
			out := make([]byte, maxPacket)
			src := netip.MustParseAddr("127.0.0.1")
			b.ReportAllocs()
			for b.Loop() {
				req := new(dns.Msg)
				if err := req.Unpack(pkt); err != nil {
					b.Fatal(err)
				}
				reply, _ := s.answer(req, src)
				s.finish(req, reply, true)
				if _, err := reply.PackBuffer(out); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkUpdate compiles a snapshot of 1,000 services with 3 replicas
// and 2 ports each: the cost the agent pays per change.
func BenchmarkUpdate(b *testing.B) {
	var svcs []Service
	for i := range 1000 {
		svc := Service{Name: fmt.Sprintf("svc%d", i), Ports: []Port{{Name: "http", Proto: "tcp", Port: 80}, {Name: "dns", Proto: "udp", Port: 53}}}
		for slot := range 3 {
			svc.Replicas = append(svc.Replicas, Replica{Slot: slot, Addr: netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), byte(slot + 1)})})
		}
		svcs = append(svcs, svc)
	}
	snaps := []*Snapshot{NewSnapshot(svcs, testNodes()), NewSnapshot(svcs[1:], testNodes())}
	s := newTestServer(b, Config{})
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		s.Update(snaps[i%2])
		i++
	}
}

package dnsdisc

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// testServices and testNodes are the cluster most tests answer for.
func testServices() []Service {
	return []Service{
		{
			Name: "web",
			Replicas: []Replica{
				{Slot: 0, Addr: netip.MustParseAddr("10.0.0.2"), Node: "n1"},
				{Slot: 1, Addr: netip.MustParseAddr("10.0.0.3"), Node: "n2"},
				{Slot: 2, Addr: netip.MustParseAddr("10.0.0.4"), Node: "n1"},
			},
			Ports: []Port{{Name: "http", Proto: "tcp", Port: 80}, {Name: "metrics", Proto: "tcp", Port: 9100}},
		},
		{
			Name:     "db",
			Replicas: []Replica{{Slot: 0, Addr: netip.MustParseAddr("fd00::5"), Node: "n2"}},
			Ports:    []Port{{Name: "pg", Proto: "tcp", Port: 5432}},
		},
		{Name: "empty", Ports: []Port{{Name: "http", Proto: "tcp", Port: 80}}},
	}
}

func testNodes() []Node {
	return []Node{
		{Name: "n1", Addr: netip.MustParseAddr("192.168.1.1")},
		{Name: "n2", Addr: netip.MustParseAddr("192.168.1.2")},
	}
}

func testSnapshot() *Snapshot { return NewSnapshot(testServices(), testNodes()) }

// newTestServer returns a server answering for the test cluster, not
// listening, closed at the end of the test.
func newTestServer(t testing.TB, cfg Config) *Server {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	s.Update(testSnapshot())
	return s
}

// listenTest makes s listen on a free loopback port and returns it.
func listenTest(t testing.TB, s *Server) string {
	t.Helper()
	if err := s.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	addrs := s.Addrs()
	return addrs[len(addrs)-1].String()
}

// recorder is a dns.ResponseWriter that keeps what is written, after a
// pack/unpack round trip, as a real client would see it.
type recorder struct {
	remote net.Addr
	msg    *dns.Msg
	wire   []byte
	writes int
}

func newRecorder(remote string, udp bool) *recorder {
	ap := netip.MustParseAddrPort(remote)
	if udp {
		return &recorder{remote: net.UDPAddrFromAddrPort(ap)}
	}
	return &recorder{remote: net.TCPAddrFromAddrPort(ap)}
}

func (r *recorder) LocalAddr() net.Addr  { return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53} }
func (r *recorder) RemoteAddr() net.Addr { return r.remote }
func (r *recorder) WriteMsg(m *dns.Msg) error {
	b, err := m.Pack()
	if err != nil {
		return err
	}
	return r.record(b)
}
func (r *recorder) Write(b []byte) (int, error) { return len(b), r.record(b) }
func (r *recorder) record(b []byte) error {
	r.writes++
	r.wire = slices.Clone(b)
	r.msg = new(dns.Msg)
	return r.msg.Unpack(b)
}
func (r *recorder) Close() error        { return nil }
func (r *recorder) TsigStatus() error   { return nil }
func (r *recorder) TsigTimersOnly(bool) {}
func (r *recorder) Hijack()             {}

// query returns a query for name and type t, with EDNS if size > 0.
func query(name string, t uint16, size uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, t)
	if size > 0 {
		m.SetEdns0(size, false)
	}
	return m
}

// exchange sends q to addr over network ("udp" or "tcp").
func exchange(t testing.TB, network, addr string, q *dns.Msg) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: network, Timeout: 5 * time.Second, UDPSize: 65535}
	r, _, err := c.Exchange(q, addr)
	if err != nil {
		t.Fatalf("%s %s %s: %v", network, q.Question[0].Name, dns.TypeToString[q.Question[0].Qtype], err)
	}
	return r
}

// rrStrings returns the records' data (the text after the type), sorted.
func rrStrings(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		if rr.Header().Rrtype == dns.TypeOPT {
			continue
		}
		h := rr.Header()
		s := strings.TrimPrefix(rr.String(), h.String())
		out = append(out, dns.TypeToString[h.Rrtype]+" "+strings.ToLower(s))
	}
	slices.Sort(out)
	return out
}

// firstAnswer returns the first answer's address as text.
func firstAnswer(m *dns.Msg) string {
	if len(m.Answer) == 0 {
		return ""
	}
	switch rr := m.Answer[0].(type) {
	case *dns.A:
		return rr.A.String()
	case *dns.AAAA:
		return rr.AAAA.String()
	}
	return m.Answer[0].String()
}

// waitFor polls cond until it holds or 5 s have passed.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// diffStrings returns "" if want and got are equal, else both.
func diffStrings(want, got []string) string {
	if slices.Equal(want, got) {
		return ""
	}
	return fmt.Sprintf("\nwant %q\n got %q", want, got)
}

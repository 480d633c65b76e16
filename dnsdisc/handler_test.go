package dnsdisc

import (
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// TestServeDNS_Table asks the handler, through a recording writer, every
// kind of name the zone has and some it has not.
func TestServeDNS_Table(t *testing.T) {
	s := newTestServer(t, Config{NSAddr: netip.MustParseAddr("192.168.1.1")})
	soa := []string{"SOA"}
	tests := []struct {
		name      string
		qname     string
		qtype     uint16
		wantRcode int
		wantAA    bool
		want      []string // answer records' data, sorted
		wantExtra []string
		wantNs    []string // authority record types
	}{
		{name: "service A", qname: "web.svc.orch.", qtype: dns.TypeA, wantAA: true,
			want: []string{"A 10.0.0.2", "A 10.0.0.3", "A 10.0.0.4"}},
		{name: "case-insensitive", qname: "WeB.SVC.Orch.", qtype: dns.TypeA, wantAA: true,
			want: []string{"A 10.0.0.2", "A 10.0.0.3", "A 10.0.0.4"}},
		{name: "slot", qname: "1.web.svc.orch.", qtype: dns.TypeA, wantAA: true, want: []string{"A 10.0.0.3"}},
		{name: "missing slot", qname: "7.web.svc.orch.", qtype: dns.TypeA, wantAA: true,
			wantRcode: dns.RcodeNameError, wantNs: soa},
		{name: "SRV with addresses", qname: "_http._tcp.web.svc.orch.", qtype: dns.TypeSRV, wantAA: true,
			want:      []string{"SRV 0 10 80 0.web.svc.orch.", "SRV 0 10 80 1.web.svc.orch.", "SRV 0 10 80 2.web.svc.orch."},
			wantExtra: []string{"A 10.0.0.2", "A 10.0.0.3", "A 10.0.0.4"}},
		{name: "SRV of an IPv6 service", qname: "_PG._tcp.db.svc.orch.", qtype: dns.TypeSRV, wantAA: true,
			want: []string{"SRV 0 10 5432 0.db.svc.orch."}, wantExtra: []string{"AAAA fd00::5"}},
		{name: "SRV of an unknown port", qname: "_ftp._tcp.web.svc.orch.", qtype: dns.TypeSRV, wantAA: true,
			wantRcode: dns.RcodeNameError, wantNs: soa},
		{name: "AAAA of an IPv4 service is NODATA", qname: "web.svc.orch.", qtype: dns.TypeAAAA, wantAA: true, wantNs: soa},
		{name: "AAAA of an IPv6 service", qname: "db.svc.orch.", qtype: dns.TypeAAAA, wantAA: true, want: []string{"AAAA fd00::5"}},
		{name: "A of an IPv6 service is NODATA", qname: "db.svc.orch.", qtype: dns.TypeA, wantAA: true, wantNs: soa},
		{name: "TXT of a service is NODATA", qname: "web.svc.orch.", qtype: dns.TypeTXT, wantAA: true, wantNs: soa},
		{name: "svc is an empty non-terminal", qname: "svc.orch.", qtype: dns.TypeA, wantAA: true, wantNs: soa},
		{name: "node is an empty non-terminal", qname: "node.orch.", qtype: dns.TypeTXT, wantAA: true, wantNs: soa},
		{name: "_tcp is an empty non-terminal", qname: "_tcp.web.svc.orch.", qtype: dns.TypeSRV, wantAA: true, wantNs: soa},
		{name: "service without replicas is NODATA", qname: "empty.svc.orch.", qtype: dns.TypeA, wantAA: true, wantNs: soa},
		{name: "SRV of a service without replicas is NODATA", qname: "_http._tcp.empty.svc.orch.", qtype: dns.TypeSRV, wantAA: true, wantNs: soa},
		{name: "unknown service", qname: "nope.svc.orch.", qtype: dns.TypeA, wantAA: true,
			wantRcode: dns.RcodeNameError, wantNs: soa},
		{name: "unknown name in zone", qname: "foo.orch.", qtype: dns.TypeA, wantAA: true,
			wantRcode: dns.RcodeNameError, wantNs: soa},
		{name: "node", qname: "n1.node.orch.", qtype: dns.TypeA, wantAA: true, want: []string{"A 192.168.1.1"}},
		{name: "unknown node", qname: "n9.node.orch.", qtype: dns.TypeA, wantAA: true,
			wantRcode: dns.RcodeNameError, wantNs: soa},
		{name: "PTR of a replica", qname: "2.0.0.10.in-addr.arpa.", qtype: dns.TypePTR, wantAA: true,
			want: []string{"PTR 0.web.svc.orch."}},
		{name: "PTR of an IPv6 replica", qname: mustReverse("fd00::5"), qtype: dns.TypePTR, wantAA: true,
			want: []string{"PTR 0.db.svc.orch."}},
		{name: "PTR of a node", qname: "1.1.168.192.IN-ADDR.ARPA.", qtype: dns.TypePTR, wantAA: true,
			want: []string{"PTR n1.node.orch."}},
		{name: "PTR of an unknown address", qname: "9.9.9.9.in-addr.arpa.", qtype: dns.TypePTR,
			wantRcode: dns.RcodeNameError},
		{name: "reverse ancestor of ours is NODATA", qname: "0.0.10.in-addr.arpa.", qtype: dns.TypePTR},
		{name: "apex SOA", qname: "orch.", qtype: dns.TypeSOA, wantAA: true,
			want: []string{"SOA ns.orch. hostmaster.orch. SERIAL 3600 600 86400 5"}},
		{name: "apex NS with glue", qname: "orch.", qtype: dns.TypeNS, wantAA: true,
			want: []string{"NS ns.orch."}, wantExtra: []string{"A 192.168.1.1"}},
		{name: "name server address", qname: "ns.orch.", qtype: dns.TypeA, wantAA: true, want: []string{"A 192.168.1.1"}},
		{name: "apex A is NODATA", qname: "orch.", qtype: dns.TypeA, wantAA: true, wantNs: soa},
		{name: "ANY is minimal", qname: "web.svc.orch.", qtype: dns.TypeANY, wantAA: true,
			want: []string{`HINFO "rfc8482" ""`}},
		{name: "ANY of a missing name", qname: "nope.svc.orch.", qtype: dns.TypeANY, wantAA: true,
			wantRcode: dns.RcodeNameError, wantNs: soa},
		{name: "outside the zone without forwarding", qname: "example.com.", qtype: dns.TypeA,
			wantRcode: dns.RcodeRefused},
		{name: "parent of the zone", qname: "xorch.", qtype: dns.TypeA, wantRcode: dns.RcodeRefused},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, edns := range []uint16{0, 1232} {
				w := newRecorder("127.0.0.1:5555", true)
				q := query(tt.qname, tt.qtype, edns)
				s.ServeDNS(w, q)
				if w.writes != 1 {
					t.Fatalf("edns %d: %d writes, want 1", edns, w.writes)
				}
				m := w.msg
				if m.Id != q.Id || !m.Response {
					t.Errorf("edns %d: id %d response %t, want id %d response", edns, m.Id, m.Response, q.Id)
				}
				if m.Rcode != tt.wantRcode {
					t.Errorf("edns %d: rcode %s, want %s", edns, dns.RcodeToString[m.Rcode], dns.RcodeToString[tt.wantRcode])
				}
				if m.Authoritative != tt.wantAA {
					t.Errorf("edns %d: AA %t, want %t", edns, m.Authoritative, tt.wantAA)
				}
				if len(m.Question) != 1 || m.Question[0].Name != tt.qname {
					t.Errorf("edns %d: question %v, want %s as asked", edns, m.Question, tt.qname)
				}
				got := rrStrings(m.Answer)
				for i, g := range got {
					if len(g) > 4 && g[:4] == "SOA " { // the serial is the compile time
						f := strings.Fields(g)
						f[3] = "SERIAL"
						got[i] = strings.Join(f, " ")
					}
				}
				if diff := diffStrings(tt.want, got); diff != "" {
					t.Errorf("edns %d: answer %s", edns, diff)
				}
				if diff := diffStrings(tt.wantExtra, rrStrings(m.Extra)); diff != "" {
					t.Errorf("edns %d: additional %s", edns, diff)
				}
				var ns []string
				for _, rr := range m.Ns {
					ns = append(ns, dns.TypeToString[rr.Header().Rrtype])
				}
				if diff := diffStrings(tt.wantNs, ns); diff != "" {
					t.Errorf("edns %d: authority %s", edns, diff)
				}
				if opt := m.IsEdns0(); (opt != nil) != (edns > 0) {
					t.Errorf("edns %d: reply OPT %v", edns, opt)
				} else if opt != nil && opt.UDPSize() != maxUDPSize {
					t.Errorf("edns %d: reply advertises %d, want %d", edns, opt.UDPSize(), maxUDPSize)
				}
			}
		})
	}
}

func mustReverse(a string) string {
	r, err := dns.ReverseAddr(a)
	if err != nil {
		panic(err)
	}
	return r
}

// TestServeDNS_Refusals covers queries the server does not answer
// normally.
func TestServeDNS_Refusals(t *testing.T) {
	s := newTestServer(t, Config{})
	tests := []struct {
		name      string
		msg       func() *dns.Msg
		wantRcode int
		wantNoMsg bool
	}{
		{name: "no question", wantRcode: dns.RcodeFormatError, msg: func() *dns.Msg {
			m := query("web.svc.orch.", dns.TypeA, 0)
			m.Question = nil
			return m
		}},
		{name: "two questions", wantRcode: dns.RcodeFormatError, msg: func() *dns.Msg {
			m := query("web.svc.orch.", dns.TypeA, 0)
			m.Question = append(m.Question, m.Question[0])
			return m
		}},
		{name: "not a query", wantRcode: dns.RcodeNotImplemented, msg: func() *dns.Msg {
			m := query("web.svc.orch.", dns.TypeSOA, 0)
			m.Opcode = dns.OpcodeNotify
			return m
		}},
		{name: "update", wantRcode: dns.RcodeNotImplemented, msg: func() *dns.Msg {
			m := query("orch.", dns.TypeSOA, 0)
			m.Opcode = dns.OpcodeUpdate
			return m
		}},
		{name: "a response is not answered", wantNoMsg: true, msg: func() *dns.Msg {
			m := query("web.svc.orch.", dns.TypeA, 0)
			m.Response = true
			return m
		}},
		{name: "EDNS version 1", wantRcode: dns.RcodeBadVers, msg: func() *dns.Msg {
			m := query("web.svc.orch.", dns.TypeA, 1232)
			m.IsEdns0().SetVersion(1)
			return m
		}},
		{name: "class CH", wantRcode: dns.RcodeRefused, msg: func() *dns.Msg {
			m := query("version.bind.", dns.TypeTXT, 0)
			m.Question[0].Qclass = dns.ClassCHAOS
			return m
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newRecorder("127.0.0.1:5555", true)
			before := s.Stats()
			s.ServeDNS(w, tt.msg())
			if tt.wantNoMsg {
				if w.writes != 0 {
					t.Fatalf("answered %v", w.msg)
				}
				if s.Stats().Malformed != before.Malformed+1 {
					t.Errorf("malformed not counted")
				}
				return
			}
			if w.writes != 1 {
				t.Fatalf("%d writes, want 1", w.writes)
			}
			if w.msg.Rcode != tt.wantRcode {
				t.Errorf("rcode %s, want %s", dns.RcodeToString[w.msg.Rcode], dns.RcodeToString[tt.wantRcode])
			}
			if len(w.msg.Answer) != 0 {
				t.Errorf("answer %v, want none", w.msg.Answer)
			}
		})
	}
}

// TestServeDNS_ZoneSharedSafely answers the same names from many
// goroutines, with EDNS (which appends to the additional section) and
// truncation, while the snapshot is swapped; -race checks that no answer
// writes into the zone, and the zone's records must come out unchanged.
func TestServeDNS_ZoneSharedSafely(t *testing.T) {
	s := newTestServer(t, Config{})
	big := testServices()
	for i := 3; i < 60; i++ {
		big[0].Replicas = append(big[0].Replicas, Replica{Slot: i, Addr: netip.AddrFrom4([4]byte{10, 0, 1, byte(i)})})
	}
	bigSnap := NewSnapshot(big, testNodes())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 50 {
			if i%2 == 0 {
				s.Update(bigSnap)
			} else {
				s.Update(testSnapshot())
			}
		}
	}()
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for i := range 300 {
				qs := []*dns.Msg{
					query("_http._tcp.web.svc.orch.", dns.TypeSRV, uint16(512+i%3*400)),
					query("web.svc.orch.", dns.TypeA, 0),
					query("orch.", dns.TypeNS, 1232),
					query("nope.svc.orch.", dns.TypeA, 1232),
				}
				for _, q := range qs {
					s.ServeDNS(newRecorder("127.0.0.1:1", i%2 == 0), q)
				}
			}
		})
	}
	wg.Wait()
	<-done
	s.Update(bigSnap)
	w := newRecorder("127.0.0.1:1", false)
	s.ServeDNS(w, query("_http._tcp.web.svc.orch.", dns.TypeSRV, 1232))
	if len(w.msg.Answer) != 60 || len(w.msg.Extra) != 61 {
		t.Fatalf("after the storm: %d answers and %d additional, want 60 and 61 (60 A and the OPT)", len(w.msg.Answer), len(w.msg.Extra))
	}
}

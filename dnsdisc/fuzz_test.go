package dnsdisc

import (
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// FuzzServeDNS feeds the handler every message that unpacks, over UDP and
// TCP, from a client that may forward (to a loopback upstream) and one
// that may not. The handler must not panic, must answer a query exactly
// once with a message that packs and carries the query's ID, and must
// keep UDP answers within the size it promised.
func FuzzServeDNS(f *testing.F) {
	seeds := []*dns.Msg{
		query("web.svc.orch.", dns.TypeA, 0),
		query("WEB.svc.orch.", dns.TypeAAAA, 1232),
		query("_http._tcp.web.svc.orch.", dns.TypeSRV, 512),
		query("1.web.svc.orch.", dns.TypeA, 0),
		query("n1.node.orch.", dns.TypeA, 4096),
		query("2.0.0.10.in-addr.arpa.", dns.TypePTR, 0),
		query("orch.", dns.TypeSOA, 0),
		query("orch.", dns.TypeNS, 1232),
		query("orch.", dns.TypeANY, 0),
		query("nope.svc.orch.", dns.TypeTXT, 0),
		query("known.example.", dns.TypeA, 0),
		query("7.2.0.192.in-addr.arpa.", dns.TypePTR, 0),
		query(".", dns.TypeNS, 0),
	}
	notify := query("orch.", dns.TypeSOA, 0)
	notify.Opcode = dns.OpcodeNotify
	two := query("web.svc.orch.", dns.TypeA, 0)
	two.Question = append(two.Question, dns.Question{Name: "db.svc.orch.", Qtype: dns.TypeA, Qclass: dns.ClassINET})
	seeds = append(seeds, notify, two)
	for _, m := range seeds {
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}

	up := startUpstream(f)
	cfg := forwardConfig(up.addr)
	cfg.ForwardTimeout = 200 * time.Millisecond // slow.example. must not stall the fuzzer
	s := newTestServer(f, cfg)
	big := testServices()
	for i := 3; i < 80; i++ {
		big[0].Replicas = append(big[0].Replicas, Replica{Slot: i, Addr: netip.AddrFrom4([4]byte{10, 0, 1, byte(i)})})
	}
	s.Update(NewSnapshot(big, testNodes()))

	f.Fuzz(func(t *testing.T, b []byte) {
		req := new(dns.Msg)
		if err := req.Unpack(b); err != nil {
			return
		}
		for _, c := range []struct {
			remote string
			udp    bool
		}{{"127.0.0.1:5353", true}, {"192.0.2.1:5353", true}, {"127.0.0.1:5353", false}} {
			w := newRecorder(c.remote, c.udp)
			// The handler may rewrite nothing in req that the next round
			// depends on; unpack afresh to be sure.
			r := new(dns.Msg)
			if err := r.Unpack(b); err != nil {
				t.Fatal(err)
			}
			s.ServeDNS(w, r)
			if req.Response {
				if w.writes != 0 {
					t.Fatalf("answered a response: %v", w.msg)
				}
				continue
			}
			if w.writes != 1 {
				t.Fatalf("%d writes, want 1", w.writes)
			}
			if w.msg.Id != req.Id || !w.msg.Response {
				t.Fatalf("reply id %d response %t, want id %d", w.msg.Id, w.msg.Response, req.Id)
			}
			if c.udp {
				limit := dns.MinMsgSize
				if opt := req.IsEdns0(); opt != nil {
					limit = min(max(int(opt.UDPSize()), dns.MinMsgSize), maxUDPSize)
				}
				// The recorder packs with the reply's own compression
				// setting, as the server's writers do.
				if len(w.wire) > limit {
					t.Fatalf("UDP answer of %d bytes, limit %d", len(w.wire), limit)
				}
			}
		}
	})
}

// FuzzUpstreamsFromResolvConf: whatever the file holds, every upstream
// returned is one Config accepts, and there are at most three.
func FuzzUpstreamsFromResolvConf(f *testing.F) {
	f.Add([]byte("nameserver 10.255.255.53\n"))
	f.Add([]byte("# comment\nsearch example.com\nnameserver 127.0.0.53\noptions edns0 trust-ad\n"))
	f.Add([]byte("nameserver ::1\nnameserver fe80::1%eth0\nnameserver 1.1.1.1\nnameserver 8.8.8.8\n"))
	f.Add([]byte("nameserver\nnameserver 0.0.0.0\nnameserver 300.1.1.1\n\tnameserver   192.0.2.1   # x\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ups := parseResolvConf(b)
		if len(ups) > maxNameservers {
			t.Fatalf("%d upstreams", len(ups))
		}
		if err := (Config{Upstreams: ups}).Validate(); err != nil {
			t.Fatalf("upstreams %q: %v", ups, err)
		}
	})
}

package dnsdisc

import (
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// upstream is a resolver on loopback for the forwarding tests, with a few
// known names, counting the queries it gets per name and transport.
type upstream struct {
	addr      string
	udp, tcp  *dns.Server
	mu        sync.Mutex
	hits      map[string]int // "name/udp" or "name/tcp"
	failAll   bool           // answer SERVFAIL to everything
	closeOnce sync.Once
}

// startUpstream starts an upstream on a free loopback port, stopped at
// the end of the test (or earlier with close).
func startUpstream(t testing.TB) *upstream {
	t.Helper()
	var pc net.PacketConn
	var ln net.Listener
	for attempt := 1; ; attempt++ { // the UDP port may be taken for TCP
		var err error
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if ln, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
		if attempt == 10 {
			t.Fatal(err)
		}
	}
	u := &upstream{addr: pc.LocalAddr().String(), hits: map[string]int{}}
	h := dns.HandlerFunc(u.serve)
	started := make(chan struct{}, 2)
	notify := func() { started <- struct{}{} }
	u.udp = &dns.Server{PacketConn: pc, Handler: h, NotifyStartedFunc: notify}
	u.tcp = &dns.Server{Listener: ln, Handler: h, NotifyStartedFunc: notify}
	go u.udp.ActivateAndServe()
	go u.tcp.ActivateAndServe()
	<-started
	<-started
	t.Cleanup(u.close)
	return u
}

func (u *upstream) close() {
	u.closeOnce.Do(func() {
		u.udp.Shutdown()
		u.tcp.Shutdown()
	})
}

func (u *upstream) count(name, network string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.hits[name+"/"+network]
}

func (u *upstream) serve(w dns.ResponseWriter, r *dns.Msg) {
	q := r.Question[0]
	name := strings.ToLower(q.Name)
	_, udp := w.RemoteAddr().(*net.UDPAddr)
	network := "tcp"
	if udp {
		network = "udp"
	}
	u.mu.Lock()
	u.hits[name+"/"+network]++
	failAll := u.failAll
	u.mu.Unlock()

	m := new(dns.Msg)
	m.SetReply(r)
	m.RecursionAvailable = true
	soa := &dns.SOA{Hdr: dns.RR_Header{Name: "example.", Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 300},
		Ns: "ns.example.", Mbox: "h.example.", Serial: 1, Refresh: 1, Retry: 1, Expire: 1, Minttl: 10}
	switch {
	case failAll:
		m.Rcode = dns.RcodeServerFailure
	case name == "known.example." && q.Qtype == dns.TypeA:
		m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 30},
			A: net.IPv4(192, 0, 2, 7)}}
	case name == "7.2.0.192.in-addr.arpa." && q.Qtype == dns.TypePTR:
		m.Answer = []dns.RR{&dns.PTR{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypePTR, Class: dns.ClassINET, Ttl: 30},
			Ptr: "known.example."}}
	case name == "big.example." && q.Qtype == dns.TypeTXT:
		for i := range 40 {
			m.Answer = append(m.Answer, &dns.TXT{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 30},
				Txt: []string{strings.Repeat(string(rune('a'+i%26)), 100)}})
		}
	case name == "fail.example.":
		m.Rcode = dns.RcodeServerFailure
	case name == "slow.example.":
		return // never answers
	default:
		m.Rcode = dns.RcodeNameError
		m.Ns = []dns.RR{soa}
	}
	if opt := r.IsEdns0(); opt != nil {
		m.SetEdns0(opt.UDPSize(), opt.Do())
	}
	if udp {
		size := dns.MinMsgSize
		if opt := r.IsEdns0(); opt != nil {
			size = int(opt.UDPSize())
		}
		m.Truncate(size)
	}
	w.WriteMsg(m)
}

// forwardConfig forwards to ups for loopback clients.
func forwardConfig(ups ...string) Config {
	return Config{Upstreams: ups, ForwardFrom: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}
}

// TestForward_AnswersAndCaches: an allowed client's out-of-zone query is
// answered by the upstream once, then from the cache.
func TestForward_AnswersAndCaches(t *testing.T) {
	up := startUpstream(t)
	s := newTestServer(t, forwardConfig(up.addr))
	addr := listenTest(t, s)

	for i, name := range []string{"known.example.", "KNOWN.Example."} {
		r := exchange(t, "udp", addr, query(name, dns.TypeA, 0))
		if r.Rcode != dns.RcodeSuccess || firstAnswer(r) != "192.0.2.7" || !r.RecursionAvailable || r.Authoritative {
			t.Fatalf("query %d: %s %v RA %t AA %t, want 192.0.2.7 with RA, not AA", i, dns.RcodeToString[r.Rcode], r.Answer, r.RecursionAvailable, r.Authoritative)
		}
		if r.Question[0].Name != name {
			t.Errorf("query %d: question %q, want %q", i, r.Question[0].Name, name)
		}
	}
	if n := up.count("known.example.", "udp"); n != 1 {
		t.Errorf("upstream asked %d times, want 1 (the second answer from the cache)", n)
	}
	if st := s.Stats(); st.Forwarded != 1 || st.CacheHits != 1 {
		t.Errorf("stats: forwarded %d, cache hits %d; want 1 and 1", st.Forwarded, st.CacheHits)
	}
	// Over TCP too, and the negative answer is cached with its SOA.
	for range 2 {
		r := exchange(t, "tcp", addr, query("missing.example.", dns.TypeA, 1232))
		if r.Rcode != dns.RcodeNameError || len(r.Ns) != 1 {
			t.Fatalf("missing: %s with %d authority records", dns.RcodeToString[r.Rcode], len(r.Ns))
		}
	}
	if n := up.count("missing.example.", "udp"); n != 1 {
		t.Errorf("upstream asked for the missing name %d times, want 1", n)
	}
	// A reverse name the zone does not know is forwarded.
	r := exchange(t, "udp", addr, query("7.2.0.192.in-addr.arpa.", dns.TypePTR, 0))
	if len(r.Answer) != 1 || r.Answer[0].(*dns.PTR).Ptr != "known.example." {
		t.Errorf("foreign PTR: %v", r.Answer)
	}
	// Names in the zone never are.
	r = exchange(t, "udp", addr, query("nope.svc.orch.", dns.TypeA, 0))
	if r.Rcode != dns.RcodeNameError || !r.RecursionAvailable || up.count("nope.svc.orch.", "udp") != 0 {
		t.Errorf("in-zone name: %s RA %t, asked upstream %d times", dns.RcodeToString[r.Rcode], r.RecursionAvailable, up.count("nope.svc.orch.", "udp"))
	}
}

// TestForward_RefusedOutsideForwardFrom: a client outside ForwardFrom
// gets REFUSED for names outside the zone and answers inside it. The
// test client is on 127.0.0.1, so ForwardFrom is set to a prefix without
// it: the server decides on the source address alone (mayForward), so
// this is the same as a client on another network with ForwardFrom
// holding loopback.
func TestForward_RefusedOutsideForwardFrom(t *testing.T) {
	up := startUpstream(t)
	cfg := forwardConfig(up.addr)
	cfg.ForwardFrom = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("::1/128")}
	s := newTestServer(t, cfg)
	addr := listenTest(t, s)
	for _, network := range []string{"udp", "tcp"} {
		r := exchange(t, network, addr, query("known.example.", dns.TypeA, 0))
		if r.Rcode != dns.RcodeRefused || len(r.Answer) != 0 || r.RecursionAvailable {
			t.Errorf("%s: %s %v RA %t, want REFUSED without RA", network, dns.RcodeToString[r.Rcode], r.Answer, r.RecursionAvailable)
		}
		r = exchange(t, network, addr, query("7.2.0.192.in-addr.arpa.", dns.TypePTR, 0))
		if r.Rcode != dns.RcodeNameError {
			t.Errorf("%s: foreign PTR %s, want NXDOMAIN", network, dns.RcodeToString[r.Rcode])
		}
		r = exchange(t, network, addr, query("web.svc.orch.", dns.TypeA, 0))
		if len(r.Answer) != 3 {
			t.Errorf("%s: in-zone name refused: %v", network, r)
		}
	}
	if n := up.count("known.example.", "udp"); n != 0 {
		t.Errorf("upstream asked %d times, want 0", n)
	}
}

// TestSetForwardFrom: the allowed sources can change while the server
// runs (the agent's replica subnet moves), and take effect at once.
func TestSetForwardFrom(t *testing.T) {
	up := startUpstream(t)
	s := newTestServer(t, forwardConfig(up.addr))
	addr := listenTest(t, s)
	if r := exchange(t, "udp", addr, query("known.example.", dns.TypeA, 0)); r.Rcode != dns.RcodeSuccess {
		t.Fatalf("loopback allowed: %s, want NOERROR", dns.RcodeToString[r.Rcode])
	}
	s.SetForwardFrom([]netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")})
	if r := exchange(t, "udp", addr, query("other.example.", dns.TypeA, 0)); r.Rcode != dns.RcodeRefused {
		t.Errorf("loopback no longer allowed: %s, want REFUSED", dns.RcodeToString[r.Rcode])
	}
	s.SetForwardFrom([]netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")})
	if r := exchange(t, "udp", addr, query("known.example.", dns.TypeA, 0)); r.Rcode != dns.RcodeSuccess {
		t.Errorf("loopback allowed again: %s, want NOERROR", dns.RcodeToString[r.Rcode])
	}
}

// TestForward_NoUpstreams: allowed clients get REFUSED too when there is
// nowhere to forward.
func TestForward_NoUpstreams(t *testing.T) {
	s := newTestServer(t, forwardConfig())
	w := newRecorder("127.0.0.1:1", true)
	s.ServeDNS(w, query("known.example.", dns.TypeA, 0))
	if w.msg.Rcode != dns.RcodeRefused || w.msg.RecursionAvailable {
		t.Errorf("%s RA %t, want REFUSED without RA", dns.RcodeToString[w.msg.Rcode], w.msg.RecursionAvailable)
	}
}

// TestForward_Failover: a dead upstream, one that fails, one that times
// out, then one that answers.
func TestForward_Failover(t *testing.T) {
	good := startUpstream(t)
	bad := startUpstream(t)
	bad.mu.Lock()
	bad.failAll = true
	bad.mu.Unlock()
	dead := startUpstream(t)
	dead.close()
	cfg := forwardConfig(dead.addr, bad.addr, good.addr)
	cfg.ForwardTimeout = 300 * time.Millisecond
	s := newTestServer(t, cfg)
	addr := listenTest(t, s)

	r := exchange(t, "udp", addr, query("known.example.", dns.TypeA, 0))
	if firstAnswer(r) != "192.0.2.7" {
		t.Fatalf("known: %s %v", dns.RcodeToString[r.Rcode], r.Answer)
	}
	if bad.count("known.example.", "udp") != 1 || good.count("known.example.", "udp") != 1 {
		t.Errorf("asked bad %d, good %d times; want 1, 1", bad.count("known.example.", "udp"), good.count("known.example.", "udp"))
	}
	// Every upstream fails: SERVFAIL, not cached.
	for range 2 {
		r = exchange(t, "udp", addr, query("fail.example.", dns.TypeA, 0))
		if r.Rcode != dns.RcodeServerFailure {
			t.Errorf("fail: %s, want SERVFAIL", dns.RcodeToString[r.Rcode])
		}
	}
	if n := good.count("fail.example.", "udp"); n != 2 {
		t.Errorf("SERVFAIL cached: asked %d times, want 2", n)
	}
	// Timeouts: the client gets SERVFAIL after the timeouts.
	r = exchange(t, "udp", addr, query("slow.example.", dns.TypeA, 0))
	if r.Rcode != dns.RcodeServerFailure {
		t.Errorf("slow: %s, want SERVFAIL", dns.RcodeToString[r.Rcode])
	}
	if st := s.Stats(); st.ForwardFailures != 3 {
		t.Errorf("forward failures %d, want 3", st.ForwardFailures)
	}
}

// TestForward_TruncatedRetriesTCP: an upstream answer too big for UDP is
// fetched again over TCP; the client gets it whole over TCP and truncated
// over UDP.
func TestForward_TruncatedRetriesTCP(t *testing.T) {
	up := startUpstream(t)
	s := newTestServer(t, forwardConfig(up.addr))
	addr := listenTest(t, s)
	r := exchange(t, "tcp", addr, query("big.example.", dns.TypeTXT, 0))
	if len(r.Answer) != 40 || r.Truncated {
		t.Errorf("TCP: %d answers TC %t, want 40", len(r.Answer), r.Truncated)
	}
	if up.count("big.example.", "udp") != 1 || up.count("big.example.", "tcp") != 1 {
		t.Errorf("upstream asked %d times over UDP, %d over TCP; want 1 and 1", up.count("big.example.", "udp"), up.count("big.example.", "tcp"))
	}
	r = exchange(t, "udp", addr, query("big.example.", dns.TypeTXT, 1232))
	if !r.Truncated || len(r.Answer) >= 40 {
		t.Errorf("UDP: %d answers TC %t, want truncated (from the cache)", len(r.Answer), r.Truncated)
	}
}

// TestForward_NotToItself: a server whose upstream is its own address
// answers SERVFAIL at once instead of looping.
func TestForward_NotToItself(t *testing.T) {
	// A free port, to name as upstream before the server listens there
	// (tried again if someone takes it meanwhile).
	var addr string
	for attempt := 1; ; attempt++ {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr = pc.LocalAddr().String()
		pc.Close()
		s := newTestServer(t, forwardConfig(addr)) // as if resolv.conf named our own address
		if err = s.Listen(addr); err == nil {
			break
		}
		if attempt == 5 {
			t.Fatal(err)
		}
	}
	start := time.Now()
	r := exchange(t, "udp", addr, query("known.example.", dns.TypeA, 0))
	if r.Rcode != dns.RcodeServerFailure {
		t.Errorf("%s, want SERVFAIL", dns.RcodeToString[r.Rcode])
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("took %v: it asked itself", d)
	}
}

// TestCache covers TTLs, expiry, ageing and eviction.
func TestCache(t *testing.T) {
	a := func(ttl uint32) dns.RR {
		return &dns.A{Hdr: dns.RR_Header{Name: "x.", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: ttl}, A: net.IPv4(192, 0, 2, 1)}
	}
	soa := func(ttl, minttl uint32) dns.RR {
		return &dns.SOA{Hdr: dns.RR_Header{Name: "x.", Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: ttl}, Minttl: minttl}
	}
	ttlTests := []struct {
		name string
		msg  *dns.Msg
		want time.Duration // 0: not cached
	}{
		{"smallest answer TTL", &dns.Msg{Answer: []dns.RR{a(30), a(20)}}, 20 * time.Second},
		{"capped", &dns.Msg{Answer: []dns.RR{a(3600)}}, maxCacheTTL * time.Second},
		{"zero TTL", &dns.Msg{Answer: []dns.RR{a(0)}}, 0},
		{"NXDOMAIN by SOA minimum", &dns.Msg{MsgHdr: dns.MsgHdr{Rcode: dns.RcodeNameError}, Ns: []dns.RR{soa(300, 10)}}, 10 * time.Second},
		{"NODATA by SOA TTL", &dns.Msg{Ns: []dns.RR{soa(7, 100)}}, 7 * time.Second},
		{"negative capped", &dns.Msg{Ns: []dns.RR{soa(3600, 3600)}}, maxNegativeTTL * time.Second},
		{"negative without SOA", &dns.Msg{MsgHdr: dns.MsgHdr{Rcode: dns.RcodeNameError}}, 0},
		{"SERVFAIL", &dns.Msg{MsgHdr: dns.MsgHdr{Rcode: dns.RcodeServerFailure}, Answer: []dns.RR{a(30)}}, 0},
		{"truncated", &dns.Msg{MsgHdr: dns.MsgHdr{Truncated: true}, Answer: []dns.RR{a(30)}}, 0},
	}
	for _, tt := range ttlTests {
		got, ok := cacheTTL(tt.msg)
		if !ok {
			got = 0
		}
		if got != tt.want {
			t.Errorf("%s: cacheTTL %v, want %v", tt.name, got, tt.want)
		}
	}

	c := newCache(2)
	now := time.Now()
	k := func(n string) cacheKey { return cacheKey{name: n, qtype: dns.TypeA, qclass: dns.ClassINET} }
	c.put(k("a."), &dns.Msg{Answer: []dns.RR{a(10)}}, now)
	c.put(k("b."), &dns.Msg{Answer: []dns.RR{a(10)}}, now)
	if _, age, ok := c.get(k("a."), now.Add(3500*time.Millisecond)); !ok || age != 3 {
		t.Errorf("a after 3.5 s: ok %t age %d, want 3", ok, age)
	}
	c.put(k("c."), &dns.Msg{Answer: []dns.RR{a(10)}}, now) // evicts b, the least recently used
	if _, _, ok := c.get(k("b."), now); ok {
		t.Error("b not evicted")
	}
	if _, _, ok := c.get(k("a."), now.Add(10*time.Second)); ok {
		t.Error("a not expired after its TTL")
	}
	if c.len() != 1 {
		t.Errorf("len %d, want 1 (c)", c.len())
	}
	if _, _, ok := c.get(cacheKey{name: "c.", qtype: dns.TypeA, qclass: dns.ClassINET, do: true}, now); ok {
		t.Error("an answer fetched without DO served to a DO query")
	}
	if newCache(-1) != nil || newCache(0) != nil {
		t.Error("a cache of no entries")
	}

	// Served from the cache, TTLs count down and the cached records stay.
	up := &dns.Msg{Answer: []dns.RR{a(30)}}
	m := new(dns.Msg)
	copyUpstream(m, up, 12)
	if m.Answer[0].Header().Ttl != 18 || up.Answer[0].Header().Ttl != 30 {
		t.Errorf("aged TTL %d (cached %d), want 18 (30)", m.Answer[0].Header().Ttl, up.Answer[0].Header().Ttl)
	}
}

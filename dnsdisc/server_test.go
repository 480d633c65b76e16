package dnsdisc

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/orchproject/orch/internal/testenv"
)

// TestServer_MiekgClient asks a listening server over UDP and TCP.
func TestServer_MiekgClient(t *testing.T) {
	s := newTestServer(t, Config{})
	addr := listenTest(t, s)
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			r := exchange(t, network, addr, query("Web.Svc.Orch.", dns.TypeA, 0))
			if got := rrStrings(r.Answer); !slices.Equal(got, []string{"A 10.0.0.2", "A 10.0.0.3", "A 10.0.0.4"}) || !r.Authoritative {
				t.Errorf("web A: %v (AA %t)", got, r.Authoritative)
			}
			if r.Question[0].Name != "Web.Svc.Orch." {
				t.Errorf("question %q, want the case asked", r.Question[0].Name)
			}
			r = exchange(t, network, addr, query("_metrics._tcp.web.svc.orch.", dns.TypeSRV, 1232))
			if len(r.Answer) != 3 || len(r.Extra) != 4 { // 3 A and the OPT
				t.Errorf("SRV: %d answers, %d additional; want 3 and 4", len(r.Answer), len(r.Extra))
			}
			r = exchange(t, network, addr, query("2.web.svc.orch.", dns.TypeA, 0))
			if firstAnswer(r) != "10.0.0.4" {
				t.Errorf("slot 2: %v", r.Answer)
			}
			r = exchange(t, network, addr, query("nope.svc.orch.", dns.TypeA, 0))
			if r.Rcode != dns.RcodeNameError || len(r.Ns) != 1 {
				t.Errorf("nope: %s with %d authority records, want NXDOMAIN with the SOA", dns.RcodeToString[r.Rcode], len(r.Ns))
			}
			r = exchange(t, network, addr, query("web.svc.orch.", dns.TypeAAAA, 0))
			if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 0 || len(r.Ns) != 1 {
				t.Errorf("web AAAA: %s, %d answers; want NODATA", dns.RcodeToString[r.Rcode], len(r.Answer))
			}
		})
	}
}

// TestServer_Dig asks with dig, the reference client.
func TestServer_Dig(t *testing.T) {
	testenv.RequireCommand(t, "dig")
	s := newTestServer(t, Config{})
	addr := netip.MustParseAddrPort(listenTest(t, s))
	dig := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		argv := append([]string{"@" + addr.Addr().String(), "-p", strings.TrimPrefix(addr.String(), addr.Addr().String()+":"),
			"+tries=1", "+time=2"}, args...)
		out, err := exec.CommandContext(ctx, "dig", argv...).CombinedOutput()
		if err != nil {
			t.Fatalf("dig %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	lines := func(s string) []string {
		out := strings.Fields(s)
		slices.Sort(out)
		return out
	}
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"+short", "web.svc.orch"}, []string{"10.0.0.2", "10.0.0.3", "10.0.0.4"}},
		{[]string{"+short", "1.WEB.svc.orch"}, []string{"10.0.0.3"}},
		{[]string{"+short", "db.svc.orch", "AAAA"}, []string{"fd00::5"}},
		{[]string{"+short", "n2.node.orch"}, []string{"192.168.1.2"}},
		{[]string{"+short", "-x", "10.0.0.3"}, []string{"1.web.svc.orch."}},
		{[]string{"+short", "-x", "fd00::5"}, []string{"0.db.svc.orch."}},
		{[]string{"+short", "_pg._tcp.db.svc.orch", "SRV"}, []string{"0", "0.db.svc.orch.", "10", "5432"}},
		{[]string{"+short", "+tcp", "_http._tcp.web.svc.orch", "SRV"},
			[]string{"0", "0", "0", "0.web.svc.orch.", "1.web.svc.orch.", "10", "10", "10", "2.web.svc.orch.", "80", "80", "80"}},
	}
	for _, tt := range tests {
		if got := lines(dig(tt.args...)); !slices.Equal(got, tt.want) {
			t.Errorf("dig %v: %q, want %q", tt.args, got, tt.want)
		}
	}
	for _, c := range []struct {
		name, typ, status string
	}{
		{"nope.svc.orch", "A", "status: NXDOMAIN"},
		{"web.svc.orch", "TXT", "status: NOERROR"},
		{"svc.orch", "A", "status: NOERROR"},
		{"example.com", "A", "status: REFUSED"},
	} {
		out := dig(c.name, c.typ)
		if !strings.Contains(out, c.status) {
			t.Errorf("dig %s %s: want %q in\n%s", c.name, c.typ, c.status, out)
		}
		if c.status != "status: REFUSED" && !strings.Contains(out, "IN\tSOA\tns.orch. hostmaster.orch.") {
			t.Errorf("dig %s %s: want the SOA in the authority section:\n%s", c.name, c.typ, out)
		}
	}
	// The additional section of an SRV answer, which +short hides.
	out := dig("_http._tcp.web.svc.orch", "SRV")
	if !strings.Contains(out, "ADDITIONAL: 4") || !strings.Contains(out, "flags: qr aa rd;") {
		t.Errorf("dig SRV: want 3 addresses and the OPT in ADDITIONAL, flags qr aa rd:\n%s", out)
	}
}

// goResolver returns a pure-Go resolver that sends every query to addr
// over the network the resolver asks for.
func goResolver(addr string) *net.Resolver {
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
}

// TestServer_GoResolver uses net.Resolver, as Go programs in replicas do.
func TestServer_GoResolver(t *testing.T) {
	s := newTestServer(t, Config{})
	r := goResolver(listenTest(t, s))
	ctx := t.Context()

	hosts, err := r.LookupHost(ctx, "web.svc.orch")
	slices.Sort(hosts)
	if err != nil || !slices.Equal(hosts, []string{"10.0.0.2", "10.0.0.3", "10.0.0.4"}) {
		t.Errorf("LookupHost web: %v, %v", hosts, err)
	}
	hosts, err = r.LookupHost(ctx, "db.svc.orch")
	if err != nil || !slices.Equal(hosts, []string{"fd00::5"}) {
		t.Errorf("LookupHost db (A NODATA, AAAA): %v, %v", hosts, err)
	}
	_, srvs, err := r.LookupSRV(ctx, "http", "tcp", "web.svc.orch")
	var targets []string
	for _, s := range srvs {
		targets = append(targets, s.Target)
		if s.Port != 80 {
			t.Errorf("SRV port %d, want 80", s.Port)
		}
	}
	slices.Sort(targets)
	if err != nil || !slices.Equal(targets, []string{"0.web.svc.orch.", "1.web.svc.orch.", "2.web.svc.orch."}) {
		t.Errorf("LookupSRV: %v, %v", targets, err)
	}
	names, err := r.LookupAddr(ctx, "10.0.0.2")
	if err != nil || !slices.Equal(names, []string{"0.web.svc.orch."}) {
		t.Errorf("LookupAddr replica: %v, %v", names, err)
	}
	names, err = r.LookupAddr(ctx, "192.168.1.2")
	if err != nil || !slices.Equal(names, []string{"n2.node.orch."}) {
		t.Errorf("LookupAddr node: %v, %v", names, err)
	}
	ips, err := r.LookupNetIP(ctx, "ip4", "N1.node.orch")
	if err != nil || len(ips) != 1 || ips[0] != netip.MustParseAddr("192.168.1.1") {
		t.Errorf("LookupNetIP node: %v, %v", ips, err)
	}
	_, err = r.LookupHost(ctx, "nope.svc.orch")
	if dnsErr, ok := errors.AsType[*net.DNSError](err); !ok || !dnsErr.IsNotFound {
		t.Errorf("LookupHost nope: %v, want not found", err)
	}
	_, err = r.LookupHost(ctx, "empty.svc.orch")
	if dnsErr, ok := errors.AsType[*net.DNSError](err); !ok || !dnsErr.IsNotFound {
		t.Errorf("LookupHost of a service without replicas: %v, want not found (no addresses)", err)
	}
}

// TestServer_Shuffles checks that clients taking the first address are
// spread over the replicas.
func TestServer_Shuffles(t *testing.T) {
	s := newTestServer(t, Config{})
	addr := listenTest(t, s)
	firsts := map[string]int{}
	srvFirsts := map[string]int{}
	for range 60 {
		firsts[firstAnswer(exchange(t, "udp", addr, query("web.svc.orch.", dns.TypeA, 0)))]++
		r := exchange(t, "udp", addr, query("_http._tcp.web.svc.orch.", dns.TypeSRV, 0))
		srvFirsts[r.Answer[0].(*dns.SRV).Target]++
	}
	// Each of 3 replicas comes first with probability 1/3; all three
	// should appear in 60 tries (missing one has probability 3·(2/3)^60).
	if len(firsts) != 3 || len(srvFirsts) != 3 {
		t.Errorf("first answers over 60 queries: A %v, SRV %v; want all 3 replicas first sometimes", firsts, srvFirsts)
	}
}

// TestServer_UpdateSwaps checks that the answer right after Update comes
// from the new snapshot.
func TestServer_UpdateSwaps(t *testing.T) {
	s := newTestServer(t, Config{})
	addr := listenTest(t, s)
	if r := exchange(t, "udp", addr, query("web.svc.orch.", dns.TypeA, 0)); len(r.Answer) != 3 {
		t.Fatalf("before: %v", r.Answer)
	}
	svcs := testServices()
	svcs[0].Replicas = slices.Delete(svcs[0].Replicas, 1, 2) // slot 1 stops
	svcs = append(svcs, Service{Name: "new", Replicas: []Replica{{Slot: 0, Addr: netip.MustParseAddr("10.0.9.9")}}})
	s.Update(NewSnapshot(svcs, testNodes()))

	r := exchange(t, "udp", addr, query("web.svc.orch.", dns.TypeA, 0))
	if got := rrStrings(r.Answer); !slices.Equal(got, []string{"A 10.0.0.2", "A 10.0.0.4"}) {
		t.Errorf("after: web %v, want slot 1 gone", got)
	}
	if r := exchange(t, "udp", addr, query("1.web.svc.orch.", dns.TypeA, 0)); r.Rcode != dns.RcodeNameError {
		t.Errorf("after: slot 1 %s, want NXDOMAIN", dns.RcodeToString[r.Rcode])
	}
	if r := exchange(t, "udp", addr, query("_http._tcp.web.svc.orch.", dns.TypeSRV, 0)); len(r.Answer) != 2 || len(r.Extra) != 2 {
		t.Errorf("after: SRV %d answers %d additional, want 2 and 2", len(r.Answer), len(r.Extra))
	}
	if r := exchange(t, "udp", addr, query("3.0.0.10.in-addr.arpa.", dns.TypePTR, 0)); r.Rcode != dns.RcodeNameError {
		t.Errorf("after: PTR of slot 1 %s, want NXDOMAIN", dns.RcodeToString[r.Rcode])
	}
	if r := exchange(t, "udp", addr, query("new.svc.orch.", dns.TypeA, 0)); firstAnswer(r) != "10.0.9.9" {
		t.Errorf("after: new service %v", r.Answer)
	}
}

// TestServer_Truncation: 60 replicas do not fit in 512 bytes.
func TestServer_Truncation(t *testing.T) {
	s := newTestServer(t, Config{})
	svcs := testServices()
	for i := 3; i < 60; i++ {
		svcs[0].Replicas = append(svcs[0].Replicas, Replica{Slot: i, Addr: netip.AddrFrom4([4]byte{10, 0, 1, byte(i)})})
	}
	s.Update(NewSnapshot(svcs, testNodes()))
	addr := listenTest(t, s)

	r := exchange(t, "udp", addr, query("web.svc.orch.", dns.TypeA, 0))
	if !r.Truncated || len(r.Answer) >= 60 {
		t.Errorf("UDP without EDNS: TC %t with %d answers, want TC and fewer than 60", r.Truncated, len(r.Answer))
	}
	if s.Stats().Truncated == 0 {
		t.Error("truncation not counted")
	}
	r = exchange(t, "udp", addr, query("web.svc.orch.", dns.TypeA, 600))
	if !r.Truncated || len(r.Answer) >= 60 {
		t.Errorf("UDP with EDNS 600: TC %t with %d answers, want TC and fewer than 60", r.Truncated, len(r.Answer))
	}
	r = exchange(t, "tcp", addr, query("web.svc.orch.", dns.TypeA, 0))
	if r.Truncated || len(r.Answer) != 60 {
		t.Errorf("TCP: TC %t with %d answers, want all 60", r.Truncated, len(r.Answer))
	}
	// SRV: 60 SRV records fit in 4096 but not 1232, whatever the client
	// offers (we never send more than 1232 over UDP).
	r = exchange(t, "udp", addr, query("_http._tcp.web.svc.orch.", dns.TypeSRV, 4096))
	if !r.Truncated {
		t.Errorf("SRV over UDP with EDNS 4096: %d answers without TC, want TC (1232 is our limit)", len(r.Answer))
	}
	r.Compress = true // as sent
	if b, _ := r.Pack(); len(b) > maxUDPSize {
		t.Errorf("UDP answer of %d bytes, over %d", len(b), maxUDPSize)
	}
	r = exchange(t, "tcp", addr, query("_http._tcp.web.svc.orch.", dns.TypeSRV, 0))
	if r.Truncated || len(r.Answer) != 60 || len(r.Extra) != 60 {
		t.Errorf("SRV over TCP: TC %t, %d answers, %d additional; want 60 and 60", r.Truncated, len(r.Answer), len(r.Extra))
	}
	// The SRV records of a 12-replica service fit in 512 bytes, their
	// addresses do not: they are left out without TC (RFC 2181 §9).
	svcs[0].Replicas = svcs[0].Replicas[:12]
	s.Update(NewSnapshot(svcs, testNodes()))
	r = exchange(t, "udp", addr, query("_http._tcp.web.svc.orch.", dns.TypeSRV, 0))
	if r.Truncated || len(r.Answer) != 12 || len(r.Extra) >= 12 {
		t.Errorf("SRV of 12 without EDNS: TC %t, %d answers, %d additional; want no TC, 12, fewer than 12", r.Truncated, len(r.Answer), len(r.Extra))
	}
}

// TestServer_Listen covers binding: a taken port, twice the same
// address, Unlisten, several addresses.
func TestServer_Listen(t *testing.T) {
	s := newTestServer(t, Config{})
	addr := listenTest(t, s)
	if err := s.Listen(addr); err == nil {
		t.Error("Listen on the same address twice: no error")
	}
	other, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := other.Listen(addr); err == nil {
		t.Error("Listen on a port another server holds: no error")
	}
	if err := s.Listen("localhost:53"); err == nil {
		t.Error("Listen on a host name: no error")
	}
	if err := s.Listen("127.0.0.2:0"); err != nil {
		t.Fatal(err)
	}
	if got := len(s.Addrs()); got != 2 {
		t.Fatalf("Addrs: %v, want 2", s.Addrs())
	}
	second := s.Addrs()[1].String()
	if !strings.HasPrefix(second, "127.0.0.2:") {
		t.Fatalf("Addrs: %v", s.Addrs())
	}
	exchange(t, "udp", second, query("web.svc.orch.", dns.TypeA, 0))
	if err := s.Unlisten("127.0.0.2:0"); err != nil { // as asked
		t.Fatalf("Unlisten as asked: %v", err)
	}
	if err := s.Unlisten(addr); err != nil { // as bound
		t.Fatalf("Unlisten as bound: %v", err)
	}
	if err := s.Unlisten(addr); err == nil {
		t.Error("Unlisten twice: no error")
	}
	c := &dns.Client{Net: "tcp", Timeout: time.Second}
	if _, _, err := c.Exchange(query("web.svc.orch.", dns.TypeA, 0), addr); err == nil {
		t.Error("answered over TCP after Unlisten")
	}
	// The port is free again.
	if err := other.Listen(addr); err != nil {
		t.Errorf("Listen after the other server's Unlisten: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Listen("127.0.0.1:0"); !errors.Is(err, ErrClosed) {
		t.Errorf("Listen after Close: %v, want ErrClosed", err)
	}
}

// TestServer_NoGoroutineLeak counts goroutines around a server's life
// with UDP, TCP (one connection left open) and forwarding.
func TestServer_NoGoroutineLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	up := startUpstream(t)
	s, err := New(Config{Upstreams: []string{up.addr}, ForwardFrom: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	if err != nil {
		t.Fatal(err)
	}
	s.Update(testSnapshot())
	if err := s.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	addr := s.Addrs()[0].String()
	exchange(t, "udp", addr, query("web.svc.orch.", dns.TypeA, 0))
	exchange(t, "udp", addr, query("known.example.", dns.TypeA, 0))
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	dc := &dns.Conn{Conn: conn}
	if err := dc.WriteMsg(query("web.svc.orch.", dns.TypeA, 0)); err != nil {
		t.Fatal(err)
	}
	if _, err := dc.ReadMsg(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	up.close()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("NumGoroutine = %d after Close, want %d\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		runtime.Gosched()
	}
}

// TestServer_UDPOneAtATime runs the queries and junk of the other tests
// through the reader used where recvmmsg is unavailable.
func TestServer_UDPOneAtATime(t *testing.T) {
	up := startUpstream(t)
	s := newTestServer(t, forwardConfig(up.addr))
	s.noBatch = true
	addr := listenTest(t, s)
	if r := exchange(t, "udp", addr, query("web.svc.orch.", dns.TypeA, 0)); len(r.Answer) != 3 {
		t.Errorf("web A: %v", r.Answer)
	}
	if r := exchange(t, "udp", addr, query("known.example.", dns.TypeA, 0)); firstAnswer(r) != "192.0.2.7" {
		t.Errorf("forwarded: %v", r)
	}
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, junk := range [][]byte{{}, {1, 2, 3}, make([]byte, 5000), append(make([]byte, 12), 0x3f)} {
		c.Write(junk)
	}
	waitFor(t, "junk counted", func() bool { return s.Stats().Malformed >= 2 })
	if r := exchange(t, "udp", addr, query("web.svc.orch.", dns.TypeA, 0)); len(r.Answer) != 3 {
		t.Errorf("web A after junk: %v", r.Answer)
	}
}

// TestServer_IPv6 listens on ::1 and forwards for it: the source address
// of IPv6 datagrams is read right.
func TestServer_IPv6(t *testing.T) {
	if l, err := net.ListenPacket("udp", "[::1]:0"); err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	} else {
		l.Close()
	}
	up := startUpstream(t)
	cfg := forwardConfig(up.addr)
	cfg.ForwardFrom = []netip.Prefix{netip.MustParsePrefix("::1/128")}
	s := newTestServer(t, cfg)
	if err := s.Listen("[::1]:0"); err != nil {
		t.Fatal(err)
	}
	addr := s.Addrs()[0].String()
	for _, network := range []string{"udp", "tcp"} {
		if r := exchange(t, network, addr, query("db.svc.orch.", dns.TypeAAAA, 0)); firstAnswer(r) != "fd00::5" {
			t.Errorf("%s db AAAA: %v", network, r.Answer)
		}
		if r := exchange(t, network, addr, query("known.example.", dns.TypeA, 0)); firstAnswer(r) != "192.0.2.7" {
			t.Errorf("%s forwarded from ::1: %v", network, r)
		}
	}
}

package dnsdisc

import (
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestServer_Junk sends random datagrams and random TCP streams, then
// checks that the server still answers and counted the junk.
func TestServer_Junk(t *testing.T) {
	up := startUpstream(t)
	s := newTestServer(t, forwardConfig(up.addr))
	addr := listenTest(t, s)
	rng := rand.New(rand.NewPCG(1, 2))

	q := query("web.svc.orch.", dns.TypeA, 1232)
	q.Id = 1
	valid, err := q.Pack()
	if err != nil {
		t.Fatal(err)
	}
	uc, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	for i := range 3000 {
		var pkt []byte
		switch i % 3 {
		case 0: // random bytes of random length, empty included
			pkt = make([]byte, rng.IntN(600))
			for j := range pkt {
				pkt[j] = byte(rng.Uint32())
			}
		case 1: // a valid query with a few bytes flipped
			pkt = append([]byte(nil), valid...)
			for range 1 + rng.IntN(4) {
				pkt[rng.IntN(len(pkt))] ^= byte(1 + rng.IntN(255))
			}
		case 2: // a valid query cut short
			pkt = valid[:rng.IntN(len(valid))]
		}
		if _, err := uc.Write(pkt); err != nil {
			t.Fatal(err)
		}
	}

	// TCP: random bytes, a huge length prefix with nothing behind it, a
	// tiny one; every connection is dropped or times out, none wedges the
	// listener.
	for i := range 20 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		junk := make([]byte, 1+rng.IntN(2000))
		for j := range junk {
			junk[j] = byte(rng.Uint32())
		}
		switch i % 4 {
		case 1:
			junk = []byte{0xff, 0xff, 1, 2, 3}
		case 2:
			junk = []byte{0, 3, 1, 2, 3}
		}
		c.Write(junk)
		if i%2 == 0 {
			c.Close() // half stay open until the server times them out
		} else {
			defer c.Close()
		}
	}

	for _, network := range []string{"udp", "tcp"} {
		// Over UDP the query may be dropped while the socket's buffer is
		// still full of junk (a loaded machine drains it slowly): what
		// matters is that the server answers, so it is asked again.
		var r *dns.Msg
		c := &dns.Client{Net: network, Timeout: 2 * time.Second}
		for attempt := 1; ; attempt++ {
			var err error
			if r, _, err = c.Exchange(query("web.svc.orch.", dns.TypeA, 0), addr); err == nil {
				break
			}
			if attempt == 5 {
				t.Fatalf("%s after junk: no answer in %d attempts: %v", network, attempt, err)
			}
		}
		if len(r.Answer) != 3 {
			t.Errorf("%s after junk: %v", network, r)
		}
	}
	waitFor(t, "malformed packets counted", func() bool { return s.Stats().Malformed > 100 })
	// A FORMERR answer to a packet with a valid header but a broken body,
	// on a fresh socket (the first one's buffer is full of answers to the
	// junk). UDP may drop it while the server's buffer is still full of
	// junk, so it is sent up to five times.
	broken := append([]byte(nil), valid[:12]...)
	broken[0], broken[1] = 0xab, 0xcd  // an ID no valid query above had
	broken = append(broken, 0x3f, 'x') // a label longer than the packet
	fc, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer fc.Close()
	buf := make([]byte, 512)
	for attempt := 1; ; attempt++ {
		if _, err := fc.Write(broken); err != nil {
			t.Fatal(err)
		}
		fc.SetReadDeadline(time.Now().Add(time.Second))
		n, err := fc.Read(buf)
		if err == nil {
			if n != 12 || buf[0] != broken[0] || buf[1] != broken[1] || buf[2]&0x80 == 0 || buf[3]&0xf != dns.RcodeFormatError {
				t.Fatalf("answer to a broken query: % x, want a 12-byte FORMERR header with its ID", buf[:n])
			}
			break
		}
		if attempt == 5 {
			t.Fatalf("no FORMERR for a broken query: %v", err)
		}
	}
}

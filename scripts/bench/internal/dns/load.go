package main

// The latency probe. dnsperf reports only the mean and standard deviation
// of its latencies (its -v per-query output costs it so much that it
// cannot hold a high rate), and a Go load generator fast enough to drive
// a server at 80% of its maximum would need a whole core of this 2-core
// machine for itself. So the load comes from dnsperf at a fixed rate (-Q)
// and this probe, at a low fixed rate (1,000 queries/s by default, a few
// percent of a core), measures what a client sees meanwhile: its queries
// wait in the same socket buffer and the same server loop as dnsperf's.
//
// The probe is open loop: query i is sent at start + i/rate whatever the
// answers do, round-robin over the names. The latency is from just
// before the send system call to just after the receive returns: the
// server, the kernel's loopback path and this program's wake-up, the same
// for both servers. A query unanswered after the run plus a grace period
// is lost. Queries are built by hand (a 12-byte header and one question)
// because miekg/dns may be imported by dnsdisc alone.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/orchproject/orch/scripts/bench/internal/benchkit"
)

// probeResult is one probe run.
type probeResult struct {
	rate                     float64 // probe queries per second
	sent, answered, bad      int64
	p50, p90, p99, p999, max time.Duration
}

func (r probeResult) lost() int64 { return r.sent - r.answered }

// packQuery returns a DNS query for name (no trailing dot needed), type
// A, class IN, recursion desired, ID id.
func packQuery(name string, id uint16) ([]byte, error) {
	b := make([]byte, 12, 12+len(name)+6)
	binary.BigEndian.PutUint16(b[0:], id)
	b[2] = 0x01                          // RD
	binary.BigEndian.PutUint16(b[4:], 1) // QDCOUNT
	for label := range strings.SplitSeq(strings.TrimSuffix(name, "."), ".") {
		if len(label) == 0 || len(label) > 63 {
			return nil, fmt.Errorf("name %q: bad label", name)
		}
		b = append(b, byte(len(label)))
		b = append(b, label...)
	}
	b = append(b, 0, 0, 1, 0, 1) // root, type A, class IN
	return b, nil
}

// replyInfo reads the ID, rcode and answer count of a DNS reply.
func replyInfo(b []byte) (id uint16, rcode, answers int, ok bool) {
	if len(b) < 12 || b[2]&0x80 == 0 {
		return 0, 0, 0, false
	}
	return binary.BigEndian.Uint16(b), int(b[3] & 0x0f), int(binary.BigEndian.Uint16(b[6:])), true
}

// probe sends queries for names to addr at rate per second for dur, waits
// grace for the last answers, and returns the latency percentiles. IDs
// run from 0 and must not wrap: rate × dur must stay under 65,536.
func probe(addr netip.AddrPort, names []string, rate float64, dur, grace time.Duration) (probeResult, error) {
	res := probeResult{rate: rate}
	total := int(rate * dur.Seconds())
	if total < 1 || total >= 1<<16 || len(names) == 0 {
		return res, fmt.Errorf("probe: %d queries, want 1 to 65,535", total)
	}
	tmpl := make([][]byte, len(names))
	for i, n := range names {
		q, err := packQuery(n, 0)
		if err != nil {
			return res, err
		}
		tmpl[i] = q
	}
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(addr))
	if err != nil {
		return res, fmt.Errorf("dial %s: %w", addr, err)
	}
	defer c.Close()

	start := time.Now()
	sentAt := make([]atomic.Int64, total) // ns since start, 0: answered or not sent
	var lats []time.Duration
	var bad atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, err := c.Read(buf)
			now := time.Since(start)
			if err != nil {
				if errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrDeadlineExceeded) {
					return
				}
				continue // an ICMP error from an earlier query, and the like
			}
			id, rcode, answers, ok := replyInfo(buf[:n])
			if !ok || rcode != 0 || answers == 0 {
				bad.Add(1)
			}
			if !ok || int(id) >= total {
				continue
			}
			if t := sentAt[id].Swap(0); t != 0 {
				lats = append(lats, now-time.Duration(t))
			}
		}
	}()

	interval := time.Duration(float64(time.Second) / rate)
	tick := time.NewTicker(interval)
	q := make([]byte, 0, 512)
	for i := range total {
		q = append(q[:0], tmpl[i%len(tmpl)]...)
		binary.BigEndian.PutUint16(q, uint16(i))
		sentAt[i].Store(int64(time.Since(start)) | 1) // never 0
		if _, err := c.Write(q); err != nil {
			sentAt[i].Store(0)
		}
		res.sent++
		<-tick.C
	}
	tick.Stop()
	c.SetReadDeadline(time.Now().Add(grace))
	<-done

	slices.Sort(lats)
	res.answered, res.bad = int64(len(lats)), bad.Load()
	res.p50, res.p90, res.p99, res.p999 = benchkit.Percentile(lats, 0.50), benchkit.Percentile(lats, 0.90), benchkit.Percentile(lats, 0.99), benchkit.Percentile(lats, 0.999)
	if len(lats) > 0 {
		res.max = lats[len(lats)-1]
	}
	return res, nil
}

package main

import (
	"math"
	"slices"
	"strings"
	"testing"
)

func TestParsePing(t *testing.T) {
	out := `PING 10.213.2.2 (10.213.2.2) 56(84) bytes of data.
64 bytes from 10.213.2.2: icmp_seq=1 ttl=62 time=0.512 ms
64 bytes from 10.213.2.2: icmp_seq=2 ttl=62 time=0.041 ms
64 bytes from 10.213.2.2: icmp_seq=4 ttl=62 time=0.060 ms

--- 10.213.2.2 ping statistics ---
4 packets transmitted, 3 received, 25% packet loss, time 31ms
rtt min/avg/max/mdev = 0.041/0.204/0.512/0.217 ms
`
	r, err := parsePing([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	if want := []float64{41, 60}; !slices.EqualFunc(r.rtts, want, func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }) {
		t.Errorf("rtts = %v, want %v (first reply dropped, in µs)", r.rtts, want)
	}
	if r.sent != 4 || r.lost != 1 {
		t.Errorf("sent %d lost %d, want 4 and 1", r.sent, r.lost)
	}
	if _, err := parsePing([]byte("ping: connect: Network is unreachable\n")); err == nil {
		t.Error("no error for output without a summary")
	}
}

func TestParseIperf(t *testing.T) {
	out := `{"start":{},"intervals":[],"end":{"sum_sent":{"bits_per_second":2.5e10,"retransmits":7},
	"sum_received":{"bits_per_second":2.4e10},"cpu_utilization_percent":{"host_total":88.5,"remote_total":61.2}}}`
	r, err := parseIperf([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	if r.bps != 2.4e10 || r.retransmits != 7 || r.senderCPU != 88.5 || r.receiverCPU != 61.2 {
		t.Errorf("parseIperf = %+v", r)
	}
	_, err = parseIperf([]byte(`{"start":{},"end":{},"error":"unable to connect to server: Connection refused"}`))
	if err == nil || !strings.Contains(err.Error(), "Connection refused") {
		t.Errorf("parseIperf of a failed run = %v", err)
	}
}

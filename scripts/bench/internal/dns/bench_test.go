package main

import (
	"bytes"
	"math"
	"testing"
	"time"

	"github.com/orchproject/orch/dnsdisc"
)

func TestParsePerf(t *testing.T) {
	out := `DNS Performance Testing Tool
Version 2.10.0

[Status] Testing complete (time limit)

Statistics:

  Queries sent:         973577
  Queries completed:    973565 (100.00%)
  Queries lost:         12 (0.00%)

  Response codes:       NOERROR 973560 (100.00%), SERVFAIL 5 (0.00%)
  Average packet size:  request 34, response 65
  Run time (s):         8.001369
  Queries per second:   121676.749894

  Average Latency (s):  0.001111 (min 0.000012, max 0.016361)
  Latency StdDev (s):   0.000560
`
	r, err := parsePerf(out)
	if err != nil {
		t.Fatal(err)
	}
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	if r.completed != 973565 || r.lost != 12 || !near(r.qps, 121676.749894) || r.noerror != 973560 ||
		!near(r.avgMS, 1.111) || !near(r.maxMS, 16.361) || !near(r.stddevMS, 0.56) || r.otherResponseCode != "SERVFAIL 5" {
		t.Errorf("parsePerf: %+v", r)
	}
	if _, err := parsePerf("dnsperf: invalid option\n"); err == nil {
		t.Error("no statistics: no error")
	}
}

func TestPackQuery(t *testing.T) {
	q, err := packQuery("svc-001.svc.orch", 0x1234)
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{0x12, 0x34, 0x01, 0, 0, 1, 0, 0, 0, 0, 0, 0,
		7, 's', 'v', 'c', '-', '0', '0', '1', 3, 's', 'v', 'c', 4, 'o', 'r', 'c', 'h', 0, 0, 1, 0, 1}
	if !bytes.Equal(q, want) {
		t.Errorf("packQuery:\n got %v\nwant %v", q, want)
	}
	if _, err := packQuery("a..b", 1); err == nil {
		t.Error("empty label: no error")
	}
	if _, _, _, ok := replyInfo(q); ok {
		t.Error("replyInfo took a query for a reply")
	}
}

// TestProbe probes an in-process dnsdisc server serving the benchmark's
// services: every query answered, with the right number of addresses.
func TestProbe(t *testing.T) {
	s, err := dnsdisc.New(dnsdisc.Config{Domain: domain})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.Update(dnsdisc.NewSnapshot(services(), nil))
	if err := s.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, svc := range services() {
		names = append(names, fqdn(svc))
	}
	r, err := probe(s.Addrs()[0], names, 1000, 300*time.Millisecond, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if r.sent != 300 || r.answered != 300 || r.bad != 0 || r.p50 <= 0 || r.max < r.p99 {
		t.Errorf("probe: %+v", r)
	}
	if st := s.Stats(); st.Queries["A"] != 300 || st.Responses["NOERROR"] != 300 {
		t.Errorf("server saw %v, %v", st.Queries, st.Responses)
	}
}

func TestFiles(t *testing.T) {
	svcs := services()
	q, h := queryFile(svcs), hostsFile(svcs)
	if n := bytes.Count([]byte(q), []byte("\n")); n != numServices {
		t.Errorf("query file: %d lines, want %d", n, numServices)
	}
	if n := bytes.Count([]byte(h), []byte("\n")); n != 199 { // 34×1 + 33×2 + 33×3
		t.Errorf("hosts file: %d lines, want 199", n)
	}
}

package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/orchproject/orch/scripts/bench/internal/benchkit"
)

// perfResult is what one dnsperf run reports, and what the server and
// dnsperf cost meanwhile.
type perfResult struct {
	completed, lost   int64
	qps               float64
	avgMS, stddevMS   float64
	maxMS             float64
	serverCores       float64 // the server's CPU time / wall time
	perfCores         float64 // dnsperf's
	hostCores         float64 // every process on the machine
	serverUSPerQuery  float64 // the server's CPU time per completed query
	wall              time.Duration
	rcvbufDrops       int64 // UDP datagrams the kernel dropped on full receive buffers, anywhere
	noerror           int64
	otherResponseCode string // response codes other than NOERROR, as dnsperf prints them
}

// perfArgs are the dnsperf options every run uses.
type perfArgs struct {
	dnsperf     string
	queries     string // the query file
	duration    time.Duration
	clients     int // -c: sockets
	outstanding int // -q: queries in flight
	qps         int // -Q; 0: as fast as it goes
	taskset     []string
}

// runPerf runs dnsperf against port on 127.0.0.1 and measures serverPID's
// CPU over the run.
func runPerf(ctx context.Context, a perfArgs, port, serverPID int) (perfResult, error) {
	argv := append(append([]string(nil), a.taskset...), a.dnsperf,
		"-s", "127.0.0.1", "-p", strconv.Itoa(port), "-d", a.queries,
		"-l", strconv.Itoa(int(a.duration.Seconds())),
		"-c", strconv.Itoa(a.clients), "-q", strconv.Itoa(a.outstanding), "-t", "2")
	if a.qps > 0 {
		argv = append(argv, "-Q", strconv.Itoa(a.qps))
	}
	cpu0, err := benchkit.ProcCPU(serverPID)
	if err != nil {
		return perfResult{}, fmt.Errorf("server CPU: %w", err)
	}
	h0, _ := benchkit.ReadHostCPU()
	d0 := udpRcvbufErrors()
	t0 := time.Now()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	out, err := cmd.CombinedOutput()
	wall := time.Since(t0)
	h1, _ := benchkit.ReadHostCPU()
	cpu1, cerr := benchkit.ProcCPU(serverPID)
	if err != nil {
		return perfResult{}, fmt.Errorf("%s: %w\n%s", strings.Join(argv, " "), err, out)
	}
	if cerr != nil {
		return perfResult{}, fmt.Errorf("server CPU (did it exit?): %w", cerr)
	}
	r, err := parsePerf(string(out))
	if err != nil {
		return perfResult{}, fmt.Errorf("%s: %w\n%s", strings.Join(argv, " "), err, out)
	}
	r.wall = wall
	r.rcvbufDrops = udpRcvbufErrors() - d0
	r.serverCores = (cpu1 - cpu0).Seconds() / wall.Seconds()
	if st := cmd.ProcessState; st != nil {
		r.perfCores = (st.UserTime() + st.SystemTime()).Seconds() / wall.Seconds()
	}
	r.hostCores = h0.BusyCores(h1)
	if r.completed > 0 {
		r.serverUSPerQuery = float64((cpu1 - cpu0).Microseconds()) / float64(r.completed)
	}
	return r, nil
}

// parsePerf reads dnsperf's statistics block.
func parsePerf(out string) (perfResult, error) {
	var r perfResult
	var have int
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		key, val, ok := strings.Cut(strings.TrimSpace(sc.Text()), ":")
		if !ok {
			continue
		}
		f := strings.Fields(val)
		if len(f) == 0 {
			continue
		}
		switch key {
		case "Queries completed":
			r.completed, _ = strconv.ParseInt(f[0], 10, 64)
			have++
		case "Queries lost":
			r.lost, _ = strconv.ParseInt(f[0], 10, 64)
		case "Queries per second":
			r.qps, _ = strconv.ParseFloat(f[0], 64)
			have++
		case "Average Latency (s)":
			v, _ := strconv.ParseFloat(f[0], 64)
			r.avgMS = v * 1000
			// "0.001111 (min 0.000012, max 0.016361)"
			if i := strings.Index(val, "max "); i >= 0 {
				m, _ := strconv.ParseFloat(strings.TrimRight(strings.TrimSpace(val[i+4:]), ")"), 64)
				r.maxMS = m * 1000
			}
			have++
		case "Latency StdDev (s)":
			v, _ := strconv.ParseFloat(f[0], 64)
			r.stddevMS = v * 1000
		case "Response codes":
			// "NOERROR 973565 (100.00%)" or several, comma-separated.
			for code := range strings.SplitSeq(val, ",") {
				cf := strings.Fields(code)
				if len(cf) >= 2 && cf[0] == "NOERROR" {
					r.noerror, _ = strconv.ParseInt(cf[1], 10, 64)
				} else if len(cf) >= 2 {
					r.otherResponseCode = strings.TrimSpace(strings.TrimSpace(r.otherResponseCode + " " + cf[0] + " " + cf[1]))
				}
			}
		}
	}
	if have < 3 {
		return r, fmt.Errorf("no statistics in dnsperf's output")
	}
	return r, nil
}

// udpRcvbufErrors returns the kernel's count of UDP datagrams dropped
// because a socket's receive buffer was full (RcvbufErrors in
// /proc/net/snmp), for the whole network namespace.
func udpRcvbufErrors() int64 {
	b, err := os.ReadFile("/proc/net/snmp")
	if err != nil {
		return 0
	}
	var names []string
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "Udp:" {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		for i, n := range names {
			if n == "RcvbufErrors" && i < len(f) {
				v, _ := strconv.ParseInt(f[i], 10, 64)
				return v
			}
		}
	}
	return 0
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/orchproject/orch/scripts/bench/internal/benchkit"
)

// tcpResult is one iperf3 run.
type tcpResult struct {
	bps          float64 // received bits per second
	retransmits  int
	senderCPU    float64 // iperf3's cpu_utilization_percent host_total: % of one CPU
	receiverCPU  float64 // remote_total, the server's
	hostBusyPerc float64 // the whole machine during the run
}

// iperf runs one iperf3 TCP test from client to server.
func (b *bench) iperf(ctx context.Context, client, server endpoint) (tcpResult, error) {
	port := strconv.Itoa(b.o.port)
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	srvArgs := []string{"-s", "-1", "-p", port}
	cliArgs := []string{"-c", server.addr.String(), "-p", port, "-t", strconv.Itoa(b.o.duration), "-O", strconv.Itoa(b.o.omit), "-J"}
	if b.o.clientCPU >= 0 {
		cliArgs = append(cliArgs, "-A", strconv.Itoa(b.o.clientCPU))
		srvArgs = append(srvArgs, "-A", strconv.Itoa(b.o.serverCPU))
	}
	srv := server.command(sctx, "iperf3", srvArgs...)
	var srvOut bytes.Buffer
	srv.Stdout, srv.Stderr = &srvOut, &srvOut
	if err := srv.Start(); err != nil {
		return tcpResult{}, fmt.Errorf("start iperf3 server in %s: %w", server.name, err)
	}
	srvDone := make(chan error, 1) // buffered: Wait's result may be unread on error paths
	go func() { srvDone <- srv.Wait() }()
	if err := waitListening(ctx, server, b.o.port, srvDone); err != nil {
		return tcpResult{}, fmt.Errorf("iperf3 server in %s: %w: %s", server.name, err, srvOut.Bytes())
	}

	cpu0, _ := benchkit.ReadHostCPU()
	limit := time.Duration(b.o.duration+b.o.omit+30) * time.Second
	cctx, ccancel := context.WithTimeout(ctx, limit)
	defer ccancel()
	out, err := client.command(cctx, "iperf3", cliArgs...).Output()
	cpu1, _ := benchkit.ReadHostCPU()
	if err != nil {
		return tcpResult{}, fmt.Errorf("iperf3 %s → %s: %w: %s", client.name, server.name, err, iperfError(out))
	}
	r, err := parseIperf(out)
	if err != nil {
		return tcpResult{}, fmt.Errorf("iperf3 %s → %s: %w", client.name, server.name, err)
	}
	r.hostBusyPerc = cpu0.BusyPct(cpu1)
	select {
	case <-srvDone:
	case <-time.After(5 * time.Second):
		// The one-shot server exits after its test; cancel reaps it if not.
	}
	return r, nil
}

// waitListening polls until something listens on TCP port in e's
// namespace, or the server has exited.
func waitListening(ctx context.Context, e endpoint, port int, exited <-chan error) error {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		out, err := e.command(ctx, "ss", "-Hltn", "sport = :"+strconv.Itoa(port)).Output()
		if err == nil && len(bytes.TrimSpace(out)) > 0 {
			return nil
		}
		select {
		case err := <-exited:
			return fmt.Errorf("exited before listening: %v", err)
		default:
		}
		if err := benchkit.Sleep(ctx, 20*time.Millisecond); err != nil {
			return err
		}
	}
	return errors.New("not listening after 10 s")
}

// iperfJSON is the part of iperf3 -J output read here.
type iperfJSON struct {
	Error string `json:"error"`
	End   struct {
		SumSent struct {
			BitsPerSecond float64 `json:"bits_per_second"`
			Retransmits   int     `json:"retransmits"`
		} `json:"sum_sent"`
		SumReceived struct {
			BitsPerSecond float64 `json:"bits_per_second"`
		} `json:"sum_received"`
		CPU struct {
			Host   float64 `json:"host_total"`
			Remote float64 `json:"remote_total"`
		} `json:"cpu_utilization_percent"`
	} `json:"end"`
}

func parseIperf(out []byte) (tcpResult, error) {
	var j iperfJSON
	if err := json.Unmarshal(out, &j); err != nil {
		return tcpResult{}, fmt.Errorf("parse iperf3 JSON: %w", err)
	}
	if j.Error != "" {
		return tcpResult{}, errors.New(j.Error)
	}
	if j.End.SumReceived.BitsPerSecond <= 0 {
		return tcpResult{}, errors.New("iperf3 reported no received throughput")
	}
	return tcpResult{
		bps:         j.End.SumReceived.BitsPerSecond,
		retransmits: j.End.SumSent.Retransmits,
		senderCPU:   j.End.CPU.Host,
		receiverCPU: j.End.CPU.Remote,
	}, nil
}

// iperfError extracts the error message of a failed iperf3 -J run.
func iperfError(out []byte) string {
	var j iperfJSON
	if json.Unmarshal(out, &j) == nil && j.Error != "" {
		return j.Error
	}
	return string(bytes.TrimSpace(out))
}

// pingResult is one ping series.
type pingResult struct {
	rtts         []float64 // µs, first reply dropped
	sent, lost   int
	hostBusyPerc float64
}

// ping sends count echo requests from e to dst and returns the round
// trips.
func (b *bench) ping(ctx context.Context, from, to endpoint, count int) (pingResult, error) {
	cpu0, _ := benchkit.ReadHostCPU()
	out, err := from.command(ctx, "ping", "-n", "-c", strconv.Itoa(count), "-i", b.o.interval, "-W", "1", to.addr.String()).Output()
	cpu1, _ := benchkit.ReadHostCPU()
	r, perr := parsePing(out)
	if err != nil && perr != nil {
		return r, fmt.Errorf("ping %s → %s: %w: %s", from.name, to.name, err, bytes.TrimSpace(out))
	}
	if perr != nil {
		return r, fmt.Errorf("ping %s → %s: %w", from.name, to.name, perr)
	}
	r.hostBusyPerc = cpu0.BusyPct(cpu1)
	return r, nil
}

// parsePing reads the round trips of ping's per-reply lines ("64 bytes
// from …: icmp_seq=1 ttl=64 time=0.045 ms") and its "N packets
// transmitted, M received" summary, and drops the first reply (it may
// include ARP resolution or a cold cache).
func parsePing(out []byte) (pingResult, error) {
	var r pingResult
	sc := bufio.NewScanner(bytes.NewReader(out))
	received := 0
	for sc.Scan() {
		line := sc.Text()
		if i := strings.Index(line, " time="); i >= 0 && strings.Contains(line, "icmp_seq=") {
			f := strings.Fields(line[i+len(" time="):])
			if len(f) == 0 {
				continue
			}
			v, err := strconv.ParseFloat(f[0], 64)
			if err != nil {
				return r, fmt.Errorf("bad round trip in %q", line)
			}
			unit := 1000.0 // ms → µs
			if len(f) > 1 && f[1] == "s" {
				unit = 1e6
			}
			r.rtts = append(r.rtts, v*unit)
			continue
		}
		if strings.Contains(line, "packets transmitted") {
			var tx, rx int
			if _, err := fmt.Sscanf(line, "%d packets transmitted, %d received", &tx, &rx); err == nil {
				r.sent, received = tx, rx
			}
		}
	}
	if r.sent == 0 {
		return r, errors.New("no ping summary in the output")
	}
	r.lost = r.sent - received
	if len(r.rtts) < 2 {
		return r, fmt.Errorf("%d of %d replies", len(r.rtts), r.sent)
	}
	r.rtts = r.rtts[1:]
	return r, nil
}

// waitConnected pings until every replica and host reaches its peer, so
// ARP and the overlay path are settled before anything is measured.
func (b *bench) waitConnected(ctx context.Context, pairs [][2]endpoint) error {
	for _, p := range pairs {
		deadline := time.Now().Add(15 * time.Second)
		for {
			err := p[0].command(ctx, "ping", "-n", "-c", "3", "-i", "0.2", "-W", "1", p[1].addr.String()).Run()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s cannot reach %s (%s): %w", p[0].name, p[1].name, p[1].addr, err)
			}
			if err := benchkit.Sleep(ctx, 200*time.Millisecond); err != nil {
				return err
			}
		}
	}
	return nil
}

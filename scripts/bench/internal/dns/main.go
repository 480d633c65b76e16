package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/orchproject/orch/dnsdisc"
	"github.com/orchproject/orch/scripts/bench/internal/benchkit"
)

type options struct {
	work, results, source         string
	dnsperf, dnsmasq              string
	rounds                        int
	duration, warmup              time.Duration
	clients, outstanding          int
	loads                         []float64
	latencyDuration, restDuration time.Duration
	probeRate                     float64
	waitIdle                      time.Duration
	idleCores                     float64
	reapOnly                      bool
}

func main() {
	var o options
	var serveAddr, cpuProfile string
	flag.StringVar(&serveAddr, "serve", "", "internal: run the dnsdisc server on this ip:port until SIGTERM")
	flag.StringVar(&cpuProfile, "cpuprofile", "", "internal, with --serve: write a CPU profile of the server to this file")
	flag.StringVar(&o.work, "work", "/tmp/orch-bench-dns", "work directory: hosts and query files, logs/")
	flag.StringVar(&o.results, "results", "scripts/bench/results", "directory for the CSV files")
	flag.StringVar(&o.source, "orch-source", "", "where orch was built from, for the report")
	flag.StringVar(&o.dnsperf, "dnsperf", "dnsperf", "dnsperf binary")
	flag.StringVar(&o.dnsmasq, "dnsmasq", "dnsmasq", "dnsmasq binary")
	flag.IntVar(&o.rounds, "rounds", 3, "throughput and latency rounds, each server once per round, alternating which goes first")
	flag.DurationVar(&o.duration, "duration", 20*time.Second, "length of each dnsperf run (whole seconds)")
	flag.DurationVar(&o.warmup, "warmup", 3*time.Second, "unrecorded dnsperf run against each server first")
	flag.IntVar(&o.clients, "clients", 4, "dnsperf -c: client sockets")
	flag.IntVar(&o.outstanding, "outstanding", 200, "dnsperf -q: queries in flight")
	loads := flag.String("loads", "0.5,0.8", "dnsperf loads of the latency runs: a value up to 1 is a fraction of dnsmasq's median throughput, above 1 queries/s")
	flag.DurationVar(&o.latencyDuration, "latency-duration", 20*time.Second, "length of each loaded latency run (whole seconds)")
	flag.DurationVar(&o.restDuration, "rest-duration", 5*time.Second, "length of each latency run without load")
	flag.Float64Var(&o.probeRate, "probe-rate", 1000, "queries per second of the latency probe")
	flag.DurationVar(&o.waitIdle, "wait-idle", 20*time.Minute, "how long to wait for a quiet machine (no other benchmark, at most --idle-cores busy) before measuring anyway")
	flag.Float64Var(&o.idleCores, "idle-cores", 0.3, "the machine counts as quiet when its CPUs are busy for at most this many cores")
	flag.BoolVar(&o.reapOnly, "reap", false, "only remove what a run with --work left behind, then exit")
	flag.Parse()

	for f := range strings.SplitSeq(*loads, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		v, err := strconv.ParseFloat(f, 64)
		if err != nil || v <= 0 {
			fatalf("--loads: bad value %q", f)
		}
		o.loads = append(o.loads, v)
	}
	if serveAddr != "" {
		if err := serve(serveAddr, cpuProfile); err != nil {
			fmt.Fprintf(os.Stderr, "dns: serve: %v\n", err)
			os.Exit(1)
		}
		return
	}
	if o.reapOnly {
		if err := reap(o.work); err != nil {
			fatalf("reap: %v", err)
		}
		return
	}
	if o.rounds < 1 || o.duration < time.Second || o.latencyDuration < 3*time.Second || o.clients < 1 || o.outstanding < 1 {
		fatalf("--rounds, --clients and --outstanding must be at least 1, --duration at least 1s, --latency-duration at least 3s")
	}
	if n := o.probeRate * max(o.latencyDuration, o.restDuration).Seconds(); o.probeRate <= 0 || n >= 1<<16 {
		fatalf("--probe-rate × the longest latency run must be between 1 and 65,535 queries (DNS IDs), not %.0f", n)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	b := &bench{o: o}
	err := b.run(ctx)
	b.teardown()
	if rerr := reap(o.work); rerr != nil {
		logf("cleanup: %v", rerr)
		err = errors.Join(err, rerr)
	}
	if err != nil {
		if ctx.Err() != nil {
			logf("interrupted")
			os.Exit(130)
		}
		fatalf("%v", err)
	}
}

// reap SIGKILLs every process (not this one or its ancestors) whose
// command line names the work directory (both servers are started with
// it in their arguments) and removes the directory except logs/.
func reap(work string) error { return benchkit.Reap(work, benchkit.ReapOptions{}) }

func logf(format string, args ...any) { benchkit.Logf("dns", format, args...) }

func fatalf(format string, args ...any) { benchkit.Fatalf("dns", format, args...) }

// impl is one server under test.
type impl struct {
	name string // "orch" or "dnsmasq"
	d    *benchkit.Daemon
	addr netip.AddrPort
}

type bench struct {
	o            options
	started      time.Time
	logs         string
	queries      string
	names        []string
	orch, dnsmsq *impl
	otherBusy    bool // other benchmarks were running

	perf      []perfRow
	lat       []latRow
	loadRates []int // dnsperf -Q of the loaded latency runs
}

type perfRow struct {
	round int
	impl  string
	first bool
	perfResult
}

type latRow struct {
	round int
	impl  string
	first bool
	load  int        // dnsperf -Q; 0: none
	perf  perfResult // the load's figures
	probeResult
}

func (b *bench) run(ctx context.Context) error {
	b.started = time.Now()
	o := b.o
	if err := reap(o.work); err != nil {
		return fmt.Errorf("removing an earlier run's leftovers: %w", err)
	}
	b.logs = filepath.Join(o.work, "logs")
	os.RemoveAll(b.logs)
	if err := os.MkdirAll(b.logs, 0o755); err != nil {
		return err
	}
	for _, tool := range []string{o.dnsperf, o.dnsmasq} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found (scripts/bench/dns installs dnsperf and dnsmasq-base): %w", tool, err)
		}
	}

	svcs := services()
	for _, s := range svcs {
		b.names = append(b.names, fqdn(s))
	}
	b.queries = filepath.Join(o.work, "queries.txt")
	hosts := filepath.Join(o.work, "hosts")
	// World-readable: dnsmasq reads the hosts file as nobody.
	if err := os.WriteFile(b.queries, []byte(queryFile(svcs)), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(hosts, []byte(hostsFile(svcs)), 0o644); err != nil {
		return err
	}
	os.Chmod(o.work, 0o755)

	if err := b.quiet(ctx); err != nil {
		return err
	}

	// The servers.
	self, err := os.Executable()
	if err != nil {
		return err
	}
	orchPort, err := freePort()
	if err != nil {
		return err
	}
	b.orch = &impl{name: "orch", addr: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(orchPort))}
	if b.orch.d, err = benchkit.StartDaemon(benchkit.DaemonOptions{Name: "orch", Log: filepath.Join(b.logs, "orch.log")},
		self, "--serve", b.orch.addr.String(), "--work", filepath.Join(o.work, "orch")); err != nil {
		return err
	}
	maskPort, err := freePort()
	if err != nil {
		return err
	}
	b.dnsmsq = &impl{name: "dnsmasq", addr: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(maskPort))}
	if b.dnsmsq.d, err = benchkit.StartDaemon(benchkit.DaemonOptions{Name: "dnsmasq", Log: filepath.Join(b.logs, "dnsmasq.log")}, o.dnsmasq,
		"--no-daemon", "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--addn-hosts="+hosts,
		"--port="+strconv.Itoa(maskPort), "--listen-address=127.0.0.1", "--bind-interfaces",
		"--cache-size=10000", "--local-ttl=5", "--user=nobody", "--pid-file=", "--log-facility=-"); err != nil {
		return err
	}
	impls := []*impl{b.orch, b.dnsmsq}
	for _, im := range impls {
		if err := waitAnswering(ctx, im); err != nil {
			return err
		}
		logf("%s answering on %s (pid %d)", im.name, im.addr, im.d.Pid())
	}
	if err := checkSameAnswers(ctx, svcs, impls); err != nil {
		return err
	}
	logf("both servers give the same %d answers", len(svcs))

	pa := perfArgs{dnsperf: o.dnsperf, queries: b.queries, duration: o.duration, clients: o.clients, outstanding: o.outstanding}
	if o.warmup > 0 {
		w := pa
		w.duration = max(o.warmup, time.Second)
		for _, im := range impls {
			if _, err := runPerf(ctx, w, int(im.addr.Port()), im.d.Pid()); err != nil {
				return fmt.Errorf("warm-up %s: %w", im.name, err)
			}
		}
	}

	// Throughput.
	for r := range o.rounds {
		if err := b.quiet(ctx); err != nil {
			return err
		}
		order := impls
		if r%2 == 1 {
			order = []*impl{b.dnsmsq, b.orch}
		}
		for k, im := range order {
			res, err := runPerf(ctx, pa, int(im.addr.Port()), im.d.Pid())
			if err != nil {
				return fmt.Errorf("round %d %s: %w", r+1, im.name, err)
			}
			if im.d.Exited() {
				return fmt.Errorf("%s exited during round %d (see %s)", im.name, r+1, b.logs)
			}
			b.perf = append(b.perf, perfRow{round: r + 1, impl: im.name, first: k == 0, perfResult: res})
			logf("round %d/%d %s: %.0f q/s, avg %.3f ms, server %.2f cores, dnsperf %.2f, host %.2f",
				r+1, o.rounds, im.name, res.qps, res.avgMS, res.serverCores, res.perfCores, res.hostCores)
		}
	}

	// Latency: the probe alone, then under dnsperf at a fixed rate.
	maxQPS := benchkit.Median(b.perfCol("dnsmasq", func(r perfRow) float64 { return r.qps }))
	for _, l := range o.loads {
		if l <= 1 {
			l *= maxQPS
		}
		b.loadRates = append(b.loadRates, int(l))
	}
	for r := range o.rounds {
		if err := b.quiet(ctx); err != nil {
			return err
		}
		order := impls
		if r%2 == 1 {
			order = []*impl{b.dnsmsq, b.orch}
		}
		for k, im := range order {
			for _, load := range append([]int{0}, b.loadRates...) {
				row, err := b.latencyRun(ctx, im, load)
				if err != nil {
					return fmt.Errorf("latency round %d %s: %w", r+1, im.name, err)
				}
				row.round, row.first = r+1, k == 0
				b.lat = append(b.lat, row)
				what := "at rest"
				if load > 0 {
					what = fmt.Sprintf("under dnsperf at %d q/s (got %.0f, server %.2f cores)", load, row.perf.qps, row.perf.serverCores)
				}
				logf("latency round %d/%d %s %s: p50 %v p90 %v p99 %v p99.9 %v max %v, %d of %d lost",
					r+1, o.rounds, im.name, what, row.p50, row.p90, row.p99, row.p999, row.max, row.lost(), row.sent)
			}
		}
	}
	return b.report()
}

// quiet waits for a quiet machine before a phase; the report says if it
// had to give up.
func (b *bench) quiet(ctx context.Context) error {
	busy, err := waitQuiet(ctx, b.o.waitIdle, b.o.idleCores)
	b.otherBusy = b.otherBusy || busy
	return err
}

// latencyRun probes im for o.restDuration alone (load 0) or for
// o.latencyDuration less a second at each end while dnsperf sends load
// queries a second.
func (b *bench) latencyRun(ctx context.Context, im *impl, load int) (latRow, error) {
	o := b.o
	row := latRow{impl: im.name, load: load}
	if load == 0 {
		pr, err := probe(im.addr, b.names, o.probeRate, o.restDuration, time.Second)
		row.probeResult = pr
		return row, err
	}
	pa := perfArgs{dnsperf: o.dnsperf, queries: b.queries, duration: o.latencyDuration, clients: o.clients,
		outstanding: o.outstanding, qps: load}
	type perfOut struct {
		r   perfResult
		err error
	}
	ch := make(chan perfOut, 1) // the one result; never blocks the sender
	go func() {
		r, err := runPerf(ctx, pa, int(im.addr.Port()), im.d.Pid())
		ch <- perfOut{r, err}
	}()
	if err := benchkit.Sleep(ctx, time.Second); err != nil {
		<-ch
		return row, err
	}
	pr, perr := probe(im.addr, b.names, o.probeRate, o.latencyDuration-2*time.Second, 500*time.Millisecond)
	out := <-ch
	row.probeResult, row.perf = pr, out.r
	return row, errors.Join(perr, out.err)
}

// freePort returns a port that is free for UDP and TCP on 127.0.0.1 now.
func freePort() (int, error) {
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		l, err := net.Listen("tcp", pc.LocalAddr().String())
		pc.Close()
		if err != nil {
			continue
		}
		l.Close()
		return port, nil
	}
	return 0, errors.New("no free port on 127.0.0.1")
}

// resolver returns a Go resolver asking only addr.
func resolver(addr netip.AddrPort) *net.Resolver {
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr.String())
		},
	}
}

// waitAnswering polls im until it answers for the first service.
func waitAnswering(ctx context.Context, im *impl) error {
	r := resolver(im.addr)
	name := fqdn(services()[0])
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, cancel := context.WithTimeout(ctx, time.Second)
		_, err := r.LookupHost(c, name)
		cancel()
		if err == nil {
			return nil
		}
		if im.d.Exited() {
			return im.d.ExitError()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s does not answer on %s: %w", im.name, im.addr, err)
		}
		if err := benchkit.Sleep(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
}

// checkSameAnswers asks both servers for every name and compares the
// address sets with the services' replicas.
func checkSameAnswers(ctx context.Context, svcs []dnsdisc.Service, impls []*impl) error {
	for _, im := range impls {
		r := resolver(im.addr)
		for _, s := range svcs {
			got, err := r.LookupHost(ctx, fqdn(s))
			if err != nil {
				return fmt.Errorf("%s: %s: %w", im.name, fqdn(s), err)
			}
			var want []string
			for _, rep := range s.Replicas {
				want = append(want, rep.Addr.String())
			}
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				return fmt.Errorf("%s answers %s with %v, want %v", im.name, fqdn(s), got, want)
			}
		}
	}
	return nil
}

// teardown stops both servers; reap does the rest.
func (b *bench) teardown() {
	for _, im := range []*impl{b.orch, b.dnsmsq} {
		if im != nil && im.d != nil {
			im.d.Stop(5 * time.Second)
		}
	}
}

func (b *bench) perfCol(name string, f func(perfRow) float64) []float64 {
	var out []float64
	for _, r := range b.perf {
		if r.impl == name {
			out = append(out, f(r))
		}
	}
	return out
}

func (b *bench) latCol(name string, f func(latRow) float64) []float64 {
	var out []float64
	for _, r := range b.lat {
		if r.impl == name {
			out = append(out, f(r))
		}
	}
	return out
}

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/orchproject/orch/scripts/bench/internal/benchkit"
)

// options are the command-line settings.
type options struct {
	labScript, prefix, results, source string
	mtu                                int
	runs                               int
	duration, omit                     int // seconds, iperf3 -t and -O
	port                               int
	pings                              int
	interval                           string // ping -i, seconds as text
	waitIdle                           time.Duration
	gro                                []string // "off", "on": the GRO settings of the lab hosts' eth0 to measure with
	hold                               bool     // build the lab and overlay, then wait for a signal instead of measuring
	clientCPU, serverCPU               int      // iperf3 -A; -1: not pinned
}

func main() { benchkit.Main("overlay", run) }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o options
	fs := flag.NewFlagSet("overlay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.labScript, "lab", "scripts/lab", "the lab script")
	fs.StringVar(&o.prefix, "prefix", "bo-", "namespace prefix of the lab")
	fs.StringVar(&o.results, "results", "scripts/bench/results", "directory for the CSV files")
	fs.StringVar(&o.source, "orch-source", "", "where the code was built from, for the report")
	fs.IntVar(&o.mtu, "mtu", 0, "underlay (lab veth) MTU; 0: scripts/lab's default, the root namespace's default-route interface")
	fs.IntVar(&o.runs, "runs", 3, "iperf3 runs per path")
	fs.IntVar(&o.duration, "duration", 10, "seconds per iperf3 run")
	fs.IntVar(&o.omit, "omit", 1, "seconds at the start of each iperf3 run left out (TCP slow start)")
	fs.IntVar(&o.port, "port", 5201, "iperf3 port")
	fs.IntVar(&o.pings, "pings", 200, "echo requests per ping series")
	fs.StringVar(&o.interval, "interval", "0.01", "seconds between echo requests (ping -i)")
	gro := fs.String("gro", "off,on", "GRO settings of the lab hosts' eth0 to measure with, in order: off (veth's default) and/or on (ethtool -K eth0 gro on, as physical NICs have it)")
	affinity := fs.String("affinity", "", "CLIENT,SERVER: pin the iperf3 client and server to these CPUs (iperf3 -A); empty lets the scheduler place them")
	fs.BoolVar(&o.hold, "hold", false, "build the lab and the overlay, print how to reach them, and wait for Ctrl-C instead of measuring (for experiments)")
	fs.DurationVar(&o.waitIdle, "wait-idle", 10*time.Minute, "how long to wait, before each sample, for other benchmarks, tests and labs to finish before measuring anyway")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return benchkit.UsageError{Err: err}
	}
	for _, g := range strings.Split(*gro, ",") {
		if g = strings.TrimSpace(g); g != "off" && g != "on" {
			return benchkit.UsageError{Err: fmt.Errorf("--gro: %q is neither off nor on", g)}
		}
		o.gro = append(o.gro, strings.TrimSpace(g))
	}
	o.clientCPU, o.serverCPU = -1, -1
	if *affinity != "" {
		c, sv, ok := strings.Cut(*affinity, ",")
		var err1, err2 error
		o.clientCPU, err1 = strconv.Atoi(strings.TrimSpace(c))
		o.serverCPU, err2 = strconv.Atoi(strings.TrimSpace(sv))
		if !ok || err1 != nil || err2 != nil || o.clientCPU < 0 || o.serverCPU < 0 {
			return benchkit.UsageError{Err: fmt.Errorf("--affinity %q: want CLIENT,SERVER CPU numbers, or empty", *affinity)}
		}
	}
	switch {
	case fs.NArg() > 0:
		return benchkit.UsageError{Err: fmt.Errorf("unexpected arguments %q", fs.Args())}
	case o.runs < 1 || o.duration < 1 || o.omit < 0 || o.pings < 2:
		return benchkit.UsageError{Err: errors.New("--runs and --duration must be at least 1, --omit at least 0, --pings at least 2")}
	case o.mtu != 0 && (o.mtu < 1280 || o.mtu > 65535):
		return benchkit.UsageError{Err: fmt.Errorf("--mtu %d: want 1280..65535 or 0", o.mtu)}
	}

	b := &bench{o: o, stdout: stdout}
	err := b.run(ctx)
	if derr := b.lab.Down(ctx); derr != nil {
		logf("tear down the lab: %v", derr)
		err = errors.Join(err, derr)
	}
	return err
}

func logf(format string, args ...any) { benchkit.Logf("overlay", format, args...) }

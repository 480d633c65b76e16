package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/orchproject/orch/scripts/bench/internal/benchkit"
)

// maxHosts keeps host addresses inside a /24 lab subnet.
const maxHosts = 250

type options struct {
	orch, work, results, image, imageName, source string
	labScript, prefix                             string
	subnet                                        netip.Prefix

	runs, hosts, ctdHosts int
	profiles              []string
	soak                  time.Duration
	seed                  uint64

	poll, dnsTimeout, httpTimeout time.Duration
	healTimeout, tail             time.Duration
	settle, settleTimeout         time.Duration
	stagger, waitIdle             time.Duration

	reapOnly bool
	memBase  int64 // MemAvailable when the program started, KiB
}

func main() {
	var o options
	var profiles, subnet string
	flag.StringVar(&o.orch, "orch", "", "orch binary (set by the script)")
	flag.StringVar(&o.work, "work", "/tmp/orch-bench-heal", "work directory: containerds, agents' data, logs/")
	flag.StringVar(&o.results, "results", "scripts/bench/results", "directory for the CSV files")
	flag.StringVar(&o.image, "image", "", "OCI archive to import on every host (set by the script)")
	flag.StringVar(&o.imageName, "image-name", "docker.io/orch/busybox:test", "name of the image in the archive")
	flag.StringVar(&o.source, "orch-source", "", "where orch was built from, for the report")
	flag.StringVar(&o.labScript, "lab", "scripts/lab", "the lab script")
	flag.StringVar(&o.prefix, "prefix", "bh-", "namespace prefix of the lab")
	flag.StringVar(&subnet, "subnet", "10.47.0.0/24", "lab subnet; host K gets address K")
	flag.IntVar(&o.runs, "runs", 5, "repetitions per profile")
	flag.StringVar(&profiles, "profiles", "lan,fast", "failure-detection profiles to measure, in order")
	flag.IntVar(&o.hosts, "hosts", 5, "hosts in the lab")
	flag.IntVar(&o.ctdHosts, "containerd-hosts", 0, "run containerd on h1..hM only and --containerd none on the rest (0: on every host); the service is then constrained to them")
	flag.DurationVar(&o.soak, "soak", 0, "instead of measuring healing: a fast cluster with the service deployed, idle this long, counting false member failures")
	flag.Uint64Var(&o.seed, "seed", 1, "seed of the victim choice")
	flag.DurationVar(&o.poll, "poll", 20*time.Millisecond, "DNS polling interval per survivor")
	flag.DurationVar(&o.dnsTimeout, "dns-timeout", 500*time.Millisecond, "wait for one DNS answer")
	flag.DurationVar(&o.httpTimeout, "http-timeout", time.Second, "wait for one HTTP answer")
	flag.DurationVar(&o.healTimeout, "heal-timeout", 60*time.Second, "give up waiting for T2 after this")
	flag.DurationVar(&o.tail, "tail", 2*time.Second, "keep polling this long after the last survivor healed, to see flaps")
	flag.DurationVar(&o.settle, "settle", 3*time.Second, "quiet time after deploying and after each restore")
	flag.DurationVar(&o.settleTimeout, "settle-timeout", 2*time.Minute, "limit for the cluster to settle after a restore")
	flag.DurationVar(&o.stagger, "join-stagger", 50*time.Millisecond, "time between agent starts")
	flag.DurationVar(&o.waitIdle, "wait-idle", 10*time.Minute, "before each cluster and repetition, wait up to this long while other benchmarks, tests or labs run")
	flag.BoolVar(&o.reapOnly, "reap", false, "only remove what a run with --work left behind, then exit")
	flag.Parse()
	if flag.NArg() > 0 {
		fatalf("unexpected arguments: %s", strings.Join(flag.Args(), " "))
	}
	if o.reapOnly {
		if err := reap(o.work); err != nil {
			fatalf("reap: %v", err)
		}
		return
	}
	for p := range strings.SplitSeq(profiles, ",") {
		if p = strings.TrimSpace(p); p != "" {
			if p != "lan" && p != "fast" {
				fatalf("--profiles: unknown profile %q (lan, fast)", p)
			}
			o.profiles = append(o.profiles, p)
		}
	}
	var err error
	if o.subnet, err = netip.ParsePrefix(subnet); err != nil || !o.subnet.Addr().Is4() {
		fatalf("--subnet %q: want an IPv4 CIDR", subnet)
	}
	switch {
	case o.orch == "" || o.image == "":
		fatalf("--orch and --image are required (run scripts/bench/heal)")
	case o.runs < 1:
		fatalf("--runs must be at least 1")
	case o.hosts < 3 || o.hosts > maxHosts:
		fatalf("--hosts must be 3-%d", maxHosts)
	case o.ctdHosts != 0 && (o.ctdHosts < 4 || o.ctdHosts > o.hosts):
		fatalf("--containerd-hosts must be 0 or 4-%d (3 replicas on distinct hosts, and one to take over)", o.hosts)
	case o.hosts < 4:
		fatalf("--hosts must be at least 4 (3 replicas on distinct hosts, and one to take over)")
	case len(o.profiles) == 0 && o.soak == 0:
		fatalf("--profiles is empty")
	}
	o.memBase = benchkit.MemAvailable()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second signal kills the program outright
	}()
	err = run(ctx, &o)
	if rerr := reap(o.work); rerr != nil {
		logf("cleanup: %v", rerr)
	}
	if err != nil {
		if ctx.Err() != nil {
			logf("interrupted")
			os.Exit(130)
		}
		fatalf("%v", err)
	}
}

func run(ctx context.Context, o *options) error {
	started := time.Now()
	if err := reap(o.work); err != nil {
		return fmt.Errorf("removing an earlier run's leftovers: %w", err)
	}
	os.RemoveAll(o.work + "/logs")
	if o.soak > 0 {
		err := runSoak(ctx, o, os.Stdout, started)
		logf("total %s; logs in %s/logs", time.Since(started).Round(time.Second), o.work)
		return err
	}
	rng := rand.New(rand.NewPCG(o.seed, 0x6865616c))
	var runs []profileRun
	var firstErr error
	for _, p := range o.profiles {
		since := time.Now()
		reps, mem, err := runProfile(ctx, o, p, rng)
		pr := profileRun{profile: p, reps: reps, mem: mem, err: err,
			logs: scanLogs(o, fmt.Sprintf("%s-n%d", p, o.hosts), since)}
		runs = append(runs, pr)
		if err != nil {
			logf("%s: %v", p, err)
			firstErr = cmpOr(firstErr, err)
			if ctx.Err() != nil {
				break
			}
		}
	}
	header(os.Stdout, o, started)
	printResults(os.Stdout, o, runs)
	fmt.Printf("\ntotal %s; logs and every agent's event stream in %s/logs\n", time.Since(started).Round(time.Second), o.work)
	if err := writeResults(o, started, runs); err != nil {
		return err
	}
	logf("CSV appended to %s/heal.csv and heal-summary.csv", o.results)
	return firstErr
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

func logf(format string, args ...any) { benchkit.Logf("heal", format, args...) }

func fatalf(format string, args ...any) { benchkit.Fatalf("heal", format, args...) }

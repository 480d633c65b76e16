package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"time"

	"github.com/orchproject/orch/scripts/bench/internal/benchkit"
)

// maxSize keeps host addresses inside a /24 lab subnet.
const maxSize = 250

// options are the command-line settings.
type options struct {
	sizes           []int // propagation cluster sizes; empty: skip propagation
	runs            int
	profile         string // propagation clusters' profile
	fallbackProfile string // profile for a size whose cluster does not form with profile

	services     []int // full-sync service counts; empty: skip full sync
	syncRuns     int
	syncSize     int
	syncProfile  string
	idle         time.Duration
	bulkReplicas int
	writers      int
	bulkAPI      string

	benchkit.LabFlags
	agentFlags []string // derived from Orch, see benchkit.NoContainerdFlags

	settle, gap, timeout   time.Duration
	stagger, formTimeout   time.Duration
	syncTimeout, syncPoll  time.Duration
	drainTimeout           time.Duration
	waitIdle, waitIdlePoll time.Duration
	joinerLogLevel         string
	memberLogLevel         string
	perfJoins              time.Duration
	seed                   uint64
}

func main() { benchkit.Main("state", run) }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseOptions(args, stderr)
	if err != nil {
		return err
	}
	if err := benchkit.RequireRoot("scripts/bench/state"); err != nil {
		return err
	}
	return runBench(ctx, o, stdout, stderr)
}

func parseOptions(args []string, stderr io.Writer) (options, error) {
	o := options{
		runs:            20,
		profile:         "fast",
		fallbackProfile: "lan",
		syncProfile:     "fast",
		idle:            10 * time.Second,
		syncRuns:        3,
		syncSize:        5,
		bulkReplicas:    0,
		writers:         4,
		bulkAPI:         "apply",
		LabFlags: benchkit.LabFlags{
			Lab:     "scripts/lab",
			Work:    "/tmp/orch-bench-state",
			Results: "scripts/bench/results",
			Prefix:  "bs-",
			Subnet:  netip.MustParsePrefix("10.50.0.0/24"),
		},
		settle:         3 * time.Second,
		gap:            300 * time.Millisecond,
		timeout:        30 * time.Second,
		stagger:        50 * time.Millisecond,
		formTimeout:    2 * time.Minute,
		syncTimeout:    3 * time.Minute,
		syncPoll:       50 * time.Millisecond,
		drainTimeout:   5 * time.Minute,
		waitIdle:       20 * time.Minute,
		waitIdlePoll:   30 * time.Second,
		joinerLogLevel: "debug",
		memberLogLevel: "info",
		seed:           1,
	}
	fs := flag.NewFlagSet("state", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sizes, services := "5,20,50", "1000,10000"
	fs.StringVar(&sizes, "sizes", sizes, "propagation: cluster sizes, comma-separated (each 2-250); empty skips propagation")
	fs.IntVar(&o.runs, "runs", o.runs, "propagation: writes per cluster size and spec kind")
	fs.StringVar(&o.profile, "profile", o.profile, "propagation: the agents' --profile (fast or lan)")
	fs.StringVar(&o.fallbackProfile, "fallback-profile", o.fallbackProfile, "propagation: profile for a size whose cluster does not form with --profile (empty: none)")
	fs.StringVar(&o.syncProfile, "sync-profile", o.syncProfile, "full sync: the agents' --profile")
	fs.DurationVar(&o.idle, "idle", o.idle, "full sync: window over which the members' idle CPU is sampled, holding S services")
	fs.StringVar(&services, "services", services, "full sync: service counts, comma-separated, ascending; empty skips full sync")
	fs.IntVar(&o.syncRuns, "sync-runs", o.syncRuns, "full sync: fresh joiners per service count")
	fs.IntVar(&o.syncSize, "sync-size", o.syncSize, "full sync: agents holding the services before the joiner comes")
	fs.IntVar(&o.bulkReplicas, "bulk-replicas", o.bulkReplicas, "full sync: replicas of each bulk service (0, like the acceptance test, adds no task claims)")
	fs.IntVar(&o.writers, "writers", o.writers, "full sync: concurrent API clients creating the services")
	fs.StringVar(&o.bulkAPI, "bulk-api", o.bulkAPI, "full sync: how services are created: apply (POST /v1/apply) or create (POST /v1/services, which answers with a view that decodes every service: quadratic)")
	o.LabFlags.Register(fs, "scripts/bench/state")
	fs.DurationVar(&o.settle, "settle", o.settle, "idle time after a cluster has formed or taken the services, before measuring")
	fs.DurationVar(&o.gap, "gap", o.gap, "propagation: pause between one write being everywhere and the next write")
	fs.DurationVar(&o.timeout, "timeout", o.timeout, "propagation: give up on a write reaching every agent after this long")
	fs.DurationVar(&o.stagger, "join-stagger", o.stagger, "time between starting one joining agent and the next while forming")
	fs.DurationVar(&o.formTimeout, "form-timeout", o.formTimeout, "give up on forming a cluster after this long")
	fs.DurationVar(&o.syncTimeout, "sync-timeout", o.syncTimeout, "full sync: give up on the services reaching every agent, or the joiner, after this long")
	fs.DurationVar(&o.drainTimeout, "drain-timeout", o.drainTimeout, "full sync: wait at most this long after creating the services for stale deltas to stop circulating, before measuring")
	fs.DurationVar(&o.syncPoll, "sync-poll", o.syncPoll, "full sync: pause between one ListServices poll of the joiner and the next")
	fs.DurationVar(&o.waitIdle, "wait-idle", o.waitIdle, "before each phase, wait this long at most for other benchmarks and labs to finish (0: do not check)")
	fs.DurationVar(&o.waitIdlePoll, "wait-idle-poll", o.waitIdlePoll, "how often to look for other benchmarks while waiting")
	fs.StringVar(&o.joinerLogLevel, "joiner-log-level", o.joinerLogLevel, "full sync: log level of the joiners (debug logs each store sync with its duration)")
	fs.StringVar(&o.memberLogLevel, "member-log-level", o.memberLogLevel, "full sync: log level of the members (debug logs each store sync they start)")
	fs.DurationVar(&o.perfJoins, "perf-joins", 0, "full sync, diagnosis: record a system-wide profile (perf record -a -g) for this long from each joiner's start, into the work directory")
	fs.Uint64Var(&o.seed, "seed", o.seed, "seed of the writer choice")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return o, err
		}
		return o, benchkit.UsageError{Err: err}
	}
	var errs []error
	if rest := fs.Args(); len(rest) > 0 {
		errs = append(errs, fmt.Errorf("unexpected arguments %q", rest))
	}
	var err error
	if o.sizes, err = benchkit.ParseInts("--sizes", sizes, 2, maxSize); err != nil {
		errs = append(errs, err)
	}
	if o.services, err = benchkit.ParseInts("--services", services, 1, 100000); err != nil {
		errs = append(errs, err)
	} else if !slices.IsSorted(o.services) {
		errs = append(errs, fmt.Errorf("--services %q: want ascending counts (each adds services to the last)", services))
	}
	if len(o.sizes) == 0 && len(o.services) == 0 {
		errs = append(errs, errors.New("nothing to measure: --sizes and --services are both empty"))
	}
	if o.runs < 1 || o.syncRuns < 1 {
		errs = append(errs, errors.New("--runs and --sync-runs: want at least 1"))
	}
	if o.syncSize < 1 || o.syncSize+o.syncRuns*len(o.services) > maxSize {
		errs = append(errs, fmt.Errorf("--sync-size %d: want 1 or more, with room for --sync-runs × len(--services) joiners in %d hosts", o.syncSize, maxSize))
	}
	if o.bulkReplicas < 0 || o.writers < 1 {
		errs = append(errs, errors.New("--bulk-replicas: want 0 or more; --writers: want 1 or more"))
	}
	if o.bulkAPI != "apply" && o.bulkAPI != "create" {
		errs = append(errs, fmt.Errorf("--bulk-api %q: want apply or create", o.bulkAPI))
	}
	for name, p := range map[string]string{"profile": o.profile, "fallback-profile": o.fallbackProfile, "sync-profile": o.syncProfile} {
		if p != "fast" && p != "lan" && !(name == "fallback-profile" && p == "") {
			errs = append(errs, fmt.Errorf("--%s %q: want fast or lan", name, p))
		}
	}
	if o.Orch == "" {
		errs = append(errs, errors.New("--orch: required (run the benchmark through scripts/bench/state, which builds orch)"))
	}
	for name, d := range map[string]time.Duration{"gap": o.gap, "timeout": o.timeout, "form-timeout": o.formTimeout,
		"sync-timeout": o.syncTimeout, "sync-poll": o.syncPoll, "drain-timeout": o.drainTimeout, "wait-idle-poll": o.waitIdlePoll, "idle": o.idle} {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("--%s: want a positive duration", name))
		}
	}
	if o.settle < 0 || o.stagger < 0 || o.waitIdle < 0 {
		errs = append(errs, errors.New("--settle, --join-stagger, --wait-idle: want zero or a positive duration"))
	}
	if err := errors.Join(errs...); err != nil {
		return o, benchkit.UsageError{Err: err}
	}
	return o, nil
}

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/orchproject/orch/scripts/bench/internal/benchkit"
)

// defaultSoak is the soak duration of a bare --soak.
const defaultSoak = 10 * time.Minute

// maxSize keeps host addresses inside a /24 lab subnet.
const maxSize = 250

// options are the command-line settings.
type options struct {
	sizes    []int
	runs     int
	profiles []string
	skipSerf bool

	soak        time.Duration // zero: run the detection benchmark
	soakSize    int
	soakProfile string

	benchkit.LabFlags
	orchFlags []string // set by runBench: see benchkit.NoContainerdFlags
	serfBin   string

	settle, idle, poll, timeout time.Duration
	stagger, formTimeout        time.Duration
	seed                        uint64
}

func main() { benchkit.Main("membership", run) }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseOptions(args, stderr)
	if err != nil {
		return err
	}
	if err := benchkit.RequireRoot("scripts/bench/membership"); err != nil {
		return err
	}
	if o.soak > 0 {
		return runSoak(ctx, o, stdout, stderr)
	}
	return runBench(ctx, o, stdout, stderr)
}

func parseOptions(args []string, stderr io.Writer) (options, error) {
	o := options{
		runs:        5,
		soakSize:    20,
		soakProfile: "fast",
		serfBin:     "serf",
		LabFlags: benchkit.LabFlags{
			Lab:     "scripts/lab",
			Work:    "/tmp/orch-bench-membership",
			Results: "scripts/bench/results",
			Prefix:  "bm-",
			Subnet:  netip.MustParsePrefix("10.47.0.0/24"),
		},
		settle:      5 * time.Second,
		idle:        10 * time.Second,
		poll:        100 * time.Millisecond,
		timeout:     60 * time.Second,
		stagger:     50 * time.Millisecond,
		formTimeout: 2 * time.Minute,
		seed:        1,
	}
	fs := flag.NewFlagSet("membership", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `usage: scripts/bench/membership [flags]   (as root)

Forms clusters of orch agents (each --profiles) and of stock serf agents in a
netns lab, kills one member, and reports the time until every survivor marks it
failed, plus idle RSS and CPU. With --soak it idles one orch cluster instead and
counts false failures. scripts/bench/membership also takes --rev REV: build orch
from that commit instead of the working tree.

flags:
`)
		fs.PrintDefaults()
	}
	sizes, profiles := "5,20,50", "lan,fast"
	var soakBare bool
	fs.StringVar(&sizes, "sizes", sizes, "cluster sizes, comma-separated (each 2-250)")
	fs.IntVar(&o.runs, "runs", o.runs, "runs per implementation, profile and size")
	fs.StringVar(&profiles, "profiles", profiles, "orch profiles to measure, comma-separated (lan, fast)")
	fs.BoolVar(&o.skipSerf, "skip-serf", false, "do not measure stock serf agents")
	fs.Var(soakFlag{&o.soak, &soakBare}, "soak", "instead of the benchmark, idle a cluster for `DURATION` (bare --soak: 10m) and count false failures")
	fs.IntVar(&o.soakSize, "soak-size", o.soakSize, "cluster size of the soak")
	fs.StringVar(&o.soakProfile, "soak-profile", o.soakProfile, "orch profile of the soak")
	o.LabFlags.Register(fs, "scripts/bench/membership")
	fs.StringVar(&o.serfBin, "serf", o.serfBin, "stock serf binary")
	fs.DurationVar(&o.settle, "settle", o.settle, "idle time after the cluster has formed, before measuring")
	fs.DurationVar(&o.idle, "idle", o.idle, "window for the idle CPU sample (first run of each configuration)")
	fs.DurationVar(&o.poll, "poll", o.poll, "member-list polling interval per survivor")
	fs.DurationVar(&o.timeout, "timeout", o.timeout, "give up on a detection after this long")
	// When 49 agents join at once, the founder's gossip of their arrival
	// can miss a member, which then learns of them only at the next
	// push-pull (30 s; 60 s at N=50); spacing the starts keeps formation
	// a few seconds long without changing what is measured afterwards.
	fs.DurationVar(&o.stagger, "join-stagger", o.stagger, "time between starting one joining agent and the next")
	fs.DurationVar(&o.formTimeout, "form-timeout", o.formTimeout, "give up on forming a cluster after this long")
	fs.Uint64Var(&o.seed, "seed", o.seed, "seed of the victim choice")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return o, err
		}
		return o, benchkit.UsageError{Err: err}
	}
	rest := fs.Args()
	if soakBare && len(rest) > 0 {
		// --soak 10m: the flag package treats a bool-like flag's value
		// as a positional argument.
		if d, err := time.ParseDuration(rest[0]); err == nil {
			o.soak, rest = d, rest[1:]
		}
	}
	var errs []error
	if len(rest) > 0 {
		errs = append(errs, fmt.Errorf("unexpected arguments %q", rest))
	}
	var err error
	if o.sizes, err = parseSizes(sizes); err != nil {
		errs = append(errs, err)
	}
	if o.profiles, err = parseProfiles(profiles); err != nil {
		errs = append(errs, err)
	}
	if o.runs < 1 {
		errs = append(errs, errors.New("--runs: want at least 1"))
	}
	if o.soakSize < 2 || o.soakSize > maxSize {
		errs = append(errs, fmt.Errorf("--soak-size %d: want 2-%d", o.soakSize, maxSize))
	}
	if !slices.Contains(orchProfiles, o.soakProfile) {
		errs = append(errs, fmt.Errorf("--soak-profile %q: want lan or fast", o.soakProfile))
	}
	if o.Orch == "" {
		errs = append(errs, errors.New("--orch: required (run the benchmark through scripts/bench/membership, which builds orch)"))
	}
	for name, d := range map[string]time.Duration{"settle": o.settle, "idle": o.idle, "poll": o.poll, "timeout": o.timeout, "form-timeout": o.formTimeout} {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("--%s: want a positive duration", name))
		}
	}
	if o.stagger < 0 {
		errs = append(errs, errors.New("--join-stagger: want zero or a positive duration"))
	}
	if err := errors.Join(errs...); err != nil {
		return o, benchkit.UsageError{Err: err}
	}
	return o, nil
}

// orchProfiles are orch's failure-detection profiles.
var orchProfiles = []string{"lan", "fast"}

func parseSizes(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 2 || n > maxSize {
			return nil, fmt.Errorf("--sizes %q: want comma-separated sizes of 2-%d", s, maxSize)
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

func parseProfiles(s string) ([]string, error) {
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !slices.Contains(orchProfiles, f) {
			return nil, fmt.Errorf("--profiles %q: want a comma-separated subset of lan,fast", s)
		}
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out, nil
}

// soakFlag is --soak: a duration, or bare --soak for the default.
type soakFlag struct {
	d    *time.Duration
	bare *bool
}

func (f soakFlag) String() string {
	if f.d == nil || *f.d == 0 {
		return ""
	}
	return f.d.String()
}

func (f soakFlag) Set(s string) error {
	if s == "true" {
		*f.d, *f.bare = defaultSoak, true
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return errors.New("want a positive duration such as 10m")
	}
	*f.d = d
	return nil
}

// IsBoolFlag lets --soak stand alone.
func (soakFlag) IsBoolFlag() bool { return true }

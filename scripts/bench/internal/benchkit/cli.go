package benchkit

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// UsageError is a bad command line: [Main] exits with status 2 on it.
type UsageError struct{ Err error }

func (e UsageError) Error() string { return e.Err.Error() }
func (e UsageError) Unwrap() error { return e.Err }

// Main runs a benchmark program's run function with the command line and
// a context that SIGINT and SIGTERM cancel (a second signal kills the
// program outright), and exits: 0 on success and for -help
// ([flag.ErrHelp]), 2 for a [UsageError], 130 if interrupted, 1 for any
// other error, which it prints prefixed with name. Call it from main
// only.
func Main(name string, run func(ctx context.Context, args []string, stdout, stderr io.Writer) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second signal kills the program outright
	}()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err == nil {
		return
	}
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
	switch {
	case errors.As(err, new(UsageError)):
		os.Exit(2)
	case ctx.Err() != nil:
		os.Exit(130)
	}
	os.Exit(1)
}

// ParseInts parses a comma-separated list of distinct integers in
// [lo, hi], as flagName's value; an empty string is an empty list.
func ParseInts(flagName, s string, lo, hi int) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < lo || n > hi {
			return nil, fmt.Errorf("%s %q: want comma-separated numbers of %d-%d", flagName, s, lo, hi)
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

// ParseLabSubnet parses a lab subnet for a benchmark of up to 250 hosts:
// IPv4, a /24 or larger. It returns the prefix masked.
func ParseLabSubnet(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil || !p.Addr().Is4() || p.Bits() > 24 {
		return netip.Prefix{}, errors.New("want an IPv4 prefix of /24 or larger")
	}
	return p.Masked(), nil
}

// LabFlags are the settings every benchmark that runs orch agents in a
// lab takes from its command line; embed them in the options.
type LabFlags struct {
	Orch       string       // the orch binary, which the script builds
	OrchSource string       // where Orch was built from, for the report
	Lab        string       // the lab script
	Work       string       // work directory: data dirs, sockets, logs
	Results    string       // directory for the CSV files
	Prefix     string       // namespace prefix of the lab
	Subnet     netip.Prefix // lab subnet
}

// Register defines --orch, --orch-source, --lab, --work, --results,
// --prefix and --subnet on fs, with f's values as the defaults. script is
// the wrapper that builds orch and passes --orch, for the help text.
func (f *LabFlags) Register(fs *flag.FlagSet, script string) {
	fs.StringVar(&f.Orch, "orch", f.Orch, "orch binary (required; "+script+" builds it)")
	fs.StringVar(&f.OrchSource, "orch-source", f.OrchSource, "where the orch binary was built from, for the report")
	fs.StringVar(&f.Lab, "lab", f.Lab, "the lab script")
	fs.StringVar(&f.Work, "work", f.Work, "work directory: agents' data dirs, sockets and logs")
	fs.StringVar(&f.Results, "results", f.Results, "directory for the CSV results")
	fs.StringVar(&f.Prefix, "prefix", f.Prefix, "lab namespace prefix")
	fs.Func("subnet", fmt.Sprintf("lab subnet, a /24 or larger (default %s)", f.Subnet), func(s string) (err error) {
		f.Subnet, err = ParseLabSubnet(s)
		return err
	})
}

// Logf prints one progress line to stderr, stamped with the time of day
// and the program's name: "15:04:05 dns: message".
func Logf(prog, format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s %s: %s\n", time.Now().Format("15:04:05"), prog, fmt.Sprintf(format, args...))
}

// Fatalf prints "prog: message" to stderr and exits with status 1. Call it
// from main only.
func Fatalf(prog, format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s: %s\n", prog, fmt.Sprintf(format, args...))
	os.Exit(1)
}

// RequireRoot returns an error with a hint unless the program runs as
// root, which building network namespaces and running agents in them
// needs; script is the wrapper to run with sudo.
func RequireRoot(script string) error {
	if os.Geteuid() != 0 {
		return errors.New("must run as root: the benchmark builds network namespaces (scripts/lab) and runs agents inside them; run it as root, e.g. sudo " + script)
	}
	return nil
}

package benchkit

// The machines the benchmarks run on are small (2 cores in the reference
// runs) and shared: another benchmark, a test binary, a Go build or a lab
// full of agents distorts both its figures and ours. Each benchmark waits
// for a quiet machine before it measures (WaitIdle), and records what was
// running when it could not wait any longer.

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// maxLine is how much of a command line OtherLoad quotes.
const maxLine = 120

// Netns says which network namespaces count as other load.
type Netns int

const (
	// NetnsIgnore counts no namespace.
	NetnsIgnore Netns = iota
	// NetnsAll counts every named namespace not of this run: labs of
	// tests and of other benchmarks.
	NetnsAll
	// NetnsBusy counts the named namespaces not of this run that have
	// processes in them; empty ones, left by crashed runs, cost nothing.
	NetnsBusy
)

// LoadFilter says what [OtherLoad] counts.
type LoadFilter struct {
	// Markers are command-line fragments that make a process another
	// benchmark. Nil means "scripts/bench/".
	Markers []string
	// Own are command-line fragments of this benchmark's own processes
	// ("scripts/bench/heal", "internal/heal", "orch-bench-heal"), which
	// never count; neither do this process and its ancestors.
	Own []string
	// Tests counts running test binaries (argv[0] ending in .test).
	Tests bool
	// GoBuilds counts Go builds: go build, test, vet, run or install, and
	// the compiler, linker and vet they run.
	GoBuilds bool
	// Netns says which network namespaces count; Prefix is this run's
	// namespace prefix, whose namespaces never do.
	Netns  Netns
	Prefix string
}

// OtherLoad lists what else runs on the machine, as f describes it: one
// "PID COMMAND LINE" per process, then one entry for the namespaces.
// Empty means the machine is quiet.
func OtherLoad(f LoadFilter) []string {
	markers := f.Markers
	if markers == nil {
		markers = []string{"scripts/bench/"}
	}
	ps := ListProcs(true)
	mine := Ancestors(ps)
	var out []string
	for _, p := range ps {
		if mine[p.PID] || len(p.Argv) == 0 {
			continue
		}
		line := strings.Join(p.Argv, " ")
		bench := containsAny(line, markers) && !containsAny(line, f.Own)
		if bench || (f.Tests && strings.HasSuffix(p.Argv[0], ".test")) || (f.GoBuilds && GoTool(p.Argv)) {
			out = append(out, fmt.Sprintf("%d %s", p.PID, Truncate(line, maxLine)))
		}
	}
	slices.Sort(out)
	if f.Netns != NetnsIgnore {
		if ns := otherNamespaces(ps, f.Prefix, f.Netns == NetnsBusy); len(ns) > 0 {
			shown := strings.Join(ns[:min(3, len(ns))], ", ")
			if len(ns) > 3 {
				shown += ", …"
			}
			out = append(out, fmt.Sprintf("%d network namespaces of other labs (%s)", len(ns), shown))
		}
	}
	return out
}

// otherNamespaces lists the named network namespaces (/run/netns) that do
// not start with prefix; with busyOnly, those that have a process of ps in
// them, as "NAME (N processes)".
func otherNamespaces(ps []Proc, prefix string, busyOnly bool) []string {
	dirs, _ := os.ReadDir("/run/netns")
	var names []string
	var ids []netnsID
	for _, d := range dirs {
		if strings.HasPrefix(d.Name(), prefix) {
			continue
		}
		if !busyOnly {
			names = append(names, d.Name())
			continue
		}
		if id, err := netnsOf(filepath.Join("/run/netns", d.Name())); err == nil {
			names = append(names, d.Name())
			ids = append(ids, id)
		}
	}
	if !busyOnly {
		return names
	}
	count := make([]int, len(ids))
	for _, p := range ps {
		id, err := netnsOf("/proc/" + strconv.Itoa(p.PID) + "/ns/net")
		if err != nil {
			continue
		}
		if i := slices.Index(ids, id); i >= 0 {
			count[i]++
		}
	}
	var out []string
	for i, n := range count {
		if n > 0 {
			out = append(out, fmt.Sprintf("%s (%d processes)", names[i], n))
		}
	}
	return out
}

// GoTool reports whether argv is a Go build or test: `go build|test|vet|
// run|install` or the compiler, linker or vet it runs.
func GoTool(argv []string) bool {
	if len(argv) == 0 {
		return false
	}
	base := baseName(argv[0])
	if base == "go" && len(argv) > 1 {
		return slices.Contains([]string{"build", "test", "vet", "run", "install"}, argv[1])
	}
	return strings.Contains(argv[0], "/pkg/tool/") && slices.Contains([]string{"compile", "link", "vet", "asm", "cgo"}, base)
}

func containsAny(s string, subs []string) bool {
	return slices.ContainsFunc(subs, func(sub string) bool { return strings.Contains(s, sub) })
}

// Truncate cuts s to n bytes, marking the cut with "…".
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

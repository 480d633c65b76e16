package benchkit

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"
)

// Header is the first line of a report: where orch came from (the
// scripts pass it as --orch-source), the Go version, the CPUs, the host
// and when the run started.
func Header(source string, started time.Time) string {
	host, _ := os.Hostname()
	return fmt.Sprintf("# orch %s, %s, %d CPUs, %s, %s", source, runtime.Version(), runtime.NumCPU(), host, started.UTC().Format(time.RFC3339))
}

// CPUModel is the model name of the first CPU in /proc/cpuinfo, or "?".
func CPUModel() string {
	for line := range strings.SplitSeq(readString("/proc/cpuinfo"), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

// Kernel is the running kernel's release, or "?".
func Kernel() string { return FirstLine(readString("/proc/sys/kernel/osrelease")) }

// Loadavg is the 1, 5 and 15 minute load averages, or "?".
func Loadavg() string {
	f := strings.Fields(readString("/proc/loadavg"))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// Version is the first line of what `name args...` prints, or "?" if it
// fails: `orch version`, `serf version`.
func Version(name string, args ...string) string {
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		return "?"
	}
	return FirstLine(string(out))
}

// FirstLine is the first line of s, trimmed.
func FirstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(s)
}

func readString(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "?"
	}
	return string(b)
}

// Machine describes where and when a benchmark ran, for the report's
// first lines.
type Machine struct {
	CPUs             int
	CPUModel, Kernel string
	// Orch is what `orch version` printed; OrchSource where it was built
	// from.
	Orch, OrchSource string
	// Also is appended to the orch line: other software, agent flags.
	Also               string
	LoadStart, LoadEnd string // load averages
	Started            time.Time
	Took               time.Duration // set by Finish
}

// DescribeMachine describes this machine, the orch binary orchBin built
// from source, and now as the start.
func DescribeMachine(orchBin, source string) *Machine {
	return &Machine{
		CPUs:       runtime.NumCPU(),
		CPUModel:   CPUModel(),
		Kernel:     Kernel(),
		Orch:       Version(orchBin, "version"),
		OrchSource: source,
		LoadStart:  Loadavg(),
		Started:    time.Now(),
	}
}

// Finish records the end of the run, which measured from start.
func (m *Machine) Finish(start time.Time) {
	m.Took = time.Since(start)
	m.LoadEnd = Loadavg()
}

// String is three lines: the machine, orch, and the run's times and load.
func (m *Machine) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "machine: %d CPUs (%s), Linux %s\n", m.CPUs, m.CPUModel, m.Kernel)
	fmt.Fprintf(&b, "orch: %s", m.Orch)
	if m.OrchSource != "" {
		fmt.Fprintf(&b, ", built from the %s", m.OrchSource)
	}
	if m.Also != "" {
		fmt.Fprintf(&b, "; %s", m.Also)
	}
	fmt.Fprintf(&b, "\nstarted %s, load average %s", m.Started.UTC().Format(time.RFC3339), m.LoadStart)
	if m.Took > 0 {
		fmt.Fprintf(&b, "; took %s, load average at the end %s", m.Took.Round(time.Second), m.LoadEnd)
	}
	b.WriteString("\n")
	return b.String()
}

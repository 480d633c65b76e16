package main

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

// logSpan is the agents' logs of one cluster: the *.log files of dir, up
// to until (what the teardown causes afterwards is left out).
type logSpan struct {
	phase string
	dir   string
	until time.Time
}

// logNote is one kind of WARN or ERROR line found in the agents' logs.
type logNote struct {
	level   string // WARN or ERROR
	msg     string // the msg field, digits masked
	count   int
	agents  []string // log files (agent names) it appeared in
	example string   // the first such line, without time and level
}

var (
	timeRE  = regexp.MustCompile(`^time=(\S+)`)
	levelRE = regexp.MustCompile(`\blevel=(WARN|ERROR)\b`)
	msgRE   = regexp.MustCompile(`\bmsg=("(?:[^"\\]|\\.)*"|\S+)`)
	digitRE = regexp.MustCompile(`[0-9]+`)
)

// scanLogs collects the WARN and ERROR lines of the span's logs, grouped
// by level and message, most frequent first.
func scanLogs(span logSpan) []logNote {
	paths, _ := filepath.Glob(filepath.Join(span.dir, "*.log"))
	byKey := map[string]*logNote{}
	for _, p := range paths {
		agent := strings.TrimSuffix(filepath.Base(p), ".log")
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			lv := levelRE.FindStringSubmatch(line)
			if lv == nil {
				continue
			}
			if m := timeRE.FindStringSubmatch(line); m != nil {
				if t, err := time.Parse(time.RFC3339Nano, m[1]); err == nil && t.After(span.until) {
					continue
				}
			}
			msg := ""
			if m := msgRE.FindStringSubmatch(line); m != nil {
				msg = digitRE.ReplaceAllString(strings.Trim(m[1], `"`), "#")
			}
			key := lv[1] + " " + msg
			n := byKey[key]
			if n == nil {
				n = &logNote{level: lv[1], msg: msg, example: agent + ": " + compactLogLine(line)}
				byKey[key] = n
			}
			n.count++
			if !slices.Contains(n.agents, agent) {
				n.agents = append(n.agents, agent)
			}
		}
		f.Close()
	}
	var out []logNote
	for _, n := range byKey {
		slices.Sort(n.agents)
		out = append(out, *n)
	}
	slices.SortFunc(out, func(a, b logNote) int {
		if a.count != b.count {
			return b.count - a.count
		}
		return strings.Compare(a.msg, b.msg)
	})
	return out
}

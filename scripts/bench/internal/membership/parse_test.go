package main

import (
	"io"
	"math"
	"slices"
	"testing"
	"time"
)

func TestParseStatCPU(t *testing.T) {
	tests := []struct {
		name    string
		stat    string
		want    int64
		wantErr bool
	}{
		{
			name: "plain",
			stat: "4242 (orch) S 1 4242 4242 0 -1 4194560 1520 0 0 0 37 12 0 0 20 0 9 0 5000 1300000000 4500 18446744073709551615",
			want: 49,
		},
		{
			name: "command with spaces and parentheses",
			stat: "7 (a) b (c)) R 1 7 7 0 -1 0 0 0 0 0 100 200 0 0 20 0 1 0 1 0 0",
			want: 300,
		},
		{name: "no command", stat: "7 a R 1", wantErr: true},
		{name: "short", stat: "7 (a) R 1 2 3", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStatCPU([]byte(tt.stat))
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("parseStatCPU() = %d, %v; want %d, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestParseStatusRSS(t *testing.T) {
	status := "Name:\torch\nVmPeak:\t 1300000 kB\nVmRSS:\t   18204 kB\nThreads:\t9\n"
	if got, err := parseStatusRSS([]byte(status)); err != nil || got != 18204 {
		t.Errorf("parseStatusRSS() = %d, %v; want 18204", got, err)
	}
	if _, err := parseStatusRSS([]byte("Name:\tzombie\n")); err == nil {
		t.Error("parseStatusRSS() without VmRSS: want an error")
	}
}

func TestParseHostCPU(t *testing.T) {
	stat := "cpu  100 5 50 800 20 3 2 10 0 0\ncpu0 50 2 25 400 10 1 1 5 0 0\n"
	got, err := parseHostCPU([]byte(stat))
	if err != nil {
		t.Fatal(err)
	}
	if want := (hostCPU{busy: 170, total: 990}); got != want {
		t.Errorf("parseHostCPU() = %+v, want %+v", got, want)
	}
	if p := busyPct(hostCPU{busy: 100, total: 1000}, hostCPU{busy: 150, total: 1200}); p != 25 {
		t.Errorf("busyPct() = %v, want 25", p)
	}
}

func TestParseLogLine(t *testing.T) {
	tests := []struct {
		name, line      string
		action, subject string
		ok              bool
	}{
		{
			name:   "serf agent",
			line:   "    2026/11/25 21:16:40 [INFO] serf: EventMemberFailed: s3 10.49.0.3",
			action: "failed", subject: "s3", ok: true,
		},
		{
			name:   "orch",
			line:   `time=2026-11-25T21:16:40.623Z level=INFO msg="serf: EventMemberFailed: h3 10.49.0.3" component=gossip`,
			action: "failed", subject: "h3", ok: true,
		},
		{
			name:   "join",
			line:   "    2026/11/25 21:16:27 [INFO] serf: EventMemberJoin: s2 10.49.0.2",
			action: "join", subject: "s2", ok: true,
		},
		{
			name:   "suspect",
			line:   `time=2026-11-25T21:16:36.623Z level=INFO msg="memberlist: Suspect h3 has failed, no acks received" component=gossip`,
			action: "suspect", subject: "h3", ok: true,
		},
		{
			name: "agent's own event line",
			line: `time=2026-11-25T21:16:40.623Z level=INFO msg="member failed" peer=h3 addr=10.49.0.3:7946 status=failed`,
		},
		{name: "refute", line: `    2026/11/25 21:31:40 [WARN] memberlist: Refuting a suspect message (from: h7)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			action, subject, ok := parseLogLine(tt.line)
			if action != tt.action || subject != tt.subject || ok != tt.ok {
				t.Errorf("parseLogLine() = %q, %q, %v; want %q, %q, %v", action, subject, ok, tt.action, tt.subject, tt.ok)
			}
		})
	}
}

func TestRecorderFirst(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	var r recorder
	r.add(memberEvent{observer: 2, source: sourceEvent, action: actionFailed, subject: "h3", at: t0.Add(-time.Second)}) // before since
	r.add(memberEvent{observer: 2, source: sourceEvent, action: actionFailed, subject: "h3", at: t0.Add(3 * time.Second)})
	r.add(memberEvent{observer: 2, source: sourceEvent, action: actionFailed, subject: "h3", at: t0.Add(2 * time.Second)}) // replayed out of order
	r.add(memberEvent{observer: 2, source: sourceLog, action: actionFailed, subject: "h3", at: t0.Add(time.Second)})
	r.add(memberEvent{observer: 4, source: sourceEvent, action: actionFailed, subject: "h3", at: t0.Add(time.Second)})
	got, ok := r.first(2, sourceEvent, actionFailed, "h3", t0)
	if !ok || !got.Equal(t0.Add(2*time.Second)) {
		t.Errorf("first() = %v, %v; want t0+2s", got, ok)
	}
	if _, ok := r.first(2, sourceEvent, actionFailed, "h5", t0); ok {
		t.Error("first() for an unseen subject: want false")
	}
}

func TestStats(t *testing.T) {
	inf := math.Inf(1)
	if got := median([]float64{5, 1, 3}); got != 3 {
		t.Errorf("median odd = %v, want 3", got)
	}
	if got := median([]float64{4, 1, 3, 2}); got != 2.5 {
		t.Errorf("median even = %v, want 2.5", got)
	}
	if got := median([]float64{1, inf, inf}); !math.IsInf(got, 1) {
		t.Errorf("median with timeouts = %v, want +Inf", got)
	}
	if got := maximum([]float64{1, inf}); !math.IsInf(got, 1) {
		t.Errorf("maximum with a timeout = %v, want +Inf", got)
	}
	if got := median(nil); !math.IsNaN(got) {
		t.Errorf("median(nil) = %v, want NaN", got)
	}
	m := map[int]time.Duration{1: 1500 * time.Millisecond, 3: 2 * time.Second}
	if got := lastMs(m, 2); got != 2000 {
		t.Errorf("lastMs() = %v, want 2000", got)
	}
	if got := lastMs(m, 3); !math.IsInf(got, 1) {
		t.Errorf("lastMs() with a survivor missing = %v, want +Inf", got)
	}
	if got := firstMs(m); got != 1500 {
		t.Errorf("firstMs() = %v, want 1500", got)
	}
}

func TestSummarise(t *testing.T) {
	o := options{sizes: []int{5}, profiles: []string{"lan"}, orchBin: "orch", serfBin: "serf"}
	det := func(ms ...int) detection {
		d := detection{survivors: 2, stamp: map[int]time.Duration{}, log: map[int]time.Duration{}, poll: map[int]time.Duration{}}
		for i, v := range ms {
			d.stamp[i+1] = time.Duration(v) * time.Millisecond
			d.log[i+1] = time.Duration(v) * time.Millisecond
			d.poll[i+1] = time.Duration(v+50) * time.Millisecond
		}
		return d
	}
	runs := []runResult{
		{impl: "orch", profile: "lan", n: 5, run: 1, det: det(4000, 5000), hostBusyPct: 10},
		{impl: "orch", profile: "lan", n: 5, run: 2, det: det(6000, 7000), hostBusyPct: 30},
		{impl: "orch", profile: "lan", n: 5, run: 3, det: det(5500), hostBusyPct: math.NaN()}, // one survivor never saw it
	}
	idles := map[groupKey]idle{{"orch", "lan", 5}: {rssMeanMiB: 17}}
	unformed := map[groupKey]string{{"serf", "lan", 5}: "run 1: boom"}
	got := summarise(runs, idles, unformed, o)
	if len(got) != 2 {
		t.Fatalf("summarise() = %d groups, want 2 (orch lan, serf lan): %+v", len(got), got)
	}
	s := got[0]
	if s.impl != "orch" || s.runs != 3 || s.complete != 2 || s.detectMed != 7000 || !math.IsInf(s.detectMax, 1) ||
		s.firstMed != 5500 || s.pollMed != 7050 || s.hostBusyMax != 30 || !s.hasIdle || s.idle.rssMeanMiB != 17 {
		t.Errorf("orch summary = %+v", s)
	}
	if u := got[1]; u.impl != "serf" || u.runs != 0 || u.unformed != "run 1: boom" {
		t.Errorf("serf summary = %+v, want an unformed group without runs", u)
	}
}

func TestParseOptions(t *testing.T) {
	base := []string{"--orch", "/bin/orch"}
	tests := []struct {
		name     string
		args     []string
		wantSoak time.Duration
		wantErr  bool
	}{
		{name: "defaults", args: base},
		{name: "bare soak", args: append([]string{"--soak"}, base...), wantSoak: 10 * time.Minute},
		{name: "soak with value", args: append(slices.Clone(base), "--soak", "3m"), wantSoak: 3 * time.Minute},
		{name: "soak with =", args: append(slices.Clone(base), "--soak=90s"), wantSoak: 90 * time.Second},
		{name: "soak then junk", args: append(slices.Clone(base), "--soak", "junk"), wantErr: true},
		{name: "no orch", args: nil, wantErr: true},
		{name: "bad size", args: append(slices.Clone(base), "--sizes", "5,1"), wantErr: true},
		{name: "bad profile", args: append(slices.Clone(base), "--profiles", "lan,wan"), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseOptions(tt.args, io.Discard)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseOptions() error = %v, want error %v", err, tt.wantErr)
			}
			if err == nil && o.soak != tt.wantSoak {
				t.Errorf("soak = %v, want %v", o.soak, tt.wantSoak)
			}
		})
	}
	o, err := parseOptions(base, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(o.sizes, []int{5, 20, 50}) || o.runs != 5 || !slices.Equal(o.profiles, []string{"lan", "fast"}) {
		t.Errorf("defaults: sizes %v runs %d profiles %v", o.sizes, o.runs, o.profiles)
	}
}

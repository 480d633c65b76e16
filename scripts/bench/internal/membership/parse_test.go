package main

import (
	"io"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/orchproject/orch/scripts/bench/internal/benchkit"
)

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

func TestSummarise(t *testing.T) {
	o := options{sizes: []int{5}, profiles: []string{"lan"}, LabFlags: benchkit.LabFlags{Orch: "orch"}, serfBin: "serf"}
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

package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/orchproject/orch/agent/api"
)

func TestPrettyPrinter(t *testing.T) {
	at := time.Date(2026, 11, 3, 14, 5, 9, 123456789, time.UTC)
	ev := func(typ, action, node, subject string, attrs map[string]string) api.Event {
		return api.Event{Time: at, Seq: 7, Type: typ, Action: action, Node: node, Subject: subject, Attributes: attrs}
	}
	tests := []struct {
		name   string
		colour bool
		events []api.Event
		want   []string
	}{
		{
			name:   "PlainSortedAttributes",
			events: []api.Event{ev("member", "join", "n1", "n3", map[string]string{"status": "alive", "address": "10.0.0.3:7946", "id": "abc"})},
			want:   []string{"14:05:09.123  n1        member/join         n3            address=10.0.0.3:7946 id=abc status=alive"},
		},
		{
			name:   "NoAttributesNoTrailingSpace",
			events: []api.Event{ev("service", "removed", "n1", "web", nil)},
			want:   []string{"14:05:09.123  n1        service/removed     web"},
		},
		{
			name:   "EmptySubjectAndQuotedValues",
			events: []api.Event{ev("health", "unhealthy", "n2", "", map[string]string{"output": "connection refused", "from": "", "container": "web"})},
			want:   []string{`14:05:09.123  n2        health/unhealthy    -             container=web from="" output="connection refused"`},
		},
		{
			name: "ColumnsWidenAndStay",
			events: []api.Event{
				ev("network", "subnet-conflict", "a-long-node-name", "x", map[string]string{"subnet": "10.213.1.0/24"}),
				ev("task", "running", "n1", "web.0", map[string]string{"node": "n1"}),
			},
			want: []string{
				"14:05:09.123  a-long-node-name  network/subnet-conflict  x             subnet=10.213.1.0/24",
				"14:05:09.123  n1                task/running             web.0         node=n1",
			},
		},
		{
			name:   "Lagged",
			events: []api.Event{ev("stream", "lagged", "n1", "", map[string]string{"missed": "12", "first_seq": "3", "last_seq": "14"})},
			want:   []string{"14:05:09.123  n1        WARNING: missed 12 events (seq 3-14): this reader fell behind the stream"},
		},
		{
			name:   "LaggedOne",
			events: []api.Event{ev("stream", "lagged", "n1", "", map[string]string{"missed": "1", "first_seq": "3", "last_seq": "3"})},
			want:   []string{"14:05:09.123  n1        WARNING: missed 1 event (seq 3-3): this reader fell behind the stream"},
		},
		{
			name:   "ColourByType",
			colour: true,
			events: []api.Event{
				ev("member", "join", "n1", "n3", nil),
				ev("task", "running", "n1", "web.0", nil),
				ev("health", "healthy", "n1", "web.0", nil),
				ev("node", "eligible", "n1", "n1", nil),
				ev("network", "peer-added", "n1", "n2", nil),
				ev("image", "pulled", "n1", "busybox", nil),
			},
			want: []string{
				"14:05:09.123  n1        \x1b[36mmember/join\x1b[0m         n3",
				"14:05:09.123  n1        \x1b[32mtask/running\x1b[0m        web.0",
				"14:05:09.123  n1        \x1b[33mhealth/healthy\x1b[0m      web.0",
				"14:05:09.123  n1        \x1b[35mnode/eligible\x1b[0m       n1",
				"14:05:09.123  n1        \x1b[94mnetwork/peer-added\x1b[0m  n2",
				"14:05:09.123  n1        image/pulled        busybox",
			},
		},
		{
			name:   "ColourFailuresRed",
			colour: true,
			events: []api.Event{
				ev("member", "failed", "n1", "n3", nil),
				ev("health", "unhealthy", "n1", "web.0", nil),
				ev("task", "failed", "n1", "web.0", map[string]string{"exit_code": "1"}),
			},
			want: []string{
				"14:05:09.123  n1        \x1b[31mmember/failed\x1b[0m       n3",
				"14:05:09.123  n1        \x1b[31mhealth/unhealthy\x1b[0m    web.0",
				"14:05:09.123  n1        \x1b[31mtask/failed\x1b[0m         web.0         exit_code=1",
			},
		},
		{
			name:   "ColourLagged",
			colour: true,
			events: []api.Event{ev("stream", "lagged", "n1", "", map[string]string{"missed": "2", "first_seq": "3", "last_seq": "4"})},
			want:   []string{"14:05:09.123  n1        \x1b[1;31mWARNING: missed 2 events (seq 3-4): this reader fell behind the stream\x1b[0m"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			p := &prettyPrinter{w: &b, colour: tt.colour, loc: time.UTC}
			for _, e := range tt.events {
				if err := p.print(e); err != nil {
					t.Fatal(err)
				}
			}
			got := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			if !tt.colour && strings.Contains(b.String(), "\x1b") {
				t.Errorf("escape sequence in plain output: %q", b.String())
			}
		})
	}
}

func TestPrettyPrinter_LocalTime(t *testing.T) {
	var b bytes.Buffer
	p := &prettyPrinter{w: &b, loc: time.FixedZone("X", 2*3600)}
	if err := p.print(api.Event{Time: time.Date(2026, 1, 1, 23, 59, 59, 999_000_000, time.UTC), Type: "member", Action: "join", Node: "n1", Subject: "n2"}); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(b.String(), "01:59:59.999  ") {
		t.Errorf("time not shown in the printer's zone as HH:MM:SS.mmm: %q", b.String())
	}
}

func TestWantColour(t *testing.T) {
	tests := []struct {
		name     string
		terminal bool
		env      map[string]string
		want     bool
	}{
		{"Terminal", true, nil, true},
		{"Piped", false, nil, false},
		{"NoColor", true, map[string]string{"NO_COLOR": "1"}, false},
		{"NoColorEmptyIsUnset", true, map[string]string{"NO_COLOR": ""}, true},
		{"DumbTerminal", true, map[string]string{"TERM": "dumb"}, false},
		{"PipedXterm", false, map[string]string{"TERM": "xterm-256color"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := wantColour(tt.terminal, func(k string) string { return tt.env[k] }); got != tt.want {
				t.Errorf("wantColour = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestIsTerminal(t *testing.T) {
	if isTerminal(&bytes.Buffer{}) {
		t.Error("a buffer is a terminal")
	}
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	if isTerminal(null) {
		t.Error("/dev/null is a terminal (a character device is not enough)")
	}
	pty, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal to test with: %v", err)
	}
	defer pty.Close()
	if !isTerminal(pty) {
		t.Error("a pseudo-terminal is not a terminal")
	}
}

// TestCLI_EventsPretty streams a live agent's events with --format pretty
// into a pipe-like writer: plain lines, no JSON, no colour.
func TestCLI_EventsPretty(t *testing.T) {
	n1 := startAgent(t, "n1", nil)
	ctx, cancel := context.WithTimeout(t.Context(), cliTimeout)
	defer cancel()
	stdout := &lineWriter{onLine: cancel}
	var stderr bytes.Buffer
	code := run(ctx, []string{"--socket", n1.socket, "events", "--since", "1m", "--format", "pretty"}, stdout, &stderr)
	if code != exitOK {
		t.Fatalf("events --format pretty: exit %d; stderr:\n%s", code, stderr.String())
	}
	line, _, _ := strings.Cut(stdout.String(), "\n")
	f := strings.Fields(line)
	if len(f) < 4 || len(f[0]) != len("15:04:05.000") || f[1] != "n1" || !strings.Contains(f[2], "/") {
		t.Errorf("line %q is not TIME NODE TYPE/ACTION SUBJECT …", line)
	}
	if strings.ContainsAny(line, "{\x1b") {
		t.Errorf("line %q holds JSON or colour", line)
	}
}

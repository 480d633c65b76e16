package main

import (
	"context"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/orchproject/orch/agent/api"
)

// orchDriver runs orch agents; each has its data dir and API socket in
// dir/hK.
type orchDriver struct {
	bin     string
	extra   []string // more agent flags, from orchAgentFlags
	prof    string
	lab     *lab
	dir     string
	clients map[int]*api.Client // fixed after newOrchDriver
	token   string              // set by ready(ctx, 1)
}

func newOrchDriver(bin string, extra []string, profile string, l *lab, dir string, n int) *orchDriver {
	d := &orchDriver{bin: bin, extra: extra, prof: profile, lab: l, dir: dir, clients: map[int]*api.Client{}}
	for k := 1; k <= n; k++ {
		d.clients[k] = api.NewClient(d.socket(k))
	}
	return d
}

func (d *orchDriver) impl() string        { return "orch" }
func (d *orchDriver) profile() string     { return d.prof }
func (d *orchDriver) stampSource() string { return sourceEvent }
func (d *orchDriver) close()              {}

func (d *orchDriver) hostDir(k int) string { return filepath.Join(d.dir, "h"+strconv.Itoa(k)) }
func (d *orchDriver) socket(k int) string  { return filepath.Join(d.hostDir(k), "orch.sock") }

func (d *orchDriver) argv(k int) []string {
	a := []string{d.bin, "agent",
		"--name", "h" + strconv.Itoa(k),
		"--bind", d.lab.addr(k).String() + ":7946",
		"--data-dir", d.hostDir(k),
		"--socket", d.socket(k),
		"--profile", d.prof,
	}
	a = append(a, d.extra...)
	if k > 1 {
		a = append(a, "--token", d.token, "--join", d.lab.addr(1).String())
	}
	return a
}

// orchAgentFlags returns the flags that make an agent of this orch binary
// a membership-only node: "--containerd none" where the binary has that
// flag (since 99dd61c), so that agents do not retry an absent containerd
// during the measurements; nothing for older binaries, which --rev can
// build.
func orchAgentFlags(bin string) []string {
	out, err := exec.Command(bin, "agent", "--help").CombinedOutput()
	if err == nil && strings.Contains(string(out), "--containerd") {
		return []string{"--containerd", "none"}
	}
	return nil
}

func (d *orchDriver) ready(ctx context.Context, k int) error {
	c := d.clients[k]
	if k != 1 {
		_, err := c.Info(ctx)
		return err
	}
	tok, err := c.Token(ctx)
	if err != nil {
		return err
	}
	d.token = tok
	return nil
}

func (d *orchDriver) members(ctx context.Context, k int) (map[string]string, error) {
	ms, err := d.clients[k].Members(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(ms))
	for _, m := range ms {
		out[m.Name] = m.Status
	}
	return out, nil
}

// watchReplay is how far back a (re)connecting watch replays the agent's
// retained events, so nothing between cluster formation and the
// subscription is missed; duplicates are harmless to the recorder's users.
const watchReplay = time.Hour

func (d *orchDriver) watch(ctx context.Context, k int, rec *recorder) {
	req := api.EventsRequest{Filters: []string{"type=member"}, Since: watchReplay}
	var lastSeq uint64
	for ctx.Err() == nil {
		// The stream ends, with or without an error, when the agent goes
		// away (the victim: its socket then refuses) or drops us; either
		// way, reconnect and resume after the last event until ctx ends.
		_ = d.clients[k].Events(ctx, req, func(ev api.Event) error {
			if ev.Type != "member" {
				return nil // the stream's "lagged" marker
			}
			lastSeq = ev.Seq
			rec.add(memberEvent{observer: k, source: sourceEvent, action: ev.Action, subject: ev.Subject, at: ev.Time})
			return nil
		})
		if !sleepCtx(ctx, 200*time.Millisecond) {
			return
		}
		if lastSeq > 0 {
			req = api.EventsRequest{Filters: req.Filters, After: lastSeq}
		}
	}
}

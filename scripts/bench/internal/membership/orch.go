package main

import (
	"context"
	"path/filepath"
	"strconv"
	"time"

	"github.com/orchproject/orch/agent/api"
	"github.com/orchproject/orch/scripts/bench/internal/benchkit"
)

// orchDriver runs orch agents; each has its data dir and API socket in
// dir/hK.
type orchDriver struct {
	bin     string
	extra   []string // more agent flags, from benchkit.NoContainerdFlags
	prof    string
	lab     *benchkit.Lab
	dir     string
	clients map[int]*api.Client // fixed after newOrchDriver
	token   string              // set by ready(ctx, 1)
}

func newOrchDriver(bin string, extra []string, profile string, l *benchkit.Lab, dir string, n int) *orchDriver {
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
	a := benchkit.Agent{Bin: d.bin, Name: "h" + strconv.Itoa(k), Addr: d.lab.Addr(k), DataDir: d.hostDir(k), Socket: d.socket(k),
		Profile: d.prof, Extra: d.extra}
	if k > 1 {
		a.Join, a.Token = d.lab.Addr(1), d.token
	}
	return a.Argv()
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
		if benchkit.Sleep(ctx, 200*time.Millisecond) != nil {
			return
		}
		if lastSeq > 0 {
			req = api.EventsRequest{Filters: req.Filters, After: lastSeq}
		}
	}
}

package main

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"
)

// stampCheck is how often a detection run looks for new failure stamps.
const stampCheck = 20 * time.Millisecond

// detection is what one run measured. Times are from the SIGKILL to the
// moment a survivor marked the victim failed; a survivor that never did
// within the timeout has no entry.
type detection struct {
	victim    string
	survivors int
	stamp     map[int]time.Duration // by survivor, from the driver's stampSource
	log       map[int]time.Duration // by survivor, from the agent's log line
	poll      map[int]time.Duration // by survivor, first poll listing it failed
	// falseFailures counts failed and leave events about members other
	// than the victim, seen by any agent since the cluster formed.
	falseFailures int
}

// detect kills agent victim and measures how long each survivor takes to
// mark it failed: by stamp (event or log line) and by polling its member
// list every pollEvery. It gives up timeout after the kill.
func (c *cluster) detect(ctx context.Context, victim int, pollEvery, timeout time.Duration) (detection, error) {
	vname := "h" + strconv.Itoa(victim)
	var survivors []int
	for k := 1; k <= c.n; k++ {
		if k != victim {
			survivors = append(survivors, k)
		}
	}
	// The starting point, and warm connections for the pollers: every
	// agent is running and every survivor lists the victim alive.
	if err := c.checkRunning(); err != nil {
		return detection{}, err
	}
	for _, k := range survivors {
		ms, err := c.d.members(ctx, k)
		if err != nil {
			return detection{}, fmt.Errorf("agent %d before the kill: %w", k, err)
		}
		if ms[vname] != "alive" {
			return detection{}, fmt.Errorf("agent %d lists %s as %q before the kill", k, vname, ms[vname])
		}
	}

	t0 := time.Now()
	if err := c.procs[victim].Kill(killWait); err != nil {
		return detection{}, err
	}
	dctx, cancel := context.WithDeadline(ctx, t0.Add(timeout))
	defer cancel()

	type polled struct {
		k  int
		at time.Time
	}
	polls := make(chan polled, len(survivors)) // one per poller: never blocks
	var pollers sync.WaitGroup
	for _, k := range survivors {
		pollers.Go(func() {
			if at, ok := c.pollFailed(dctx, k, vname, pollEvery); ok {
				polls <- polled{k, at}
			}
		})
	}

	d := detection{victim: vname, survivors: len(survivors), stamp: map[int]time.Duration{}, log: map[int]time.Duration{}, poll: map[int]time.Duration{}}
	tick := time.NewTicker(stampCheck)
	defer tick.Stop()
	for done := false; !done; {
		select {
		case p := <-polls:
			d.poll[p.k] = p.at.Sub(t0)
		case <-tick.C:
		case <-dctx.Done():
			done = true
		}
		for _, k := range survivors {
			if t, ok := c.rec.first(k, c.d.stampSource(), actionFailed, vname, t0); ok {
				d.stamp[k] = t.Sub(t0)
			}
			if t, ok := c.rec.first(k, sourceLog, actionFailed, vname, t0); ok {
				d.log[k] = t.Sub(t0)
			}
		}
		if len(d.stamp) == len(survivors) && len(d.log) == len(survivors) && len(d.poll) == len(survivors) {
			done = true
		}
	}
	cancel()
	pollers.Wait()
	close(polls)
	for p := range polls {
		d.poll[p.k] = p.at.Sub(t0)
	}
	if ctx.Err() != nil {
		return detection{}, ctx.Err()
	}
	for _, e := range c.rec.events(c.d.stampSource(), c.formedAt) {
		if (e.action == actionFailed || e.action == actionLeave) && e.subject != vname {
			d.falseFailures++
		}
	}
	return d, nil
}

// pollFailed polls agent k's member list every interval until it lists
// subject as failed, and returns the time of that answer; false if ctx
// ended first. Errors are retried: the agent may be busy.
func (c *cluster) pollFailed(ctx context.Context, k int, subject string, interval time.Duration) (time.Time, bool) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		ms, err := c.d.members(ctx, k)
		if err == nil && ms[subject] == "failed" {
			return time.Now(), true
		}
		select {
		case <-ctx.Done():
			return time.Time{}, false
		case <-t.C:
		}
	}
}

package agent

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/orchproject/orch/agent/runtime"
	"github.com/orchproject/orch/agent/spec"
)

// workloads is what the agent needs from the container runtime. Methods
// may block on containerd up to ctx's deadline and are safe for concurrent
// use; errors wrapping runtime.ErrUnavailable mean containerd is down.
type workloads interface {
	Ping(ctx context.Context) error
	Replicas(ctx context.Context) ([]runtime.Replica, error)
	StartReplica(ctx context.Context, spec runtime.ReplicaSpec) error
	RemoveReplica(ctx context.Context, id string, grace time.Duration) error
	ImportImage(ctx context.Context, archive io.Reader) ([]runtime.Image, error)
	Images(ctx context.Context) ([]runtime.Image, error)
	PullImage(ctx context.Context, ref string) (runtime.Image, error)
	PullImageProgress(ctx context.Context, ref string, fn func(runtime.Progress)) (runtime.Image, error)
	ResolveDigest(ctx context.Context, ref string) (string, error)
	WatchExits(ctx context.Context, wake func()) error
	RotateLogs(maxSize int64, keep int) error
	Exec(ctx context.Context, containerID string, argv []string) (int, []byte, error)
	ImageHealthcheck(ctx context.Context, ref string) (*runtime.ImageHealth, error)
	RestartContainerNow(ctx context.Context, id string, grace time.Duration) error
}

var _ workloads = (*runtime.Runtime)(nil)

// Task states once containers run (see also taskAssigned & co. in state.go).
const (
	taskStarting    = "starting"
	taskRunning     = "running"
	taskExited      = "exited"      // stopped, and the restart policy says no more
	taskRestarting  = "restarting"  // stopped, waiting for its backoff
	taskFailed      = "failed"      // could not be started; Message says why
	taskUnavailable = "unavailable" // the image is missing here
)

const (
	// runtimeTimeout bounds one runtime call from the reconcile loop.
	runtimeTimeout = 30 * time.Second
	// healthInterval is how often the agent checks containerd.
	healthInterval = 2 * time.Second
	// rotateEvery is how many health checks pass between log rotations.
	rotateEvery = 15
	// maxRestartBackoff caps the exponential restart delay.
	maxRestartBackoff = 5 * time.Minute
	// failedRetryBase is the first retry delay after a start failure
	// (a missing image, say); it doubles up to maxRestartBackoff.
	failedRetryBase = 2 * time.Second
)

// slotRun is what the runtime says of one slot this node holds.
type slotRun struct {
	State       string
	Message     string
	Restarts    int
	SpecVersion string // the version its containers run
	Addr        string // the replica's overlay address, if it has one
	ReplicaID   string // the replica that runs (a kept old one during an update)
}

// replicaSpec turns a service spec into the runtime's terms.
func replicaSpec(node string, s *spec.Service, slot int, version string) runtime.ReplicaSpec {
	rs := runtime.ReplicaSpec{Node: node, Service: s.Name, Slot: slot, SpecVersion: version}
	for _, c := range s.Containers {
		cs := runtime.ContainerSpec{
			Name: c.Name, Image: c.Image, Command: c.Command, Args: c.Args,
			WorkingDir: c.WorkingDir, User: c.User, ReadOnlyRoot: c.ReadOnlyRootFilesystem,
			MemoryBytes: int64(c.Resources.Memory), CPUMillis: int64(c.Resources.CPU),
		}
		for _, e := range c.Env {
			if e.ValueFrom != nil {
				cs.EnvSecrets = append(cs.EnvSecrets, runtime.EnvSecret{Var: e.Name, Secret: e.ValueFrom.Secret})
				continue
			}
			cs.Env = append(cs.Env, e.Name+"="+e.Value)
		}
		uid, gid := runtime.SecretOwner(c.User)
		for _, sr := range c.Secrets {
			f := runtime.SecretFile{Secret: sr.Name, File: cmp.Or(sr.Target, sr.Name), UID: uid, GID: gid}
			if sr.UID != nil {
				f.UID = *sr.UID
			}
			if sr.GID != nil {
				f.GID = *sr.GID
			}
			cs.Secrets = append(cs.Secrets, f)
		}
		rs.Containers = append(rs.Containers, cs)
	}
	return rs
}

// restartDecision says whether a stopped replica may start again, and when.
func restartDecision(p spec.RestartPolicy, exitCode uint32, restarts int, stoppedAt time.Time) (restart bool, at time.Time) {
	switch p.Condition {
	case spec.RestartNone:
		return false, time.Time{}
	case spec.RestartOnFailure:
		if exitCode == 0 {
			return false, time.Time{}
		}
	}
	if p.MaxAttempts > 0 && restarts >= p.MaxAttempts {
		return false, time.Time{}
	}
	delay := time.Duration(spec.DefaultRestartDelay)
	if p.Delay != nil {
		delay = p.Delay.Std()
	}
	// Exponential backoff, so a crash loop cannot become a restart storm.
	for range min(restarts, 16) {
		delay *= 2
		if delay >= maxRestartBackoff {
			delay = maxRestartBackoff
			break
		}
	}
	return true, stoppedAt.Add(delay)
}

// syncWorkloads makes containerd run exactly the replicas of the slots this
// node holds and reports each slot's state. want maps a task key to the
// replica that slot should run.
func (a *Agent) syncWorkloads(ctx context.Context, want map[string]runtime.ReplicaSpec, hold, startFirst map[string]bool, policies map[string]spec.RestartPolicy) (map[string]slotRun, error) {
	ctx, cancel := context.WithTimeout(ctx, runtimeTimeout)
	defer cancel()
	actual, err := a.rt.Replicas(ctx)
	if err != nil {
		return nil, err
	}
	byID := make(map[string]runtime.Replica, len(actual))
	for _, r := range actual {
		byID[r.ID] = r
	}
	// A held slot (a rolling update not yet at it) keeps the replica it
	// runs, whatever it runs.
	keep := map[string]runtime.Replica{} // task key → replica kept as is
	for key, rs := range want {
		if !hold[key] {
			continue
		}
		for _, r := range actual {
			// A kept replica that stopped is not restarted on its old
			// version: it is replaced by the new one.
			if stopped, _, _ := stoppedContainer(r); !stopped && r.Service == rs.Service && r.Slot == rs.Slot && r.ID != rs.ID() {
				keep[key] = r
			}
		}
	}
	wantIDs := make(map[string]bool, len(want))
	for key, rs := range want {
		if r, ok := keep[key]; ok {
			wantIDs[r.ID] = true
			continue
		}
		wantIDs[rs.ID()] = true
		if !startFirst[key] {
			continue
		}
		// start-first: the old replica of the slot stays until the new one
		// runs.
		if nr, ok := byID[rs.ID()]; ok && len(nr.Containers) == len(rs.Containers) && allContainersRunning(nr) {
			continue
		}
		for _, r := range actual {
			if r.Service == rs.Service && r.Slot == rs.Slot && r.ID != rs.ID() {
				wantIDs[r.ID] = true
			}
		}
	}
	if a.net != nil {
		// A replica whose address is not in this node's subnet (the node
		// lost a subnet conflict, or it ran before the overlay) is
		// replaced: same ID, new address.
		for _, r := range actual {
			if wantIDs[r.ID] && !a.net.fits(r.Addr) {
				delete(wantIDs, r.ID)
				delete(byID, r.ID)
			}
		}
		keepAddr := maps.Clone(wantIDs)
		for _, r := range actual {
			keepAddr[r.ID] = true
		}
		a.net.retain(keepAddr)
	}
	var errs []error
	// Remove what is no longer wanted here (old versions, slots that
	// moved, services removed, scaled away). Stopping may take a grace
	// period, so removals run beside the loop; a slot whose old replica
	// is still stopping does not start its new one (stop-first).
	stopping := map[string]bool{} // "service/slot" with an old replica going away
	for _, r := range actual {
		if wantIDs[r.ID] {
			continue
		}
		stopping[taskKey(r.Service, r.Slot)] = true
		a.removeAsync(r)
	}
	out := make(map[string]slotRun, len(want))
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	now := time.Now()
	for _, key := range keys {
		rs := want[key]
		subject := taskSubject(key)
		rep, exists := byID[rs.ID()]
		run := slotRun{SpecVersion: rs.SpecVersion}
		if kept, ok := keep[key]; ok {
			// Report the kept replica as it is, with the version it was
			// started for.
			rep, exists, run.SpecVersion = kept, true, kept.SpecVersion
		}
		if rep.Addr.IsValid() {
			run.Addr = rep.Addr.Addr().String()
		}
		if exists {
			run.ReplicaID = rep.ID
		}
		stopped, code, stoppedAt := stoppedContainer(rep)
		for _, c := range rep.Containers {
			run.Restarts = max(run.Restarts, c.Restarts)
		}
		switch {
		case exists && !stopped && len(rep.Containers) == len(rs.Containers):
			run.State = taskRunning
			a.retry.forget(rs.ID())
		case exists && stopped:
			ok, at := restartDecision(policies[key], code, run.Restarts, stoppedAt)
			switch {
			case !ok:
				run.State, run.Message = taskExited, fmt.Sprintf("exit code %d", code)
			case now.Before(at):
				run.State, run.Message = taskRestarting, fmt.Sprintf("exit code %d; restarting in %s", code, at.Sub(now).Round(100*time.Millisecond))
				a.wakeAt(at)
			default:
				a.bus.Publish(typeTask, actRestarting, subject, map[string]string{"exit_code": fmt.Sprint(code), "restarts": fmt.Sprint(run.Restarts + 1)})
				run = a.startSlot(ctx, rs, run, subject)
				if run.State == taskStarting {
					run.Restarts++
				}
			}
		case !exists && stopping[key]:
			run.State, run.Message = taskStarting, "waiting for the previous replica to stop"
		default: // missing, or missing containers
			if at, wait := a.retry.due(rs.ID(), now); wait {
				run.State, run.Message = a.retry.last(rs.ID())
				a.wakeAt(at)
				break
			}
			run = a.startSlot(ctx, rs, run, subject)
		}
		out[key] = run
	}
	return out, errors.Join(errs...)
}

// removeAsync removes a replica in the background, once at a time per
// replica, and wakes the reconcile loop when it is gone.
func (a *Agent) removeAsync(r runtime.Replica) {
	a.mu.Lock()
	if a.removing == nil {
		a.removing = map[string]bool{}
	}
	if a.removing[r.ID] || a.loopCtx == nil {
		a.mu.Unlock()
		return
	}
	a.removing[r.ID] = true
	ctx := a.loopCtx
	a.mu.Unlock()
	a.removals.Go(func() {
		defer func() {
			a.mu.Lock()
			delete(a.removing, r.ID)
			a.mu.Unlock()
			a.wake()
		}()
		ctx, cancel := context.WithTimeout(ctx, runtime.DefaultStopGrace+runtimeTimeout)
		defer cancel()
		if err := a.rt.RemoveReplica(ctx, r.ID, runtime.DefaultStopGrace); err != nil {
			if ctx.Err() == nil {
				a.log.Warn("remove replica", "replica", r.ID, "err", err)
			}
			return
		}
		if a.net != nil {
			a.net.release(r.ID)
		}
		a.bus.Publish(typeTask, actRemoved, fmt.Sprintf("%s.%d", r.Service, r.Slot), map[string]string{"replica": r.ID})
	})
}

// startSlot starts (or completes) a replica and reports the outcome.
//
// A node that lacks an image pulls it first. The pull runs inside the
// reconcile pass (bounded by runtimeTimeout); a failed pull backs off like
// any failed start.
func (a *Agent) startSlot(ctx context.Context, rs runtime.ReplicaSpec, run slotRun, subject string) slotRun {
	if a.net != nil {
		n, err := a.net.replicaNetwork(rs)
		if err != nil {
			run.State, run.Message = taskStarting, err.Error()
			a.wakeAt(time.Now().Add(time.Second))
			return run
		}
		rs.Network = n
		run.Addr = n.Addr.Addr().String()
	}
	// Secrets are opened only here, on the node that starts the replica,
	// and only for as long as the start takes.
	err := a.resolveSecrets(&rs)
	if err == nil {
		err = a.rt.StartReplica(ctx, rs)
	}
	if errors.Is(err, runtime.ErrNotFound) {
		if perr := a.pullImages(ctx, rs); perr != nil {
			err = fmt.Errorf("%w: %v", runtime.ErrNotFound, perr)
		} else {
			err = a.rt.StartReplica(ctx, rs)
		}
	}
	switch {
	case err == nil:
		run.State, run.Message = taskStarting, ""
		a.retry.forget(rs.ID())
		a.bus.Publish(typeTask, actStarting, subject, map[string]string{"replica": rs.ID(), "version": rs.SpecVersion})
	case errors.Is(err, runtime.ErrNotFound):
		run.State, run.Message = taskUnavailable, "image unavailable: "+err.Error()
		at := a.retry.fail(rs.ID(), run.State, run.Message, time.Now())
		a.wakeAt(at)
		a.bus.Publish(typeTask, actUnavailable, subject, map[string]string{"reason": err.Error()})
	default:
		run.State, run.Message = taskFailed, err.Error()
		at := a.retry.fail(rs.ID(), run.State, run.Message, time.Now())
		a.wakeAt(at)
		a.bus.Publish(typeTask, actFailed, subject, map[string]string{"reason": err.Error()})
	}
	return run
}

// pullImages pulls the replica's images this node does not have.
func (a *Agent) pullImages(ctx context.Context, rs runtime.ReplicaSpec) error {
	have := map[string]bool{}
	if imgs, err := a.rt.Images(ctx); err == nil {
		for _, im := range imgs {
			have[im.Digest] = true
			have[im.Name] = true
		}
	}
	var errs []error
	for _, c := range rs.Containers {
		if _, d := runtime.SplitDigest(c.Image); have[c.Image] || (d != "" && have[d]) {
			continue
		}
		im, err := a.rt.PullImage(ctx, c.Image)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		have[im.Digest], have[c.Image] = true, true
		a.bus.Publish(typeImage, actPulled, im.Name, map[string]string{"digest": im.Digest})
	}
	return errors.Join(errs...)
}

func allContainersRunning(r runtime.Replica) bool {
	for _, c := range r.Containers {
		if c.State != runtime.StateRunning {
			return false
		}
	}
	return true
}

// stoppedContainer reports whether any container of the replica has
// stopped, with its exit code and time.
func stoppedContainer(r runtime.Replica) (bool, uint32, time.Time) {
	for _, c := range r.Containers {
		if c.State == runtime.StateStopped {
			return true, c.ExitCode, c.ExitedAt
		}
	}
	return false, 0, time.Time{}
}

// retryBook remembers start failures so retries back off. Owned by the
// reconcile goroutine.
type retryBook struct {
	m map[string]retryState
}

type retryState struct {
	next          time.Time
	delay         time.Duration
	state, reason string
}

func (b *retryBook) due(id string, now time.Time) (time.Time, bool) {
	s, ok := b.m[id]
	return s.next, ok && now.Before(s.next)
}

func (b *retryBook) last(id string) (string, string) {
	s := b.m[id]
	return s.state, s.reason
}

func (b *retryBook) fail(id, state, reason string, now time.Time) time.Time {
	if b.m == nil {
		b.m = map[string]retryState{}
	}
	s := b.m[id]
	s.delay = min(max(2*s.delay, failedRetryBase), maxRestartBackoff)
	s.next, s.state, s.reason = now.Add(s.delay), state, reason
	b.m[id] = s
	return s.next
}

func (b *retryBook) forget(id string) { delete(b.m, id) }

// wakeAt schedules a reconcile pass at t (for backoffs).
func (a *Agent) wakeAt(t time.Time) {
	d := max(time.Until(t), 10*time.Millisecond)
	time.AfterFunc(d, a.wake)
}

// runtimeLoop runs the node's self-checks (a failed one makes the node
// ineligible, so its slots move) and watches containerd's task exits
// (which wake the reconcile loop).
func (a *Agent) runtimeLoop(ctx context.Context) error {
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	watching := false
	watchDone := make(chan struct{})
	tick := time.NewTicker(healthInterval)
	defer tick.Stop()
	for n := 0; ; n++ {
		if n%rotateEvery == 0 {
			if err := a.rt.RotateLogs(runtime.DefaultLogMaxSize, runtime.DefaultLogKeep); err != nil {
				a.log.Warn("rotate container logs", "err", err)
			}
		}
		reason := a.selfCheck(ctx)
		a.setIneligible(reason)
		if !strings.Contains(reason, "containerd") && !watching {
			watching = true
			watchDone = make(chan struct{})
			go func() {
				defer close(watchDone)
				if err := a.rt.WatchExits(watchCtx, a.wake); err != nil {
					a.log.Warn("task exit events ended", "err", err)
				}
			}()
		}
		select {
		case <-ctx.Done():
			stopWatch()
			if watching {
				<-watchDone
			}
			return nil
		case <-watchDone:
			watching = false
			a.wake() // containerd may have restarted: look again
		case <-tick.C:
		}
	}
}

// setIneligible publishes whether this node can take work: reason is
// empty when every self-check passes, else what failed.
func (a *Agent) setIneligible(reason string) {
	a.mu.Lock()
	changed := a.inelig != reason
	was := a.inelig
	a.inelig = reason
	a.mu.Unlock()
	if !changed {
		return
	}
	if reason == "" {
		a.log.Info("self-checks pass: taking work", "was", was)
	} else {
		a.log.Warn("self-check failed: this node takes no work until it passes", "reason", reason)
	}
	if err := a.node.SetTags(a.tags()); err != nil {
		a.log.Error("cannot publish eligibility", "err", err)
	}
	act, attrs := actEligible, map[string]string{}
	if reason != "" {
		act, attrs["reason"] = actIneligible, reason
	}
	a.bus.Publish(typeNode, act, a.cfg.Name, attrs)
	a.wake()
}

// minFreeBytes is the free space the data dir's file system must keep for
// the node to take work: state, logs and images need room.
const minFreeBytes = 256 << 20

// selfCheck runs the node's self-checks and returns what failed, "" when
// all pass: containerd answers, the data dir is writable with free space,
// and the overlay's devices are in place.
func (a *Agent) selfCheck(ctx context.Context) string {
	var failed []string
	pctx, cancel := context.WithTimeout(ctx, healthInterval)
	err := a.rt.Ping(pctx)
	cancel()
	if err != nil {
		failed = append(failed, "containerd")
	}
	if err := checkDataDir(a.cfg.DataDir, minFreeBytes); err != nil {
		a.log.Warn("data dir self-check", "err", err)
		failed = append(failed, "datadir")
	}
	if a.net != nil {
		if err := a.net.check(); err != nil {
			a.log.Warn("overlay self-check", "err", err)
			failed = append(failed, "overlay")
		}
	}
	return strings.Join(failed, ",")
}

// checkDataDir writes, syncs and removes a file in dir, and checks that
// its file system has at least free bytes available.
func checkDataDir(dir string, free uint64) error {
	p := filepath.Join(dir, ".selfcheck")
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("data dir not writable: %w", err)
	}
	_, werr := f.Write([]byte("ok\n"))
	serr := f.Sync()
	cerr := f.Close()
	os.Remove(p)
	if err := errors.Join(werr, serr, cerr); err != nil {
		return fmt.Errorf("data dir not writable: %w", err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if avail := st.Bavail * uint64(st.Bsize); avail < free {
		return fmt.Errorf("data dir: %d MiB free, want at least %d MiB", avail>>20, free>>20)
	}
	return nil
}

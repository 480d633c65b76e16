package agent

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"strconv"
	"time"

	"github.com/orchproject/orch/agent/events"
	"github.com/orchproject/orch/agent/runtime"
	"github.com/orchproject/orch/agent/spec"
	"github.com/orchproject/orch/gossip"
)

// Event types and actions the reconcile loop reports.
const (
	typeService   events.Type   = "service"
	typeTask      events.Type   = "task"
	actCreated    events.Action = "created"
	actUpdated    events.Action = "updated"
	actRemoved    events.Action = "removed"
	actAssigned   events.Action = "assigned"
	actUnassign   events.Action = "unassigned"
	actPending    events.Action = "pending"
	actRolledBack events.Action = "rolledback"

	actStarting    events.Action = "starting"
	actRunning     events.Action = "running"
	actExited      events.Action = "exited"
	actRestarting  events.Action = "restarting"
	actFailed      events.Action = "failed"
	actUnavailable events.Action = "unavailable"

	typeImage   events.Type   = "image"
	actImported events.Action = "imported"
	actPulled   events.Action = "pulled"

	typeNode      events.Type   = "node"
	actEligible   events.Action = "eligible"
	actIneligible events.Action = "ineligible"
	actMinority   events.Action = "minority"
	actMajority   events.Action = "majority"
)

// DefaultResyncInterval is how often the reconcile loop runs without being
// woken, as a safety net for missed wake-ups.
const DefaultResyncInterval = 5 * time.Second

// reconciler turns the replicated state into this node's claims and
// reports what changed. Its fields are owned by the loop goroutine.
type reconciler struct {
	a *Agent

	primed     bool
	rejoined   bool      // heard from another member since start
	resumeAt   time.Time // the rolling-update resume already scheduled
	inMinority bool
	budget     claimBudget       // new claims while a mass failure is recent
	services   map[string]string // name → version, as last reported
	tasks      map[string]string // task key → node, as last reported
	pending    map[string]string // task key → reason, as last reported
	secrets    map[string]bool   // secret names, as last reported → the record decodes
}

// clusterView is the cluster's state read from one store snapshot, with
// the placement every node computes from it.
type clusterView struct {
	clock     uint64
	services  map[string]serviceState
	tasks     []taskRecord
	placement map[placeSlot]placeResult
	// secrets are the secrets table's entries, undecoded: a pass needs
	// only their names, and the records carry sealed values up to 64 KiB.
	secrets []gossip.Entry
}

// readCluster takes a snapshot of the store and computes placement.
func (a *Agent) readCluster() clusterView {
	snap := a.node.Store().Snapshot()
	svcs := a.specs.services(snap.Tables[tableServices])
	tasks := decodeTasks(snap.Tables[tableTasks])
	return clusterView{
		clock:     snap.Clock,
		services:  svcs,
		tasks:     tasks,
		placement: place(placementInput(a.node.Members(), svcs, tasks)),
		secrets:   snap.Tables[tableSecrets],
	}
}

// wake asks the reconcile loop for a pass without blocking.
func (a *Agent) wake() {
	select {
	case a.wakeCh <- struct{}{}:
	default:
	}
}

func (a *Agent) reconcileLoop(ctx context.Context) error {
	tick := time.NewTicker(a.cfg.ResyncInterval)
	defer tick.Stop()
	store := a.node.Store()
	// Wait until the node gossips: before that there is no cluster to
	// reconcile with and every write would be a claim nobody can see.
	select {
	case <-ctx.Done():
		return nil
	case <-a.node.Ready():
	}
	a.mu.Lock()
	a.loopCtx = ctx
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		a.loopCtx = nil
		a.mu.Unlock()
		a.removals.Wait() // they end with ctx
	}()
	var healthChanged <-chan struct{} // nil: never ready
	if a.hc != nil {
		healthChanged = a.hc.mon.Changed()
	}
	for {
		start := time.Now()
		err := a.rec.once(ctx)
		a.metrics.reconcile.observe(time.Since(start).Seconds())
		if err != nil {
			a.log.Warn("reconcile pass incomplete", "err", err) // the next pass retries
		}
		select {
		case <-ctx.Done():
			return nil
		case <-store.Changed():
		case <-a.wakeCh:
		case <-healthChanged:
		case <-tick.C:
		}
	}
}

// once runs one reconcile pass: compute placement from a snapshot, make
// this node's claims match it, report changes.
func (r *reconciler) once(ctx context.Context) error {
	a := r.a
	store := a.node.Store()
	a.syncJoinSecret()
	cv := a.readCluster()
	svcs, tasks, res := cv.services, cv.tasks, cv.placement

	self := a.cfg.Name
	mine := map[string]taskRecord{}
	for _, t := range tasks {
		if t.Node == self {
			mine[taskKey(t.Service, t.Slot)] = t
		}
	}
	// Report what changed in the cluster's state before acting on it, so
	// a slot's "assigned" precedes what its node then reports of it.
	r.report(svcs, tasks, res)
	r.reportSecrets(cv.secrets)
	held, resume := rollingHolds(svcs, tasks, res, time.Now())
	if !resume.IsZero() && !resume.Equal(r.resumeAt) {
		// One timer per resume time, not one per pass while it waits.
		r.resumeAt = resume
		a.wakeAt(resume)
	}
	// No new claims in a minority, nor while membership is still settling
	// after a loss: when a node is cut off, it sees its peers fail one by
	// one, and between the first and the last it would still count as a
	// majority and take over slots.
	// Nor before this node's first store sync with a peer: a restarted
	// node does not have the others' claims yet (nobody keeps another
	// node's owned entries across a restart), would see their slots as
	// free, and its newer claims would win over healthy replicas.
	unsynced := !a.node.Synced() && hasOrchPeer(a.node.Members(), a.cfg.Name)
	minority := r.minority() || a.settling() || unsynced
	now := time.Now()
	damping := a.damping(now)
	deferred := 0
	defer func() {
		if deferred > 0 {
			a.log.Info("mass failure: new claims paced", "deferred", deferred, "rate_per_s", dampRate)
			a.wakeAt(now.Add(time.Duration(float64(time.Second) / dampRate)))
		}
	}()
	if !damping {
		r.budget = claimBudget{} // a full bucket for the next mass failure
	}
	var errs []error
	want := map[string]runtime.ReplicaSpec{}
	policies := map[string]spec.RestartPolicy{}
	hold := map[string]bool{}
	startFirst := map[string]bool{}
	for slot, pr := range res {
		if pr.Node != self {
			continue
		}
		key := taskKey(slot.Service, slot.Slot)
		if _, claimed := mine[key]; !claimed {
			if minority {
				// Probably the one cut off: keep running what it holds,
				// take over nobody else's slots.
				continue
			}
			if damping && !r.budget.take(now) {
				deferred++
				continue
			}
		}
		st := svcs[slot.Service]
		want[key] = replicaSpec(a.id.ID, st.Spec, slot.Slot, st.Version)
		policies[key] = st.Spec.RestartPolicy
		if st.Spec.Update.Order == spec.OrderStartFirst {
			startFirst[key] = true
		}
		hold[key] = held[slot] && mine[key].SpecVersion != "" && mine[key].SpecVersion != st.Version
	}
	var runs map[string]slotRun
	if a.rt != nil {
		var err error
		if runs, err = a.syncWorkloads(ctx, want, hold, startFirst, policies); err != nil {
			errs = append(errs, err)
		}
	}
	type pending struct {
		rec, cur taskRecord
		had      bool
	}
	recs := make(map[string]pending, len(want))
	var checked []checkedReplica
	for key, rs := range want {
		cur, ok := mine[key]
		delete(mine, key)
		rec := taskRecord{Service: rs.Service, Slot: rs.Slot, Node: self, SpecVersion: rs.SpecVersion, State: taskAssigned, Since: cur.Since}
		if a.rt != nil {
			run, ran := runs[key]
			if !ran {
				// The runtime could not be asked (containerd down): keep
				// what the record said, so a blip does not flap the state.
				if ok {
					continue
				}
				run = slotRun{State: taskStarting, SpecVersion: rs.SpecVersion}
			}
			rec.State, rec.Message, rec.Restarts, rec.SpecVersion, rec.Addr = run.State, run.Message, run.Restarts, run.SpecVersion, run.Addr
			rec.RunningSince = cur.RunningSince
			if rec.State == taskRunning && (cur.State != taskRunning || cur.SpecVersion != rec.SpecVersion || cur.RunningSince == 0) {
				rec.RunningSince = time.Now().UnixMilli()
			}
			if rec.State != taskRunning {
				rec.RunningSince = 0
			}
			// Health checks run on replicas of the current version (a kept
			// old one is about to be replaced).
			if addr, err := netip.ParseAddr(run.Addr); a.hc != nil && rec.State == taskRunning && run.ReplicaID == rs.ID() && (err == nil || a.net == nil) {
				checked = append(checked, checkedReplica{task: taskSubject(key), replicaID: run.ReplicaID, addr: addr,
					started: time.UnixMilli(rec.RunningSince), spec: svcs[rs.Service].Spec})
			}
		}
		if !ok {
			// The store stamps the write at clock+1; recording it in the
			// value keeps the claim's age stable across later updates.
			rec.Since = cv.clock + 1
		}
		recs[key] = pending{rec: rec, cur: cur, had: ok}
	}
	var healthOf map[string]string
	if a.hc != nil {
		healthOf = a.hc.set(ctx, checked)
	}
	for key, p := range recs {
		rec, cur, ok := p.rec, p.cur, p.had
		rec.Health = healthOf[taskSubject(key)]
		if ok && rec == cur {
			continue
		}
		if ok && rec.State != cur.State {
			r.reportState(key, rec)
		}
		if err := putJSON(store, key, rec); err != nil {
			errs = append(errs, err)
		}
	}
	r.rollbackFailed(svcs, runs, want)
	// What is left in mine is no longer placed here.
	for key := range mine {
		if _, err := store.DeleteOwned(tableTasks, key); err != nil && !errors.Is(err, gossip.ErrNotFound) {
			errs = append(errs, err)
		}
	}

	return errors.Join(errs...)
}

// takeoverDelay is how long after a member failed or left this node makes
// no new claims: it covers the spread between the failure reports of
// several members lost together, so placement settles once instead of
// moving slots twice. It used to protect the minority guard too (a node
// cut off sees its peers declared failed one by one); counting suspected
// members as lost does that now (see minority), so a second is enough.
func (a *Agent) takeoverDelay() time.Duration { return time.Second }

// settling reports whether a member was lost less than takeoverDelay ago.
func (a *Agent) settling() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return !a.lastLoss.IsZero() && time.Since(a.lastLoss) < a.takeoverDelay()
}

// Mass-failure damping, the idea behind Kubernetes' unhealthy-zone
// threshold: when several members are lost at once (a rack, a switch, a
// zone), the survivors take their slots over at a bounded rate rather
// than all at once, so a misjudged mass failure (the survivors are the
// ones cut off) moves little, and the survivors are not swamped.
const (
	// massFailureCount members lost within massFailureWindow is a mass
	// failure.
	massFailureCount  = 2
	massFailureWindow = 30 * time.Second
	// dampRate new claims per second per node, in bursts of dampBurst,
	// while a mass failure is recent.
	dampRate  = 2.0
	dampBurst = 4
)

// damping reports whether a mass failure is recent, forgetting old losses.
func (a *Agent) damping(now time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	kept := a.losses[:0]
	for _, t := range a.losses {
		if now.Sub(t) < massFailureWindow {
			kept = append(kept, t)
		}
	}
	a.losses = kept
	return len(kept) >= massFailureCount
}

// claimBudget is a token bucket of new claims. Owned by the reconcile
// loop.
type claimBudget struct {
	tokens float64
	last   time.Time
}

// take reports whether one more new claim may be made at now.
func (b *claimBudget) take(now time.Time) bool {
	if b.last.IsZero() {
		b.tokens = dampBurst
	} else {
		b.tokens = min(dampBurst, b.tokens+now.Sub(b.last).Seconds()*dampRate)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// minority reports whether this node sees fewer than half of the orch
// members it knows of (alive, suspected or failed; members that left do
// not count) alive and unsuspected.
// A node that restarted counts the peers it remembers until it has heard
// from one of them, so a node coming back alone does not claim every slot
// before it has rejoined. Changes are logged and published once.
func (r *reconciler) minority() bool {
	a := r.a
	alive, known := 0, 0
	for _, m := range a.node.Members() {
		if !m.Orch {
			continue
		}
		switch {
		case m.Status == gossip.StatusAlive && m.Suspect && m.Name != a.cfg.Name:
			// A suspected member counts as lost: a node cut off
			// suspects every peer long before it declares the first
			// failed (without peers to confirm, its suspicions run
			// their longest), and the declarations can then be many
			// seconds apart, longer than takeoverDelay.
			known++
		case m.Status == gossip.StatusAlive:
			alive++
			known++
		case m.Status == gossip.StatusFailed, m.Status == gossip.StatusLeaving:
			known++
		}
	}
	if alive > 1 {
		r.rejoined = true
	}
	if !r.rejoined {
		known = max(known, 1+a.node.RememberedPeers())
	}
	m := 2*alive < known
	if m != r.inMinority {
		r.inMinority = m
		act := actMajority
		if m {
			act = actMinority
			a.log.Warn("in a minority: keeping this node's replicas, taking over none", "alive", alive, "known", known)
		} else {
			a.log.Info("back in a majority", "alive", alive, "known", known)
		}
		a.bus.Publish(typeNode, act, a.cfg.Name, map[string]string{"alive": strconv.Itoa(alive), "known": strconv.Itoa(known)})
	}
	return m
}

// rollbackFailed puts back the previous spec of a service whose update
// failed on a slot this node holds, when the service asks for
// update.failureAction rollback. The previous spec is then forgotten, so a
// rollback never bounces back and forth. Several nodes may roll back at
// once; they write the same spec, and the store keeps one.
func (r *reconciler) rollbackFailed(svcs map[string]serviceState, runs map[string]slotRun, want map[string]runtime.ReplicaSpec) {
	a := r.a
	store := a.node.Store()
	done := map[string]bool{}
	for key, run := range runs {
		rs := want[key]
		st, ok := svcs[rs.Service]
		if !ok || done[rs.Service] || st.Spec.Update.FailureAction != spec.FailureRollback || run.SpecVersion != st.Version {
			continue
		}
		if run.State != taskFailed && run.State != taskUnavailable && run.State != taskExited {
			continue
		}
		prev, ok := store.Get(tablePrevious, rs.Service)
		if !ok {
			continue
		}
		done[rs.Service] = true
		a.svcWrite.Lock()
		cur, ok := store.Get(tableServices, rs.Service)
		if ok && versionString(cur.Version) == st.Version {
			if _, err := store.Put(tableServices, rs.Service, prev.Value); err != nil {
				a.log.Error("roll back", "service", rs.Service, "err", err)
			} else {
				store.Delete(tablePrevious, rs.Service)
				a.log.Warn("update failed; rolled back to the previous spec", "service", rs.Service, "failed_version", st.Version, "reason", run.Message)
				a.bus.Publish(typeService, actRolledBack, rs.Service, map[string]string{"failed_version": st.Version, "reason": run.Message})
			}
		}
		a.svcWrite.Unlock()
	}
}

// reportState publishes a slot's state change on this node.
func (r *reconciler) reportState(key string, rec taskRecord) {
	var act events.Action
	switch rec.State {
	case taskRunning:
		act = actRunning
	case taskExited:
		act = actExited
	default:
		return // starting, restarting, failed, unavailable: published where they happen
	}
	r.a.bus.Publish(typeTask, act, taskSubject(key), map[string]string{"version": rec.SpecVersion, "restarts": strconv.Itoa(rec.Restarts), "message": rec.Message})
}

// rollingHolds decides, for every service being updated, which slots must
// keep their old version for now: a rolling update lets only the first
// `parallelism` slots (by slot number) that are not yet running the
// current version change at once, and none until `delay` has passed since
// the last slot came up on the new version. A slot that failed to start
// the new version holds the rollout (failureAction pause), unless the
// service says continue. Every node computes the same answer from the
// replicated task records, so the rollout is paced cluster-wide without a
// leader. It also returns when a held rollout may move on (zero if none
// waits for a delay).
func rollingHolds(svcs map[string]serviceState, tasks []taskRecord, res map[placeSlot]placeResult, now time.Time) (map[placeSlot]bool, time.Time) {
	recs := map[placeSlot]taskRecord{}
	for _, t := range tasks {
		if pr, ok := res[placeSlot{t.Service, t.Slot}]; ok && pr.Node == t.Node {
			recs[placeSlot{t.Service, t.Slot}] = t
		}
	}
	out := map[placeSlot]bool{}
	var next time.Time
	for name, st := range svcs {
		p := spec.DefaultUpdateParallelism
		if st.Spec.Update.Parallelism != nil {
			p = *st.Spec.Update.Parallelism
		}
		if p <= 0 {
			continue // all at once
		}
		cont := st.Spec.Update.FailureAction == spec.FailureContinue
		n := replicasOf(st.Spec)
		var lastUp int64
		var waiting []placeSlot
		for slot := range n {
			ps := placeSlot{name, slot}
			rec, ok := recs[ps]
			current := ok && rec.SpecVersion == st.Version
			done := current && (rec.State == taskRunning || rec.State == taskAssigned)
			if current && cont && (rec.State == taskFailed || rec.State == taskUnavailable || rec.State == taskExited) {
				done = true
			}
			if done {
				lastUp = max(lastUp, rec.RunningSince)
				continue
			}
			waiting = append(waiting, ps)
		}
		allowed := p
		if d := st.Spec.Update.Delay.Std(); d > 0 && lastUp > 0 {
			if at := time.UnixMilli(lastUp).Add(d); now.Before(at) {
				allowed = 0
				if next.IsZero() || at.Before(next) {
					next = at
				}
			}
		}
		for i, ps := range waiting {
			// Slots already moving (on the new version, not up yet) use
			// the allowance first, so a delay never holds one mid-way.
			if i >= allowed {
				if rec, ok := recs[ps]; ok && rec.SpecVersion == st.Version {
					continue
				}
				out[ps] = true
			}
		}
	}
	return out, next
}

func putJSON(store *gossip.Store, key string, rec taskRecord) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	_, err = store.PutOwned(tableTasks, key, b)
	return err
}

// report publishes what changed since the previous pass. The first pass
// only primes the comparison: a restarted agent does not re-announce the
// whole cluster.
func (r *reconciler) report(svcs map[string]serviceState, tasks []taskRecord, res map[placeSlot]placeResult) {
	bus := r.a.bus
	services := make(map[string]string, len(svcs))
	for name, st := range svcs {
		services[name] = st.Version
	}
	taskNodes := map[string]string{}
	for _, t := range tasks {
		// With duplicate claims, report the one placement keeps.
		key := taskKey(t.Service, t.Slot)
		if pr, ok := res[placeSlot{t.Service, t.Slot}]; ok && pr.Node == t.Node {
			taskNodes[key] = t.Node
		} else if _, seen := taskNodes[key]; !seen {
			taskNodes[key] = t.Node
		}
	}
	pending := map[string]string{}
	for slot, pr := range res {
		if pr.Node == "" {
			pending[taskKey(slot.Service, slot.Slot)] = pr.Pending
		}
	}
	if r.primed {
		for name, v := range services {
			old, ok := r.services[name]
			switch {
			case !ok:
				bus.Publish(typeService, actCreated, name, map[string]string{"version": v, "replicas": strconv.Itoa(replicasOf(svcs[name].Spec))})
			case old != v:
				bus.Publish(typeService, actUpdated, name, map[string]string{"version": v, "replicas": strconv.Itoa(replicasOf(svcs[name].Spec))})
			}
		}
		for name, v := range r.services {
			if _, ok := services[name]; !ok {
				bus.Publish(typeService, actRemoved, name, map[string]string{"version": v})
			}
		}
		for key, node := range taskNodes {
			if r.tasks[key] != node {
				bus.Publish(typeTask, actAssigned, taskSubject(key), map[string]string{"node": node})
			}
		}
		for key, node := range r.tasks {
			if _, ok := taskNodes[key]; !ok {
				bus.Publish(typeTask, actUnassign, taskSubject(key), map[string]string{"node": node})
			}
		}
		for key, reason := range pending {
			if r.pending[key] != reason {
				bus.Publish(typeTask, actPending, taskSubject(key), map[string]string{"reason": reason})
			}
		}
	}
	r.primed = true
	r.services, r.tasks, r.pending = services, taskNodes, pending
}

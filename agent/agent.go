package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/orchproject/orch/agent/api"
	"github.com/orchproject/orch/agent/events"
	"github.com/orchproject/orch/agent/runtime"
	"github.com/orchproject/orch/gossip"
)

// leaveTimeout bounds a graceful leave; serf itself gives up after its
// broadcast timeout (5 s) plus the propagation delay (1 s).
const leaveTimeout = 10 * time.Second

// Tag keys the agent adds to its gossip tags.
const (
	tagCreated     = "created" // unix seconds when the data dir was created
	tagLabelPrefix = "l."      // one tag per node label
	tagIneligible  = "inelig"  // present while the node takes no work; the value says why
)

// Agent is one orch node: gossip membership, the event bus and the local
// API, composed. New starts nothing; Run serves until its context ends or
// the node leaves the cluster.
type Agent struct {
	cfg  Config
	log  *slog.Logger
	id   identity
	node *gossip.Node
	bus  *events.Bus
	api  *api.Server

	rec    *reconciler
	wakeCh chan struct{} // capacity 1: a pending wake-up is enough

	// rt runs the slots this node holds; nil with --containerd none, when
	// claims are only recorded.
	rt workloads
	// hc runs the containers' health checks; nil without a runtime.
	hc *health
	// metrics are the agent's own measurements; metricsLn is the
	// endpoint's listener, nil when it is off.
	metrics   *metrics
	metricsLn net.Listener
	// net is the overlay; nil when Config.Overlay is off.
	net *overlay
	// dns answers for the cluster; nil when both the overlay and the host
	// listener are off.
	dns      *discovery
	retry    retryBook      // start failures; owned by the reconcile loop
	removals sync.WaitGroup // replicas being removed in the background

	// svcWrite serializes the API's service writes, each a read of the
	// store, a check (exists? base version?) and a write, so that two
	// requests to this agent cannot both pass the check (services.go).
	svcWrite sync.Mutex
	// specs caches decoded service specs for the reconcile loop, DNS and
	// the API (state.go).
	specs specCache

	mu          sync.Mutex
	stopRun     context.CancelFunc // ends Run after a leave; nil outside Run
	leaving     bool
	inelig      string          // why this node takes no work ("" = it does): failed self-checks
	removing    map[string]bool // replica IDs being removed
	lastLoss    time.Time       // when a member last failed or left
	losses      []time.Time     // recent member losses, for mass-failure damping
	loopCtx     context.Context // the reconcile loop's; nil outside it
	handlers    *handlerRunner  // the event handlers; set by Run (handlers.go)
	runReady    chan struct{}
	metricsAddr netip.AddrPort // MetricsAddr
}

// New validates cfg, creates the data dir and the node's identity, and
// wires the components. It starts nothing.
func New(cfg Config) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("agent config: %w", err)
	}
	// The remote API's files first: a mistake in them is the likeliest
	// reason for a new setting to fail, and nothing is allocated yet.
	var apiTLS *tls.Config
	if cfg.APITLSAddr != "" {
		var err error
		if apiTLS, err = api.ServerTLS(cfg.APITLSCert, cfg.APITLSKey, cfg.APITLSClientCA); err != nil {
			return nil, fmt.Errorf("api tls: %w", err)
		}
	}
	lg := cfg.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	id, err := loadIdentity(cfg.DataDir, cfg.Name)
	if err != nil {
		return nil, err
	}
	if cfg.ResyncInterval <= 0 {
		cfg.ResyncInterval = DefaultResyncInterval
	}
	if cfg.VNI == 0 {
		cfg.VNI = DefaultVNI
	}
	if cfg.Domain == "" {
		cfg.Domain = DefaultDomain
	}
	a := &Agent{cfg: cfg, log: lg, id: id, runReady: make(chan struct{}), wakeCh: make(chan struct{}, 1)}
	a.rec = &reconciler{a: a}
	a.metrics = newMetrics()
	if cfg.Containerd != "" && cfg.Containerd != ContainerdNone {
		rt, err := runtime.New(runtime.Config{
			Address:            cfg.Containerd,
			StateDir:           runtimeStateDir(cfg),
			InsecureRegistries: cfg.InsecureRegistries,
			AuthFile:           cfg.RegistryAuth,
			Logger:             lg,
		})
		if err != nil {
			return nil, err
		}
		a.rt = rt
		if a.hc, err = newHealth(a); err != nil {
			return nil, err
		}
		// Until the first check, assume containerd answers: a node that
		// starts with containerd down turns ineligible within seconds.
	}

	bus, err := events.New(events.Config{Node: cfg.Name, Logger: lg})
	if err != nil {
		return nil, err
	}
	a.bus = bus
	if cfg.Overlay.IsValid() || cfg.DNS.IsValid() {
		if a.dns, err = newDiscovery(a); err != nil {
			return nil, err
		}
	}
	if cfg.Overlay.IsValid() {
		a.net = newOverlay(a)
		// A saved or pinned subnet goes into the first tags gossip sends.
		if _, err := a.net.loadClaim(); err != nil {
			return nil, err
		}
	}

	gc := gossip.DefaultConfig()
	gc.Name = cfg.Name
	gc.ID = id.ID
	gc.Bind = cfg.Bind
	gc.Advertise = cfg.Advertise
	gc.DataDir = cfg.DataDir
	gc.Profile = gossip.Profile(cfg.Profile)
	gc.Join = cfg.Join
	gc.Tags = a.tags()
	gc.OnEvent = a.onMemberEvent
	gc.Logger = lg
	if cfg.Token != "" {
		tok, err := gossip.ParseToken(cfg.Token)
		if err != nil {
			return nil, fmt.Errorf("token: %w", err)
		}
		gc.Token = &tok
	}
	if a.node, err = gossip.New(gc); err != nil {
		return nil, err
	}
	if cfg.Metrics.IsValid() {
		if a.metricsLn, err = listenMetrics(cfg.Metrics); err != nil {
			return nil, err
		}
		a.metricsAddr = netip.MustParseAddrPort(a.metricsLn.Addr().String())
	}
	gid := -1
	if cfg.SocketGroup != "" {
		if gid, err = lookupGroup(cfg.SocketGroup); err != nil {
			return nil, err
		}
	}
	if a.api, err = api.NewServer(api.ServerConfig{Socket: cfg.Socket, Group: gid, TLSAddr: cfg.APITLSAddr, TLS: apiTLS, Backend: backend{a}, Audit: a.audit, Logger: lg}); err != nil {
		return nil, err
	}
	return a, nil
}

// tags are the gossip tags this agent publishes besides the reserved ones.
func (a *Agent) tags() map[string]string {
	t := map[string]string{tagCreated: strconv.FormatInt(a.id.Created.Unix(), 10)}
	a.mu.Lock()
	if a.inelig != "" {
		t[tagIneligible] = a.inelig
	}
	a.mu.Unlock()
	for k, v := range a.cfg.Labels {
		t[tagLabelPrefix+k] = v
	}
	if a.net != nil {
		if sn := a.net.tag(); sn != "" {
			t[tagSubnet] = sn
		}
	}
	return t
}

// Ready is closed once the agent is a cluster member and its API serves.
func (a *Agent) Ready() <-chan struct{} { return a.runReady }

// Run serves until ctx ends or the node has left the cluster. Shutdown
// order: the API stops accepting requests first, then gossip stops (without
// leaving: a stopped agent is a failed member until it returns), then the
// event bus closes. It returns nil on cancellation.
func (a *Agent) Run(ctx context.Context) error {
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	a.mu.Lock()
	a.stopRun = stop
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		a.stopRun = nil
		a.mu.Unlock()
	}()
	// Event handlers subscribe before anything publishes; they stop just
	// before the bus closes.
	handlers, herr := a.startHandlers()
	if herr != nil {
		return herr
	}

	gossipCtx, stopGossip := context.WithCancel(context.Background())
	defer stopGossip()
	g, gctx := errgroup.WithContext(ctx)
	apiDone := make(chan struct{})
	g.Go(func() error {
		defer close(apiDone)
		return a.api.Run(gctx)
	})
	g.Go(func() error {
		if err := a.node.Run(gossipCtx); err != nil {
			return fmt.Errorf("gossip: %w", err)
		}
		return nil
	})
	if a.rt != nil {
		g.Go(func() error { return a.runtimeLoop(gctx) })
	}
	if a.net != nil {
		g.Go(func() error { return a.net.run(gctx) })
	}
	if a.dns != nil {
		g.Go(func() error { return a.dns.run(gctx) })
	}
	if a.metricsLn != nil {
		g.Go(func() error { return a.serveMetrics(gctx, a.metricsLn) })
	}
	recDone := make(chan struct{})
	g.Go(func() error {
		defer close(recDone)
		return a.reconcileLoop(gctx)
	})
	g.Go(func() error {
		<-gctx.Done()
		<-apiDone
		<-recDone
		stopGossip()
		return nil
	})
	g.Go(func() error {
		for _, ch := range []<-chan struct{}{a.node.Ready(), a.api.Ready()} {
			select {
			case <-ch:
			case <-gctx.Done():
				return nil
			}
		}
		close(a.runReady)
		attrs := []any{"node", a.cfg.Name, "id", a.id.ID, "gossip", a.node.Addr().String(), "socket", a.cfg.Socket}
		if ta := a.api.TLSAddr(); ta != nil {
			attrs = append(attrs, "api_tls_addr", ta.String())
		}
		a.log.Info("agent ready", attrs...)
		return nil
	})
	err := g.Wait()
	if a.hc != nil {
		a.hc.close()
	}
	a.mu.Lock()
	left := a.leaving
	a.mu.Unlock()
	if left {
		a.afterLeave()
	}
	handlers.stop()
	if cerr := a.bus.Close(); cerr != nil {
		a.log.Warn("close event bus", "err", cerr)
	}
	return err
}

// Leave leaves the cluster gracefully and then ends Run.
func (a *Agent) Leave(ctx context.Context) error {
	a.mu.Lock()
	if a.leaving {
		a.mu.Unlock()
		return errors.New("already leaving")
	}
	a.leaving = true
	a.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, leaveTimeout)
	defer cancel()
	err := a.node.Leave(ctx)
	if err != nil {
		a.mu.Lock()
		a.leaving = false
		a.mu.Unlock()
		return err
	}
	a.log.Info("left the cluster", "node", a.cfg.Name)
	return nil
}

// runtimeStateDir is the runtime's state under the data dir.
func runtimeStateDir(cfg Config) string { return filepath.Join(cfg.DataDir, "runtime") }

// afterLeave removes what the node ran for the cluster it left: its
// replicas and the overlay devices. A node that stops without leaving
// keeps both, to adopt them when it returns.
func (a *Agent) afterLeave() {
	ctx, cancel := context.WithTimeout(context.Background(), runtime.DefaultStopGrace+runtimeTimeout)
	defer cancel()
	if a.rt != nil {
		reps, err := a.rt.Replicas(ctx)
		if err != nil {
			a.log.Warn("cannot list replicas to remove after leaving", "err", err)
		}
		var wg sync.WaitGroup
		for _, r := range reps {
			wg.Go(func() {
				if err := a.rt.RemoveReplica(ctx, r.ID, runtime.DefaultStopGrace); err != nil {
					a.log.Warn("remove replica after leaving", "replica", r.ID, "err", err)
				}
			})
		}
		wg.Wait()
		if err := runtime.CleanupSecrets(runtimeStateDir(a.cfg)); err != nil {
			a.log.Warn("unmount secrets after leaving", "err", err)
		}
	}
	if a.net != nil {
		if err := a.net.cleanup(); err != nil {
			a.log.Warn("remove overlay after leaving", "err", err)
		}
	}
}

// stopAfterLeave ends Run; called once the leave response is on its way.
func (a *Agent) stopAfterLeave() {
	a.mu.Lock()
	stop := a.stopRun
	a.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// onMemberEvent publishes one event per member. Called from gossip's event
// pump; Publish never blocks.
func (a *Agent) onMemberEvent(ev gossip.MemberEvent) {
	for _, m := range ev.Members {
		attrs := map[string]string{
			"address": m.Addr.String(),
			"status":  string(m.Status),
			"orch":    strconv.FormatBool(m.Orch),
		}
		if m.ID != "" {
			attrs["id"] = m.ID
		}
		a.bus.Publish(events.TypeMember, events.Action(ev.Action), m.Name, attrs)
		if ev.Action == gossip.ActionFailed || ev.Action == gossip.ActionLeave {
			now := time.Now()
			a.mu.Lock()
			a.lastLoss = now
			a.losses = append(a.losses, now)
			a.mu.Unlock()
			a.wakeAt(now.Add(a.takeoverDelay()))
		}
		a.wake() // membership changes placement
		if a.net != nil {
			a.net.wake() // and the overlay's peers
		}
		if a.dns != nil {
			a.dns.wake() // and which nodes' replicas are announced
		}
		a.log.Info("member "+string(ev.Action), "peer", m.Name, "addr", m.Addr.String(), "status", string(m.Status))
	}
}

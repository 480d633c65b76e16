package agent

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/orchproject/orch/dnsdisc"
	"github.com/orchproject/orch/gossip"
)

// DefaultDNS is the host's DNS listener: loopback, on Consul's DNS port,
// so it never fights the host's own resolver (systemd-resolved, dnsmasq)
// for port 53, and `dig @127.0.0.1 -p 8600` works as Consul users expect.
var DefaultDNS = netip.MustParseAddrPort("127.0.0.1:8600")

// dnsPort is where the node's DNS answers its replicas: the bridge
// gateway, the nameserver of every replica's resolv.conf.
const dnsPort = 53

// loopback may always have names forwarded: the host itself. setGateway
// adds the node's replica subnet. Nobody else: not an open resolver.
var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// dnsResync is a safety net for missed wake-ups; the records follow the
// store and the member list as soon as they change.
const dnsResync = 5 * time.Second

// discovery keeps the node's DNS server answering from the current state:
// a snapshot of the running replicas (with an address) and the alive nodes,
// rebuilt on every change of the store or the member list.
type discovery struct {
	a      *Agent
	srv    *dnsdisc.Server
	wakeCh chan struct{}

	mu      sync.Mutex
	gateway netip.AddrPort // the listener on the bridge; zero before it exists
}

func newDiscovery(a *Agent) (*discovery, error) {
	cfg := a.cfg
	ups := cfg.DNSUpstreams
	if ups == nil {
		var err error
		if ups, err = dnsdisc.UpstreamsFromResolvConf("/etc/resolv.conf"); err != nil {
			a.log.Warn("no upstream resolvers: names outside the cluster domain will be refused", "err", err)
		}
	}
	// Never forward to ourselves.
	ups = slices.DeleteFunc(ups, func(u string) bool {
		ap, err := netip.ParseAddrPort(u)
		return err == nil && ap == cfg.DNS
	})
	srv, err := dnsdisc.New(dnsdisc.Config{
		Domain:      cfg.Domain,
		TTL:         cfg.DNSTTL,
		Upstreams:   ups,
		ForwardFrom: loopback,
		Logger:      a.log,
	})
	if err != nil {
		return nil, err
	}
	return &discovery{a: a, srv: srv, wakeCh: make(chan struct{}, 1)}, nil
}

func (d *discovery) wake() {
	select {
	case d.wakeCh <- struct{}{}:
	default:
	}
}

// run listens on the host address and keeps the records current until ctx
// ends.
func (d *discovery) run(ctx context.Context) error {
	defer d.srv.Close()
	if d.a.cfg.DNS.IsValid() {
		if err := d.srv.Listen(d.a.cfg.DNS.String()); err != nil {
			return fmt.Errorf("dns: %w", err)
		}
	}
	select {
	case <-ctx.Done():
		return nil
	case <-d.a.node.Ready():
	}
	watch := d.a.node.Store().Watch()
	tick := time.NewTicker(dnsResync)
	defer tick.Stop()
	var skipped []string
	for {
		snap := d.snapshot()
		if sk := snap.Skipped(); len(sk) > 0 && !slices.Equal(sk, skipped) {
			d.a.log.Debug("dns records left out", "why", sk)
		}
		skipped = snap.Skipped()
		d.srv.Update(snap)
		select {
		case <-ctx.Done():
			return nil
		case <-watch:
		case <-d.wakeCh:
		case <-tick.C:
		}
	}
}

// setGateway makes the server listen on the bridge's gateway address
// (called by the overlay once the address exists) and forward for the
// replicas of subnet, and stop listening on a previous gateway.
func (d *discovery) setGateway(gw netip.Addr, subnet netip.Prefix) error {
	d.srv.SetForwardFrom(append(slices.Clone(loopback), subnet.Masked()))
	ap := netip.AddrPortFrom(gw, dnsPort)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.gateway == ap {
		return nil
	}
	if d.gateway.IsValid() {
		if err := d.srv.Unlisten(d.gateway.String()); err != nil {
			d.a.log.Warn("stop dns on the old gateway", "addr", d.gateway, "err", err)
		}
		d.gateway = netip.AddrPort{}
	}
	if err := d.srv.Listen(ap.String()); err != nil {
		return fmt.Errorf("dns on the gateway: %w", err)
	}
	d.gateway = ap
	return nil
}

// snapshot builds the records from the store and the member list: every
// replica that runs, is healthy (or has no check) and has an address, on
// a node that is alive.
func (d *discovery) snapshot() *dnsdisc.Snapshot {
	members := d.a.node.Members()
	alive := map[string]bool{}
	var nodes []dnsdisc.Node
	for _, m := range members {
		if !m.Orch || m.Status != gossip.StatusAlive {
			continue
		}
		alive[m.Name] = true
		nodes = append(nodes, dnsdisc.Node{Name: m.Name, Addr: m.Addr.Addr().Unmap()})
	}
	snap := d.a.node.Store().Snapshot()
	svcs := d.a.specs.services(snap.Tables[tableServices])
	byName := map[string]*dnsdisc.Service{}
	names := make([]string, 0, len(svcs))
	for name, st := range svcs {
		s := &dnsdisc.Service{Name: name}
		for _, c := range st.Spec.Containers {
			for _, p := range c.Ports {
				s.Ports = append(s.Ports, dnsdisc.Port{Name: p.Name, Proto: string(p.Protocol), Port: uint16(p.ContainerPort)})
			}
		}
		byName[name] = s
		names = append(names, name)
	}
	for _, t := range decodeTasks(snap.Tables[tableTasks]) {
		s := byName[t.Service]
		// Running, and healthy or unchecked: a starting or unhealthy
		// replica is not announced.
		if s == nil || t.State != taskRunning || (t.Health != "" && t.Health != healthHealthy) || !alive[t.Node] || t.Slot >= replicasOf(svcs[t.Service].Spec) {
			continue
		}
		addr, err := netip.ParseAddr(t.Addr)
		if err != nil {
			continue
		}
		s.Replicas = append(s.Replicas, dnsdisc.Replica{Slot: t.Slot, Addr: addr, Node: t.Node})
	}
	slices.Sort(names)
	out := make([]dnsdisc.Service, 0, len(names))
	for _, n := range names {
		out = append(out, *byName[n])
	}
	return dnsdisc.NewSnapshot(out, nodes)
}

// stats returns the DNS counters.
func (d *discovery) stats() dnsdisc.Stats { return d.srv.Stats() }

package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/orchproject/orch/agent/events"
	"github.com/orchproject/orch/agent/runtime"
	"github.com/orchproject/orch/gossip"
	"github.com/orchproject/orch/internal/atomicfile"
	"github.com/orchproject/orch/netplane"
)

// Network events.
const (
	typeNetwork       events.Type   = "network"
	actPeerAdded      events.Action = "peer-added"
	actPeerRemoved    events.Action = "peer-removed"
	actSubnetClaimed  events.Action = "subnet-claimed"
	actSubnetConflict events.Action = "subnet-conflict"
	actNetRepaired    events.Action = "repaired"
)

const (
	// netSyncInterval is how often the kernel's overlay state is checked
	// against the member list even when nothing changed: drift (a route
	// someone deleted, a device set down) is repaired within it.
	netSyncInterval = 10 * time.Second
	// claimWait bounds how long a node that joins waits to learn the
	// other members' subnets before it claims one.
	claimWait = 10 * time.Second

	networkFile  = "network.json"
	ipamFileName = "ipam.json"
)

// DefaultVNI is the overlay's VXLAN network identifier.
const DefaultVNI = netplane.DefaultVNI

// DefaultDomain is the DNS domain of services and nodes.
const DefaultDomain = "orch"

// overlay connects this node's replicas to every other node's: it claims
// the node's subnet, programs the kernel through netplane from the member
// list, and gives replicas their addresses.
type overlay struct {
	a      *Agent
	wakeCh chan struct{}

	mu    sync.Mutex
	claim subnetClaim // zero until claimed
	plane *netplane.Plane
	ipam  *ipam
	foes  map[string]string // node → subnet, conflicts already reported
	// ensureErr is the last Ensure's error: the node's overlay self-check.
	ensureErr error
	// programmed is the peer list of the last successful SetPeers.
	programmed map[string]netplane.Peer
	ready      chan struct{} // closed at the first claim
	readyOK    bool
}

// networkSettings is the node's saved claim.
type networkSettings struct {
	Overlay   netip.Prefix `json:"overlay"`
	Subnet    netip.Prefix `json:"subnet"`
	ClaimedAt int64        `json:"claimed_at"`
}

func newOverlay(a *Agent) *overlay {
	return &overlay{a: a, wakeCh: make(chan struct{}, 1), foes: map[string]string{}, programmed: map[string]netplane.Peer{}, ready: make(chan struct{})}
}

func (o *overlay) wake() {
	select {
	case o.wakeCh <- struct{}{}:
	default:
	}
}

// loadClaim takes the pinned subnet, or the one saved by an earlier run if
// it is still inside the overlay. It returns false when the node must
// choose one.
func (o *overlay) loadClaim() (bool, error) {
	cfg := o.a.cfg
	if cfg.Subnet.IsValid() {
		return true, o.setClaim(subnetClaim{Prefix: cfg.Subnet, At: 0}, false)
	}
	b, err := os.ReadFile(filepath.Join(cfg.DataDir, networkFile))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read network settings: %w", err)
	}
	var s networkSettings
	if err := json.Unmarshal(b, &s); err != nil {
		return false, fmt.Errorf("decode %s: %w", networkFile, err)
	}
	if s.Overlay != cfg.Overlay || !cfg.Overlay.Contains(s.Subnet.Addr()) || s.ClaimedAt <= 0 {
		o.a.log.Info("saved subnet does not fit the overlay; claiming a new one", "saved", s.Subnet, "overlay", cfg.Overlay)
		return false, nil
	}
	return true, o.setClaim(subnetClaim{Prefix: s.Subnet, At: s.ClaimedAt}, false)
}

// setClaim makes c this node's subnet: saved, published in gossip (when
// publish is set; at start the tags are given to gossip.New), and the
// plane and address book rebuilt for it.
func (o *overlay) setClaim(c subnetClaim, publish bool) error {
	cfg := o.a.cfg
	if c.At != 0 {
		b, _ := json.MarshalIndent(networkSettings{Overlay: cfg.Overlay, Subnet: c.Prefix, ClaimedAt: c.At}, "", "  ")
		if err := atomicfile.Write(filepath.Join(cfg.DataDir, networkFile), b, 0o600); err != nil {
			return fmt.Errorf("save network settings: %w", err)
		}
	}
	m, err := loadIPAM(filepath.Join(cfg.DataDir, ipamFileName), c.Prefix)
	if err != nil {
		return err
	}
	o.mu.Lock()
	o.claim, o.ipam = c, m
	if o.plane != nil {
		o.plane.Close()
		o.plane = nil // rebuilt for the new subnet by the next sync
	}
	if !o.readyOK {
		o.readyOK = true
		close(o.ready)
	}
	o.mu.Unlock()
	if publish {
		if err := o.a.node.SetTags(o.a.tags()); err != nil {
			return fmt.Errorf("publish subnet: %w", err)
		}
	}
	o.a.log.Info("subnet claimed", "subnet", c.Prefix, "pinned", c.At == 0)
	o.a.bus.Publish(typeNetwork, actSubnetClaimed, o.a.cfg.Name, map[string]string{"subnet": c.Prefix.String()})
	return nil
}

// tag is this node's subnet tag; empty before the first claim.
func (o *overlay) tag() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.claim.Prefix.IsValid() {
		return ""
	}
	return o.claim.tag()
}

// subnet returns the claimed subnet (invalid before the first claim).
func (o *overlay) subnet() netip.Prefix {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.claim.Prefix
}

// run claims a subnet if the node has none, then keeps the kernel in line
// with the member list: on every member change and every netSyncInterval.
func (o *overlay) run(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case <-o.a.node.Ready():
	}
	if o.subnet().IsValid() {
		// Publish it again: a claim loaded at start is in the tags, but a
		// node that lost its data dir's tags to a cluster switch is not.
		if err := o.a.node.SetTags(o.a.tags()); err != nil {
			o.a.log.Warn("publish subnet", "err", err)
		}
	} else {
		for {
			err := o.claimNew(ctx)
			if err == nil || o.subnet().IsValid() {
				break // claimed; a publish that failed is retried by sync
			}
			o.a.log.Error("cannot claim a subnet; retrying", "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(5 * time.Second):
			}
		}
	}
	o.a.wake() // replicas waiting for an address
	tick := time.NewTicker(netSyncInterval)
	defer tick.Stop()
	for {
		if err := o.sync(ctx); err != nil {
			o.a.log.Warn("overlay sync incomplete", "err", err) // the next one retries
		}
		select {
		case <-ctx.Done():
			return nil
		case <-o.wakeCh:
		case <-tick.C:
		}
	}
}

// claimNew claims a subnet no known member holds. A node that joins first
// waits (up to claimWait) to hear of another member, whose push-pull
// brings every member's tags, so it rarely picks a taken subnet; when it
// does, the conflict rule in sync moves it.
func (o *overlay) claimNew(ctx context.Context) error {
	if len(o.a.cfg.Join) > 0 || o.a.node.RememberedPeers() > 0 {
		deadline := time.Now().Add(claimWait)
		for time.Now().Before(deadline) && !hasOrchPeer(o.a.node.Members(), o.a.cfg.Name) {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	var taken []netip.Prefix
	for _, c := range memberClaims(o.a.node.Members(), o.a.cfg.Name) {
		taken = append(taken, c.Claim.Prefix)
	}
	p, err := chooseSubnet(o.a.cfg.Overlay, DefaultSubnetBits, o.a.cfg.Name, taken)
	if err != nil {
		return err
	}
	return o.setClaim(subnetClaim{Prefix: p, At: time.Now().UnixMilli()}, true)
}

func hasOrchPeer(members []gossip.Member, self string) bool {
	for _, m := range members {
		if m.Orch && m.Name != self && m.Status == gossip.StatusAlive {
			return true
		}
	}
	return false
}

// sync resolves subnet conflicts and makes the kernel match the member
// list: devices, peers' routes, neighbours and FDB entries, and the
// attachments of this node's replicas.
func (o *overlay) sync(ctx context.Context) error {
	a := o.a
	members := a.node.Members()
	if err := o.resolveConflict(members); err != nil {
		return err
	}
	var self netip.Addr
	for _, m := range members {
		if m.Name == a.cfg.Name {
			self = m.Addr.Addr().Unmap()
			if want := o.tag(); want != "" && m.Tags[tagSubnet] != want {
				// An earlier publish failed: try again.
				if err := a.node.SetTags(a.tags()); err != nil {
					a.log.Warn("publish subnet", "err", err)
				}
			}
		}
	}
	if !self.IsValid() {
		return errors.New("this node is not in its own member list yet")
	}
	// The runtime is asked outside the lock: containerd may be slow.
	var reps []runtime.Replica
	listed := false
	if a.rt != nil {
		lctx, cancel := context.WithTimeout(ctx, runtimeTimeout)
		var err error
		reps, err = a.rt.Replicas(lctx)
		cancel()
		listed = err == nil
	}

	o.mu.Lock()
	defer o.mu.Unlock()
	if o.plane != nil && o.plane.Underlay() != self {
		o.plane.Close()
		o.plane = nil
	}
	if o.plane == nil {
		p, err := netplane.New(o.planeConfig(self), a.log)
		if err != nil {
			return err
		}
		o.plane = p
	}
	var errs []error
	rep, err := o.plane.Ensure()
	o.ensureErr = err
	if err != nil {
		errs = append(errs, err)
	} else if a.dns != nil {
		// The gateway address exists now: replicas' DNS can listen on it.
		if err := a.dns.setGateway(o.plane.Gateway(), o.plane.Subnet()); err != nil {
			errs = append(errs, err)
		}
	}
	o.reportPlane(rep)
	var peers []netplane.Peer
	for _, p := range overlayPeers(members, a.cfg.Name) {
		peers = append(peers, netplane.Peer{Name: p.Name, Underlay: p.Addr, Subnet: p.Subnet, MAC: netplane.MACFromID(p.ID)})
	}
	rep, err = o.plane.SetPeers(peers)
	if err != nil {
		errs = append(errs, err)
	}
	if err == nil || errors.Is(err, netplane.ErrInvalidPeer) {
		// An invalid peer is left out and reported in err; the others
		// are programmed.
		o.reportPeers(peers)
	}
	o.reportPlane(rep)
	if listed {
		errs = append(errs, o.syncAttachments(reps))
	}
	return errors.Join(errs...)
}

// check is the overlay's self-check: the last sync could put the devices
// in place. Before the first sync it passes.
func (o *overlay) check() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.ensureErr
}

func (o *overlay) planeConfig(self netip.Addr) netplane.Config {
	return netplane.Config{
		VNI:      o.a.cfg.VNI,
		Underlay: self,
		Subnet:   o.claim.Prefix,
		MAC:      netplane.MACFromID(o.a.id.ID),
	}
}

// resolveConflict moves this node to a new subnet when a member's claim
// beats its own. A pinned node never moves; the conflict is reported.
func (o *overlay) resolveConflict(members []gossip.Member) error {
	a := o.a
	o.mu.Lock()
	mine := o.claim
	o.mu.Unlock()
	others := memberClaims(members, a.cfg.Name)
	foe, ok := conflictWith(a.cfg.Name, mine, others)
	if !ok {
		// A pinned claim that collides loses nothing but must be told.
		for _, c := range others {
			if c.Claim.Prefix.Overlaps(mine.Prefix) {
				o.reportConflict(c, mine, "this node's claim wins")
			}
		}
		return nil
	}
	if mine.At == 0 {
		o.reportConflict(foe, mine, "both subnets are pinned (--subnet); change one")
		return nil
	}
	o.reportConflict(foe, mine, "this node claims another subnet")
	var taken []netip.Prefix
	for _, c := range others {
		taken = append(taken, c.Claim.Prefix)
	}
	p, err := chooseSubnet(a.cfg.Overlay, DefaultSubnetBits, a.cfg.Name, taken)
	if err != nil {
		return err
	}
	return o.setClaim(subnetClaim{Prefix: p, At: time.Now().UnixMilli()}, true)
}

func (o *overlay) reportConflict(foe memberClaim, mine subnetClaim, outcome string) {
	o.mu.Lock()
	seen := o.foes[foe.Node] == foe.Claim.Prefix.String()+" "+mine.Prefix.String()
	o.foes[foe.Node] = foe.Claim.Prefix.String() + " " + mine.Prefix.String()
	o.mu.Unlock()
	if seen {
		return
	}
	o.a.log.Warn("subnet conflict", "subnet", mine.Prefix, "peer", foe.Node, "peer_subnet", foe.Claim.Prefix, "outcome", outcome)
	o.a.bus.Publish(typeNetwork, actSubnetConflict, o.a.cfg.Name, map[string]string{
		"subnet": mine.Prefix.String(), "peer": foe.Node, "peer_subnet": foe.Claim.Prefix.String(), "outcome": outcome,
	})
}

// reportPlane publishes what netplane had to repair (it logs every
// change itself). Called with o.mu held.
func (o *overlay) reportPlane(r netplane.Report) {
	if items := append(append([]string{}, r.Recreated...), r.Repaired...); len(items) > 0 {
		o.a.bus.Publish(typeNetwork, actNetRepaired, o.a.cfg.Name, map[string]string{"items": strings.Join(items, "; ")})
	}
}

// reportPeers publishes the peers that appeared in or left the overlay
// since the last successful SetPeers. Called with o.mu held.
func (o *overlay) reportPeers(peers []netplane.Peer) {
	now := make(map[string]netplane.Peer, len(peers))
	for _, p := range peers {
		now[p.Name] = p
	}
	attrs := func(p netplane.Peer) map[string]string {
		return map[string]string{"subnet": p.Subnet.String(), "address": p.Underlay.String()}
	}
	for name, p := range now {
		if old, ok := o.programmed[name]; !ok || old.Underlay != p.Underlay || old.Subnet != p.Subnet || !bytes.Equal(old.MAC, p.MAC) {
			o.a.bus.Publish(typeNetwork, actPeerAdded, name, attrs(p))
		}
	}
	for name, p := range o.programmed {
		if _, ok := now[name]; !ok {
			o.a.bus.Publish(typeNetwork, actPeerRemoved, name, attrs(p))
		}
	}
	o.programmed = now
}

// syncAttachments plugs in every local replica that has an address in the
// subnet (adopted after a restart, or unplugged by a recreated bridge) and
// removes the host ends of veths nobody holds. Called with o.mu held.
func (o *overlay) syncAttachments(reps []runtime.Replica) error {
	var errs []error
	keep := map[string]bool{}
	for _, r := range reps {
		keep[netplane.VethName(o.plane.VethPrefix(), r.ID)] = true
		if !r.Addr.IsValid() || !o.claim.Prefix.Contains(r.Addr.Addr()) || r.NetNS == "" {
			continue
		}
		if _, err := os.Stat(r.NetNS); err != nil {
			continue // being removed
		}
		if err := o.ipam.adopt(r.ID, r.Addr.Addr()); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := o.plane.Attach(r.NetNS, r.ID, r.Addr.Addr()); err != nil {
			errs = append(errs, fmt.Errorf("attach %s: %w", r.ID, err))
		}
	}
	names, err := o.plane.Attachments()
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	held := map[string]bool{}
	for _, id := range o.ipam.ids() {
		held[netplane.VethName(o.plane.VethPrefix(), id)] = true
	}
	for _, n := range names {
		// A replica being started holds an address before its containers
		// exist (and show in the listing): its veth is not an orphan.
		if !keep[n] && !held[n] {
			if err := o.plane.DetachName(n); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// replicaNetwork returns how replica rs is wired: its address and the
// attachment, /etc/hosts and /etc/resolv.conf. It fails until the node
// has a subnet.
func (o *overlay) replicaNetwork(rs runtime.ReplicaSpec) (*runtime.Network, error) {
	o.mu.Lock()
	m, gw := o.ipam, o.claim.Prefix
	o.mu.Unlock()
	if m == nil {
		return nil, errors.New("waiting for this node's overlay subnet")
	}
	id := rs.ID()
	addr, err := m.addr(id)
	if err != nil {
		return nil, err
	}
	gateway := gw.Masked().Addr().Next()
	host := fmt.Sprintf("%s-%d", rs.Service, rs.Slot)
	return &runtime.Network{
		Addr: addr,
		Setup: func(nsPath string) error {
			o.mu.Lock()
			defer o.mu.Unlock()
			if o.plane == nil {
				return errors.New("the overlay is not programmed yet")
			}
			if !o.claim.Prefix.Contains(addr.Addr()) {
				return fmt.Errorf("address %s is outside this node's subnet %s (it moved)", addr, o.claim.Prefix)
			}
			return o.plane.Attach(nsPath, id, addr.Addr())
		},
		Hosts: fmt.Appendf(nil, "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n%s\t%s\n", addr.Addr(), host),
		// The node's DNS answers on the gateway; the search domain makes
		// a bare service name resolve. ndots:3 tries the search domain
		// first for names of up to two dots, so the cluster's short forms
		// (web, 0.web, _http._tcp.web) resolve locally instead of going
		// upstream first; an outside name costs one extra local NXDOMAIN
		// (Kubernetes uses ndots:5 for the same reason).
		ResolvConf: fmt.Appendf(nil, "nameserver %s\nsearch svc.%s\noptions ndots:3\n", gateway, o.a.cfg.Domain),
	}, nil
}

// fits reports whether a replica's address belongs to the current subnet.
// Before the first claim everything fits: a restarting agent must not
// remove replicas because it has not read its subnet yet.
func (o *overlay) fits(addr netip.Prefix) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.claim.Prefix.IsValid() {
		return true
	}
	return addr.IsValid() && o.claim.Prefix.Contains(addr.Addr())
}

// release frees a removed replica's address.
func (o *overlay) release(id string) {
	o.mu.Lock()
	m := o.ipam
	o.mu.Unlock()
	if m == nil {
		return
	}
	if err := m.release(id); err != nil {
		o.a.log.Warn("free replica address", "replica", id, "err", err)
	}
}

// retain frees the addresses of replicas that are neither wanted nor
// present: a start that failed, or a replica removed while the agent was
// down.
func (o *overlay) retain(keep map[string]bool) {
	o.mu.Lock()
	m := o.ipam
	o.mu.Unlock()
	if m == nil {
		return
	}
	if err := m.retain(func(id string) bool { return keep[id] }); err != nil {
		o.a.log.Warn("free replica addresses", "err", err)
	}
}

// cleanup removes every device, route, neighbour and FDB entry orch made,
// and forgets the claim, for a node that left the cluster.
func (o *overlay) cleanup() error {
	o.mu.Lock()
	if o.plane != nil {
		o.plane.Close()
		o.plane = nil
	}
	o.mu.Unlock()
	errs := []error{removeOverlayDevices(o.a.cfg)}
	for _, f := range []string{networkFile, ipamFileName} {
		if err := os.Remove(filepath.Join(o.a.cfg.DataDir, f)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// CleanupHost removes what orch set up on this host outside its data:
// the overlay devices (the bridge, the VXLAN device and the host ends of
// replicas' veths; routes, neighbours and FDB entries go with them) and
// the secrets tmpfs. It is what `orch agent --cleanup` runs.
func CleanupHost(cfg Config) error {
	return errors.Join(removeOverlayDevices(cfg), runtime.CleanupSecrets(runtimeStateDir(cfg)))
}

func removeOverlayDevices(cfg Config) error {
	if err := netplane.Cleanup(netplane.Config{VNI: cfg.VNI}); err != nil {
		return fmt.Errorf("remove overlay devices: %w", err)
	}
	return nil
}

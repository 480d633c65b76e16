package netplane

// How a packet reaches a replica on another node (flannel's vxlan
// backend, with netip instead of v4/v6 twins). Say this node has subnet
// 10.213.5.0/24 and peer n2 has 10.213.6.0/24, VTEP MAC m2 and underlay
// address u2. This node holds, on the VXLAN device:
//
//	route 10.213.6.0/24 via 10.213.6.0 dev orchvx onlink
//	neigh 10.213.6.0 lladdr m2 dev orchvx permanent
//	fdb   m2 dev orchvx dst u2 self permanent
//
// A replica sends to 10.213.6.7 through its gateway, the bridge; the host
// routes it to orchvx with next hop 10.213.6.0 (onlink: no connected
// route is needed for it), looks up that address's MAC in the static
// neighbour table instead of sending ARP (there is no one to answer it),
// and the VXLAN driver looks up m2 in its FDB to find where to send the
// UDP packet. On n2 the frame's destination MAC is orchvx's own, so it is
// routed again, to its bridge and the replica. One route, one neighbour
// and one FDB entry per peer; no flooding, no learning.
//
// The entries are added in that order, FDB first, so no route ever points
// at a next hop the kernel cannot resolve, and removed in reverse. The
// desired set is compared with what the device holds (diffPeers), so a
// call that finds everything in place changes nothing.

import (
	"errors"
	"fmt"
	"net"
	"syscall"

	"github.com/vishvananda/netlink"
)

// SetPeers makes the VXLAN device's routes, neighbours and FDB entries
// exactly those of peers: missing and wrong entries are set, entries no
// peer needs are removed (everything on the device is orch's). Invalid
// peers are left out, with an error wrapping [ErrInvalidPeer], and the
// others programmed. Call [Plane.Ensure] first: SetPeers fails if the
// VXLAN device does not exist. peers is not retained.
func (p *Plane) SetPeers(peers []Peer) (Report, error) {
	if err := p.lock(); err != nil {
		return Report{}, err
	}
	defer p.mu.Unlock()
	want, verr := validPeers(p.cfg, peers)
	vx, err := linkByName(p.h, p.cfg.VXLAN)
	if err != nil {
		return Report{}, errors.Join(verr, err)
	}
	if vx == nil {
		return Report{}, errors.Join(verr, fmt.Errorf("vxlan device %s does not exist (Ensure creates it)", p.cfg.VXLAN))
	}
	idx := vx.Attrs().Index
	have, err := p.readEntries(idx)
	if err != nil {
		return Report{}, errors.Join(verr, err)
	}
	groups := diffPeers(want, have, p.applied)

	var (
		r      Report
		errs   = []error{verr}
		failed = map[string]bool{}
	)
	for _, g := range groups {
		done, err := p.applyGroup(idx, g)
		if err != nil {
			errs = append(errs, err)
			if g.peer != "" {
				failed[g.peer] = true
			}
		}
		switch {
		case err == nil && g.kind == groupAdd:
			r.PeersAdded = append(r.PeersAdded, g.label)
			p.log.Info("peer added", "peer", g.label)
		case err == nil && g.kind == groupRemove:
			r.PeersRemoved = append(r.PeersRemoved, g.label)
			p.log.Info("peer removed", "peer", g.label)
		default:
			for _, o := range done {
				s := g.label + ": " + o.String()
				r.Repaired = append(r.Repaired, s)
				p.log.Info("peer entry repaired", "peer", g.label, "change", o.String())
			}
		}
	}

	clear(p.applied)
	for _, peer := range want {
		if !failed[peer.Name] {
			p.applied[peer.Name] = peer
		}
	}
	return r, errors.Join(errs...)
}

// readEntries lists the device's IPv4 routes (main table), IPv4
// neighbours and FDB entries.
func (p *Plane) readEntries(idx int) (entries, error) {
	var e entries
	routes, err := dump("routes", func() ([]netlink.Route, error) {
		return p.h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{LinkIndex: idx}, netlink.RT_FILTER_OIF)
	})
	if err != nil {
		return e, err
	}
	for _, rt := range routes {
		dst, ok := prefixOf(rt.Dst)
		if !ok {
			dst = zeroRoute // netlink leaves Dst nil for a default route
		}
		gw, _ := addrOf(rt.Gw)
		e.routes = append(e.routes, routeEntry{Dst: dst, Gw: gw, Onlink: rt.Flags&int(netlink.FLAG_ONLINK) != 0, Priority: rt.Priority})
	}

	neighs, err := dump("neighbours", func() ([]netlink.Neigh, error) { return p.h.NeighList(idx, netlink.FAMILY_V4) })
	if err != nil {
		return e, err
	}
	for _, n := range neighs {
		if n.State&netlink.NUD_NOARP != 0 {
			continue // the kernel's own (multicast, broadcast), not a peer
		}
		ip, _ := addrOf(n.IP)
		e.neighs = append(e.neighs, neighEntry{IP: ip, MAC: macString(n.HardwareAddr), State: nudName(n.State)})
	}

	fdbs, err := dump("fdb entries", func() ([]netlink.Neigh, error) { return p.h.NeighList(idx, syscall.AF_BRIDGE) })
	if err != nil {
		return e, err
	}
	for _, f := range fdbs {
		dst, _ := addrOf(f.IP)
		e.fdbs = append(e.fdbs, fdbEntry{MAC: macString(f.HardwareAddr), Dst: dst, State: nudName(f.State)})
	}
	return e, nil
}

// applyGroup runs g's ops in order and stops at the first failure, which
// the next call retries. It returns the ops that succeeded.
func (p *Plane) applyGroup(idx int, g group) ([]op, error) {
	var done []op
	for _, o := range g.ops {
		if err := p.applyOp(idx, o); err != nil {
			return done, fmt.Errorf("peer %s: %s: %w", g.label, o, err)
		}
		p.log.Debug("peer entry", "peer", g.label, "op", o.String())
		done = append(done, o)
	}
	return done, nil
}

func (p *Plane) applyOp(idx int, o op) error {
	var err error
	switch o.kind {
	case setFDB:
		err = p.h.NeighSet(&netlink.Neigh{
			LinkIndex:    idx,
			Family:       syscall.AF_BRIDGE,
			Flags:        netlink.NTF_SELF,
			State:        netlink.NUD_PERMANENT,
			HardwareAddr: mustMAC(o.fdb.MAC),
			IP:           o.fdb.Dst.AsSlice(),
		})
	case setNeigh:
		err = p.h.NeighSet(&netlink.Neigh{
			LinkIndex:    idx,
			Family:       netlink.FAMILY_V4,
			State:        netlink.NUD_PERMANENT,
			Type:         syscall.RTN_UNICAST,
			IP:           o.neigh.IP.AsSlice(),
			HardwareAddr: mustMAC(o.neigh.MAC),
		})
	case setRoute:
		err = p.h.RouteReplace(&netlink.Route{
			LinkIndex: idx,
			Dst:       ipNet(o.route.Dst),
			Gw:        o.route.Gw.AsSlice(),
			Flags:     int(netlink.FLAG_ONLINK),
			Priority:  o.route.Priority,
			Protocol:  syscall.RTPROT_BOOT, // what `ip route add` uses
		})
	case delRoute:
		rt := &netlink.Route{LinkIndex: idx, Dst: ipNet(o.route.Dst), Priority: o.route.Priority}
		if o.route.Gw.IsValid() {
			rt.Gw = o.route.Gw.AsSlice()
		}
		err = p.h.RouteDel(rt)
	case delNeigh:
		err = p.h.NeighDel(&netlink.Neigh{LinkIndex: idx, Family: netlink.FAMILY_V4, IP: o.neigh.IP.AsSlice()})
	case delFDB:
		n := &netlink.Neigh{LinkIndex: idx, Family: syscall.AF_BRIDGE, Flags: netlink.NTF_SELF, HardwareAddr: mustMAC(o.fdb.MAC)}
		if o.fdb.Dst.IsValid() {
			n.IP = o.fdb.Dst.AsSlice()
		}
		err = p.h.NeighDel(n)
	}
	if o.kind >= delRoute && gone(err) {
		return nil // already gone: that is what was wanted
	}
	return err
}

func macString(mac net.HardwareAddr) string {
	if len(mac) == 0 {
		return ""
	}
	return mac.String()
}

// mustMAC parses a MAC that came from net.HardwareAddr.String; "" (an
// entry without an address) gives nil.
func mustMAC(s string) net.HardwareAddr {
	if s == "" {
		return nil
	}
	mac, err := net.ParseMAC(s)
	if err != nil {
		panic(fmt.Sprintf("netplane: MAC %q did not round-trip: %v", s, err))
	}
	return mac
}

// nudName names a neighbour state the way `ip neigh` does.
func nudName(state int) string {
	names := []struct {
		bit  int
		name string
	}{
		{netlink.NUD_PERMANENT, statePermanent},
		{netlink.NUD_NOARP, "noarp"},
		{netlink.NUD_REACHABLE, "reachable"},
		{netlink.NUD_STALE, "stale"},
		{netlink.NUD_DELAY, "delay"},
		{netlink.NUD_PROBE, "probe"},
		{netlink.NUD_FAILED, "failed"},
		{netlink.NUD_INCOMPLETE, "incomplete"},
	}
	for _, n := range names {
		if state&n.bit != 0 {
			return n.name
		}
	}
	return fmt.Sprintf("nud(%#x)", state)
}

package netplane

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
)

// ErrInvalidPeer marks a peer that [Plane.SetPeers] left out: a bad field,
// or a subnet, MAC or name that clashes with this node or another peer.
var ErrInvalidPeer = errors.New("invalid peer")

// Peer is another node as the overlay needs it.
type Peer struct {
	// Name identifies the peer in reports and logs (the node name).
	// Required and unique.
	Name string
	// Underlay is the peer's address between nodes, where its VXLAN
	// packets are sent. It must be of the same family as this node's.
	Underlay netip.Addr
	// Subnet is the peer's replica subnet (IPv4, masked).
	Subnet netip.Prefix
	// MAC is the peer's VXLAN device address ([MACFromID] of its node ID).
	MAC net.HardwareAddr
}

func (p Peer) String() string {
	return fmt.Sprintf("%s (%s via %s)", p.label(), p.Subnet, p.Underlay)
}

func (p Peer) label() string {
	if p.Name == "" {
		return p.Subnet.String()
	}
	return p.Name
}

func (p Peer) equal(q Peer) bool {
	return p.Name == q.Name && p.Underlay == q.Underlay && p.Subnet == q.Subnet && slices.Equal(p.MAC, q.MAC)
}

// validPeers returns the peers that can be programmed, sorted by name, and
// an error (wrapping [ErrInvalidPeer]) for each one left out. When two
// peers clash (same name, overlapping subnets, same MAC) the one sorting
// first by name keeps its place, so the outcome does not depend on the
// order of the list.
func validPeers(self Config, peers []Peer) ([]Peer, error) {
	sorted := slices.Clone(peers)
	slices.SortStableFunc(sorted, func(a, b Peer) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), a.Subnet.Addr().Compare(b.Subnet.Addr()))
	})
	var (
		ok   []Peer
		errs []error
	)
	bad := func(p Peer, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w %s: %s", ErrInvalidPeer, p.label(), fmt.Sprintf(format, args...)))
	}
next:
	for _, p := range sorted {
		switch {
		case p.Name == "":
			bad(p, "no name")
			continue
		case !p.Underlay.IsValid() || p.Underlay.IsUnspecified() || p.Underlay.IsMulticast():
			bad(p, "underlay %s: want a unicast address", p.Underlay)
			continue
		case p.Underlay.Unmap().Is4() != self.Underlay.Unmap().Is4():
			bad(p, "underlay %s: not of the same address family as this node's %s", p.Underlay, self.Underlay)
			continue
		case p.Underlay.Unmap() == self.Underlay.Unmap():
			bad(p, "underlay %s is this node's own address", p.Underlay)
			continue
		case !p.Subnet.IsValid() || !p.Subnet.Addr().Is4() || p.Subnet != p.Subnet.Masked() || p.Subnet.Bits() > 30:
			bad(p, "subnet %s: want a masked IPv4 prefix of /30 or larger", p.Subnet)
			continue
		case p.Subnet.Overlaps(self.Subnet):
			bad(p, "subnet %s overlaps this node's %s", p.Subnet, self.Subnet)
			continue
		}
		if err := checkMAC(p.MAC); err != nil {
			bad(p, "mac: %v", err)
			continue
		}
		if slices.Equal(p.MAC, self.MAC) {
			bad(p, "mac %s is this node's own", p.MAC)
			continue
		}
		for _, q := range ok {
			switch {
			case p.Name == q.Name:
				bad(p, "listed twice")
				continue next
			case p.Subnet.Overlaps(q.Subnet):
				bad(p, "subnet %s overlaps %s of %s", p.Subnet, q.Subnet, q.label())
				continue next
			case slices.Equal(p.MAC, q.MAC):
				bad(p, "mac %s is also %s's", p.MAC, q.label())
				continue next
			case p.Underlay.Unmap() == q.Underlay.Unmap():
				bad(p, "underlay %s is also %s's", p.Underlay, q.label())
				continue next
			}
		}
		p.MAC = slices.Clone(p.MAC)
		ok = append(ok, p)
	}
	return ok, errors.Join(errs...)
}

// The kernel entries that make a peer reachable, as plain values so that
// the diff is a pure function. The kernel side converts netlink's lists
// into these.
type (
	// routeEntry is an IPv4 route of the main table on the VXLAN device.
	routeEntry struct {
		Dst      netip.Prefix
		Gw       netip.Addr
		Onlink   bool
		Priority int
	}
	// neighEntry is an IPv4 neighbour on the VXLAN device.
	neighEntry struct {
		IP    netip.Addr
		MAC   string // net.HardwareAddr.String()
		State string // "permanent", "reachable", … (see nudName)
	}
	// fdbEntry is one remote of the VXLAN device's forwarding database.
	fdbEntry struct {
		MAC   string
		Dst   netip.Addr
		State string
	}
)

const statePermanent = "permanent"

// zeroRoute is the destination of a default route.
var zeroRoute = netip.MustParsePrefix("0.0.0.0/0")

func (r routeEntry) String() string {
	s := "route " + r.Dst.String() + " via " + r.Gw.String()
	if r.Onlink {
		s += " onlink"
	}
	if r.Priority != 0 {
		s += " metric " + strconv.Itoa(r.Priority)
	}
	return s
}

func (n neighEntry) String() string {
	return fmt.Sprintf("neigh %s lladdr %s %s", n.IP, n.MAC, n.State)
}

func (f fdbEntry) String() string {
	return fmt.Sprintf("fdb %s dst %s %s", f.MAC, f.Dst, f.State)
}

// entries is what the VXLAN device holds, or should hold.
type entries struct {
	routes []routeEntry
	neighs []neighEntry
	fdbs   []fdbEntry
}

// peerEntries returns the three entries that make p reachable, in the
// order they are added: the FDB entry first (where to send frames for the
// peer's MAC), then the neighbour (which MAC the peer's network address
// has), then the route (which sends the subnet to that address). Each
// step is useless without the previous one, so traffic never takes a half
// configured path.
func peerEntries(p Peer) (routeEntry, neighEntry, fdbEntry) {
	gw := p.Subnet.Addr() // the peer's VXLAN device holds its network address
	mac := p.MAC.String()
	return routeEntry{Dst: p.Subnet, Gw: gw, Onlink: true},
		neighEntry{IP: gw, MAC: mac, State: statePermanent},
		fdbEntry{MAC: mac, Dst: p.Underlay, State: statePermanent}
}

type opKind int

const (
	setFDB opKind = iota
	setNeigh
	setRoute
	delRoute
	delNeigh
	delFDB
)

// op is one kernel change. Exactly one of the entries is meaningful,
// chosen by kind.
type op struct {
	kind  opKind
	route routeEntry
	neigh neighEntry
	fdb   fdbEntry
	why   string // for set ops: what the kernel had instead ("missing" or the old entry)
}

func (o op) String() string {
	switch o.kind {
	case setFDB:
		return fmt.Sprintf("set %s (%s)", o.fdb, o.why)
	case setNeigh:
		return fmt.Sprintf("set %s (%s)", o.neigh, o.why)
	case setRoute:
		return fmt.Sprintf("set %s (%s)", o.route, o.why)
	case delRoute:
		return "delete " + o.route.String()
	case delNeigh:
		return "delete " + o.neigh.String()
	case delFDB:
		return "delete " + o.fdb.String()
	}
	return fmt.Sprintf("op(%d)", int(o.kind))
}

type groupKind int

const (
	// groupAdd: a peer none of whose entries existed. Reported in
	// PeersAdded once all its ops succeed.
	groupAdd groupKind = iota
	// groupRepair: fixes to a peer that was partly there, or to entries
	// that belong to no peer. Each successful op goes to Repaired.
	groupRepair
	// groupRemove: a route to a subnet no peer has, with its neighbour
	// and FDB entry. Reported in PeersRemoved once all its ops succeed.
	groupRemove
)

// group is the ops for one peer (or one stray entry), reported together.
type group struct {
	kind  groupKind
	peer  string // name of the wanted peer; "" for removals and strays
	label string // peer name, or subnet when the name is unknown
	ops   []op
}

// diffPeers returns the groups of ops that turn have into want: adds
// before deletes, so a peer whose entries change is never unreachable in
// between, and everything for a removed peer in one group. applied is
// what the previous successful call programmed; it only decides how
// changes are reported (a peer this Plane added before and whose entries
// vanished is a repair, not an addition) and names removed peers.
func diffPeers(want []Peer, have entries, applied map[string]Peer) []group {
	var sets, dels []group

	wantDst := map[netip.Prefix]bool{}
	wantNeigh := map[netip.Addr]bool{}
	wantFDB := map[string]bool{}
	for _, p := range want {
		r, n, f := peerEntries(p)
		wantDst[r.Dst] = true
		wantNeigh[n.IP] = true
		wantFDB[f.MAC] = true
	}

	for _, p := range want {
		r, n, f := peerEntries(p)
		var ops, delOps []op
		found := false

		fdbOK := false
		for _, h := range have.fdbs {
			if h.MAC != f.MAC {
				continue
			}
			found = true
			if h == f {
				fdbOK = true
			} else {
				delOps = append(delOps, op{kind: delFDB, fdb: h})
			}
		}
		if !fdbOK {
			ops = append(ops, op{kind: setFDB, fdb: f, why: whyFDB(have.fdbs, f)})
		}

		if i := slices.IndexFunc(have.neighs, func(h neighEntry) bool { return h.IP == n.IP }); i < 0 {
			ops = append(ops, op{kind: setNeigh, neigh: n, why: "missing"})
		} else if found = true; have.neighs[i] != n {
			ops = append(ops, op{kind: setNeigh, neigh: n, why: "was " + have.neighs[i].String()})
		}

		routeOK := false
		var routeWas string
		for _, h := range have.routes {
			if h.Dst != r.Dst {
				continue
			}
			found = true
			switch {
			case h.Priority != r.Priority:
				// Same subnet at another metric: not ours, and it would
				// shadow or be shadowed by ours.
				delOps = append(delOps, op{kind: delRoute, route: h})
			case h == r:
				routeOK = true
			default:
				routeWas = "was " + h.String()
			}
		}
		if !routeOK {
			ops = append(ops, op{kind: setRoute, route: r, why: cmp.Or(routeWas, "missing")})
		}

		ops = append(ops, delOps...)
		if len(ops) == 0 {
			continue
		}
		kind := groupRepair
		if prev, ok := applied[p.Name]; !found && !(ok && prev.equal(p)) {
			kind = groupAdd
		}
		label := p.label()
		if kind == groupAdd {
			label = p.String()
		}
		sets = append(sets, group{kind: kind, peer: p.Name, label: label, ops: ops})
	}

	// Whatever is left on the device belongs to no peer in the list.
	removedNeigh := map[netip.Addr]bool{}
	removedFDB := map[string]bool{}
	for _, h := range have.routes {
		if wantDst[h.Dst] {
			continue // kept, or replaced by its peer's group above
		}
		g := group{kind: groupRemove, label: removedLabel(h.Dst, applied)}
		g.ops = append(g.ops, op{kind: delRoute, route: h})
		if h.Gw.IsValid() && !wantNeigh[h.Gw] {
			for _, n := range have.neighs {
				if n.IP != h.Gw || removedNeigh[n.IP] {
					continue
				}
				removedNeigh[n.IP] = true
				g.ops = append(g.ops, op{kind: delNeigh, neigh: n})
				if wantFDB[n.MAC] || removedFDB[n.MAC] {
					continue
				}
				removedFDB[n.MAC] = true
				for _, f := range have.fdbs {
					if f.MAC == n.MAC {
						g.ops = append(g.ops, op{kind: delFDB, fdb: f})
					}
				}
			}
		}
		dels = append(dels, g)
	}
	for _, n := range have.neighs {
		if !wantNeigh[n.IP] && !removedNeigh[n.IP] {
			dels = append(dels, group{kind: groupRepair, label: "stray", ops: []op{{kind: delNeigh, neigh: n}}})
		}
	}
	for _, f := range have.fdbs {
		if !wantFDB[f.MAC] && !removedFDB[f.MAC] {
			dels = append(dels, group{kind: groupRepair, label: "stray", ops: []op{{kind: delFDB, fdb: f}}})
		}
	}
	return append(sets, dels...)
}

func whyFDB(have []fdbEntry, f fdbEntry) string {
	for _, h := range have {
		if h.MAC == f.MAC {
			return "was " + h.String()
		}
	}
	return "missing"
}

// removedLabel names the peer that had subnet dst, if an earlier call
// programmed it.
func removedLabel(dst netip.Prefix, applied map[string]Peer) string {
	for _, p := range applied {
		if p.Subnet == dst {
			return p.label() + " (" + dst.String() + ")"
		}
	}
	return dst.String()
}

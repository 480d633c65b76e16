package dnsdisc

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Replica is one announceable replica of a service: the agent passes only
// those that are running and healthy.
type Replica struct {
	// Slot is the replica's slot number; it names the replica as
	// <slot>.<service>.svc.<domain>. Must not be negative.
	Slot int
	// Addr is the replica's address on the overlay (IPv4 gives A records,
	// IPv6 AAAA).
	Addr netip.Addr
	// Node is the node running the replica. It is not served; it is kept
	// so the agent can pass its replicas as they are, and [Snapshot.Equal]
	// sees a move.
	Node string
}

// Port is a named port of a service, served as SRV records at
// _<name>._<proto>.<service>.svc.<domain>.
type Port struct {
	// Name is the port's name: letters, digits and '-', at most 62
	// characters (the SRV label adds a '_').
	Name string
	// Proto is "tcp" or "udp".
	Proto string
	// Port is the port number; not 0.
	Port uint16
}

// Service is one service and its announceable replicas.
type Service struct {
	// Name is the service's name, a DNS label (case-insensitive).
	Name string
	// Replicas are the replicas to announce. None: the service's names
	// exist but have no addresses (NOERROR with no answer, not NXDOMAIN).
	Replicas []Replica
	// Ports are the service's named ports.
	Ports []Port
}

// Node is a cluster node, served as <name>.node.<domain>.
type Node struct {
	// Name is the node's name, a DNS label (case-insensitive).
	Name string
	// Addr is the node's address.
	Addr netip.Addr
}

// Snapshot is what the server answers from: the cluster's services and
// nodes, validated, lower-cased, sorted and de-duplicated. It is immutable
// once built; [Server.Update] compiles it into prebuilt records for the
// server's domain and TTL.
type Snapshot struct {
	services []Service
	nodes    []Node
	skipped  []string
}

// NewSnapshot builds a snapshot from the agent's view of the cluster. It
// copies its arguments. Entries that cannot be served (a name that is not
// a DNS label, an invalid address, a duplicate slot, port or name) are
// left out and listed by [Snapshot.Skipped]; the first of duplicates (in
// slot order for replicas, in the given order otherwise) wins.
func NewSnapshot(services []Service, nodes []Node) *Snapshot {
	s := &Snapshot{}
	seenSvc := make(map[string]bool, len(services))
	for _, in := range services {
		name := strings.ToLower(in.Name)
		if !validLabel(name) {
			s.skip("service %q: not a DNS label", in.Name)
			continue
		}
		if seenSvc[name] {
			s.skip("service %q: duplicate name", in.Name)
			continue
		}
		seenSvc[name] = true
		svc := Service{Name: name}

		reps := slices.Clone(in.Replicas)
		slices.SortStableFunc(reps, func(a, b Replica) int { return cmp.Compare(a.Slot, b.Slot) })
		for _, r := range reps {
			r.Addr = r.Addr.Unmap()
			switch {
			case r.Slot < 0:
				s.skip("service %s slot %d: negative slot", name, r.Slot)
			case !r.Addr.IsValid() || r.Addr.IsUnspecified() || r.Addr.Zone() != "":
				s.skip("service %s slot %d: address %q cannot be served", name, r.Slot, r.Addr)
			case len(svc.Replicas) > 0 && svc.Replicas[len(svc.Replicas)-1].Slot == r.Slot:
				s.skip("service %s slot %d: duplicate slot", name, r.Slot)
			default:
				svc.Replicas = append(svc.Replicas, r)
			}
		}

		seenPort := make(map[Port]bool, len(in.Ports))
		for _, p := range in.Ports {
			p.Name, p.Proto = strings.ToLower(p.Name), strings.ToLower(p.Proto)
			key := Port{Name: p.Name, Proto: p.Proto}
			switch {
			case !validLabel(p.Name) || len(p.Name) > 62:
				s.skip("service %s port %q: name is not a DNS label of at most 62 characters", name, p.Name)
			case p.Proto != "tcp" && p.Proto != "udp":
				s.skip("service %s port %s: protocol %q is not tcp or udp", name, p.Name, p.Proto)
			case p.Port == 0:
				s.skip("service %s port %s/%s: port 0", name, p.Name, p.Proto)
			case seenPort[key]:
				s.skip("service %s port %s/%s: duplicate", name, p.Name, p.Proto)
			default:
				seenPort[key] = true
				svc.Ports = append(svc.Ports, p)
			}
		}
		s.services = append(s.services, svc)
	}
	slices.SortFunc(s.services, func(a, b Service) int { return strings.Compare(a.Name, b.Name) })

	seenNode := make(map[string]bool, len(nodes))
	for _, n := range nodes {
		name := strings.ToLower(n.Name)
		addr := n.Addr.Unmap()
		switch {
		case !validLabel(name):
			s.skip("node %q: not a DNS label", n.Name)
		case !addr.IsValid() || addr.IsUnspecified() || addr.Zone() != "":
			s.skip("node %s: address %q cannot be served", name, n.Addr)
		case seenNode[name]:
			s.skip("node %s: duplicate name", name)
		default:
			seenNode[name] = true
			s.nodes = append(s.nodes, Node{Name: name, Addr: addr})
		}
	}
	slices.SortFunc(s.nodes, func(a, b Node) int { return strings.Compare(a.Name, b.Name) })
	return s
}

func (s *Snapshot) skip(format string, args ...any) {
	s.skipped = append(s.skipped, fmt.Sprintf(format, args...))
}

// Skipped describes the entries [NewSnapshot] left out, one sentence each,
// for the agent to log. The caller must not modify the slice.
func (s *Snapshot) Skipped() []string { return s.skipped }

// Services returns the snapshot's services, normalised. The caller must
// not modify them.
func (s *Snapshot) Services() []Service { return s.services }

// Nodes returns the snapshot's nodes, normalised. The caller must not
// modify them.
func (s *Snapshot) Nodes() []Node { return s.nodes }

// Equal reports whether s and o serve the same records. [Server.Update]
// uses it to skip recompiling an unchanged snapshot, so the agent may call
// Update on every reconcile pass.
func (s *Snapshot) Equal(o *Snapshot) bool {
	if s == nil || o == nil {
		return s == o
	}
	return slices.EqualFunc(s.services, o.services, func(a, b Service) bool {
		return a.Name == b.Name && slices.Equal(a.Replicas, b.Replicas) && slices.Equal(a.Ports, b.Ports)
	}) && slices.Equal(s.nodes, o.nodes)
}

package gossip

import (
	"net/netip"
	"sort"
	"time"

	"github.com/hashicorp/serf/serf"
)

// Status is a member's state as this node sees it.
type Status string

const (
	StatusAlive   Status = "alive"
	StatusLeaving Status = "leaving"
	StatusLeft    Status = "left"
	StatusFailed  Status = "failed"
	StatusUnknown Status = "unknown"
)

// Action is what happened to members in a [MemberEvent].
type Action string

const (
	ActionJoin   Action = "join"
	ActionLeave  Action = "leave"
	ActionFailed Action = "failed"
	ActionUpdate Action = "update"
	ActionReap   Action = "reap"
)

// Member is a read-only snapshot of one cluster member.
type Member struct {
	Name string
	// ID is the stable node ID; empty for members that are not orch agents.
	ID     string
	Addr   netip.AddrPort
	Status Status
	// Tags holds every tag, reserved ones included.
	Tags map[string]string
	// Orch reports whether the member is an orch agent of a compatible
	// protocol; only those may be given work.
	Orch bool
	// Suspect is set on an alive member this node has not heard from for
	// a while (see suspectAfter): it is probably being declared failed. A
	// node cut off from the others suspects them all well before it
	// declares the first one failed.
	Suspect bool
}

// MemberEvent reports a change to one or more members.
type MemberEvent struct {
	Action  Action
	Members []Member
}

// Members returns every member this node knows, itself included, sorted by
// name, with the members this node suspects marked. It returns nil before
// the node runs.
func (n *Node) Members() []Member {
	s := n.currentSerf()
	if s == nil {
		return nil
	}
	out := n.serfMembers(s)
	n.mu.Lock()
	mux := n.mux
	n.mu.Unlock()
	if mux == nil {
		return out
	}
	alive := 0
	for _, m := range out {
		if m.Status == StatusAlive {
			alive++
		}
	}
	after, probe := n.suspectAfter(alive)
	now := time.Now()
	// A node that heard nobody for a few probe intervals (not even the
	// acks of its own probes, one per interval) is cut off: every peer is
	// suspect, however large the cluster.
	isolated := alive > 1 && now.Sub(mux.lastHeardAny()) > 4*probe
	for i, m := range out {
		out[i].Suspect = m.Status == StatusAlive && m.Name != n.cfg.Name && (isolated || now.Sub(mux.lastHeard(m.Addr)) > after)
	}
	return out
}

// suspectAfter is how long a peer may stay silent before this node
// suspects it. memberlist probes one member per probe interval, round
// robin, and every probe is answered, so a reachable peer is heard from at
// least every (alive-1) intervals; twice that, and at least four
// intervals, leaves room for lost packets. memberlist's own suspicion
// state is not exported (its Node.State is never updated), hence this.
func (n *Node) suspectAfter(alive int) (after, probe time.Duration) {
	probe = time.Second
	if n.cfg.Profile == ProfileFast {
		probe = 200 * time.Millisecond
	}
	return probe * time.Duration(max(4, 2*(alive-1))), probe
}

// serfMembers is serf's member list, without suspicion.
func (n *Node) serfMembers(s *serf.Serf) []Member {
	ms := s.Members()
	out := make([]Member, 0, len(ms))
	for _, m := range ms {
		out = append(out, fromSerf(m))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// LocalName is this node's name.
func (n *Node) LocalName() string { return n.cfg.Name }

func fromSerf(m serf.Member) Member {
	ip, _ := netip.AddrFromSlice(m.Addr)
	tags := cloneTags(m.Tags)
	return Member{
		Name:   m.Name,
		ID:     tags[TagID],
		Addr:   netip.AddrPortFrom(ip.Unmap(), m.Port),
		Status: memberStatus(m.Status),
		Tags:   tags,
		Orch:   tags[TagRole] == RoleOrch && compatibleProto(tags[TagProto]),
	}
}

// compatibleProto reports whether a member speaks this build's protocol.
func compatibleProto(v string) bool {
	return v == ProtocolVersion
}

func memberStatus(s serf.MemberStatus) Status {
	switch s {
	case serf.StatusAlive:
		return StatusAlive
	case serf.StatusLeaving:
		return StatusLeaving
	case serf.StatusLeft:
		return StatusLeft
	case serf.StatusFailed:
		return StatusFailed
	}
	return StatusUnknown
}

func memberAction(t serf.EventType) Action {
	switch t {
	case serf.EventMemberJoin:
		return ActionJoin
	case serf.EventMemberLeave:
		return ActionLeave
	case serf.EventMemberFailed:
		return ActionFailed
	case serf.EventMemberUpdate:
		return ActionUpdate
	case serf.EventMemberReap:
		return ActionReap
	}
	return Action(t.String())
}

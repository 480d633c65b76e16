package agent

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/orchproject/orch/gossip"
)

// Subnets without a leader. Every node claims one subnet of the overlay
// for its replicas and publishes the claim in a gossip tag: the prefix and
// when it was claimed. When two members claim overlapping subnets, the
// earlier claim wins (ties by node name), and the loser claims another one
// that no member it knows holds. A pinned subnet (--subnet) is published
// with time 0, so it beats every automatic claim; two pinned claims that
// collide are reported and left to the operator.

// tagSubnet carries a node's claim: "PREFIX@UNIXMILLIS".
const tagSubnet = "sn"

// DefaultSubnetBits is the size of a node's subnet: 254 replica addresses.
const DefaultSubnetBits = 24

// DefaultOverlay is the overlay's default range. 10.213.0.0/16 is off the
// ranges that Docker (172.17.0.0/16, 10.0.0.0/8 pools starting at 10.0),
// Kubernetes distributions (10.42–10.45, 10.96, 10.244), cloud VPC
// defaults (10.0.0.0/16, 172.31.0.0/16) and home routers (192.168.x) pick,
// so it rarely collides with a network the host already routes. It holds
// 256 node subnets; bigger clusters pass a wider --overlay.
var DefaultOverlay = netip.MustParsePrefix("10.213.0.0/16")

// subnetClaim is one node's claim on a subnet.
type subnetClaim struct {
	Prefix netip.Prefix
	// At is when the claim was made, Unix milliseconds; 0 for a pinned
	// subnet.
	At int64
}

func (c subnetClaim) tag() string { return c.Prefix.String() + "@" + strconv.FormatInt(c.At, 10) }

func parseSubnetTag(s string) (subnetClaim, bool) {
	p, at, ok := strings.Cut(s, "@")
	if !ok {
		return subnetClaim{}, false
	}
	pfx, err := netip.ParsePrefix(p)
	if err != nil || pfx != pfx.Masked() || !pfx.Addr().Is4() {
		return subnetClaim{}, false
	}
	t, err := strconv.ParseInt(at, 10, 64)
	if err != nil || t < 0 {
		return subnetClaim{}, false
	}
	return subnetClaim{Prefix: pfx, At: t}, true
}

// beats reports whether claim a of node an wins over claim b of node bn.
func (a subnetClaim) beats(an string, b subnetClaim, bn string) bool {
	if a.At != b.At {
		return a.At < b.At
	}
	return an < bn
}

// memberClaim is a member's published claim.
type memberClaim struct {
	Node  string
	Claim subnetClaim
}

// memberClaims returns the claims of the orch members that still hold
// theirs: alive or failed (a failed node keeps its subnet for when it
// returns), not those that left.
func memberClaims(members []gossip.Member, self string) []memberClaim {
	var out []memberClaim
	for _, m := range members {
		if !m.Orch || m.Name == self || m.Status == gossip.StatusLeft {
			continue
		}
		if c, ok := parseSubnetTag(m.Tags[tagSubnet]); ok {
			out = append(out, memberClaim{Node: m.Name, Claim: c})
		}
	}
	return out
}

// conflictWith returns the member whose claim beats self's and overlaps
// it, if any.
func conflictWith(self string, mine subnetClaim, others []memberClaim) (memberClaim, bool) {
	for _, o := range others {
		if o.Claim.Prefix.Overlaps(mine.Prefix) && o.Claim.beats(o.Node, mine, self) {
			return o, true
		}
	}
	return memberClaim{}, false
}

// errOverlayFull says every subnet of the overlay is claimed.
var errOverlayFull = errors.New("every subnet of the overlay is claimed")

// chooseSubnet picks a subnet of size bits in overlay that overlaps none
// of taken. The first candidate is derived from the node's name, so a node
// tends to get the same subnet in every cluster it founds; the next ones
// are hashed with an attempt counter, so nodes that collided do not keep
// colliding by probing the same sequence.
func chooseSubnet(overlay netip.Prefix, bits int, name string, taken []netip.Prefix) (netip.Prefix, error) {
	if !overlay.Addr().Is4() || bits < overlay.Bits() || bits > 30 {
		return netip.Prefix{}, fmt.Errorf("cannot split %s into /%d subnets", overlay, bits)
	}
	n := uint64(1) << (bits - overlay.Bits())
	free := func(p netip.Prefix) bool {
		for _, t := range taken {
			if t.Overlaps(p) {
				return false
			}
		}
		return true
	}
	for attempt := range 4 * min(n, 1<<16) {
		h := fnv.New64a()
		fmt.Fprintf(h, "%s/%d", name, attempt)
		if p := nthSubnet(overlay, bits, h.Sum64()%n); free(p) {
			return p, nil
		}
	}
	for i := range n {
		if p := nthSubnet(overlay, bits, i); free(p) {
			return p, nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("%s: %w", overlay, errOverlayFull)
}

// nthSubnet is the i-th subnet of size bits in overlay (IPv4).
func nthSubnet(overlay netip.Prefix, bits int, i uint64) netip.Prefix {
	b := overlay.Masked().Addr().As4()
	base := binary.BigEndian.Uint32(b[:])
	binary.BigEndian.PutUint32(b[:], base+uint32(i)<<(32-bits))
	return netip.PrefixFrom(netip.AddrFrom4(b), bits)
}

// overlayPeer is a member the overlay must reach.
type overlayPeer struct {
	Name   string
	ID     string
	Addr   netip.Addr
	Subnet netip.Prefix
}

// overlayPeers returns the alive orch members with a subnet claim, minus
// self, each subnet once: of overlapping claims only the winner's, so a
// conflict being resolved never routes one subnet two ways.
func overlayPeers(members []gossip.Member, self string) []overlayPeer {
	type cand struct {
		p     overlayPeer
		claim subnetClaim
	}
	var cands []cand
	for _, m := range members {
		if !m.Orch || m.Name == self || m.Status != gossip.StatusAlive || m.ID == "" {
			continue
		}
		c, ok := parseSubnetTag(m.Tags[tagSubnet])
		if !ok {
			continue
		}
		cands = append(cands, cand{overlayPeer{Name: m.Name, ID: m.ID, Addr: m.Addr.Addr().Unmap(), Subnet: c.Prefix}, c})
	}
	var out []overlayPeer
	for i, c := range cands {
		lost := false
		for j, o := range cands {
			if i != j && o.claim.Prefix.Overlaps(c.claim.Prefix) && o.claim.beats(o.p.Name, c.claim, c.p.Name) {
				lost = true
				break
			}
		}
		if !lost {
			out = append(out, c.p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

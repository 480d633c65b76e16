package agent

// Leaderless placement: a pure function from replicated inputs to "which node
// runs which replica slot".
//
// No leader decides where replicas run. Every agent calls [place] with the
// same inputs (the alive orch members, the desired services and the claims
// read from the replicated observed state) and therefore computes the same
// answer. place does no I/O, reads no clock and keeps no state between calls.
//
// Rules, in the order place applies them:
//
//  1. Deterministic. The output depends only on the input as a set: the order
//     of Nodes, Services, Claims and of each service's Constraints, and Go's map
//     iteration order, never matter. Nodes, services and constraints are sorted
//     first; the winning claim of a slot is a maximum under a total order, so
//     claims need no sorting; the output is a map, which has no order to leak.
//     Duplicate node or service names are a caller bug; if they occur anyway,
//     the entry that sorts first is kept (for nodes, an ineligible copy sorts
//     first, the cautious choice). A node named "" is ignored, since an empty
//     Node in a result means "pending".
//  2. Slots of a service S are 0..S.Replicas-1. Claims on slots >= Replicas or
//     < 0 are ignored and those slots are not in the output: scaling down
//     drops the highest slots, whose holders stop them on their next pass.
//  3. Sticky. A claim is valid when its node is in Nodes, Eligible and
//     satisfies the service's constraints. A slot with a valid claim stays on
//     the claimant. When several valid claims name one slot (after a partition
//     both sides may have run it), the later placement wins: the highest
//     LTime, ties broken by the lexicographically greater node name. Claims
//     that are not valid (dead, ineligible or no longer matching nodes) are
//     ignored, so those slots move.
//  4. Otherwise the slot goes to one of the candidates: the eligible nodes
//     that satisfy the constraints. Among them place picks the node holding
//     the fewest slots of the same service so far (spread: a node holding
//     none is preferred; when every candidate holds one, the one holding the
//     fewest), ties broken by the highest rendezvous (highest-random-weight)
//     score of (service, slot, node), then by the smaller node name should
//     two scores collide.
//  5. Processing order: first every sticky slot (so it counts toward its
//     node's spread), then the unassigned slots in (service, slot) order.
//  6. A slot with no candidate is pending, with a reason: "no eligible nodes"
//     when no node at all is eligible; otherwise the constraints that no
//     eligible node satisfies ("no eligible node satisfies
//     node.label.zone==eu"), or, when each constraint alone is satisfiable
//     but not all together, all of them ("no eligible node satisfies all of
//     node.label.disk==ssd, node.label.zone==eu").
//  7. Consequences of 3–5: adding a node moves no claimed slot, and losing a
//     node (or its eligibility) moves only that node's slots. A slot nobody
//     has claimed yet (a fresh service, or one pending so far) may land
//     elsewhere once a node joins; that is not a move.
//
// Constraints: Field is "node.name" or "node.label.KEY", Op is "==" or "!=".
// "!=" on a missing label matches; "==" on a missing label does not. A field
// or operator place does not know matches no node, so a service using one
// stays pending with a reason naming it rather than running somewhere the
// user did not intend. Parsing and validating constraint strings happens
// elsewhere; this file stays pure.
//
// The rendezvous score is FNV-1a 64 over a length-prefixed encoding of
// (service, slot, node), finished with the splitmix64 finalizer: FNV alone
// barely changes the high bits for names that differ only in their last
// byte ("web-1", "web-2"). Both are fixed arithmetic, identical on every Go
// version and platform (hash/maphash is seeded per process and would
// break agreement). The score is part of the protocol: agents that compute
// it differently disagree about unclaimed slots, so TestPlace_ScoreIsStable
// pins it.
//
// What place does not do, by design: it does not stop the losing copy of a
// slot claimed twice (the reconcile loop stops it only once the kept copy is
// healthy); the minority guard and mass-failure damping (see DESIGN.md,
// "Leaderless placement") are applied by the caller on top of this result,
// for example by not starting slots it would take over. Keeping them out
// keeps place a function of replicated data alone.

import (
	"cmp"
	"maps"
	"slices"
	"strings"
)

// placeNode is a live member that may run work.
type placeNode struct {
	Name   string
	Labels map[string]string
	// Eligible is false for a node that is alive but must take no new work
	// (draining, containerd down). It also loses the slots it holds: they are
	// placed elsewhere as if it had failed.
	Eligible bool
}

// placeConstraint restricts the nodes a service may run on. Field is
// "node.name" or "node.label.KEY"; Op is "==" or "!=". A "!=" on a missing
// label matches, "==" on a missing label does not.
type placeConstraint struct{ Field, Op, Value string }

// String returns the constraint as the user wrote it, e.g. "node.label.zone==eu".
func (c placeConstraint) String() string { return c.Field + c.Op + c.Value }

// placeService is the part of a desired service that placement needs.
type placeService struct {
	Name        string
	Replicas    int
	Constraints []placeConstraint
}

// placeClaim says node Node holds slot (Service, Slot), claimed at Lamport time
// LTime (from the replicated observed state).
type placeClaim struct {
	Service string
	Slot    int // 0-based
	Node    string
	LTime   uint64
}

// placeInput is everything place reads. place does not modify it.
type placeInput struct {
	Nodes    []placeNode // alive orch members only (the caller filters failed/left/foreign)
	Services []placeService
	Claims   []placeClaim // may include claims by dead nodes, duplicates, slots >= Replicas
}

// placeSlot names one replica slot of a service.
type placeSlot struct {
	Service string
	Slot    int
}

// placeResult is where one slot runs, or why it runs nowhere.
type placeResult struct {
	Node    string // "" when pending
	Pending string // reason when Node == ""
}

// placeNoEligible is the pending reason when no node may take work at all.
const placeNoEligible = "no eligible nodes"

// place computes the placement of every slot of every service in in. See the
// design note at the top of this file for the rules.
func place(in placeInput) map[placeSlot]placeResult {
	nodes := placeSortNodes(in.Nodes)
	services := placeSortServices(in.Services)

	nodeIdx := make(map[string]int, len(nodes))
	anyEligible := false
	for i, n := range nodes {
		nodeIdx[n.Name] = i
		anyEligible = anyEligible || n.Eligible
	}
	svcIdx := make(map[string]int, len(services))
	total := 0
	for i, s := range services {
		svcIdx[s.Name] = i
		total += s.Replicas
	}

	// ok[s][n]: node n is a candidate for service s (eligible and satisfying).
	ok := make([][]bool, len(services))
	for si, s := range services {
		ok[si] = make([]bool, len(nodes))
		for ni, n := range nodes {
			ok[si][ni] = n.Eligible && placeSatisfiesAll(n, s.Constraints)
		}
	}

	// holder[s][slot] is the node index holding the slot, -1 when unassigned.
	// Winning claims are maxima under (LTime, Node), a total order on what
	// matters, so the order of in.Claims cannot change them.
	holder := make([][]int, len(services))
	ltime := make([][]uint64, len(services))
	for si, s := range services {
		holder[si] = make([]int, s.Replicas)
		ltime[si] = make([]uint64, s.Replicas)
		for i := range holder[si] {
			holder[si][i] = -1
		}
	}
	for _, c := range in.Claims {
		si, found := svcIdx[c.Service]
		if !found || c.Slot < 0 || c.Slot >= services[si].Replicas {
			continue
		}
		ni, found := nodeIdx[c.Node]
		if !found || !ok[si][ni] {
			continue
		}
		cur := holder[si][c.Slot]
		if cur < 0 || placeClaimLater(c.LTime, c.Node, ltime[si][c.Slot], nodes[cur].Name) {
			holder[si][c.Slot] = ni
			ltime[si][c.Slot] = c.LTime
		}
	}

	out := make(map[placeSlot]placeResult, total)
	count := make([]int, len(nodes)) // slots of the current service per node
	for si, s := range services {
		clear(count)
		// Sticky slots first, so they count toward their node's spread.
		for _, ni := range holder[si] {
			if ni >= 0 {
				count[ni]++
			}
		}
		var reason string // computed once per service, only if needed
		for slot, ni := range holder[si] {
			if ni < 0 {
				ni = placePick(nodes, ok[si], count, placeKeyHash(s.Name, slot))
				if ni >= 0 {
					count[ni]++
				}
			}
			if ni < 0 {
				if reason == "" {
					reason = placePendingReason(nodes, anyEligible, s.Constraints)
				}
				out[placeSlot{s.Name, slot}] = placeResult{Pending: reason}
				continue
			}
			out[placeSlot{s.Name, slot}] = placeResult{Node: nodes[ni].Name}
		}
	}
	return out
}

// placeFor returns the slots place assigns to node, sorted by service, then slot.
func placeFor(in placeInput, node string) []placeSlot {
	var mine []placeSlot
	for slot, r := range place(in) {
		if node != "" && r.Node == node {
			mine = append(mine, slot)
		}
	}
	slices.SortFunc(mine, func(a, b placeSlot) int {
		return cmp.Or(strings.Compare(a.Service, b.Service), cmp.Compare(a.Slot, b.Slot))
	})
	return mine
}

// placeClaimLater reports whether a claim at (lt, node) beats one at
// (curLT, curNode): the later placement wins, ties go to the greater name.
func placeClaimLater(lt uint64, node string, curLT uint64, curNode string) bool {
	if lt != curLT {
		return lt > curLT
	}
	return node > curNode
}

// placePick returns the candidate (ok[i]) with the fewest slots of the
// service (count[i]), ties broken by the highest rendezvous score and then by
// the smaller name; -1 when there is no candidate.
func placePick(nodes []placeNode, ok []bool, count []int, key uint64) int {
	best, bestCount, bestScore := -1, 0, uint64(0)
	for i, n := range nodes { // sorted by name, so a score tie keeps the smaller name
		if !ok[i] {
			continue
		}
		score := placeScore(key, n.Name)
		if best < 0 || count[i] < bestCount || (count[i] == bestCount && score > bestScore) {
			best, bestCount, bestScore = i, count[i], score
		}
	}
	return best
}

// placePendingReason explains why a service with constraints cs has no candidate.
func placePendingReason(nodes []placeNode, anyEligible bool, cs []placeConstraint) string {
	if !anyEligible {
		return placeNoEligible
	}
	var alone []string // constraints that no eligible node satisfies on their own
	for _, c := range cs {
		sat := false
		for _, n := range nodes {
			if n.Eligible && placeSatisfies(n, c) {
				sat = true
				break
			}
		}
		if !sat {
			alone = append(alone, c.String())
		}
	}
	if len(alone) > 0 {
		return "no eligible node satisfies " + strings.Join(alone, ", ")
	}
	all := make([]string, len(cs))
	for i, c := range cs {
		all[i] = c.String()
	}
	return "no eligible node satisfies all of " + strings.Join(all, ", ")
}

// placeSatisfiesAll reports whether n satisfies every constraint in cs.
func placeSatisfiesAll(n placeNode, cs []placeConstraint) bool {
	for _, c := range cs {
		if !placeSatisfies(n, c) {
			return false
		}
	}
	return true
}

// placeSatisfies reports whether n satisfies c. Unknown fields and operators
// match nothing, so a service using one stays pending instead of running
// somewhere unintended.
func placeSatisfies(n placeNode, c placeConstraint) bool {
	var val string
	var present bool
	switch {
	case c.Field == "node.name":
		val, present = n.Name, true
	case strings.HasPrefix(c.Field, "node.label.") && len(c.Field) > len("node.label."):
		val, present = n.Labels[strings.TrimPrefix(c.Field, "node.label.")]
	default:
		return false
	}
	switch c.Op {
	case "==":
		return present && val == c.Value
	case "!=":
		return !present || val != c.Value
	default:
		return false
	}
}

// placeSortNodes returns the nodes sorted by name, without empty names and
// with one entry per name: the one that sorts first by (ineligible first,
// then labels).
func placeSortNodes(in []placeNode) []placeNode {
	nodes := make([]placeNode, 0, len(in))
	for _, n := range in {
		if n.Name != "" {
			nodes = append(nodes, n)
		}
	}
	slices.SortFunc(nodes, func(a, b placeNode) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		if a.Eligible != b.Eligible {
			if !a.Eligible {
				return -1
			}
			return 1
		}
		return placeCompareLabels(a.Labels, b.Labels)
	})
	return slices.CompactFunc(nodes, func(a, b placeNode) bool { return a.Name == b.Name })
}

// placeSortServices returns copies of the services sorted by name, each with
// its constraints sorted and deduplicated, Replicas < 0 read as 0, and one
// entry per name (the one that sorts first).
func placeSortServices(in []placeService) []placeService {
	svcs := make([]placeService, len(in))
	for i, s := range in {
		cs := slices.Clone(s.Constraints)
		slices.SortFunc(cs, placeCompareConstraints)
		s.Constraints = slices.Compact(cs)
		s.Replicas = max(s.Replicas, 0)
		svcs[i] = s
	}
	slices.SortFunc(svcs, func(a, b placeService) int {
		return cmp.Or(
			strings.Compare(a.Name, b.Name),
			cmp.Compare(a.Replicas, b.Replicas),
			slices.CompareFunc(a.Constraints, b.Constraints, placeCompareConstraints),
		)
	})
	return slices.CompactFunc(svcs, func(a, b placeService) bool { return a.Name == b.Name })
}

func placeCompareConstraints(a, b placeConstraint) int {
	return cmp.Or(
		strings.Compare(a.Field, b.Field),
		strings.Compare(a.Op, b.Op),
		strings.Compare(a.Value, b.Value),
	)
}

// placeCompareLabels orders label maps by their sorted (key, value) pairs.
func placeCompareLabels(a, b map[string]string) int {
	ka, kb := slices.Sorted(maps.Keys(a)), slices.Sorted(maps.Keys(b))
	for i := 0; i < len(ka) && i < len(kb); i++ {
		if c := cmp.Or(strings.Compare(ka[i], kb[i]), strings.Compare(a[ka[i]], b[kb[i]])); c != 0 {
			return c
		}
	}
	return cmp.Compare(len(ka), len(kb))
}

// FNV-1a 64 parameters (http://www.isthe.com/chongo/tech/comp/fnv/).
const (
	placeFNVOffset = 14695981039346656037
	placeFNVPrime  = 1099511628211
)

// placeKeyHash hashes the (service, slot) part of a rendezvous key; placeScore
// continues from it for each node, so a slot costs one pass over the service
// name rather than one per candidate.
func placeKeyHash(service string, slot int) uint64 {
	h := placeFNVUint(placeFNVOffset, uint64(len(service)))
	h = placeFNVString(h, service)
	return placeFNVUint(h, uint64(slot))
}

// placeScore is the rendezvous weight of node for the key hashed by
// placeKeyHash. The length prefixes make the encoding injective, and
// splitmix64 spreads FNV's weak high-to-low diffusion over all 64 bits.
func placeScore(key uint64, node string) uint64 {
	h := placeFNVUint(key, uint64(len(node)))
	return placeMix(placeFNVString(h, node))
}

func placeFNVString(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= placeFNVPrime
	}
	return h
}

// placeFNVUint feeds v to FNV-1a as 8 little-endian bytes.
func placeFNVUint(h, v uint64) uint64 {
	for range 8 {
		h ^= v & 0xff
		h *= placeFNVPrime
		v >>= 8
	}
	return h
}

// placeMix is the splitmix64 finalizer (Steele, Lea, Flood 2014).
func placeMix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

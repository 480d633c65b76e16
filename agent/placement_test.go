package agent

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// placeTestRuns is how many random scenarios each property test checks.
const placeTestRuns = 500

// placeTestPool is the constraints random scenarios draw from. gpu is never
// set, so its "==" is unsatisfiable; node.hostname is an unknown field.
var placeTestPool = []placeConstraint{
	{"node.label.zone", "==", "eu"},
	{"node.label.zone", "!=", "us"},
	{"node.label.disk", "==", "ssd"},
	{"node.label.disk", "!=", "hdd"},
	{"node.name", "!=", "n1"},
	{"node.name", "==", "n2"},
	{"node.label.gpu", "==", "true"},
	{"node.label.gpu", "!=", "true"},
	{"node.hostname", "==", "n3"},
}

// newPlaceTestRand returns a reproducible generator for property test seed.
func newPlaceTestRand(seed int) *rand.Rand {
	return rand.New(rand.NewPCG(uint64(seed), 0x6f726368706c6163)) // "orchplac"
}

// placeTestNode returns a random node called name.
func placeTestNode(r *rand.Rand, name string) placeNode {
	n := placeNode{Name: name, Labels: map[string]string{}, Eligible: r.IntN(5) > 0}
	if z := r.IntN(4); z < 3 {
		n.Labels["zone"] = []string{"eu", "us", "ap"}[z]
	}
	if d := r.IntN(3); d < 2 {
		n.Labels["disk"] = []string{"ssd", "hdd"}[d]
	}
	return n
}

// placeTestScenario returns a random input: up to 10 nodes, up to 6 services
// with up to 2 constraints, and up to 15 claims, some by dead nodes, on
// unknown services or on slots beyond Replicas.
func placeTestScenario(r *rand.Rand) placeInput {
	var in placeInput
	for i := range r.IntN(11) {
		in.Nodes = append(in.Nodes, placeTestNode(r, fmt.Sprintf("n%d", i)))
	}
	for i := range r.IntN(7) {
		s := placeService{Name: fmt.Sprintf("svc-%c", 'a'+i), Replicas: r.IntN(7)}
		for range r.IntN(3) {
			s.Constraints = append(s.Constraints, placeTestPool[r.IntN(len(placeTestPool))])
		}
		in.Services = append(in.Services, s)
	}
	for range r.IntN(16) {
		c := placeClaim{Slot: r.IntN(8), LTime: uint64(r.IntN(5))}
		if len(in.Services) > 0 && r.IntN(8) > 0 {
			c.Service = in.Services[r.IntN(len(in.Services))].Name
		} else {
			c.Service = "gone"
		}
		if len(in.Nodes) > 0 && r.IntN(6) > 0 {
			c.Node = in.Nodes[r.IntN(len(in.Nodes))].Name
		} else {
			c.Node = fmt.Sprintf("dead%d", r.IntN(2))
		}
		in.Claims = append(in.Claims, c)
	}
	return in
}

// placeTestClone deep-copies in, so shuffling or editing the copy cannot
// touch the original.
func placeTestClone(in placeInput) placeInput {
	out := placeInput{Claims: slices.Clone(in.Claims)}
	for _, n := range in.Nodes {
		n.Labels = maps.Clone(n.Labels)
		out.Nodes = append(out.Nodes, n)
	}
	for _, s := range in.Services {
		s.Constraints = slices.Clone(s.Constraints)
		out.Services = append(out.Services, s)
	}
	return out
}

// placeTestClaims turns a placement into the claims its holders would
// publish, at Lamport time lt.
func placeTestClaims(res map[placeSlot]placeResult, lt uint64) []placeClaim {
	var cs []placeClaim
	for s, r := range res {
		if r.Node != "" {
			cs = append(cs, placeClaim{Service: s.Service, Slot: s.Slot, Node: r.Node, LTime: lt})
		}
	}
	return cs
}

// placeTestMatches is the test's own reading of the constraint rules, written
// independently of placeSatisfies.
func placeTestMatches(n placeNode, c placeConstraint) bool {
	var val string
	var present bool
	if c.Field == "node.name" {
		val, present = n.Name, true
	} else if key, ok := strings.CutPrefix(c.Field, "node.label."); ok && key != "" {
		val, present = n.Labels[key]
	} else {
		return false
	}
	switch c.Op {
	case "==":
		return present && val == c.Value
	case "!=":
		return !present || val != c.Value
	}
	return false
}

// placeTestCandidates returns the names of the eligible nodes of in that
// satisfy every constraint of s.
func placeTestCandidates(in placeInput, s placeService) []string {
	var names []string
nodes:
	for _, n := range in.Nodes {
		if !n.Eligible {
			continue
		}
		for _, c := range s.Constraints {
			if !placeTestMatches(n, c) {
				continue nodes
			}
		}
		names = append(names, n.Name)
	}
	return names
}

// placeTestCheckMoves fails for every slot placed in before that is placed
// on a different node in after, unless its node is in moved.
func placeTestCheckMoves(t *testing.T, seed int, before, after map[placeSlot]placeResult, moved ...string) {
	t.Helper()
	for s, b := range before {
		if b.Node == "" || slices.Contains(moved, b.Node) {
			continue
		}
		if a, ok := after[s]; ok && a.Node != b.Node {
			t.Errorf("seed %d: %v moved from %q to %+v", seed, s, b.Node, a)
		}
	}
}

func TestPlace_Table(t *testing.T) {
	node := func(name string, eligible bool, labels ...string) placeNode {
		n := placeNode{Name: name, Eligible: eligible, Labels: map[string]string{}}
		for _, kv := range labels {
			k, v, _ := strings.Cut(kv, "=")
			n.Labels[k] = v
		}
		return n
	}
	svc := func(name string, replicas int, cs ...placeConstraint) placeService {
		return placeService{Name: name, Replicas: replicas, Constraints: cs}
	}
	on := func(n string) placeResult { return placeResult{Node: n} }
	pending := func(reason string) placeResult { return placeResult{Pending: reason} }
	zoneEU := placeConstraint{"node.label.zone", "==", "eu"}
	notUS := placeConstraint{"node.label.zone", "!=", "us"}
	ssd := placeConstraint{"node.label.disk", "==", "ssd"}

	tests := []struct {
		name string
		in   placeInput
		want map[placeSlot]placeResult
	}{
		{
			name: "no nodes",
			in:   placeInput{Services: []placeService{svc("web", 2)}},
			want: map[placeSlot]placeResult{
				{"web", 0}: pending("no eligible nodes"),
				{"web", 1}: pending("no eligible nodes"),
			},
		},
		{
			name: "only ineligible nodes",
			in: placeInput{
				Nodes:    []placeNode{node("a", false), node("b", false)},
				Services: []placeService{svc("web", 1)},
				Claims:   []placeClaim{{"web", 0, "a", 1}},
			},
			want: map[placeSlot]placeResult{{"web", 0}: pending("no eligible nodes")},
		},
		{
			name: "unsatisfiable constraint is named",
			in: placeInput{
				Nodes:    []placeNode{node("a", true, "zone=us"), node("b", true)},
				Services: []placeService{svc("web", 1, zoneEU)},
			},
			want: map[placeSlot]placeResult{{"web", 0}: pending("no eligible node satisfies node.label.zone==eu")},
		},
		{
			name: "label only on an ineligible node",
			in: placeInput{
				Nodes:    []placeNode{node("a", false, "zone=eu"), node("b", true, "zone=us")},
				Services: []placeService{svc("web", 1, zoneEU)},
			},
			want: map[placeSlot]placeResult{{"web", 0}: pending("no eligible node satisfies node.label.zone==eu")},
		},
		{
			name: "only the unsatisfiable constraints are named",
			in: placeInput{
				Nodes:    []placeNode{node("a", true, "zone=eu")},
				Services: []placeService{svc("web", 1, ssd, zoneEU, placeConstraint{"node.label.gpu", "==", "true"})},
			},
			want: map[placeSlot]placeResult{{"web", 0}: pending("no eligible node satisfies node.label.disk==ssd, node.label.gpu==true")},
		},
		{
			name: "jointly unsatisfiable constraints are all named",
			in: placeInput{
				Nodes:    []placeNode{node("a", true, "zone=eu", "disk=hdd"), node("b", true, "zone=us", "disk=ssd")},
				Services: []placeService{svc("web", 1, zoneEU, ssd)},
			},
			want: map[placeSlot]placeResult{{"web", 0}: pending("no eligible node satisfies all of node.label.disk==ssd, node.label.zone==eu")},
		},
		{
			name: "unknown field matches nothing",
			in: placeInput{
				Nodes:    []placeNode{node("a", true)},
				Services: []placeService{svc("web", 1, placeConstraint{"node.hostname", "==", "a"})},
			},
			want: map[placeSlot]placeResult{{"web", 0}: pending("no eligible node satisfies node.hostname==a")},
		},
		{
			name: "unknown operator matches nothing",
			in: placeInput{
				Nodes:    []placeNode{node("a", true, "zone=eu")},
				Services: []placeService{svc("web", 1, placeConstraint{"node.label.zone", "=~", "e.*"})},
			},
			want: map[placeSlot]placeResult{{"web", 0}: pending("no eligible node satisfies node.label.zone=~e.*")},
		},
		{
			name: "missing label: != matches, == does not",
			in: placeInput{
				Nodes:    []placeNode{node("a", true), node("b", true, "zone=us")},
				Services: []placeService{svc("not-us", 1, notUS), svc("us", 1, placeConstraint{"node.label.zone", "==", "us"})},
			},
			want: map[placeSlot]placeResult{{"not-us", 0}: on("a"), {"us", 0}: on("b")},
		},
		{
			name: "node.name pins",
			in: placeInput{
				Nodes:    []placeNode{node("a", true), node("b", true), node("c", true)},
				Services: []placeService{svc("db", 2, placeConstraint{"node.name", "==", "c"})},
			},
			want: map[placeSlot]placeResult{{"db", 0}: on("c"), {"db", 1}: on("c")},
		},
		{
			name: "sticky claim kept although spread is uneven",
			in: placeInput{
				Nodes:    []placeNode{node("a", true), node("b", true)},
				Services: []placeService{svc("web", 2)},
				Claims:   []placeClaim{{"web", 0, "a", 1}, {"web", 1, "a", 1}},
			},
			want: map[placeSlot]placeResult{{"web", 0}: on("a"), {"web", 1}: on("a")},
		},
		{
			name: "sticky slots count toward spread",
			in: placeInput{
				Nodes:    []placeNode{node("a", true), node("b", true), node("c", true), node("d", true), node("e", true)},
				Services: []placeService{svc("web", 5)},
				Claims:   []placeClaim{{"web", 1, "a", 1}, {"web", 2, "b", 1}, {"web", 3, "c", 1}, {"web", 4, "d", 1}},
			},
			want: map[placeSlot]placeResult{
				{"web", 0}: on("e"), {"web", 1}: on("a"), {"web", 2}: on("b"), {"web", 3}: on("c"), {"web", 4}: on("d"),
			},
		},
		{
			name: "later claim wins",
			in: placeInput{
				Nodes:    []placeNode{node("a", true), node("b", true)},
				Services: []placeService{svc("web", 1)},
				Claims:   []placeClaim{{"web", 0, "b", 7}, {"web", 0, "a", 5}},
			},
			want: map[placeSlot]placeResult{{"web", 0}: on("b")},
		},
		{
			name: "later claim wins over greater name",
			in: placeInput{
				Nodes:    []placeNode{node("a", true), node("b", true)},
				Services: []placeService{svc("web", 1)},
				Claims:   []placeClaim{{"web", 0, "b", 5}, {"web", 0, "a", 7}},
			},
			want: map[placeSlot]placeResult{{"web", 0}: on("a")},
		},
		{
			name: "equal LTime: greater name wins",
			in: placeInput{
				Nodes:    []placeNode{node("a", true), node("b", true)},
				Services: []placeService{svc("web", 1)},
				Claims:   []placeClaim{{"web", 0, "b", 7}, {"web", 0, "a", 7}, {"web", 0, "b", 7}},
			},
			want: map[placeSlot]placeResult{{"web", 0}: on("b")},
		},
		{
			name: "later claim by a dead node is ignored",
			in: placeInput{
				Nodes:    []placeNode{node("a", true), node("b", true)},
				Services: []placeService{svc("web", 1)},
				Claims:   []placeClaim{{"web", 0, "a", 3}, {"web", 0, "zz-dead", 9}},
			},
			want: map[placeSlot]placeResult{{"web", 0}: on("a")},
		},
		{
			name: "later claim by an ineligible node is ignored",
			in: placeInput{
				Nodes:    []placeNode{node("a", true), node("b", false)},
				Services: []placeService{svc("web", 1)},
				Claims:   []placeClaim{{"web", 0, "a", 3}, {"web", 0, "b", 9}},
			},
			want: map[placeSlot]placeResult{{"web", 0}: on("a")},
		},
		{
			name: "ineligible holder loses its slot",
			in: placeInput{
				Nodes:    []placeNode{node("a", false), node("b", true)},
				Services: []placeService{svc("web", 1)},
				Claims:   []placeClaim{{"web", 0, "a", 3}},
			},
			want: map[placeSlot]placeResult{{"web", 0}: on("b")},
		},
		{
			name: "holder that no longer satisfies the constraints loses its slot",
			in: placeInput{
				Nodes:    []placeNode{node("a", true, "zone=us"), node("b", true, "zone=eu")},
				Services: []placeService{svc("web", 1, notUS)},
				Claims:   []placeClaim{{"web", 0, "a", 3}},
			},
			want: map[placeSlot]placeResult{{"web", 0}: on("b")},
		},
		{
			name: "claims beyond Replicas, negative slots and unknown services are dropped",
			in: placeInput{
				Nodes:    []placeNode{node("a", true), node("b", true)},
				Services: []placeService{svc("web", 1)},
				Claims: []placeClaim{
					{"web", 0, "a", 1}, {"web", 1, "b", 1}, {"web", 2, "b", 1},
					{"web", -1, "b", 1}, {"gone", 0, "a", 1},
				},
			},
			want: map[placeSlot]placeResult{{"web", 0}: on("a")},
		},
		{
			name: "zero and negative replicas have no slots",
			in: placeInput{
				Nodes:    []placeNode{node("a", true)},
				Services: []placeService{svc("zero", 0), svc("neg", -2)},
				Claims:   []placeClaim{{"zero", 0, "a", 1}},
			},
			want: map[placeSlot]placeResult{},
		},
		{
			name: "duplicate node names: the ineligible copy is kept",
			in: placeInput{
				Nodes:    []placeNode{node("a", true), node("a", false), node("b", true)},
				Services: []placeService{svc("web", 1)},
				Claims:   []placeClaim{{"web", 0, "a", 1}},
			},
			want: map[placeSlot]placeResult{{"web", 0}: on("b")},
		},
		{
			name: "a node named empty is ignored",
			in: placeInput{
				Nodes:    []placeNode{node("", true)},
				Services: []placeService{svc("web", 1)},
				Claims:   []placeClaim{{"web", 0, "", 1}},
			},
			want: map[placeSlot]placeResult{{"web", 0}: pending("no eligible nodes")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := place(tt.in)
			if !maps.Equal(got, tt.want) {
				t.Errorf("place() = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestPlace_Golden pins a whole placement. A change here means agents of the
// old and new version would disagree about unclaimed slots during an upgrade.
func TestPlace_Golden(t *testing.T) {
	in := placeInput{
		Nodes: []placeNode{
			{Name: "node-1", Eligible: true, Labels: map[string]string{"zone": "eu"}},
			{Name: "node-2", Eligible: true, Labels: map[string]string{"zone": "us"}},
			{Name: "node-3", Eligible: true, Labels: map[string]string{"zone": "eu"}},
			{Name: "node-4", Eligible: true},
		},
		Services: []placeService{
			{Name: "api", Replicas: 2},
			{Name: "db", Replicas: 1, Constraints: []placeConstraint{{"node.label.zone", "==", "eu"}}},
			{Name: "web", Replicas: 6},
		},
	}
	want := map[placeSlot]placeResult{
		{"api", 0}: {Node: "node-4"},
		{"api", 1}: {Node: "node-2"},
		{"db", 0}:  {Node: "node-1"},
		{"web", 0}: {Node: "node-4"},
		{"web", 1}: {Node: "node-2"},
		{"web", 2}: {Node: "node-1"},
		{"web", 3}: {Node: "node-3"},
		{"web", 4}: {Node: "node-3"},
		{"web", 5}: {Node: "node-1"},
	}
	got := place(in)
	if !maps.Equal(got, want) {
		var b strings.Builder
		for _, s := range slices.SortedFunc(maps.Keys(got), func(a, b placeSlot) int {
			return strings.Compare(fmt.Sprint(a), fmt.Sprint(b))
		}) {
			fmt.Fprintf(&b, "\t\t{%q, %d}: {Node: %q},\n", s.Service, s.Slot, got[s].Node)
		}
		t.Errorf("place() changed; got:\n%s", b.String())
	}
}

// TestPlace_ScoreIsStable pins the rendezvous score: it is part of the
// protocol between agents, so it must not change between versions or
// platforms. The values were cross-checked with an independent implementation:
// splitmix64(FNV-1a-64(le64(len(service)) service le64(slot) le64(len(node)) node)).
func TestPlace_ScoreIsStable(t *testing.T) {
	tests := []struct {
		service string
		slot    int
		node    string
		want    uint64
	}{
		{"web", 0, "node-1", 0x0b098fe92295069d},
		{"web", 1, "node-1", 0x663739a9bc1573f6},
		{"web", 0, "node-2", 0x61d92ff47df78862},
		{"", 0, "", 0x6d688654e9834407},
	}
	for _, tt := range tests {
		if got := placeScore(placeKeyHash(tt.service, tt.slot), tt.node); got != tt.want {
			t.Errorf("placeScore(%q, %d, %q) = %#x, want %#x", tt.service, tt.slot, tt.node, got, tt.want)
		}
	}
}

func TestPlace_OrderIndependent(t *testing.T) {
	for seed := range placeTestRuns {
		r := newPlaceTestRand(seed)
		in := placeTestScenario(r)
		orig := placeTestClone(in)
		want := place(in)
		if !reflect.DeepEqual(in, orig) {
			t.Fatalf("seed %d: place modified its input", seed)
		}

		sh := placeTestClone(in)
		r.Shuffle(len(sh.Nodes), func(i, j int) { sh.Nodes[i], sh.Nodes[j] = sh.Nodes[j], sh.Nodes[i] })
		r.Shuffle(len(sh.Services), func(i, j int) { sh.Services[i], sh.Services[j] = sh.Services[j], sh.Services[i] })
		for _, s := range sh.Services {
			r.Shuffle(len(s.Constraints), func(i, j int) { s.Constraints[i], s.Constraints[j] = s.Constraints[j], s.Constraints[i] })
		}
		for range r.IntN(4) { // exact duplicates change nothing
			if len(sh.Claims) > 0 {
				sh.Claims = append(sh.Claims, sh.Claims[r.IntN(len(sh.Claims))])
			}
		}
		r.Shuffle(len(sh.Claims), func(i, j int) { sh.Claims[i], sh.Claims[j] = sh.Claims[j], sh.Claims[i] })

		if got := place(sh); !maps.Equal(got, want) {
			t.Fatalf("seed %d: shuffled input placed differently:\n got %v\nwant %v", seed, got, want)
		}
	}
}

// TestPlace_Invariants checks, on random inputs, what must hold of every
// placement: the slot set, constraints, eligibility, pending reasons and the
// winning claim.
func TestPlace_Invariants(t *testing.T) {
	for seed := range placeTestRuns {
		in := placeTestScenario(newPlaceTestRand(seed))
		got := place(in)
		nodes := map[string]placeNode{}
		anyEligible := false
		for _, n := range in.Nodes {
			nodes[n.Name] = n
			anyEligible = anyEligible || n.Eligible
		}

		wantSlots := 0
		for _, s := range in.Services {
			wantSlots += s.Replicas
			cands := placeTestCandidates(in, s)
			for i := range s.Replicas {
				res, ok := got[placeSlot{s.Name, i}]
				switch {
				case !ok:
					t.Fatalf("seed %d: slot %s/%d missing", seed, s.Name, i)
				case len(cands) == 0:
					if res.Node != "" || res.Pending == "" {
						t.Fatalf("seed %d: slot %s/%d = %+v, want pending (no candidates)", seed, s.Name, i, res)
					}
					if !anyEligible && res.Pending != placeNoEligible {
						t.Fatalf("seed %d: slot %s/%d reason %q, want %q", seed, s.Name, i, res.Pending, placeNoEligible)
					}
					for _, c := range s.Constraints {
						if anyEligible && len(placeTestCandidates(in, placeService{Constraints: []placeConstraint{c}})) == 0 &&
							!strings.Contains(res.Pending, c.String()) {
							t.Fatalf("seed %d: slot %s/%d reason %q does not name %s", seed, s.Name, i, res.Pending, c)
						}
					}
				case !slices.Contains(cands, res.Node) || res.Pending != "":
					t.Fatalf("seed %d: slot %s/%d = %+v, not one of the candidates %v", seed, s.Name, i, res, cands)
				}

				// The winning claim is the latest valid one, ties to the greater name.
				var win *placeClaim
				for _, c := range in.Claims {
					if c.Service != s.Name || c.Slot != i || !slices.Contains(cands, c.Node) {
						continue
					}
					if win == nil || c.LTime > win.LTime || (c.LTime == win.LTime && c.Node > win.Node) {
						win = &c
					}
				}
				if win != nil && res.Node != win.Node {
					t.Fatalf("seed %d: slot %s/%d on %q, want claimant %q", seed, s.Name, i, res.Node, win.Node)
				}
			}
		}
		if len(got) != wantSlots {
			t.Fatalf("seed %d: %d slots placed, want %d", seed, len(got), wantSlots)
		}
	}
}

// TestPlace_ClaimsAreAFixpoint: publishing a placement as claims and placing
// again changes nothing.
func TestPlace_ClaimsAreAFixpoint(t *testing.T) {
	for seed := range placeTestRuns {
		in := placeTestScenario(newPlaceTestRand(seed))
		first := place(in)
		in.Claims = placeTestClaims(first, 10)
		if again := place(in); !maps.Equal(again, first) {
			t.Fatalf("seed %d: re-placing from claims changed the placement:\n got %v\nwant %v", seed, again, first)
		}
	}
}

func TestPlace_LosingANodeMovesOnlyItsSlots(t *testing.T) {
	for seed := range placeTestRuns {
		r := newPlaceTestRand(seed)
		in := placeTestScenario(r)
		if len(in.Nodes) == 0 {
			continue
		}
		before := place(in)
		in.Claims = placeTestClaims(before, 10)
		lost := in.Nodes[r.IntN(len(in.Nodes))].Name
		in.Nodes = slices.DeleteFunc(in.Nodes, func(n placeNode) bool { return n.Name == lost })
		after := place(in)
		placeTestCheckMoves(t, seed, before, after, lost)
		for s, a := range after {
			if a.Node == lost {
				t.Errorf("seed %d: %v still on lost node %q", seed, s, lost)
			}
		}
	}
}

func TestPlace_IneligibleNodeLosesOnlyItsSlots(t *testing.T) {
	for seed := range placeTestRuns {
		r := newPlaceTestRand(seed)
		in := placeTestScenario(r)
		if len(in.Nodes) == 0 {
			continue
		}
		before := place(in)
		in.Claims = placeTestClaims(before, 10)
		i := r.IntN(len(in.Nodes))
		in.Nodes[i].Eligible = false
		after := place(in)
		placeTestCheckMoves(t, seed, before, after, in.Nodes[i].Name)
		for s, a := range after {
			if a.Node == in.Nodes[i].Name {
				t.Errorf("seed %d: %v still on ineligible node %q", seed, s, a.Node)
			}
		}
	}
}

func TestPlace_AddingANodeMovesNothing(t *testing.T) {
	for seed := range placeTestRuns {
		r := newPlaceTestRand(seed)
		in := placeTestScenario(r)
		before := place(in)
		in.Claims = placeTestClaims(before, 10)
		in.Nodes = append(in.Nodes, placeTestNode(r, "new"))
		after := place(in)
		placeTestCheckMoves(t, seed, before, after)
	}
}

func TestPlace_ScaleDownDropsHighSlots(t *testing.T) {
	for seed := range placeTestRuns {
		r := newPlaceTestRand(seed)
		in := placeTestScenario(r)
		if len(in.Services) == 0 {
			continue
		}
		before := place(in)
		in.Claims = placeTestClaims(before, 10)
		s := &in.Services[r.IntN(len(in.Services))]
		s.Replicas = r.IntN(s.Replicas + 1)
		after := place(in)
		placeTestCheckMoves(t, seed, before, after)
		for slot := range before {
			_, kept := after[slot]
			if want := slot.Service != s.Name || slot.Slot < s.Replicas; kept != want {
				t.Errorf("seed %d: slot %v kept=%v after scaling %s to %d", seed, slot, kept, s.Name, s.Replicas)
			}
		}
	}
}

func TestPlace_ScaleUpMovesNothing(t *testing.T) {
	for seed := range placeTestRuns {
		r := newPlaceTestRand(seed)
		in := placeTestScenario(r)
		if len(in.Services) == 0 {
			continue
		}
		before := place(in)
		in.Claims = placeTestClaims(before, 10)
		s := &in.Services[r.IntN(len(in.Services))]
		s.Replicas += 1 + r.IntN(4)
		after := place(in)
		placeTestCheckMoves(t, seed, before, after)
		for i := range s.Replicas {
			if _, ok := after[placeSlot{s.Name, i}]; !ok {
				t.Errorf("seed %d: slot %s/%d missing after scale-up", seed, s.Name, i)
			}
		}
	}
}

// TestPlace_Spread: without claims, a service's slots land on distinct nodes
// when there are enough candidates, and otherwise evenly (counts differ by at
// most one).
func TestPlace_Spread(t *testing.T) {
	for seed := range placeTestRuns {
		in := placeTestScenario(newPlaceTestRand(seed))
		in.Claims = nil
		got := place(in)
		for _, s := range in.Services {
			cands := placeTestCandidates(in, s)
			if len(cands) == 0 {
				continue
			}
			count := map[string]int{}
			for _, c := range cands {
				count[c] = 0
			}
			for i := range s.Replicas {
				count[got[placeSlot{s.Name, i}].Node]++
			}
			lo, hi := slices.Min(slices.Collect(maps.Values(count))), slices.Max(slices.Collect(maps.Values(count)))
			if len(cands) >= s.Replicas && hi > 1 {
				t.Errorf("seed %d: %s (%d replicas, %d candidates) not on distinct nodes: %v", seed, s.Name, s.Replicas, len(cands), count)
			}
			if hi-lo > 1 {
				t.Errorf("seed %d: %s unevenly spread: %v", seed, s.Name, count)
			}
		}
	}
}

// TestPlace_SpreadAroundStickySlots: sticky slots count toward spread, so a
// service whose claims hold at most ceil(Replicas/candidates) slots per node
// ends with at most that many on any node once its free slots are placed.
func TestPlace_SpreadAroundStickySlots(t *testing.T) {
	for seed := range placeTestRuns {
		r := newPlaceTestRand(seed)
		in := placeTestScenario(r)
		for _, s := range in.Services { // denser claims than the scenario's
			for i := range s.Replicas {
				if len(in.Nodes) > 0 && r.IntN(2) == 0 {
					in.Claims = append(in.Claims, placeClaim{s.Name, i, in.Nodes[r.IntN(len(in.Nodes))].Name, 1})
				}
			}
		}
		got := place(in)
		for _, s := range in.Services {
			cands := placeTestCandidates(in, s)
			if len(cands) == 0 || s.Replicas == 0 {
				continue
			}
			limit := (s.Replicas + len(cands) - 1) / len(cands)
			sticky, final := map[string]int{}, map[string]int{}
			for i := range s.Replicas {
				if slices.ContainsFunc(in.Claims, func(c placeClaim) bool {
					return c.Service == s.Name && c.Slot == i && slices.Contains(cands, c.Node)
				}) {
					sticky[got[placeSlot{s.Name, i}].Node]++
				}
				final[got[placeSlot{s.Name, i}].Node]++
			}
			if len(sticky) > 0 && slices.Max(slices.Collect(maps.Values(sticky))) > limit {
				continue // the claims themselves exceed the limit; stickiness keeps them
			}
			if m := slices.Max(slices.Collect(maps.Values(final))); m > limit {
				t.Errorf("seed %d: %s (%d replicas, %d candidates) has %d slots on one node: sticky %v, final %v",
					seed, s.Name, s.Replicas, len(cands), m, sticky, final)
			}
		}
	}
}

// TestPlace_Distribution: a hash that clusters would overload some nodes.
func TestPlace_Distribution(t *testing.T) {
	var in placeInput
	for i := range 10 {
		in.Nodes = append(in.Nodes, placeNode{Name: fmt.Sprintf("node-%02d", i), Eligible: true})
	}
	for i := range 100 {
		in.Services = append(in.Services, placeService{Name: fmt.Sprintf("svc-%03d", i), Replicas: 3})
	}
	count := map[string]int{}
	for _, r := range place(in) {
		count[r.Node]++
	}
	for _, n := range in.Nodes {
		if c := count[n.Name]; c < 15 || c > 45 {
			t.Errorf("%s holds %d of 300 slots, want 15..45 (all: %v)", n.Name, c, count)
		}
	}
}

func TestPlaceFor(t *testing.T) {
	in := placeTestScenario(newPlaceTestRand(7))
	all := place(in)
	for _, n := range append(slices.Clone(in.Nodes), placeNode{Name: "absent"}, placeNode{}) {
		var want []placeSlot
		for s, r := range all {
			if n.Name != "" && r.Node == n.Name {
				want = append(want, s)
			}
		}
		slices.SortFunc(want, func(a, b placeSlot) int {
			if c := strings.Compare(a.Service, b.Service); c != 0 {
				return c
			}
			return a.Slot - b.Slot
		})
		if got := placeFor(in, n.Name); !slices.Equal(got, want) {
			t.Errorf("placeFor(%q) = %v, want %v", n.Name, got, want)
		}
	}
}

// BenchmarkPlace: 50 nodes, 1000 services × 3 replicas, every slot claimed
// (the steady state) and, for comparison, nothing claimed (a cold start).
func BenchmarkPlace(b *testing.B) {
	var in placeInput
	for i := range 50 {
		in.Nodes = append(in.Nodes, placeNode{
			Name:     fmt.Sprintf("node-%02d", i),
			Eligible: true,
			Labels:   map[string]string{"zone": []string{"eu", "us"}[i%2]},
		})
	}
	for i := range 1000 {
		s := placeService{Name: fmt.Sprintf("svc-%04d", i), Replicas: 3}
		if i%4 == 0 {
			s.Constraints = []placeConstraint{{"node.label.zone", "==", "eu"}}
		}
		in.Services = append(in.Services, s)
	}
	fresh := in
	in.Claims = placeTestClaims(place(in), 1)
	b.Run("claimed", func(b *testing.B) {
		for b.Loop() {
			place(in)
		}
	})
	b.Run("fresh", func(b *testing.B) {
		for b.Loop() {
			place(fresh)
		}
	})
}

package agent

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/orchproject/orch/gossip"
)

func TestSubnetTag_RoundTrip(t *testing.T) {
	c := subnetClaim{Prefix: netip.MustParsePrefix("10.213.7.0/24"), At: 1732570000123}
	got, ok := parseSubnetTag(c.tag())
	if !ok || got != c {
		t.Fatalf("parseSubnetTag(%q) = %v, %v", c.tag(), got, ok)
	}
	for _, bad := range []string{"", "10.213.7.0/24", "10.213.7.1/24@1", "x@1", "10.213.7.0/24@-1", "10.213.7.0/24@x", "fd00::/64@1"} {
		if _, ok := parseSubnetTag(bad); ok {
			t.Errorf("parseSubnetTag(%q) accepted", bad)
		}
	}
}

func TestSubnetClaim_Beats(t *testing.T) {
	p := netip.MustParsePrefix("10.213.1.0/24")
	early, late, pinned := subnetClaim{p, 10}, subnetClaim{p, 20}, subnetClaim{p, 0}
	if !early.beats("b", late, "a") || late.beats("a", early, "b") {
		t.Error("the earlier claim must win whatever the names")
	}
	if !early.beats("a", early, "b") || early.beats("b", early, "a") {
		t.Error("equal times: the smaller name must win")
	}
	if !pinned.beats("z", early, "a") {
		t.Error("a pinned claim must beat an automatic one")
	}
}

func TestChooseSubnet(t *testing.T) {
	overlay := netip.MustParsePrefix("10.213.0.0/16")
	first, err := chooseSubnet(overlay, 24, "node-a", nil)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := chooseSubnet(overlay, 24, "node-a", nil); again != first {
		t.Errorf("first choice is not stable: %v then %v", first, again)
	}
	if first.Bits() != 24 || !overlay.Contains(first.Addr()) || first != first.Masked() {
		t.Errorf("chose %v: want a masked /24 inside %v", first, overlay)
	}
	second, err := chooseSubnet(overlay, 24, "node-a", []netip.Prefix{first})
	if err != nil || second == first {
		t.Errorf("with %v taken chose %v, %v", first, second, err)
	}

	// A tiny overlay fills up, and every pick is distinct until then.
	small := netip.MustParsePrefix("10.9.0.0/22") // four /24s
	var taken []netip.Prefix
	for i := range 4 {
		p, err := chooseSubnet(small, 24, fmt.Sprint("n", i), taken)
		if err != nil {
			t.Fatalf("pick %d: %v", i, err)
		}
		for _, q := range taken {
			if q.Overlaps(p) {
				t.Fatalf("pick %d: %v overlaps taken %v", i, p, q)
			}
		}
		taken = append(taken, p)
	}
	if p, err := chooseSubnet(small, 24, "n9", taken); err == nil {
		t.Errorf("full overlay: chose %v", p)
	}
	// A pinned subnet of another size is respected.
	if p, err := chooseSubnet(small, 24, "n9", []netip.Prefix{netip.MustParsePrefix("10.9.0.0/23"), netip.MustParsePrefix("10.9.2.0/24")}); err != nil || p != netip.MustParsePrefix("10.9.3.0/24") {
		t.Errorf("around a /23: chose %v, %v; want 10.9.3.0/24", p, err)
	}
}

func member(name string, status gossip.Status, claim string) gossip.Member {
	tags := map[string]string{}
	if claim != "" {
		tags[tagSubnet] = claim
	}
	return gossip.Member{Name: name, ID: "id-" + name, Addr: netip.MustParseAddrPort("10.47.0.1:7946"), Status: status, Tags: tags, Orch: true}
}

// TestSubnetConvergence plays the leaderless protocol: nodes that claimed
// at once with random views, each re-claiming when it loses a conflict it
// sees, end with distinct subnets.
func TestSubnetConvergence(t *testing.T) {
	overlay := netip.MustParsePrefix("10.213.0.0/20") // 16 subnets for 12 nodes: collisions are likely
	for seed := range 50 {
		rng := rand.New(rand.NewPCG(uint64(seed), 1))
		const n = 12
		claims := map[string]subnetClaim{}
		names := make([]string, n)
		for i := range n {
			names[i] = fmt.Sprintf("h%d", i)
			p, err := chooseSubnet(overlay, 24, names[i], nil) // nobody known yet
			if err != nil {
				t.Fatal(err)
			}
			claims[names[i]] = subnetClaim{p, 1000 + int64(rng.IntN(3))}
		}
		clock := int64(2000)
		for round := 0; ; round++ {
			if round > 50 {
				t.Fatalf("seed %d: no convergence after 50 rounds: %v", seed, claims)
			}
			var ms []gossip.Member
			for _, name := range names {
				ms = append(ms, member(name, gossip.StatusAlive, claims[name].tag()))
			}
			moved := false
			for _, name := range rng.Perm(n) {
				self := names[name]
				others := memberClaims(ms, self)
				if _, lost := conflictWith(self, claims[self], others); !lost {
					continue
				}
				var taken []netip.Prefix
				for _, o := range others {
					taken = append(taken, o.Claim.Prefix)
				}
				p, err := chooseSubnet(overlay, 24, self, taken)
				if err != nil {
					t.Fatal(err)
				}
				clock++
				claims[self] = subnetClaim{p, clock}
				moved = true
			}
			if !moved {
				break
			}
		}
		seen := map[netip.Prefix]string{}
		for name, c := range claims {
			if other, dup := seen[c.Prefix]; dup {
				t.Fatalf("seed %d: %s and %s both hold %v", seed, name, other, c.Prefix)
			}
			seen[c.Prefix] = name
		}
	}
}

func TestMemberClaimsAndPeers(t *testing.T) {
	ms := []gossip.Member{
		member("self", gossip.StatusAlive, "10.213.1.0/24@5"),
		member("a", gossip.StatusAlive, "10.213.2.0/24@5"),
		member("b", gossip.StatusFailed, "10.213.3.0/24@5"),
		member("c", gossip.StatusLeft, "10.213.4.0/24@5"),
		member("d", gossip.StatusAlive, ""),
		member("e", gossip.StatusAlive, "10.213.2.0/24@9"), // loses to a
	}
	foreign := member("f", gossip.StatusAlive, "10.213.5.0/24@1")
	foreign.Orch = false
	ms = append(ms, foreign)

	var claimants []string
	for _, c := range memberClaims(ms, "self") {
		claimants = append(claimants, c.Node)
	}
	if fmt.Sprint(claimants) != "[a b e]" {
		t.Errorf("claims held by %v, want [a b e] (failed keeps, left frees, foreign ignored)", claimants)
	}
	var peers []string
	for _, p := range overlayPeers(ms, "self") {
		peers = append(peers, p.Name+"="+p.Subnet.String())
	}
	if fmt.Sprint(peers) != "[a=10.213.2.0/24]" {
		t.Errorf("peers %v, want only a (b failed, c left, d unclaimed, e lost to a)", peers)
	}
}

func TestIPAM(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ipam.json")
	subnet := netip.MustParsePrefix("10.213.9.0/29") // .2-.6 usable
	m, err := loadIPAM(path, subnet)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]netip.Prefix{}
	for _, id := range []string{"r1", "r2", "r3", "r4", "r5"} {
		a, err := m.addr(id)
		if err != nil {
			t.Fatalf("addr(%s): %v", id, err)
		}
		got[id] = a
	}
	if got["r1"].String() != "10.213.9.2/29" || got["r5"].String() != "10.213.9.6/29" {
		t.Errorf("allocations %v: want .2 to .6 in order, skipping network, gateway and broadcast", got)
	}
	if _, err := m.addr("r6"); err == nil {
		t.Error("a full subnet gave out another address")
	}
	if a, _ := m.addr("r3"); a != got["r3"] {
		t.Errorf("r3 asked again got %v, want its %v", a, got["r3"])
	}
	if err := m.release("r2"); err != nil {
		t.Fatal(err)
	}
	a6, err := m.addr("r6")
	if err != nil || a6 != got["r2"] {
		t.Errorf("r6 = %v, %v; want r2's freed %v (the only free one)", a6, err, got["r2"])
	}
	// Reloaded: the same allocations; another subnet: none.
	m2, err := loadIPAM(path, subnet)
	if err != nil {
		t.Fatal(err)
	}
	if a, _ := m2.addr("r6"); a != a6 {
		t.Errorf("after reload r6 = %v, want %v", a, a6)
	}
	if err := m2.adopt("r9", got["r1"].Addr()); err == nil {
		t.Error("adopt of an address held by another replica succeeded")
	}
	m3, err := loadIPAM(path, netip.MustParsePrefix("10.213.10.0/24"))
	if err != nil {
		t.Fatal(err)
	}
	if len(m3.ids()) != 0 {
		t.Errorf("a new subnet kept allocations %v", m3.ids())
	}
}

func TestIPAM_RoundRobin(t *testing.T) {
	m, err := loadIPAM(filepath.Join(t.TempDir(), "ipam.json"), netip.MustParsePrefix("10.213.9.0/24"))
	if err != nil {
		t.Fatal(err)
	}
	a1, _ := m.addr("r1")
	m.release("r1")
	a2, _ := m.addr("r2")
	if a1 == a2 {
		t.Errorf("a freed address was reused at once (%v)", a1)
	}
}

package netplane

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// testPeer returns peer k of a lab: node nK at 10.47.0.K with subnet
// 10.213.K.0/24.
func testPeer(k int) Peer {
	return Peer{
		Name:     fmt.Sprintf("n%d", k),
		Underlay: netip.AddrFrom4([4]byte{10, 47, 0, byte(k)}),
		Subnet:   netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 213, byte(k), 0}), 24),
		MAC:      MACFromID(fmt.Sprintf("n%d", k)),
	}
}

func TestValidPeers(t *testing.T) {
	self := validConfig() // n1
	p2, p3 := testPeer(2), testPeer(3)
	mod := func(p Peer, f func(*Peer)) Peer { f(&p); return p }
	for _, tc := range []struct {
		name    string
		peers   []Peer
		want    []string // names kept, in order
		wantErr []string
	}{
		{"sorted by name", []Peer{p3, p2}, []string{"n2", "n3"}, nil},
		{"no name", []Peer{mod(p2, func(p *Peer) { p.Name = "" })}, nil, []string{"no name"}},
		{"family", []Peer{mod(p2, func(p *Peer) { p.Underlay = netip.MustParseAddr("fd00::2") })}, nil, []string{"same address family"}},
		{"own underlay", []Peer{mod(p2, func(p *Peer) { p.Underlay = self.Underlay })}, nil, []string{"own address"}},
		{"overlaps self", []Peer{mod(p2, func(p *Peer) { p.Subnet = netip.MustParsePrefix("10.213.0.0/16") })}, nil, []string{"overlaps this node's"}},
		{"unmasked", []Peer{mod(p2, func(p *Peer) { p.Subnet = netip.MustParsePrefix("10.213.2.9/24") })}, nil, []string{"masked IPv4"}},
		{"own mac", []Peer{mod(p2, func(p *Peer) { p.MAC = self.MAC })}, nil, []string{"this node's own"}},
		{"bad mac", []Peer{mod(p2, func(p *Peer) { p.MAC = nil })}, nil, []string{"mac: required"}},
		{"twice", []Peer{p2, p2}, []string{"n2"}, []string{"listed twice"}},
		{"subnet clash keeps first name", []Peer{mod(p3, func(p *Peer) { p.Subnet = p2.Subnet }), p2}, []string{"n2"}, []string{"n3: subnet 10.213.2.0/24 overlaps 10.213.2.0/24 of n2"}},
		{"mac clash", []Peer{p2, mod(p3, func(p *Peer) { p.MAC = p2.MAC })}, []string{"n2"}, []string{"is also n2's"}},
		{"underlay clash", []Peer{p2, mod(p3, func(p *Peer) { p.Underlay = p2.Underlay })}, []string{"n2"}, []string{"is also n2's"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := validPeers(self, tc.peers)
			var names []string
			for _, p := range got {
				names = append(names, p.Name)
			}
			if !slices.Equal(names, tc.want) {
				t.Errorf("kept %v, want %v", names, tc.want)
			}
			if len(tc.wantErr) == 0 {
				if err != nil {
					t.Errorf("err = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidPeer) {
				t.Errorf("err = %v, want ErrInvalidPeer", err)
			}
			for _, w := range tc.wantErr {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v, want it to mention %q", err, w)
				}
			}
		})
	}
}

// kernelOf returns the entries a device holds when peers are programmed.
func kernelOf(peers ...Peer) entries {
	var e entries
	for _, p := range peers {
		r, n, f := peerEntries(p)
		e.routes = append(e.routes, r)
		e.neighs = append(e.neighs, n)
		e.fdbs = append(e.fdbs, f)
	}
	return e
}

// transcript renders groups as text, one op a line, for comparison.
func transcript(groups []group) string {
	var b strings.Builder
	kinds := map[groupKind]string{groupAdd: "add", groupRepair: "repair", groupRemove: "remove"}
	for _, g := range groups {
		fmt.Fprintf(&b, "%s %s\n", kinds[g.kind], g.label)
		for _, o := range g.ops {
			fmt.Fprintf(&b, "  %s\n", o)
		}
	}
	return b.String()
}

func TestDiffPeers(t *testing.T) {
	p2, p3 := testPeer(2), testPeer(3)
	m2, m3 := p2.MAC.String(), p3.MAC.String()
	moved := p2
	moved.Underlay = netip.MustParseAddr("10.47.0.9")
	for _, tc := range []struct {
		name    string
		want    []Peer
		have    entries
		applied []Peer
		out     string
	}{
		{
			name: "empty",
		},
		{
			name: "add two",
			want: []Peer{p2, p3},
			out: `add n2 (10.213.2.0/24 via 10.47.0.2)
  set fdb ` + m2 + ` dst 10.47.0.2 permanent (missing)
  set neigh 10.213.2.0 lladdr ` + m2 + ` permanent (missing)
  set route 10.213.2.0/24 via 10.213.2.0 onlink (missing)
add n3 (10.213.3.0/24 via 10.47.0.3)
  set fdb ` + m3 + ` dst 10.47.0.3 permanent (missing)
  set neigh 10.213.3.0 lladdr ` + m3 + ` permanent (missing)
  set route 10.213.3.0/24 via 10.213.3.0 onlink (missing)
`,
		},
		{
			name: "in place",
			want: []Peer{p2, p3},
			have: kernelOf(p2, p3),
		},
		{
			name:    "remove one, known",
			want:    []Peer{p2},
			have:    kernelOf(p2, p3),
			applied: []Peer{p2, p3},
			out: `remove n3 (10.213.3.0/24)
  delete route 10.213.3.0/24 via 10.213.3.0 onlink
  delete neigh 10.213.3.0 lladdr ` + m3 + ` permanent
  delete fdb ` + m3 + ` dst 10.47.0.3 permanent
`,
		},
		{
			name: "remove one, unknown (after a restart)",
			want: []Peer{p3},
			have: kernelOf(p2, p3),
			out: `remove 10.213.2.0/24
  delete route 10.213.2.0/24 via 10.213.2.0 onlink
  delete neigh 10.213.2.0 lladdr ` + m2 + ` permanent
  delete fdb ` + m2 + ` dst 10.47.0.2 permanent
`,
		},
		{
			name: "drift: route and fdb missing",
			want: []Peer{p2},
			have: entries{neighs: kernelOf(p2).neighs},
			out: `repair n2
  set fdb ` + m2 + ` dst 10.47.0.2 permanent (missing)
  set route 10.213.2.0/24 via 10.213.2.0 onlink (missing)
`,
		},
		{
			name:    "drift: everything missing for a peer this plane added",
			want:    []Peer{p2},
			applied: []Peer{p2},
			out: `repair n2
  set fdb ` + m2 + ` dst 10.47.0.2 permanent (missing)
  set neigh 10.213.2.0 lladdr ` + m2 + ` permanent (missing)
  set route 10.213.2.0/24 via 10.213.2.0 onlink (missing)
`,
		},
		{
			name: "neighbour not permanent, route without onlink",
			want: []Peer{p2},
			have: entries{
				routes: []routeEntry{{Dst: p2.Subnet, Gw: p2.Subnet.Addr()}},
				neighs: []neighEntry{{IP: p2.Subnet.Addr(), MAC: m2, State: "stale"}},
				fdbs:   kernelOf(p2).fdbs,
			},
			out: `repair n2
  set neigh 10.213.2.0 lladdr ` + m2 + ` permanent (was neigh 10.213.2.0 lladdr ` + m2 + ` stale)
  set route 10.213.2.0/24 via 10.213.2.0 onlink (was route 10.213.2.0/24 via 10.213.2.0)
`,
		},
		{
			name:    "peer moved to a new underlay address",
			want:    []Peer{moved},
			have:    entries{routes: kernelOf(p2).routes, neighs: kernelOf(p2).neighs, fdbs: append(kernelOf(p2).fdbs, fdbEntry{MAC: m2, Dst: netip.MustParseAddr("10.47.0.7"), State: statePermanent})},
			applied: []Peer{p2},
			out: `repair n2
  set fdb ` + m2 + ` dst 10.47.0.9 permanent (was fdb ` + m2 + ` dst 10.47.0.2 permanent)
  delete fdb ` + m2 + ` dst 10.47.0.2 permanent
  delete fdb ` + m2 + ` dst 10.47.0.7 permanent
`,
		},
		{
			name: "same subnet at another metric is removed",
			want: []Peer{p2},
			have: entries{
				routes: append(kernelOf(p2).routes, routeEntry{Dst: p2.Subnet, Gw: p2.Subnet.Addr(), Priority: 100}),
				neighs: kernelOf(p2).neighs, fdbs: kernelOf(p2).fdbs,
			},
			out: `repair n2
  delete route 10.213.2.0/24 via 10.213.2.0 metric 100
`,
		},
		{
			name: "strays",
			want: []Peer{p2},
			have: entries{
				routes: kernelOf(p2).routes,
				neighs: []neighEntry{{IP: netip.MustParseAddr("10.99.0.1"), State: "failed"}}, // n2's is missing
				fdbs:   append(kernelOf(p2).fdbs, fdbEntry{MAC: "00:00:00:00:00:00", Dst: netip.MustParseAddr("10.47.0.50"), State: statePermanent}),
			},
			out: `repair n2
  set neigh 10.213.2.0 lladdr ` + m2 + ` permanent (missing)
repair stray
  delete neigh 10.99.0.1 lladdr  failed
repair stray
  delete fdb 00:00:00:00:00:00 dst 10.47.0.50 permanent
`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			applied := map[string]Peer{}
			for _, p := range tc.applied {
				applied[p.Name] = p
			}
			got := transcript(diffPeers(tc.want, tc.have, applied))
			if got != tc.out {
				t.Errorf("ops:\n%s\nwant:\n%s", got, tc.out)
			}
		})
	}
}

package netplane

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// TestPlane_Overlay programs three lab hosts, attaches a replica on each,
// and checks traffic, the exact kernel entries, idempotence, peer removal
// and cleanup.
func TestPlane_Overlay(t *testing.T) {
	l, nodes := newLab(t, 3, 0)
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]

	// First pass: everything is created and reported.
	for _, nd := range nodes {
		rep, err := nd.plane.Ensure()
		if err != nil {
			t.Fatalf("%s: Ensure: %v", nd.host, err)
		}
		gw := nd.plane.Gateway().String() + "/24"
		checkReport(t, nd.host.Name+" first Ensure", rep, Report{
			Created:  []string{"bridge orch0", "address " + gw + " on orch0", "vxlan orchvx", "address " + nd.cfg.Subnet.Addr().String() + "/32 on orchvx"},
			Repaired: []string{"net.ipv4.ip_forward=1"},
		})
		rep, err = nd.plane.SetPeers(peersOf(nodes, nd))
		if err != nil {
			t.Fatalf("%s: SetPeers: %v", nd.host, err)
		}
		var added []string
		for _, p := range peersOf(nodes, nd) {
			added = append(added, p.String())
		}
		checkReport(t, nd.host.Name+" first SetPeers", rep, Report{PeersAdded: added})
	}
	for _, nd := range nodes {
		nd.addReplica(t, l)
	}

	// Replica to replica across hosts, host to remote replica.
	n1.eventuallyPing(t, n2.replicaAddr(), 0)
	n1.eventuallyPing(t, n3.replicaAddr(), 0)
	n3.eventuallyPing(t, n2.replicaAddr(), 0)
	n1.eventuallyPing(t, n1.plane.Gateway(), 0)
	if out, err := n2.host.Command(t.Context(), "ping", "-n", "-c", "1", "-W", "2", n3.replicaAddr().String()).CombinedOutput(); err != nil {
		t.Errorf("ping %s's replica from host %s: %v\n%s", n3.host, n2.host, err, out)
	}

	// The exact devices and entries.
	links := n1.links(t)
	vx, br := links["orchvx"], links["orch0"]
	wantMTU := n1.plane.MTU()
	if lab := links["eth0"].MTU; wantMTU != lab-50 {
		t.Errorf("overlay MTU %d with lab MTU %d: want %d", wantMTU, lab, lab-50)
	}
	d := vx.LinkInfo.Data
	if vx.LinkInfo.Kind != "vxlan" || d.ID != DefaultVNI || d.Port != DefaultPort || d.Local != n1.host.Addr.String() ||
		d.Learning == nil || *d.Learning || vx.MTU != wantMTU || vx.Address != n1.cfg.MAC.String() || !vx.up() {
		t.Errorf("orchvx = %+v, want vxlan id %d port %d local %s nolearning mtu %d address %s up",
			vx, DefaultVNI, DefaultPort, n1.host.Addr, wantMTU, n1.cfg.MAC)
	}
	if got, want := vx.v4Addrs(), []string{"10.213.1.0/32"}; !slices.Equal(got, want) {
		t.Errorf("orchvx addresses %v, want %v", got, want)
	}
	if br.LinkInfo.Kind != "bridge" || br.MTU != wantMTU || !br.up() {
		t.Errorf("orch0 = %+v, want an up bridge with mtu %d", br, wantMTU)
	}
	if got, want := br.v4Addrs(), []string{"10.213.1.1/24"}; !slices.Equal(got, want) {
		t.Errorf("orch0 addresses %v, want %v", got, want)
	}
	hostEnd := links[VethName(DefaultVethPrefix, n1.replica)]
	if hostEnd.Master != "orch0" || hostEnd.MTU != wantMTU || !hostEnd.up() {
		t.Errorf("host end of the replica veth = %+v, want on orch0, mtu %d, up", hostEnd, wantMTU)
	}
	eth0 := n1.replicaLinks(t)["eth0"]
	if eth0.MTU != wantMTU || !eth0.up() || !slices.Equal(eth0.v4Addrs(), []string{"10.213.1.2/24"}) {
		t.Errorf("replica eth0 = %+v, want mtu %d, up, 10.213.1.2/24", eth0, wantMTU)
	}
	if got := run(t, "ip", "-n", n1.replica, "-4", "route", "show", "default"); !strings.Contains(got, "default via 10.213.1.1 dev eth0") {
		t.Errorf("replica default route = %q, want via 10.213.1.1 dev eth0", got)
	}
	if got := strings.TrimSpace(string(n1.inHost(t, "cat", "/proc/sys/net/ipv4/ip_forward"))); got != "1" {
		t.Errorf("ip_forward in %s = %q, want 1", n1.host, got)
	}
	for _, nd := range nodes {
		if got, want := nd.overlayEntries(t), wantEntries(peersOf(nodes, nd)...); !slices.Equal(got, want) {
			t.Errorf("%s: overlay entries\n%s\nwant\n%s", nd.host, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}

	// Idempotence: a second pass (and a new Plane, as after an agent
	// restart) changes nothing and keeps the devices, and a TCP
	// connection between replicas on two hosts lives through it.
	conn := replicaConn(t, n1, n2)
	again := newPlane(t, n1.cfg)
	for i, p := range []*Plane{n1.plane, again} {
		rep, err := p.Ensure()
		if err != nil || !rep.Empty() {
			t.Errorf("Ensure pass %d = %v, %v; want no change", i+2, rep, err)
		}
		rep, err = p.SetPeers(peersOf(nodes, n1))
		if err != nil || !rep.Empty() {
			t.Errorf("SetPeers pass %d = %v, %v; want no change", i+2, rep, err)
		}
		if err := p.Attach(n1.replicaPath(), n1.replica, n1.replicaAddr()); err != nil {
			t.Errorf("Attach pass %d: %v", i+2, err)
		}
	}
	after := n1.links(t)
	for _, name := range []string{"orch0", "orchvx", hostEnd.Name} {
		if after[name].Index != links[name].Index {
			t.Errorf("%s ifindex %d, was %d: recreated", name, after[name].Index, links[name].Index)
		}
	}
	if got := n1.replicaLinks(t)["eth0"].Index; got != eth0.Index {
		t.Errorf("replica eth0 ifindex %d, was %d: recreated", got, eth0.Index)
	}
	conn.check(t)
	if got, err := n1.plane.Attachments(); err != nil || !slices.Equal(got, []string{hostEnd.Name}) {
		t.Errorf("Attachments() = %v, %v; want [%s]", got, err, hostEnd.Name)
	}

	// Removing n3 from n1's peers removes its entries and its reachability.
	rep, err := n1.plane.SetPeers([]Peer{n2.peer()})
	if err != nil {
		t.Fatalf("SetPeers without n3: %v", err)
	}
	checkReport(t, "SetPeers without n3", rep, Report{PeersRemoved: []string{"h3 (10.213.3.0/24)"}})
	if got, want := n1.overlayEntries(t), wantEntries(n2.peer()); !slices.Equal(got, want) {
		t.Errorf("entries without n3\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if err := n1.ping(t.Context(), n3.replicaAddr(), 0); err == nil {
		t.Errorf("ping from n1's replica to removed peer n3's replica succeeded")
	}
	n1.eventuallyPing(t, n2.replicaAddr(), 0)

	// Cleanup leaves nothing of orch behind, and is idempotent.
	for range 2 {
		if err := Cleanup(Config{NetNS: n1.cfg.NetNS}); err != nil {
			t.Fatalf("Cleanup: %v", err)
		}
	}
	for name, l := range n1.links(t) {
		if name == "orch0" || name == "orchvx" || strings.HasPrefix(name, DefaultVethPrefix) {
			t.Errorf("after Cleanup, %s still has %s (%s)", n1.host, name, l.LinkInfo.Kind)
		}
	}
	if _, ok := n1.replicaLinks(t)["eth0"]; ok {
		t.Errorf("after Cleanup, the replica still has eth0")
	}
	if got := n1.overlayEntriesRoutes(t); got != "" {
		t.Errorf("after Cleanup, routes to replica subnets remain: %s", got)
	}
}

// overlayEntriesRoutes returns the host's routes into 10.213.0.0/16.
func (nd *node) overlayEntriesRoutes(t *testing.T) string {
	return strings.TrimSpace(string(nd.inHost(t, "ip", "-4", "route", "show", "root", "10.213.0.0/16")))
}

// TestPlane_RepairsDrift breaks what Ensure and SetPeers made, the way an
// operator or another tool might, and checks that the next pass repairs
// and reports it without recreating anything.
func TestPlane_RepairsDrift(t *testing.T) {
	l, nodes := newLab(t, 2, 0)
	n1, n2 := nodes[0], nodes[1]
	program(t, nodes)
	n1.addReplica(t, l)
	n2.addReplica(t, l)
	n1.eventuallyPing(t, n2.replicaAddr(), 0)
	before := n1.links(t)

	p2 := n2.peer()
	r, n, f := peerEntries(p2)
	for _, cmd := range [][]string{
		{"ip", "route", "del", r.Dst.String(), "dev", "orchvx"},
		{"ip", "neigh", "del", n.IP.String(), "dev", "orchvx"},
		{"bridge", "fdb", "del", f.MAC, "dev", "orchvx", "dst", f.Dst.String(), "self"},
		{"ip", "link", "set", "orch0", "down"},
		{"ip", "link", "set", "orchvx", "mtu", "1300"},
		{"ip", "addr", "del", "10.213.1.0/32", "dev", "orchvx"},
		{"ip", "addr", "add", "10.99.0.1/24", "dev", "orch0"},
		{"ip", "link", "set", VethName(DefaultVethPrefix, n1.replica), "nomaster"},
		{"sh", "-c", "echo 0 > /proc/sys/net/ipv4/ip_forward"},
		// Strays: an extra route, neighbour and FDB entry on orchvx.
		{"ip", "neigh", "add", "10.213.9.0", "lladdr", "02:00:00:00:00:09", "dev", "orchvx", "nud", "permanent"},
		{"ip", "route", "add", "10.213.9.0/24", "via", "10.213.9.0", "dev", "orchvx", "onlink"},
		{"bridge", "fdb", "add", "02:00:00:00:00:09", "dev", "orchvx", "dst", "10.47.0.9", "self", "permanent"},
		{"bridge", "fdb", "add", "02:00:00:00:00:0a", "dev", "orchvx", "dst", "10.47.0.10", "self", "permanent"},
	} {
		n1.inHost(t, cmd[0], cmd[1:]...)
	}
	if err := n1.ping(t.Context(), n2.replicaAddr(), 0); err == nil {
		t.Fatalf("ping across still works with the overlay broken: the test breaks nothing")
	}

	rep, err := n1.plane.Ensure()
	if err != nil {
		t.Fatalf("Ensure: %v", err)
	}
	hostEnd := VethName(DefaultVethPrefix, n1.replica)
	checkReport(t, "Ensure after drift", rep, Report{Repaired: []string{
		"orch0 up (was down)",
		"removed address 10.99.0.1/24 from orch0",
		"orchvx mtu " + fmt.Sprint(n1.plane.MTU()) + " (was 1300)",
		"address 10.213.1.0/32 on orchvx",
		"net.ipv4.ip_forward=1",
		hostEnd + " on bridge orch0",
	}})
	rep, err = n1.plane.SetPeers([]Peer{p2})
	if err != nil {
		t.Fatalf("SetPeers: %v", err)
	}
	checkReport(t, "SetPeers after drift", rep, Report{
		Repaired: []string{
			"h2: set fdb " + f.MAC + " dst 10.47.0.2 permanent (missing)",
			"h2: set neigh 10.213.2.0 lladdr " + n.MAC + " permanent (missing)",
			"h2: set route 10.213.2.0/24 via 10.213.2.0 onlink (missing)",
			"stray: delete fdb 02:00:00:00:00:0a dst 10.47.0.10",
		},
		PeersRemoved: []string{"10.213.9.0/24"},
	})
	if got, want := n1.overlayEntries(t), wantEntries(p2); !slices.Equal(got, want) {
		t.Errorf("entries after repair\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	after := n1.links(t)
	for _, name := range []string{"orch0", "orchvx"} {
		if after[name].Index != before[name].Index {
			t.Errorf("%s recreated (ifindex %d, was %d); drift must be repaired in place", name, after[name].Index, before[name].Index)
		}
	}
	n1.eventuallyPing(t, n2.replicaAddr(), 0)

	// A wrong MAC on the VXLAN device is fixed in place.
	n1.inHost(t, "ip", "link", "set", "orchvx", "address", "02:00:00:00:00:01")
	rep, err = n1.plane.Ensure()
	if err != nil {
		t.Fatalf("Ensure after MAC change: %v", err)
	}
	checkReport(t, "Ensure after MAC change", rep, Report{Repaired: []string{"orchvx address " + n1.cfg.MAC.String()}})
	// A new MAC makes the kernel flush the device's neighbours, permanent
	// ones too; the SetPeers of the same pass puts them back.
	rep, err = n1.plane.SetPeers([]Peer{p2})
	if err != nil {
		t.Fatalf("SetPeers after MAC change: %v", err)
	}
	checkReport(t, "SetPeers after MAC change", rep, Report{Repaired: []string{"h2: set neigh 10.213.2.0"}})
	if got := n1.links(t)["orchvx"]; got.Address != n1.cfg.MAC.String() || got.Index != before["orchvx"].Index || !got.up() {
		t.Errorf("orchvx after MAC repair = %+v, want address %s, ifindex %d, up", got, n1.cfg.MAC, before["orchvx"].Index)
	}
	n1.eventuallyPing(t, n2.replicaAddr(), 0)

	// Everything matches again.
	if rep, err := n1.plane.Ensure(); err != nil || !rep.Empty() {
		t.Errorf("third Ensure = %v, %v; want no change", rep, err)
	}
	if rep, err := n1.plane.SetPeers([]Peer{p2}); err != nil || !rep.Empty() {
		t.Errorf("third SetPeers = %v, %v; want no change", rep, err)
	}
}

// TestPlane_RecreatesIncompatibleVXLAN checks that a VXLAN device whose
// VNI (which cannot change in place) differs is replaced, and that the
// new device carries traffic once both sides agree.
func TestPlane_RecreatesIncompatibleVXLAN(t *testing.T) {
	l, nodes := newLab(t, 2, 0)
	n1, n2 := nodes[0], nodes[1]
	program(t, nodes)
	n1.addReplica(t, l)
	n2.addReplica(t, l)
	n1.eventuallyPing(t, n2.replicaAddr(), 0)
	before := n1.links(t)

	for _, nd := range nodes {
		nd.cfg.VNI = 77
		nd.plane = newPlane(t, nd.cfg)
		rep, err := nd.plane.Ensure()
		if err != nil {
			t.Fatalf("%s: Ensure with a new VNI: %v", nd.host, err)
		}
		checkReport(t, nd.host.Name+" Ensure with a new VNI", rep, Report{
			Recreated: []string{"vxlan orchvx (vni 4242, want 77)"},
			Created:   []string{"address " + nd.cfg.Subnet.Addr().String() + "/32 on orchvx"},
		})
		// The device's entries went with it: they come back as additions.
		rep, err = nd.plane.SetPeers(peersOf(nodes, nd))
		if err != nil {
			t.Fatalf("%s: SetPeers: %v", nd.host, err)
		}
		checkReport(t, nd.host.Name+" SetPeers after recreate", rep, Report{PeersAdded: []string{peersOf(nodes, nd)[0].String()}})
	}
	after := n1.links(t)
	if after["orchvx"].Index == before["orchvx"].Index || after["orchvx"].LinkInfo.Data.ID != 77 {
		t.Errorf("orchvx after VNI change: ifindex %d (was %d), vni %d; want a new device with vni 77",
			after["orchvx"].Index, before["orchvx"].Index, after["orchvx"].LinkInfo.Data.ID)
	}
	if after["orch0"].Index != before["orch0"].Index {
		t.Errorf("orch0 recreated by a VNI change")
	}
	n1.eventuallyPing(t, n2.replicaAddr(), 0)
}

// TestPlane_MTU checks the derived MTU end to end: with the underlay at
// 1500 and at 1400, the largest DF ping the overlay MTU allows crosses
// nodes without the underlay fragmenting it, and one byte more is refused.
func TestPlane_MTU(t *testing.T) {
	for _, labMTU := range []int{1500, 1400} {
		t.Run(fmt.Sprint(labMTU), func(t *testing.T) {
			l, nodes := newLab(t, 2, labMTU)
			n1, n2 := nodes[0], nodes[1]
			if got, want := n1.plane.MTU(), labMTU-50; got != want {
				t.Fatalf("MTU() = %d with underlay %d, want %d", got, labMTU, want)
			}
			program(t, nodes)
			n1.addReplica(t, l)
			n2.addReplica(t, l)
			n1.eventuallyPing(t, n2.replicaAddr(), 0)

			payload := n1.plane.MTU() - 28 // IPv4 20 + ICMP 8
			frags := n1.ipStat(t, "FragCreates")
			n1.eventuallyPing(t, n2.replicaAddr(), payload)
			if err := n2.ping(t.Context(), n1.replicaAddr(), payload); err != nil {
				t.Errorf("largest DF ping back: %v", err)
			}
			if got := n1.ipStat(t, "FragCreates"); got != frags {
				t.Errorf("the underlay of %s fragmented %d packets for a %d-byte payload: the overlay MTU is too large", n1.host, got-frags, payload)
			}
			if err := n1.ping(t.Context(), n2.replicaAddr(), payload+1); err == nil {
				t.Errorf("DF ping with payload %d (one over the overlay MTU %d) succeeded", payload+1, n1.plane.MTU())
			}
		})
	}
}

// TestNew_DerivesMTUFromIPv6Underlay checks the 70-byte overhead of an
// IPv6 underlay and that the interface holding the address is the one
// whose MTU counts.
func TestNew_DerivesMTUFromIPv6Underlay(t *testing.T) {
	_, nodes := newLab(t, 1, 1400)
	n1 := nodes[0]
	n1.inHost(t, "ip", "link", "add", "under6", "mtu", "9000", "type", "veth", "peer", "name", "under6p", "mtu", "9000")
	n1.inHost(t, "ip", "link", "set", "under6", "up")
	n1.inHost(t, "ip", "addr", "add", "fd47::1/64", "dev", "under6", "nodad")
	cfg := n1.cfg
	cfg.Underlay = netip.MustParseAddr("fd47::1")
	if got := newPlane(t, cfg).MTU(); got != 9000-70 {
		t.Errorf("MTU() = %d over an IPv6 underlay with MTU 9000, want %d", got, 9000-70)
	}
	cfg.Underlay = netip.MustParseAddr("10.47.0.99")
	if _, err := New(cfg, nil); err == nil || !strings.Contains(err.Error(), "no interface") {
		t.Errorf("New with an underlay address nobody holds = %v, want an error naming the problem", err)
	}
	cfg.MTU = 1200 // an override needs no interface
	if p := newPlane(t, cfg); p.MTU() != 1200 {
		t.Errorf("MTU() = %d with Config.MTU 1200", p.MTU())
	}
}

// TestPlane_AttachRepairsAndDetach checks that Attach leaves a correct
// attachment alone, fixes a broken one in place, replaces a foreign eth0,
// and that Detach removes the pair.
func TestPlane_AttachRepairsAndDetach(t *testing.T) {
	l, nodes := newLab(t, 1, 0)
	n1 := nodes[0]
	program(t, nodes)
	n1.addReplica(t, l)
	host := VethName(DefaultVethPrefix, n1.replica)
	hostIdx := n1.links(t)[host].Index
	eth0Idx := n1.replicaLinks(t)["eth0"].Index

	// Break it in place: address, MTU, down, route, off the bridge.
	run(t, "ip", "-n", n1.replica, "addr", "flush", "dev", "eth0")
	run(t, "ip", "-n", n1.replica, "link", "set", "eth0", "mtu", "1280")
	n1.inHost(t, "ip", "link", "set", host, "nomaster")
	n1.inHost(t, "ip", "link", "set", host, "down")
	if err := n1.plane.Attach(n1.replicaPath(), n1.replica, n1.replicaAddr()); err != nil {
		t.Fatalf("Attach after breaking: %v", err)
	}
	links, rlinks := n1.links(t), n1.replicaLinks(t)
	if links[host].Index != hostIdx || rlinks["eth0"].Index != eth0Idx {
		t.Errorf("Attach replaced a fixable veth pair")
	}
	if h := links[host]; h.Master != "orch0" || !h.up() {
		t.Errorf("host end after repair = %+v, want on orch0 and up", h)
	}
	if e := rlinks["eth0"]; e.MTU != n1.plane.MTU() || !slices.Equal(e.v4Addrs(), []string{"10.213.1.2/24"}) {
		t.Errorf("eth0 after repair = %+v", e)
	}
	n1.eventuallyPing(t, n1.plane.Gateway(), 0)

	// A new address for the same attachment: moved in place.
	if err := n1.plane.Attach(n1.replicaPath(), n1.replica, netip.MustParseAddr("10.213.1.7")); err != nil {
		t.Fatalf("Attach with a new address: %v", err)
	}
	if got := n1.replicaLinks(t)["eth0"].v4Addrs(); !slices.Equal(got, []string{"10.213.1.7/24"}) {
		t.Errorf("eth0 addresses after readdressing = %v", got)
	}

	// A foreign eth0 (not our veth's peer) is replaced.
	if err := n1.plane.Detach(n1.replica); err != nil {
		t.Fatalf("Detach: %v", err)
	}
	run(t, "ip", "-n", n1.replica, "link", "add", "eth0", "type", "veth", "peer", "name", "eth1")
	if err := n1.plane.Attach(n1.replicaPath(), n1.replica, n1.replicaAddr()); err != nil {
		t.Fatalf("Attach over a foreign eth0: %v", err)
	}
	if k := n1.replicaLinks(t)["eth0"].LinkInfo.Kind; k != "veth" {
		t.Errorf("eth0 is a %q after Attach, want veth", k)
	}
	n1.eventuallyPing(t, n1.plane.Gateway(), 0)

	// Bad arguments.
	for _, a := range []string{"10.213.1.0", "10.213.1.1", "10.213.1.255", "10.213.2.5"} {
		if err := n1.plane.Attach(n1.replicaPath(), n1.replica, netip.MustParseAddr(a)); err == nil {
			t.Errorf("Attach with address %s succeeded", a)
		}
	}

	// DetachName (for orphans) and Detach remove both ends; twice is fine.
	if err := n1.plane.DetachName("eth0"); err == nil {
		t.Errorf("DetachName(eth0) succeeded: a name without the veth prefix must be refused")
	}
	if err := n1.plane.DetachName(host); err != nil {
		t.Fatalf("DetachName(%s): %v", host, err)
	}
	if err := n1.plane.Detach(n1.replica); err != nil {
		t.Fatalf("Detach after DetachName: %v", err)
	}
	if _, ok := n1.links(t)[host]; ok {
		t.Errorf("host end %s still there after Detach", host)
	}
	if _, ok := n1.replicaLinks(t)["eth0"]; ok {
		t.Errorf("eth0 still in the replica after Detach")
	}
	if got, err := n1.plane.Attachments(); err != nil || len(got) != 0 {
		t.Errorf("Attachments() after Detach = %v, %v", got, err)
	}

	// Closed planes refuse work.
	n1.plane.Close()
	if _, err := n1.plane.Ensure(); err != ErrClosed {
		t.Errorf("Ensure after Close = %v, want ErrClosed", err)
	}
	if err := n1.plane.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
}

// TestInNetNS_ThreadsStayHome checks that switching a thread into another
// namespace for a sysctl leaves no thread of the process there: a thread
// parked in a lab host's namespace makes `scripts/lab down` kill the
// whole process (it looks at /proc/PID/ns/net, the main thread's).
func TestInNetNS_ThreadsStayHome(t *testing.T) {
	_, nodes := newLab(t, 1, 0)
	home, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		want := fmt.Sprint(i % 2)
		if _, err := ensureSysctl(nodes[0].cfg.NetNS, "net/ipv4/ip_forward", want); err != nil {
			t.Fatalf("ensureSysctl: %v", err)
		}
		if got := strings.TrimSpace(string(nodes[0].inHost(t, "cat", "/proc/sys/net/ipv4/ip_forward"))); got != want {
			t.Fatalf("ip_forward in the host = %s, want %s", got, want)
		}
	}
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		ns, err := os.Readlink("/proc/self/task/" + task.Name() + "/ns/net")
		if err == nil && ns != home {
			t.Errorf("thread %s is in %s, not the process's %s", task.Name(), ns, home)
		}
	}
}

// tcpPair is a TCP connection between two replicas' namespaces.
type tcpPair struct{ a, b net.Conn }

// replicaConn connects a socket in from's replica to a listener in to's.
// Sockets belong to the namespace they were created in, so only their
// creation runs there (inNetNS).
func replicaConn(t *testing.T, from, to *node) *tcpPair {
	t.Helper()
	var ln net.Listener
	err := inNetNS(to.replicaPath(), func() (err error) {
		ln, err = net.Listen("tcp", netip.AddrPortFrom(to.replicaAddr(), 0).String())
		return err
	})
	if err != nil {
		t.Fatalf("listen in %s's replica: %v", to.host, err)
	}
	defer ln.Close()
	var c net.Conn
	err = inNetNS(from.replicaPath(), func() (err error) {
		c, err = net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
		return err
	})
	if err != nil {
		t.Fatalf("connect from %s's replica to %s: %v", from.host, ln.Addr(), err)
	}
	s, err := ln.Accept()
	if err != nil {
		t.Fatalf("accept: %v", err)
	}
	p := &tcpPair{c, s}
	t.Cleanup(func() { c.Close(); s.Close() })
	p.check(t)
	return p
}

// check sends a message each way and fails the test unless both arrive.
func (p *tcpPair) check(t *testing.T) {
	t.Helper()
	for _, d := range [][2]net.Conn{{p.a, p.b}, {p.b, p.a}} {
		msg := []byte("still there?")
		d[1].SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := d[0].Write(msg); err != nil {
			t.Fatalf("write on the replicas' TCP connection: %v", err)
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(d[1], got); err != nil || string(got) != string(msg) {
			t.Fatalf("read on the replicas' TCP connection: %q, %v", got, err)
		}
	}
}

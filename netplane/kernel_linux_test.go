package netplane

// Helpers of the kernel tests: lab hosts programmed from this process
// through Config.NetNS, replica namespaces, and readers of the kernel's
// state through iproute2's JSON output (an independent view: the
// assertions do not go through netlink's parsing, which the code under
// test uses).

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/orchproject/orch/internal/lab"
	"github.com/orchproject/orch/internal/testenv"
)

// node is a lab host with its plane and one replica namespace.
type node struct {
	k       int
	host    *lab.Host
	cfg     Config
	plane   *Plane
	replica string // namespace name under /run/netns; "" until addReplica
}

// newLab builds a lab of n hosts with the given MTU (0: the lab's
// default) and a Plane for each host, not yet ensured.
func newLab(t *testing.T, n, mtu int) (*lab.Lab, []*node) {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "ip", "bridge", "nsenter", "ping")
	l := lab.New(t, lab.Config{Hosts: n, MTU: mtu})
	var nodes []*node
	for k, h := range l.Hosts() {
		nd := &node{k: k + 1, host: h, cfg: nodeConfig(h, k+1)}
		nd.plane = newPlane(t, nd.cfg)
		nodes = append(nodes, nd)
	}
	return l, nodes
}

// nodeConfig is the overlay config of lab host k: subnet 10.213.K.0/24.
func nodeConfig(h *lab.Host, k int) Config {
	return Config{
		NetNS:    "/run/netns/" + h.NetNS,
		Underlay: h.Addr,
		Subnet:   netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 213, byte(k), 0}), 24),
		MAC:      MACFromID(h.NetNS),
	}
}

func newPlane(t *testing.T, cfg Config) *Plane {
	t.Helper()
	p, err := New(cfg, testLogger(t))
	if err != nil {
		t.Fatalf("New(%s): %v", cfg.NetNS, err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// peerOf is nd as its peers see it.
func (nd *node) peer() Peer {
	return Peer{Name: nd.host.Name, Underlay: nd.cfg.Underlay, Subnet: nd.cfg.Subnet, MAC: nd.cfg.MAC}
}

// peersOf returns every node but self as peers.
func peersOf(nodes []*node, self *node) []Peer {
	var ps []Peer
	for _, o := range nodes {
		if o != self {
			ps = append(ps, o.peer())
		}
	}
	return ps
}

// program runs Ensure and SetPeers on every node with all the others as
// peers, failing the test on error.
func program(t *testing.T, nodes []*node) {
	t.Helper()
	for _, nd := range nodes {
		if _, err := nd.plane.Ensure(); err != nil {
			t.Fatalf("%s: Ensure: %v", nd.host, err)
		}
		if _, err := nd.plane.SetPeers(peersOf(nodes, nd)); err != nil {
			t.Fatalf("%s: SetPeers: %v", nd.host, err)
		}
	}
}

// replicaAddr is the address of nd's replica: .2 of its subnet.
func (nd *node) replicaAddr() netip.Addr { return nd.cfg.Subnet.Addr().Next().Next() }

// addReplica creates a replica namespace for nd (named with the lab's
// prefix, so the lab's teardown removes it too) and attaches it.
func (nd *node) addReplica(t *testing.T, l *lab.Lab) {
	t.Helper()
	nd.replica = l.Prefix() + "r" + strconv.Itoa(nd.k)
	run(t, "ip", "netns", "add", nd.replica)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", nd.replica).Run() })
	run(t, "ip", "-n", nd.replica, "link", "set", "lo", "up")
	if err := nd.plane.Attach(nd.replicaPath(), nd.replica, nd.replicaAddr()); err != nil {
		t.Fatalf("%s: Attach: %v", nd.host, err)
	}
}

func (nd *node) replicaPath() string { return "/run/netns/" + nd.replica }

// inReplica returns a command running in nd's replica namespace.
func (nd *node) inReplica(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "nsenter", append([]string{"--net=" + nd.replicaPath(), "--", name}, args...)...)
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.CommandContext(t.Context(), name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// inHost runs a command in nd's host namespace and returns its stdout.
func (nd *node) inHost(t *testing.T, name string, args ...string) []byte {
	t.Helper()
	var stderr bytes.Buffer
	cmd := nd.host.Command(t.Context(), name, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %s %s: %v\n%s", nd.host, name, strings.Join(args, " "), err, stderr.Bytes())
	}
	return out
}

// ping sends one echo request from nd's replica to dst, with payload
// size (0: ping's default) and DF set when size > 0.
func (nd *node) ping(ctx context.Context, dst netip.Addr, size int) error {
	args := []string{"-n", "-c", "1", "-W", "1"}
	if size > 0 {
		args = append(args, "-M", "do", "-s", strconv.Itoa(size))
	}
	out, err := nd.inReplica(ctx, "ping", append(args, dst.String())...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ping %s from %s's replica: %w: %s", dst, nd.host, err, bytes.TrimSpace(out))
	}
	return nil
}

// eventuallyPing waits until a ping from nd's replica to dst succeeds:
// the first packets of a fresh path may go to ARP resolution.
func (nd *node) eventuallyPing(t *testing.T, dst netip.Addr, size int) {
	t.Helper()
	lab.Eventually(t, 10*time.Second, 50*time.Millisecond, func() error {
		return nd.ping(t.Context(), dst, size)
	})
}

// ipLink is the part of `ip -d -j link` the tests read.
type ipLink struct {
	Index    int      `json:"ifindex"`
	Name     string   `json:"ifname"`
	Flags    []string `json:"flags"`
	MTU      int      `json:"mtu"`
	Address  string   `json:"address"`
	Master   string   `json:"master"`
	LinkInfo struct {
		Kind string `json:"info_kind"`
		Data struct {
			ID       int    `json:"id"`
			Local    string `json:"local"`
			Port     int    `json:"port"`
			Learning *bool  `json:"learning"`
		} `json:"info_data"`
	} `json:"linkinfo"`
	AddrInfo []struct {
		Family string `json:"family"`
		Local  string `json:"local"`
		Prefix int    `json:"prefixlen"`
	} `json:"addr_info"`
}

func (l ipLink) up() bool { return slices.Contains(l.Flags, "UP") }

func (l ipLink) v4Addrs() []string {
	var s []string
	for _, a := range l.AddrInfo {
		if a.Family == "inet" {
			s = append(s, a.Local+"/"+strconv.Itoa(a.Prefix))
		}
	}
	return s
}

// links returns every interface of nd's host, by name.
func (nd *node) links(t *testing.T) map[string]ipLink {
	t.Helper()
	return parseLinks(t, nd.inHost(t, "ip", "-d", "-j", "addr", "show"))
}

// replicaLinks returns every interface of nd's replica namespace.
func (nd *node) replicaLinks(t *testing.T) map[string]ipLink {
	t.Helper()
	return parseLinks(t, []byte(run(t, "ip", "-n", nd.replica, "-d", "-j", "addr", "show")))
}

func parseLinks(t *testing.T, out []byte) map[string]ipLink {
	t.Helper()
	var ls []ipLink
	if err := json.Unmarshal(out, &ls); err != nil {
		t.Fatalf("parse ip -j addr: %v\n%s", err, out)
	}
	m := map[string]ipLink{}
	for _, l := range ls {
		m[l.Name] = l
	}
	return m
}

// overlayEntries returns what nd's VXLAN device holds, one line per
// entry in the form of peerEntries' String methods, sorted.
func (nd *node) overlayEntries(t *testing.T) []string {
	t.Helper()
	dev := DefaultVXLAN
	var got []string

	var routes []struct {
		Dst     string   `json:"dst"`
		Gateway string   `json:"gateway"`
		Flags   []string `json:"flags"`
		Metric  int      `json:"metric"`
	}
	decode(t, nd.inHost(t, "ip", "-4", "-j", "route", "show", "dev", dev), &routes)
	for _, r := range routes {
		s := "route " + r.Dst + " via " + r.Gateway
		if slices.Contains(r.Flags, "onlink") {
			s += " onlink"
		}
		if r.Metric != 0 {
			s += " metric " + strconv.Itoa(r.Metric)
		}
		got = append(got, s)
	}

	var neighs []struct {
		Dst    string   `json:"dst"`
		LLAddr string   `json:"lladdr"`
		State  []string `json:"state"`
	}
	decode(t, nd.inHost(t, "ip", "-4", "-j", "neigh", "show", "dev", dev), &neighs)
	for _, n := range neighs {
		got = append(got, fmt.Sprintf("neigh %s lladdr %s %s", n.Dst, n.LLAddr, strings.ToLower(strings.Join(n.State, ","))))
	}

	var fdbs []struct {
		MAC   string   `json:"mac"`
		Dst   string   `json:"dst"`
		Flags []string `json:"flags"`
		State string   `json:"state"`
	}
	decode(t, nd.inHost(t, "bridge", "-j", "fdb", "show", "dev", dev), &fdbs)
	for _, f := range fdbs {
		s := fmt.Sprintf("fdb %s dst %s %s", f.MAC, f.Dst, f.State)
		if !slices.Contains(f.Flags, "self") {
			s += " (not self)"
		}
		got = append(got, s)
	}
	slices.Sort(got)
	return got
}

// wantEntries is what overlayEntries should return with peers programmed.
func wantEntries(peers ...Peer) []string {
	var want []string
	for _, p := range peers {
		r, n, f := peerEntries(p)
		want = append(want, r.String(), n.String(), f.String())
	}
	slices.Sort(want)
	return want
}

func decode(t *testing.T, out []byte, v any) {
	t.Helper()
	if len(bytes.TrimSpace(out)) == 0 {
		return // iproute2 prints nothing, not [], for an empty list
	}
	if err := json.Unmarshal(out, v); err != nil {
		t.Fatalf("parse JSON: %v\n%s", err, out)
	}
}

// ipStat returns a counter of the "Ip:" lines of /proc/net/snmp in nd's
// host (FragCreates, ReasmReqds, …).
func (nd *node) ipStat(t *testing.T, name string) int64 {
	t.Helper()
	var header []string
	for line := range strings.Lines(string(nd.inHost(t, "cat", "/proc/net/snmp"))) {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "Ip:" {
			continue
		}
		if header == nil {
			header = f
			continue
		}
		if i := slices.Index(header, name); i > 0 && i < len(f) {
			v, err := strconv.ParseInt(f[i], 10, 64)
			if err != nil {
				t.Fatalf("/proc/net/snmp Ip %s: %v", name, err)
			}
			return v
		}
	}
	t.Fatalf("/proc/net/snmp of %s has no Ip %s", nd.host, name)
	return 0
}

// checkReport fails the test unless got has exactly the items of want in
// each field, compared by prefix (items carry details such as old
// values, which the tests need not spell out).
func checkReport(t *testing.T, what string, got, want Report) {
	t.Helper()
	fields := []struct {
		name      string
		got, want []string
	}{
		{"Created", got.Created, want.Created},
		{"Recreated", got.Recreated, want.Recreated},
		{"Repaired", got.Repaired, want.Repaired},
		{"PeersAdded", got.PeersAdded, want.PeersAdded},
		{"PeersRemoved", got.PeersRemoved, want.PeersRemoved},
	}
	for _, f := range fields {
		ok := len(f.got) == len(f.want)
		for _, w := range f.want {
			if !slices.ContainsFunc(f.got, func(g string) bool { return strings.HasPrefix(g, w) }) {
				ok = false
			}
		}
		if !ok {
			t.Errorf("%s: Report.%s = %q, want items starting with %q", what, f.name, f.got, f.want)
		}
	}
}

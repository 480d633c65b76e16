package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/orchproject/orch/agent/api"
	"github.com/orchproject/orch/internal/lab"
	"github.com/orchproject/orch/internal/netnsthread"
	"github.com/orchproject/orch/netplane"
)

// overlayState is what a host's kernel holds for the overlay, as iproute2
// reports it.
type overlayState struct {
	VXLAN  string            // "vni=… local=… port=… learning=… mtu=… mac=…"; "" without the device
	Routes map[string]string // subnet → gateway, routes through the VXLAN device
	Neighs map[string]string // overlay address → MAC, permanent entries on it
	FDB    map[string]string // MAC → underlay address
	Bridge string            // "addr/len mtu=…" of orch0; "" without it
	Other  []string          // other orch devices (veth host ends)
}

func (s overlayState) String() string {
	b, _ := json.Marshal(s)
	return string(b)
}

// ipJSON runs an iproute2 command with -j inside h and decodes it.
func ipJSON(t *testing.T, h *lab.Host, args ...string) ([]map[string]any, error) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	out, err := h.Command(ctx, args[0], append([]string{"-j"}, args[1:]...)...).Output()
	if err != nil {
		return nil, fmt.Errorf("%s on %s: %w", strings.Join(args, " "), h.Name, err)
	}
	var v []map[string]any
	if len(strings.TrimSpace(string(out))) == 0 {
		return nil, nil
	}
	if err := json.Unmarshal(out, &v); err != nil {
		return nil, fmt.Errorf("%s on %s: %w: %s", strings.Join(args, " "), h.Name, err, out)
	}
	return v, nil
}

// readOverlay reads h's overlay state.
func readOverlay(t *testing.T, h *lab.Host) (overlayState, error) {
	st := overlayState{Routes: map[string]string{}, Neighs: map[string]string{}, FDB: map[string]string{}}
	links, err := ipJSON(t, h, "ip", "-d", "link", "show")
	if err != nil {
		return st, err
	}
	hasVX := false
	for _, l := range links {
		name, _ := l["ifname"].(string)
		switch {
		case name == "orchvx":
			hasVX = true
			info, _ := l["linkinfo"].(map[string]any)
			data, _ := info["info_data"].(map[string]any)
			st.VXLAN = fmt.Sprintf("vni=%v local=%v port=%v learning=%v mtu=%v mac=%v up=%v",
				data["id"], data["local"], data["port"], data["learning"], l["mtu"], l["address"], slices.Contains(anyStrings(l["flags"]), "UP"))
		case name == "orch0":
			st.Bridge = fmt.Sprintf("mtu=%v up=%v", l["mtu"], slices.Contains(anyStrings(l["flags"]), "UP"))
		case strings.HasPrefix(name, "orch"):
			st.Other = append(st.Other, name)
		}
	}
	if st.Bridge != "" {
		addrs, err := ipJSON(t, h, "ip", "addr", "show", "dev", "orch0")
		if err != nil {
			return st, err
		}
		for _, a := range addrs {
			infos, _ := a["addr_info"].([]any)
			for _, i := range infos {
				m, _ := i.(map[string]any)
				if m["family"] == "inet" {
					st.Bridge = fmt.Sprintf("%v/%v ", m["local"], m["prefixlen"]) + st.Bridge
				}
			}
		}
	}
	if !hasVX {
		return st, nil
	}
	routes, err := ipJSON(t, h, "ip", "route", "show", "dev", "orchvx")
	if err != nil {
		return st, err
	}
	for _, r := range routes {
		if gw, ok := r["gateway"].(string); ok {
			st.Routes[fmt.Sprint(r["dst"])] = gw + " " + strings.Join(anyStrings(r["flags"]), ",")
		}
	}
	neighs, err := ipJSON(t, h, "ip", "neigh", "show", "dev", "orchvx")
	if err != nil {
		return st, err
	}
	for _, n := range neighs {
		st.Neighs[fmt.Sprint(n["dst"])] = fmt.Sprintf("%v %s", n["lladdr"], strings.Join(anyStrings(n["state"]), ","))
	}
	fdb, err := ipJSON(t, h, "bridge", "fdb", "show", "dev", "orchvx")
	if err != nil {
		return st, err
	}
	for _, f := range fdb {
		if dst, ok := f["dst"].(string); ok {
			st.FDB[fmt.Sprint(f["mac"])] = dst
		}
	}
	return st, nil
}

func anyStrings(v any) []string {
	var out []string
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			out = append(out, fmt.Sprint(e))
		}
	case string:
		out = append(out, x)
	}
	return out
}

// wantOverlay is the state a host must hold: its own devices, and one
// route, neighbour and FDB entry per alive peer.
func wantOverlay(self api.Member, peers []api.Member, underlayMTU int) overlayState {
	sn := netip.MustParsePrefix(self.Subnet)
	local := netip.MustParseAddrPort(self.Address).Addr()
	st := overlayState{
		VXLAN: fmt.Sprintf("vni=4242 local=%s port=4789 learning=false mtu=%d mac=%s up=true",
			local, underlayMTU-50, netplane.MACFromID(self.ID)),
		Bridge: fmt.Sprintf("%s/%d mtu=%d up=true", sn.Addr().Next(), sn.Bits(), underlayMTU-50),
		Routes: map[string]string{}, Neighs: map[string]string{}, FDB: map[string]string{},
	}
	for _, p := range peers {
		psn := netip.MustParsePrefix(p.Subnet)
		mac := netplane.MACFromID(p.ID).String()
		st.Routes[psn.String()] = psn.Addr().String() + " onlink"
		st.Neighs[psn.Addr().String()] = mac + " PERMANENT"
		st.FDB[mac] = netip.MustParseAddrPort(p.Address).Addr().String()
	}
	return st
}

// sameOverlay compares the parts of the state that the test pins (veth
// host ends are counted separately).
func sameOverlay(got, want overlayState) bool {
	return got.VXLAN == want.VXLAN && got.Bridge == want.Bridge &&
		maps.Equal(got.Routes, want.Routes) && maps.Equal(got.Neighs, want.Neighs) && maps.Equal(got.FDB, want.FDB)
}

// waitOverlay polls until every host of hs holds exactly the entries for
// the alive members among them, as the first host's member list says.
func waitOverlay(t *testing.T, timeout time.Duration, ns []*node, mtu int) {
	t.Helper()
	lab.Eventually(t, timeout, 200*time.Millisecond, func() error {
		ms, err := ns[0].members(t)
		if err != nil {
			return err
		}
		byName := map[string]api.Member{}
		for _, m := range ms {
			byName[m.Name] = m
		}
		for _, n := range ns {
			self, ok := byName[n.name]
			if !ok || self.Subnet == "" {
				return fmt.Errorf("%s has no subnet yet", n.name)
			}
			var peers []api.Member
			for _, o := range ns {
				if p := byName[o.name]; o != n && p.Status == "alive" {
					if p.Subnet == "" {
						return fmt.Errorf("%s has no subnet yet", o.name)
					}
					peers = append(peers, p)
				}
			}
			got, err := readOverlay(t, n.host)
			if err != nil {
				return err
			}
			if want := wantOverlay(self, peers, mtu); !sameOverlay(got, want) {
				return fmt.Errorf("%s holds\n  %v\nwant\n  %v", n.name, got, want)
			}
		}
		return nil
	})
}

// noOrchLeft fails unless h holds no orch device and no route into the
// overlay.
func noOrchLeft(t *testing.T, h *lab.Host, overlay netip.Prefix) error {
	links, err := ipJSON(t, h, "ip", "link", "show")
	if err != nil {
		return err
	}
	for _, l := range links {
		if name, _ := l["ifname"].(string); strings.HasPrefix(name, "orch") {
			return fmt.Errorf("%s still has device %s", h.Name, name)
		}
	}
	routes, err := ipJSON(t, h, "ip", "route", "show")
	if err != nil {
		return err
	}
	for _, r := range routes {
		if p, err := netip.ParsePrefix(fmt.Sprint(r["dst"])); err == nil && overlay.Overlaps(p) {
			return fmt.Errorf("%s still routes %s", h.Name, p)
		}
	}
	return nil
}

// rootHasNoOrchDevices checks the test machine's own namespace: orch must
// never touch it when it runs in lab hosts.
func rootHasNoOrchDevices(t *testing.T) {
	t.Helper()
	out, err := exec.Command("ip", "-o", "link", "show").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) > 1 && (strings.HasPrefix(f[1], "orch0") || strings.HasPrefix(f[1], "orchvx") || strings.HasPrefix(f[1], "orchv")) {
			t.Errorf("the root namespace has an orch device: %s", line)
		}
	}
}

// inNetNS runs f in the network namespace at path, for opening sockets
// there (a socket stays in the namespace it was made in).
func inNetNS(path string, f func() error) error { return netnsthread.Do(path, f) }

// replicaInfo is one running replica as its node's containerd shows it.
type replicaInfo struct {
	Container string
	NetNS     string
	Addr      netip.Addr
}

// replicasOf lists the service's replicas on a node, from container labels.
func (w *wnode) replicasOf(t *testing.T, service string) []replicaInfo {
	t.Helper()
	var out []replicaInfo
	for _, id := range w.containers(t) {
		var info struct {
			Labels map[string]string `json:"Labels"`
		}
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		b, err := exec.CommandContext(ctx, "ctr", "-a", w.ctd.Socket, "-n", "orch", "containers", "info", id).CombinedOutput()
		cancel()
		if err != nil && strings.Contains(string(b), "not found") {
			continue // removed since the listing (a replica going away)
		}
		if err != nil {
			t.Fatalf("ctr containers info %s on %s: %v: %s", id, w.name, err, b)
		}
		if err := json.Unmarshal(b, &info); err != nil {
			t.Fatalf("container info %s: %v", id, err)
		}
		if info.Labels["orch.service"] != service {
			continue
		}
		r := replicaInfo{Container: id, NetNS: info.Labels["orch.netns"]}
		if p, err := netip.ParsePrefix(info.Labels["orch.addr"]); err == nil {
			r.Addr = p.Addr()
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Container < out[j].Container })
	return out
}

// execIn runs a command inside a container; it returns the combined output.
func (w *wnode) execIn(t *testing.T, container string, argv ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	id := fmt.Sprintf("e2e-%d", time.Now().UnixNano())
	out, err := exec.CommandContext(ctx, "ctr", append([]string{"-a", w.ctd.Socket, "-n", "orch", "tasks", "exec", "--exec-id", id, container}, argv...)...).CombinedOutput()
	return string(out), err
}

// pingDF pings addr from inside the network namespace at ns with a payload
// of size bytes and fragmentation forbidden.
func pingDF(t *testing.T, ns string, addr netip.Addr, size int) error {
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "nsenter", "--net="+ns, "ping", "-n", "-c", "2", "-W", "2", "-M", "do", "-s", fmt.Sprint(size), addr.String()).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ping -M do -s %d %s: %w: %s", size, addr, err, out)
	}
	return nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os/exec"
	"strconv"

	"github.com/orchproject/orch/netplane"
	"github.com/orchproject/orch/scripts/bench/internal/benchkit"
)

// endpoint is one end of a measured path: a namespace and its address.
type endpoint struct {
	name string // for reports: h1, r1, …
	ns   string // under /run/netns
	addr netip.Addr
}

func (e endpoint) path() string { return benchkit.NetNSPath(e.ns) }

// command runs name inside e's namespace. nsenter --net, not ip netns
// exec, which would remount /sys; the binaries need only the network.
func (e endpoint) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "nsenter", append([]string{"--net=" + e.path(), "--", name}, args...)...)
}

// overlayNode is a lab host programmed with netplane.
type overlayNode struct {
	host, replica endpoint
	cfg           netplane.Config
	plane         *netplane.Plane
}

// buildOverlay programs hosts 1..n of the lab as peers of each other and
// attaches one replica namespace to each.
func (b *bench) buildOverlay(ctx context.Context, n int) ([]*overlayNode, error) {
	log := slog.New(slog.NewTextHandler(logWriter{}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	var nodes []*overlayNode
	for k := 1; k <= n; k++ {
		hostAddr := b.lab.Addr(k)
		subnet := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 213, byte(k), 0}), 24)
		nd := &overlayNode{
			host:    endpoint{name: "h" + strconv.Itoa(k), ns: b.lab.NS(k), addr: hostAddr},
			replica: endpoint{name: "r" + strconv.Itoa(k), ns: b.lab.Prefix + "r" + strconv.Itoa(k), addr: subnet.Addr().Next().Next()},
		}
		nd.cfg = netplane.Config{
			NetNS:    nd.host.path(),
			Underlay: hostAddr,
			Subnet:   subnet,
			MAC:      netplane.MACFromID(nd.host.ns),
		}
		p, err := netplane.New(nd.cfg, log)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", nd.host.name, err)
		}
		nd.plane = p
		nodes = append(nodes, nd)
	}
	for _, nd := range nodes {
		if _, err := nd.plane.Ensure(); err != nil {
			return nil, fmt.Errorf("%s: ensure: %w", nd.host.name, err)
		}
		var peers []netplane.Peer
		for _, o := range nodes {
			if o != nd {
				peers = append(peers, netplane.Peer{Name: o.host.name, Underlay: o.cfg.Underlay, Subnet: o.cfg.Subnet, MAC: o.cfg.MAC})
			}
		}
		if _, err := nd.plane.SetPeers(peers); err != nil {
			return nil, fmt.Errorf("%s: set peers: %w", nd.host.name, err)
		}
		for _, args := range [][]string{{"netns", "add", nd.replica.ns}, {"-n", nd.replica.ns, "link", "set", "lo", "up"}} {
			if out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput(); err != nil {
				return nil, fmt.Errorf("ip %v: %w: %s", args, err, bytes.TrimSpace(out))
			}
		}
		if err := nd.plane.Attach(nd.replica.path(), nd.replica.ns, nd.replica.addr); err != nil {
			return nil, fmt.Errorf("%s: attach: %w", nd.host.name, err)
		}
	}
	return nodes, nil
}

// logWriter sends netplane's warnings to stderr with the program's prefix.
type logWriter struct{}

func (logWriter) Write(p []byte) (int, error) {
	logf("netplane: %s", bytes.TrimSpace(p))
	return len(p), nil
}

// Package netplane programs a node's share of the overlay network that lets
// replicas on different nodes reach each other: a bridge for the node's
// own replicas, a VXLAN device, one route, neighbour and FDB entry per
// peer node (flannel's vxlan pattern, see setpeers_linux.go), and a veth
// per replica. It works from data the agent hands it (this node's subnet,
// underlay address and MAC; the peers' ones) and knows nothing of gossip
// or containerd.
//
// # Use
//
//	p, err := netplane.New(cfg, log)   // validates, derives the MTU; changes nothing
//	rep, err := p.Ensure()             // devices, addresses, ip_forward
//	rep, err = p.SetPeers(peers)       // exactly these peers
//	err = p.Attach(nsPath, replicaID, addr)
//
// Every call is declarative and idempotent: it compares the kernel with
// what it was asked for, changes only what differs, and returns a
// [Report] of the changes (empty when the kernel already matched). The
// agent calls Ensure and SetPeers at start, on member changes and on a
// resync ticker, so drift (a deleted route, a device set down) is repaired
// by the next pass.
//
// # Restarts
//
// Kernel objects outlive the agent. A restarted agent's Ensure adopts the
// existing devices without recreating or flapping them, so connections
// between replicas survive; only a VXLAN device whose VNI, port, local
// address or learning flag differs is deleted and created again (and
// reported in [Report.Recreated]). [Cleanup] removes everything, for
// `orch leave` and `orch agent --cleanup`.
//
// # MTU
//
// The overlay MTU is derived from the interface that holds the underlay
// address ([OverlayMTU]: 50 bytes less over IPv4, 70 over IPv6), never
// assumed to be 1500; the bridge, the VXLAN device and every veth get it.
//
// # Imports and concurrency
//
// netplane is the only importer of vishvananda/netlink and netns; it
// imports nothing else outside the standard library and internal/..., and
// never another leaf, agent/... or cmd/.... A [Plane]'s methods are safe
// for concurrent use and are serialised; each call is a handful of
// netlink requests, each bounded by a socket timeout. Tests can program
// several namespaces from one process through [Config.NetNS].
package netplane

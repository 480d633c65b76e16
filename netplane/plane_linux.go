package netplane

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// ErrClosed is returned by the methods of a [Plane] after [Plane.Close].
var ErrClosed = errors.New("netplane: plane closed")

const (
	// nlTimeout bounds every netlink request: the kernel answers in
	// microseconds, so a request that takes seconds means something is
	// wrong, and the reconcile loop must not hang on it.
	nlTimeout = 10 * time.Second

	// dumpTries is how often a list request is repeated when the kernel
	// reports that the table changed while it was being dumped
	// (NLM_F_DUMP_INTR); a partial list must not be taken for the truth,
	// or SetPeers would delete entries it merely did not see.
	dumpTries = 5
)

// Plane programs the overlay of one node in one network namespace. Its
// methods are safe for concurrent use; they are serialised, since each
// reads the kernel's state, compares and writes.
type Plane struct {
	cfg Config
	log *slog.Logger
	mtu int
	h   *netlink.Handle

	// mu serialises the kernel work of the methods (each reads, diffs and
	// writes, which must not interleave) and guards the fields below.
	mu      sync.Mutex
	closed  bool
	applied map[string]Peer // by name: what the last SetPeers programmed
}

// New validates cfg, opens a netlink handle in cfg.NetNS and derives the
// overlay MTU when cfg.MTU is zero. It changes nothing in the kernel. A
// nil log discards.
func New(cfg Config, log *slog.Logger) (*Plane, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("netplane config: %w", err)
	}
	cfg.MAC = slices.Clone(cfg.MAC)
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h, err := openHandle(cfg.NetNS)
	if err != nil {
		return nil, err
	}
	p := &Plane{
		cfg:     cfg,
		log:     log.With("component", "netplane"),
		mtu:     cfg.MTU,
		h:       h,
		applied: map[string]Peer{},
	}
	if p.mtu == 0 {
		under, dev, err := p.underlayMTU()
		if err != nil {
			h.Close()
			return nil, fmt.Errorf("derive overlay MTU (set Config.MTU to skip): %w", err)
		}
		p.mtu = OverlayMTU(under, !cfg.Underlay.Unmap().Is4())
		if p.mtu < minMTU {
			h.Close()
			return nil, fmt.Errorf("derive overlay MTU: %s has MTU %d, which leaves %d for the overlay", dev, under, p.mtu)
		}
		p.log.Debug("overlay MTU derived", "underlay_dev", dev, "underlay_mtu", under, "mtu", p.mtu)
	}
	return p, nil
}

// openHandle returns a netlink handle (route family only) in the network
// namespace at nsPath, or in the caller's when nsPath is empty.
func openHandle(nsPath string) (*netlink.Handle, error) {
	if nsPath == "" {
		return handleAt(netns.None(), nsPath)
	}
	ns, err := netns.GetFromPath(nsPath)
	if err != nil {
		return nil, fmt.Errorf("open network namespace %s: %w", nsPath, err)
	}
	defer ns.Close()
	return handleAt(ns, nsPath)
}

// handleAt returns a netlink handle (route family only, bounded by
// nlTimeout) in ns; netns.None() is the caller's namespace. nsPath names
// it in errors.
func handleAt(ns netns.NsHandle, nsPath string) (*netlink.Handle, error) {
	h, err := netlink.NewHandleAt(ns, syscall.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("open netlink socket in %s: %w", nsName(nsPath), err)
	}
	if err := h.SetSocketTimeout(nlTimeout); err != nil {
		h.Close()
		return nil, fmt.Errorf("set netlink socket timeout: %w", err)
	}
	return h, nil
}

func nsName(nsPath string) string {
	if nsPath == "" {
		return "the current network namespace"
	}
	return nsPath
}

// underlayMTU returns the MTU and name of the interface that holds the
// underlay address: the packets VXLAN sends leave from it (or from one of
// the same network), so it sets the size limit.
func (p *Plane) underlayMTU() (int, string, error) {
	fam := netlink.FAMILY_V4
	if !p.cfg.Underlay.Unmap().Is4() {
		fam = netlink.FAMILY_V6
	}
	addrs, err := dump("addresses", func() ([]netlink.Addr, error) { return p.h.AddrList(nil, fam) })
	if err != nil {
		return 0, "", err
	}
	for _, a := range addrs {
		if ip, ok := addrOf(a.IP); ok && ip == p.cfg.Underlay.Unmap() {
			l, err := p.h.LinkByIndex(a.LinkIndex)
			if err != nil {
				return 0, "", fmt.Errorf("read interface %d holding %s: %w", a.LinkIndex, ip, err)
			}
			return l.Attrs().MTU, l.Attrs().Name, nil
		}
	}
	return 0, "", fmt.Errorf("no interface in %s holds the underlay address %s", nsName(p.cfg.NetNS), p.cfg.Underlay)
}

// Gateway returns the first host address of the subnet, which the bridge
// holds and replicas use as their default route.
func (p *Plane) Gateway() netip.Addr { return gatewayOf(p.cfg.Subnet) }

// MTU returns the overlay MTU: the bridge's, the VXLAN device's and every
// veth's.
func (p *Plane) MTU() int { return p.mtu }

// Subnet returns the node's replica subnet.
func (p *Plane) Subnet() netip.Prefix { return p.cfg.Subnet }

// Underlay returns the node's underlay address the Plane was built with.
// The agent compares it with its current advertise address and builds a
// new Plane when they differ (Ensure then recreates the VXLAN device with
// the new local address).
func (p *Plane) Underlay() netip.Addr { return p.cfg.Underlay }

// VethPrefix returns the prefix of host-end veth names, with the default
// applied, for [VethName].
func (p *Plane) VethPrefix() string { return p.cfg.VethPrefix }

// Close releases the netlink handle. The kernel objects stay: a restarted
// agent adopts them without interrupting traffic (see [Cleanup] to remove
// them). Close is idempotent.
func (p *Plane) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.closed {
		p.closed = true
		p.h.Close()
	}
	return nil
}

// lock takes p.mu and fails once the Plane is closed.
func (p *Plane) lock() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return ErrClosed
	}
	return nil
}

// dump runs a netlink list request, repeating it while the kernel reports
// that the dump was interrupted by a concurrent change.
func dump[T any](what string, list func() ([]T, error)) ([]T, error) {
	var err error
	for range dumpTries {
		var v []T
		v, err = list()
		if err == nil {
			return v, nil
		}
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	return nil, fmt.Errorf("list %s: %w", what, err)
}

// linkByName returns the link called name, or nil if there is none.
func linkByName(h *netlink.Handle, name string) (netlink.Link, error) {
	l, err := h.LinkByName(name)
	if err != nil {
		if _, ok := errors.AsType[netlink.LinkNotFoundError](err); ok {
			return nil, nil
		}
		return nil, fmt.Errorf("look up link %s: %w", name, err)
	}
	return l, nil
}

// gone reports whether err says the object to delete does not exist.
func gone(err error) bool {
	return errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ESRCH) ||
		errors.Is(err, syscall.ENODEV) || errors.Is(err, syscall.EADDRNOTAVAIL)
}

// addrOf converts a netlink IP into a netip.Addr, IPv4 unmapped.
func addrOf(ip net.IP) (netip.Addr, bool) {
	a, ok := netip.AddrFromSlice(ip)
	return a.Unmap(), ok
}

// ipNet converts a prefix into netlink's form, keeping the host bits.
func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// prefixOf converts netlink's form into a prefix, keeping the host bits.
func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := addrOf(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, bits := n.Mask.Size()
	if bits == 0 {
		return netip.Prefix{}, false
	}
	if a.Is4() && bits == 128 {
		ones -= 96
	}
	return netip.PrefixFrom(a, ones), true
}

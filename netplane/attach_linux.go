package netplane

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"syscall"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// replicaIfName is the name of the replica's end of its veth.
const replicaIfName = "eth0"

// Attach plugs the replica network namespace at nsPath into the bridge
// with address addr: a veth pair whose host end, [VethName] of id, is on
// the bridge and up, and whose other end is eth0 in nsPath with addr (at
// the subnet's prefix length), up, with a default route via
// [Plane.Gateway]. Both ends have the overlay MTU.
//
// It is idempotent: an attachment that is already right is left alone,
// so open connections do not notice; attributes that differ are set in
// place; a host end that is not a veth, or whose peer is not nsPath's
// eth0, is deleted and the pair created again. Call [Plane.Ensure] first:
// Attach fails if the bridge does not exist.
func (p *Plane) Attach(nsPath, id string, addr netip.Addr) error {
	if err := p.checkAttach(nsPath, id, addr); err != nil {
		return err
	}
	if err := p.lock(); err != nil {
		return err
	}
	defer p.mu.Unlock()

	br, err := linkByName(p.h, p.cfg.Bridge)
	if err != nil {
		return err
	}
	if br == nil {
		return fmt.Errorf("attach %s: bridge %s does not exist (Ensure creates it)", id, p.cfg.Bridge)
	}
	ns, err := netns.GetFromPath(nsPath)
	if err != nil {
		return fmt.Errorf("attach %s: open network namespace %s: %w", id, nsPath, err)
	}
	defer ns.Close()
	th, err := handleAt(ns, nsPath)
	if err != nil {
		return fmt.Errorf("attach %s: %w", id, err)
	}
	defer th.Close()

	name := VethName(p.cfg.VethPrefix, id)
	host, err := linkByName(p.h, name)
	if err != nil {
		return err
	}
	var peer netlink.Link
	if host != nil {
		var why string
		if peer, why, err = p.pairPeer(host, th, ns); err != nil {
			return fmt.Errorf("attach %s: %w", id, err)
		}
		if why != "" {
			p.log.Warn("replacing a wrong attachment", "attachment", id, "dev", name, "reason", why)
			if err := p.h.LinkDel(host); err != nil && !gone(err) {
				return fmt.Errorf("attach %s: delete %s (%s): %w", id, name, why, err)
			}
			host, peer = nil, nil
		}
	}
	var changes []string
	if host == nil {
		if host, peer, err = p.createPair(name, id, br, th, ns); err != nil {
			return fmt.Errorf("attach %s: %w", id, err)
		}
		changes = append(changes, "created "+name)
	}
	note := func(s string) { changes = append(changes, s) }

	// The host end: on the bridge, MTU, up.
	var errs []error
	if host.Attrs().MasterIndex != br.Attrs().Index {
		if err := p.h.LinkSetMasterByIndex(host, br.Attrs().Index); err != nil {
			errs = append(errs, fmt.Errorf("put %s on bridge %s: %w", name, p.cfg.Bridge, err))
		} else {
			note(name + " on " + p.cfg.Bridge)
		}
	}
	errs = append(errs, setMTU(p.h, host, p.mtu, note), setUp(p.h, host, note))

	// The replica end: MTU, address, up, default route. The address goes
	// on before the link comes up so the route can be added at once.
	errs = append(errs,
		setMTU(th, peer, p.mtu, note),
		ensureAddrOn(th, peer, netip.PrefixFrom(addr, p.cfg.Subnet.Bits()), note),
		setUp(th, peer, note),
	)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("attach %s: %w", id, err)
	}
	if err := p.ensureDefaultRoute(th, peer, note); err != nil {
		return fmt.Errorf("attach %s: %w", id, err)
	}
	if len(changes) > 0 {
		p.log.Info("replica attached", "attachment", id, "dev", name, "addr", addr, "changes", strings.Join(changes, ", "))
	}
	return nil
}

// checkAttach validates Attach's arguments.
func (p *Plane) checkAttach(nsPath, id string, addr netip.Addr) error {
	s := p.cfg.Subnet
	switch {
	case nsPath == "":
		return errors.New("attach: no network namespace path")
	case id == "":
		return errors.New("attach: empty attachment ID")
	case !addr.Is4() || !s.Contains(addr):
		return fmt.Errorf("attach %s: address %s is not in subnet %s", id, addr, s)
	case addr == s.Addr() || addr == broadcastOf(s):
		return fmt.Errorf("attach %s: address %s is the network or broadcast address of %s", id, addr, s)
	case addr == p.Gateway():
		return fmt.Errorf("attach %s: address %s is the gateway", id, addr)
	}
	return nil
}

// pairPeer returns the replica end of host, found as eth0 in the
// namespace of th, or why host cannot be adopted.
func (p *Plane) pairPeer(host netlink.Link, th *netlink.Handle, ns netns.NsHandle) (netlink.Link, string, error) {
	if _, ok := host.(*netlink.Veth); !ok {
		return nil, "not a veth but a " + host.Type(), nil
	}
	peer, err := linkByName(th, replicaIfName)
	if err != nil {
		return nil, "", err
	}
	if peer == nil {
		return nil, "no " + replicaIfName + " in the replica's namespace", nil
	}
	if _, ok := peer.(*netlink.Veth); !ok {
		return nil, replicaIfName + " in the replica's namespace is a " + peer.Type(), nil
	}
	// Interface indexes are per namespace: both ends must name each
	// other, and the host end's peer namespace must be the replica's.
	if host.Attrs().ParentIndex != peer.Attrs().Index || peer.Attrs().ParentIndex != host.Attrs().Index {
		return nil, replicaIfName + " in the replica's namespace is not this veth's peer", nil
	}
	if id, err := p.h.GetNetNsIdByFd(int(ns)); err == nil && id >= 0 && host.Attrs().NetNsID != id {
		return nil, "its peer is in another namespace", nil
	}
	return peer, "", nil
}

// createPair creates the veth pair with the replica end directly in the
// replica's namespace, named eth0 there. (Creating it here first would
// clash with the host's own eth0.) Any other eth0 in the replica's
// namespace is in the way and is deleted: the namespace is orch's.
func (p *Plane) createPair(name, id string, br netlink.Link, th *netlink.Handle, ns netns.NsHandle) (host, peer netlink.Link, err error) {
	if old, err := linkByName(th, replicaIfName); err != nil {
		return nil, nil, err
	} else if old != nil {
		if err := th.LinkDel(old); err != nil && !gone(err) {
			return nil, nil, fmt.Errorf("delete the old %s in the replica's namespace: %w", replicaIfName, err)
		}
	}
	attrs := netlink.NewLinkAttrs()
	attrs.Name = name
	attrs.MTU = p.mtu
	attrs.MasterIndex = br.Attrs().Index
	v := &netlink.Veth{
		LinkAttrs: attrs,
		PeerName:  replicaIfName,
		// A fixed address per attachment keeps the gateway's ARP entry
		// for the replica valid if the pair is ever created again.
		PeerHardwareAddr: MACFromID("veth/" + id),
		PeerNamespace:    netlink.NsFd(ns),
		PeerMTU:          uint32(p.mtu),
	}
	if err := p.h.LinkAdd(v); err != nil {
		return nil, nil, fmt.Errorf("create veth %s with peer %s in the replica's namespace: %w", name, replicaIfName, err)
	}
	if host, err = p.h.LinkByName(name); err != nil {
		return nil, nil, fmt.Errorf("look up %s after creating it: %w", name, err)
	}
	if peer, err = th.LinkByName(replicaIfName); err != nil {
		return nil, nil, fmt.Errorf("look up %s in the replica's namespace after creating it: %w", replicaIfName, err)
	}
	return host, peer, nil
}

// ensureDefaultRoute makes the replica's default route go via the
// gateway on eth0.
func (p *Plane) ensureDefaultRoute(th *netlink.Handle, eth0 netlink.Link, note func(string)) error {
	gw := p.Gateway()
	routes, err := dump("routes in the replica's namespace", func() ([]netlink.Route, error) {
		return th.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{}, 0)
	})
	if err != nil {
		return err
	}
	ok := slices.ContainsFunc(routes, func(rt netlink.Route) bool {
		dst, isSet := prefixOf(rt.Dst)
		got, _ := addrOf(rt.Gw)
		return (!isSet || dst == zeroRoute) && rt.Priority == 0 && got == gw && rt.LinkIndex == eth0.Attrs().Index
	})
	if ok {
		return nil
	}
	err = th.RouteReplace(&netlink.Route{
		LinkIndex: eth0.Attrs().Index,
		Dst:       ipNet(zeroRoute),
		Gw:        gw.AsSlice(),
		Protocol:  syscall.RTPROT_BOOT, // what `ip route add` uses
	})
	if err != nil {
		return fmt.Errorf("set default route via %s in the replica's namespace: %w", gw, err)
	}
	note("default route via " + gw.String())
	return nil
}

// Detach removes the attachment id: deleting the host end deletes the
// pair. An attachment that does not exist is not an error.
func (p *Plane) Detach(id string) error {
	return p.DetachName(VethName(p.cfg.VethPrefix, id))
}

// DetachName removes the host end called name, as listed by
// [Plane.Attachments], for orphans whose attachment ID is no longer
// known. It refuses a name without the veth prefix, and leaves alone an
// interface of that name that is not a veth. A name that does not exist
// is not an error.
func (p *Plane) DetachName(name string) error {
	if !strings.HasPrefix(name, p.cfg.VethPrefix) {
		return fmt.Errorf("detach %s: not a name with the veth prefix %q", name, p.cfg.VethPrefix)
	}
	if err := p.lock(); err != nil {
		return err
	}
	defer p.mu.Unlock()
	l, err := linkByName(p.h, name)
	if err != nil || l == nil {
		return err
	}
	if l.Type() != "veth" {
		return fmt.Errorf("detach %s: a %s, not a veth: left alone", name, l.Type())
	}
	if err := p.h.LinkDel(l); err != nil && !gone(err) {
		return fmt.Errorf("detach: delete %s: %w", name, err)
	}
	p.log.Info("replica detached", "dev", name)
	return nil
}

// Attachments returns the names of the host ends present: veths whose
// name starts with the prefix, sorted. The agent compares them with
// [VethName] of the replicas it runs and detaches the rest.
func (p *Plane) Attachments() ([]string, error) {
	if err := p.lock(); err != nil {
		return nil, err
	}
	defer p.mu.Unlock()
	links, err := dump("links", p.h.LinkList)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, l := range links {
		if l.Type() == "veth" && strings.HasPrefix(l.Attrs().Name, p.cfg.VethPrefix) {
			names = append(names, l.Attrs().Name)
		}
	}
	slices.Sort(names)
	return names, nil
}

func setMTU(h *netlink.Handle, l netlink.Link, mtu int, note func(string)) error {
	a := l.Attrs()
	if a.MTU == mtu {
		return nil
	}
	if err := h.LinkSetMTU(l, mtu); err != nil {
		return fmt.Errorf("set MTU of %s to %d: %w", a.Name, mtu, err)
	}
	note(fmt.Sprintf("%s mtu %d (was %d)", a.Name, mtu, a.MTU))
	return nil
}

func setUp(h *netlink.Handle, l netlink.Link, note func(string)) error {
	a := l.Attrs()
	if a.Flags&net.FlagUp != 0 {
		return nil
	}
	if err := h.LinkSetUp(l); err != nil {
		return fmt.Errorf("set %s up: %w", a.Name, err)
	}
	note(a.Name + " up (was down)")
	return nil
}

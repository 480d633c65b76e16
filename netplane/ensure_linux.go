package netplane

// Ensure adopts what exists. An agent restart must not interrupt replicas'
// connections, so devices are created only when missing and deleted only
// when they have a setting that cannot be changed in place (the VXLAN
// device's VNI, port, local address, learning or external mode, or a
// device of the wrong type under orch's name). Every other attribute (MTU,
// MAC, up, addresses) is set in place when it differs, and left alone
// when it matches, so a second call changes nothing.

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"syscall"

	"github.com/vishvananda/netlink"
)

// Ensure makes the node's devices match the Config: the bridge with the
// gateway address, the VXLAN device with the subnet's network address,
// net.ipv4.ip_forward on, and every attached veth's host end enslaved to
// the bridge, up and at the overlay MTU. It is idempotent and reports what
// it changed; it goes on after a failure, so one broken part does not
// hold up the others, and returns every error joined.
func (p *Plane) Ensure() (Report, error) {
	if err := p.lock(); err != nil {
		return Report{}, err
	}
	defer p.mu.Unlock()
	var (
		r    Report
		errs []error
	)
	br, err := p.ensureBridge(&r)
	if err != nil {
		errs = append(errs, err)
	}
	if err := p.ensureVXLAN(&r); err != nil {
		errs = append(errs, err)
	}
	if changed, err := ensureSysctl(p.cfg.NetNS, "net/ipv4/ip_forward", "1"); err != nil {
		errs = append(errs, fmt.Errorf("enable IPv4 forwarding: %w", err))
	} else if changed {
		// Replicas' packets cross from the bridge to the VXLAN device and
		// back: routing, not bridging.
		r.Repaired = append(r.Repaired, "net.ipv4.ip_forward=1")
	}
	if br != nil {
		if err := p.ensureHostVeths(br, &r); err != nil {
			errs = append(errs, err)
		}
	}
	if !r.Empty() {
		p.log.Info("overlay devices changed", "changes", r.String())
	}
	return r, errors.Join(errs...)
}

// ensureBridge creates or adopts the bridge and gives it the gateway
// address.
func (p *Plane) ensureBridge(r *Report) (netlink.Link, error) {
	name := p.cfg.Bridge
	l, err := linkByName(p.h, name)
	if err != nil {
		return nil, err
	}
	recreate := ""
	if l != nil && l.Type() != "bridge" {
		recreate = fmt.Sprintf("bridge %s (was a %s)", name, l.Type())
		if err := p.h.LinkDel(l); err != nil && !gone(err) {
			return nil, fmt.Errorf("delete %s %s to replace it with a bridge: %w", l.Type(), name, err)
		}
		l = nil
	}
	fresh := l == nil
	if fresh {
		attrs := netlink.NewLinkAttrs()
		attrs.Name = name
		attrs.Flags = net.FlagUp
		// A bridge without a fixed address takes the lowest of its ports'
		// and changes it as replicas come and go, which leaves stale
		// gateway entries in the other replicas' ARP caches. A fixed one,
		// derived from the node's, also survives the bridge being
		// recreated.
		attrs.HardwareAddr = MACFromID("bridge/" + p.cfg.MAC.String())
		if err := p.h.LinkAdd(&netlink.Bridge{LinkAttrs: attrs}); err != nil {
			return nil, fmt.Errorf("create bridge %s: %w", name, err)
		}
		if l, err = p.h.LinkByName(name); err != nil {
			return nil, fmt.Errorf("look up bridge %s after creating it: %w", name, err)
		}
		// The MTU is set after creation, not with it: only a change
		// through the bridge's change_mtu counts as the user's choice
		// (BROPT_MTU_SET_BY_USER); otherwise the bridge follows its
		// ports' smallest MTU, 1500 when it has none, as replicas come
		// and go. (At 1500 the two agree anyway.)
		if l.Attrs().MTU != p.mtu {
			if err := p.h.LinkSetMTU(l, p.mtu); err != nil {
				return nil, fmt.Errorf("set MTU of bridge %s to %d: %w", name, p.mtu, err)
			}
			l.Attrs().MTU = p.mtu
		}
		if recreate != "" {
			r.Recreated = append(r.Recreated, recreate)
		} else {
			r.Created = append(r.Created, "bridge "+name)
		}
	}
	gw := netip.PrefixFrom(p.Gateway(), p.cfg.Subnet.Bits())
	err = errors.Join(
		p.ensureMTU(l, r),
		p.ensureAddr(l, gw, fresh, r),
		p.ensureUp(l, r),
	)
	return l, err
}

// vxlanMismatch returns why an existing VXLAN device cannot be adopted as
// cfg's, or "" if it can. These settings can only be given when the device
// is created.
func vxlanMismatch(vx *netlink.Vxlan, cfg Config) string {
	var why []string
	if vx.VxlanId != cfg.VNI {
		why = append(why, fmt.Sprintf("vni %d, want %d", vx.VxlanId, cfg.VNI))
	}
	if vx.Port != cfg.Port {
		why = append(why, fmt.Sprintf("port %d, want %d", vx.Port, cfg.Port))
	}
	if local, _ := addrOf(vx.SrcAddr); local != cfg.Underlay.Unmap() {
		why = append(why, fmt.Sprintf("local %v, want %s", vx.SrcAddr, cfg.Underlay))
	}
	if vx.Learning {
		why = append(why, "learning on")
	}
	if vx.FlowBased {
		why = append(why, "external (flow based)")
	}
	if g, ok := addrOf(vx.Group); ok && !g.IsUnspecified() {
		why = append(why, fmt.Sprintf("group/remote %s", g))
	}
	return strings.Join(why, ", ")
}

// ensureVXLAN creates or adopts the VXLAN device and gives it the
// subnet's network address as /32: packets this host sends to another
// node's replicas leave with that source, and replies find their way back
// over the overlay (flannel's flannel.1 does the same).
func (p *Plane) ensureVXLAN(r *Report) error {
	name := p.cfg.VXLAN
	l, err := linkByName(p.h, name)
	if err != nil {
		return err
	}
	recreate := ""
	if l != nil {
		if vx, ok := l.(*netlink.Vxlan); !ok {
			recreate = fmt.Sprintf("vxlan %s (was a %s)", name, l.Type())
		} else if why := vxlanMismatch(vx, p.cfg); why != "" {
			recreate = fmt.Sprintf("vxlan %s (%s)", name, why)
		}
		if recreate != "" {
			if err := p.h.LinkDel(l); err != nil && !gone(err) {
				return fmt.Errorf("delete %s to recreate it: %w", name, err)
			}
			l = nil
		}
	}
	fresh := l == nil
	if fresh {
		attrs := netlink.NewLinkAttrs()
		attrs.Name = name
		attrs.MTU = p.mtu
		attrs.Flags = net.FlagUp
		attrs.HardwareAddr = p.cfg.MAC
		vx := &netlink.Vxlan{
			LinkAttrs: attrs,
			VxlanId:   p.cfg.VNI,
			SrcAddr:   p.cfg.Underlay.Unmap().AsSlice(),
			Port:      p.cfg.Port,
			// Off: every FDB entry comes from the cluster's member list,
			// and one learned from a stray packet must not redirect a
			// peer's traffic.
			Learning: false,
		}
		if err := p.h.LinkAdd(vx); err != nil {
			return fmt.Errorf("create vxlan %s (vni %d, port %d, local %s): %w", name, p.cfg.VNI, p.cfg.Port, p.cfg.Underlay, err)
		}
		if l, err = p.h.LinkByName(name); err != nil {
			return fmt.Errorf("look up vxlan %s after creating it: %w", name, err)
		}
		if recreate != "" {
			r.Recreated = append(r.Recreated, recreate)
			p.log.Warn("vxlan device recreated; its peer entries will be added again", "dev", name, "reason", recreate)
		} else {
			r.Created = append(r.Created, fmt.Sprintf("vxlan %s (vni %d, port %d, local %s)", name, p.cfg.VNI, p.cfg.Port, p.cfg.Underlay))
		}
		// The device's peer entries are gone with it: whatever SetPeers
		// adds next is an addition, not a repair.
		clear(p.applied)
	}
	net0 := netip.PrefixFrom(p.cfg.Subnet.Addr(), 32)
	return errors.Join(
		p.ensureMAC(l, p.cfg.MAC, r),
		p.ensureMTU(l, r),
		p.ensureAddr(l, net0, fresh, r),
		p.ensureUp(l, r),
	)
}

// ensureMAC sets l's address in place. A VXLAN device accepts a new
// address while up; should a kernel refuse, it is set down for the change.
func (p *Plane) ensureMAC(l netlink.Link, mac net.HardwareAddr, r *Report) error {
	a := l.Attrs()
	if bytes.Equal(a.HardwareAddr, mac) {
		return nil
	}
	err := p.h.LinkSetHardwareAddr(l, mac)
	if errors.Is(err, syscall.EBUSY) {
		if err = p.h.LinkSetDown(l); err == nil {
			err = p.h.LinkSetHardwareAddr(l, mac)
			a.Flags &^= net.FlagUp // ensureUp brings it back
		}
	}
	if err != nil {
		return fmt.Errorf("set address of %s to %s: %w", a.Name, mac, err)
	}
	r.Repaired = append(r.Repaired, fmt.Sprintf("%s address %s (was %s)", a.Name, mac, a.HardwareAddr))
	return nil
}

func (p *Plane) ensureMTU(l netlink.Link, r *Report) error {
	return setMTU(p.h, l, p.mtu, r.repaired)
}

func (p *Plane) ensureUp(l netlink.Link, r *Report) error {
	return setUp(p.h, l, r.repaired)
}

// ensureAddr makes want the only IPv4 address of l: everything on orch's
// devices is orch's, and an address left from an earlier subnet would
// attract traffic for it.
func (p *Plane) ensureAddr(l netlink.Link, want netip.Prefix, fresh bool, r *Report) error {
	return ensureAddrOn(p.h, l, want, func(s string) {
		if fresh {
			r.Created = append(r.Created, s)
		} else {
			r.Repaired = append(r.Repaired, s)
		}
	})
}

// ensureAddrOn is ensureAddr for any handle (attachments use it in the
// replica's namespace); note is told what changed. Unlike peer entries,
// old addresses are removed before the new one is added: deleting the
// primary address of a subnet also deletes its secondaries (unless
// promote_secondaries is set), so a new address in the same subnet added
// first would vanish with the old one.
func ensureAddrOn(h *netlink.Handle, l netlink.Link, want netip.Prefix, note func(string)) error {
	name := l.Attrs().Name
	addrs, err := dump("addresses of "+name, func() ([]netlink.Addr, error) { return h.AddrList(l, netlink.FAMILY_V4) })
	if err != nil {
		return err
	}
	found := false
	for _, a := range addrs {
		if got, ok := prefixOf(a.IPNet); ok && got == want {
			found = true
			continue
		}
		if err := h.AddrDel(l, &a); err != nil && !gone(err) {
			return fmt.Errorf("remove address %s from %s: %w", a.IPNet, name, err)
		}
		note(fmt.Sprintf("removed address %s from %s", a.IPNet, name))
	}
	if found && len(addrs) > 1 {
		// It may have been a secondary of one just removed: look again.
		addrs, err = dump("addresses of "+name, func() ([]netlink.Addr, error) { return h.AddrList(l, netlink.FAMILY_V4) })
		if err != nil {
			return err
		}
		found = slices.ContainsFunc(addrs, func(a netlink.Addr) bool {
			got, ok := prefixOf(a.IPNet)
			return ok && got == want
		})
	}
	if !found {
		if err := h.AddrAdd(l, &netlink.Addr{IPNet: ipNet(want)}); err != nil && !errors.Is(err, syscall.EEXIST) {
			return fmt.Errorf("add address %s to %s: %w", want, name, err)
		}
		note(fmt.Sprintf("address %s on %s", want, name))
	}
	return nil
}

// ensureHostVeths puts every veth named with the prefix back on the
// bridge (a recreated bridge starts with no ports), up and at the overlay
// MTU, so replicas keep working without waiting for their next Attach.
func (p *Plane) ensureHostVeths(br netlink.Link, r *Report) error {
	links, err := dump("links", p.h.LinkList)
	if err != nil {
		return err
	}
	var errs []error
	for _, l := range links {
		a := l.Attrs()
		if l.Type() != "veth" || !strings.HasPrefix(a.Name, p.cfg.VethPrefix) {
			continue
		}
		if a.MasterIndex != br.Attrs().Index {
			if err := p.h.LinkSetMasterByIndex(l, br.Attrs().Index); err != nil {
				errs = append(errs, fmt.Errorf("attach %s to bridge %s: %w", a.Name, p.cfg.Bridge, err))
				continue
			}
			r.Repaired = append(r.Repaired, fmt.Sprintf("%s on bridge %s", a.Name, p.cfg.Bridge))
		}
		errs = append(errs, p.ensureMTU(l, r), p.ensureUp(l, r))
	}
	return errors.Join(errs...)
}

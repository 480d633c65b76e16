package netplane

import (
	"errors"
	"fmt"
	"strings"

	"github.com/vishvananda/netlink"
)

// Cleanup removes orch's overlay from the namespace cfg.NetNS: the VXLAN
// device, the bridge and every veth whose name starts with cfg.VethPrefix
// (deleting one end of a veth deletes the pair). Routes, neighbours, FDB
// entries and addresses go with their devices. Only the names, types and
// NetNS of cfg matter (zero fields are the defaults); a device under
// orch's name but of another type is left alone and reported. It needs no
// Plane, is idempotent, and leaves net.ipv4.ip_forward as it is, since
// other software may rely on it. `orch agent --cleanup` and `orch leave`
// use it.
func Cleanup(cfg Config) error {
	cfg = cfg.withDefaults()
	if errs := cfg.validateNames(); len(errs) > 0 {
		return fmt.Errorf("netplane cleanup config: %w", errors.Join(errs...))
	}
	h, err := openHandle(cfg.NetNS)
	if err != nil {
		return err
	}
	defer h.Close()

	links, err := dump("links", h.LinkList)
	if err != nil {
		return err
	}
	var errs []error
	del := func(l netlink.Link) {
		if err := h.LinkDel(l); err != nil && !gone(err) {
			errs = append(errs, fmt.Errorf("delete %s %s: %w", l.Type(), l.Attrs().Name, err))
		}
	}
	// The VXLAN device first: traffic to peers stops before the bridge
	// and the replicas' links go.
	for _, want := range []struct{ name, typ string }{{cfg.VXLAN, "vxlan"}, {cfg.Bridge, "bridge"}} {
		for _, l := range links {
			if l.Attrs().Name != want.name {
				continue
			}
			if l.Type() != want.typ {
				errs = append(errs, fmt.Errorf("%s is a %s, not orch's %s: left alone", want.name, l.Type(), want.typ))
				continue
			}
			del(l)
		}
	}
	for _, l := range links {
		if l.Type() == "veth" && strings.HasPrefix(l.Attrs().Name, cfg.VethPrefix) {
			del(l)
		}
	}
	return errors.Join(errs...)
}

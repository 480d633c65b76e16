package netplane

import (
	"net"
	"testing"

	"github.com/vishvananda/netlink"
)

func TestVXLANMismatch(t *testing.T) {
	cfg := validConfig().withDefaults()
	good := func() *netlink.Vxlan {
		return &netlink.Vxlan{VxlanId: cfg.VNI, Port: cfg.Port, SrcAddr: net.ParseIP(cfg.Underlay.String())}
	}
	for _, tc := range []struct {
		name   string
		change func(*netlink.Vxlan)
		want   string
	}{
		{"adoptable", func(*netlink.Vxlan) {}, ""},
		{"4-in-6 local address", func(v *netlink.Vxlan) { v.SrcAddr = net.ParseIP("::ffff:" + cfg.Underlay.String()) }, ""},
		{"vni", func(v *netlink.Vxlan) { v.VxlanId = 1 }, "vni 1, want 4242"},
		{"port", func(v *netlink.Vxlan) { v.Port = 8472 }, "port 8472, want 4789"},
		{"local", func(v *netlink.Vxlan) { v.SrcAddr = net.ParseIP("10.47.0.9") }, "local 10.47.0.9, want 10.47.0.1"},
		{"no local", func(v *netlink.Vxlan) { v.SrcAddr = nil }, "local <nil>, want 10.47.0.1"},
		{"learning", func(v *netlink.Vxlan) { v.Learning = true }, "learning on"},
		{"external", func(v *netlink.Vxlan) { v.FlowBased = true }, "external (flow based)"},
		{"group", func(v *netlink.Vxlan) { v.Group = net.ParseIP("239.1.1.1") }, "group/remote 239.1.1.1"},
		{"several", func(v *netlink.Vxlan) { v.VxlanId, v.Learning = 7, true }, "vni 7, want 4242, learning on"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := good()
			tc.change(v)
			if got := vxlanMismatch(v, cfg); got != tc.want {
				t.Errorf("vxlanMismatch = %q, want %q", got, tc.want)
			}
		})
	}
}

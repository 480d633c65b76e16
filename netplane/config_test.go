package netplane

import (
	"net"
	"net/netip"
	"strings"
	"testing"
)

func TestMACFromID_StableUnicastLocal(t *testing.T) {
	seen := map[string]string{}
	for _, id := range []string{"", "n1", "n2", "0f3a9c2e-node", strings.Repeat("x", 300)} {
		mac := MACFromID(id)
		if len(mac) != 6 {
			t.Fatalf("MACFromID(%q) = %s: want 6 bytes", id, mac)
		}
		if mac[0]&0x01 != 0 {
			t.Errorf("MACFromID(%q) = %s: multicast bit set", id, mac)
		}
		if mac[0]&0x02 == 0 {
			t.Errorf("MACFromID(%q) = %s: locally administered bit clear", id, mac)
		}
		if again := MACFromID(id); again.String() != mac.String() {
			t.Errorf("MACFromID(%q) = %s then %s: not stable", id, mac, again)
		}
		if other, ok := seen[mac.String()]; ok {
			t.Errorf("MACFromID(%q) = MACFromID(%q) = %s", id, other, mac)
		}
		seen[mac.String()] = id
		if err := checkMAC(mac); err != nil {
			t.Errorf("MACFromID(%q) = %s fails validation: %v", id, mac, err)
		}
	}
	// A known value, so a change of the derivation (which would change
	// every node's MAC across an upgrade) is noticed.
	if got, want := MACFromID("n1").String(), "66:6b:8b:b8:4c:e7"; got != want {
		t.Errorf("MACFromID(n1) = %s, want %s", got, want)
	}
}

func TestOverlayMTU(t *testing.T) {
	for _, tc := range []struct {
		name     string
		underlay int
		ipv6     bool
		want     int
	}{
		{"ethernet v4", 1500, false, 1450},
		{"ethernet v6", 1500, true, 1430},
		{"lab 1400 v4", 1400, false, 1350},
		{"jumbo v4", 9000, false, 8950},
		{"jumbo v6", 9000, true, 8930},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := OverlayMTU(tc.underlay, tc.ipv6); got != tc.want {
				t.Errorf("OverlayMTU(%d, %v) = %d, want %d", tc.underlay, tc.ipv6, got, tc.want)
			}
		})
	}
}

func TestVethName(t *testing.T) {
	seen := map[string]string{}
	for i := range 2000 {
		id := "svc." + string(rune('a'+i%26)) + "." + strings.Repeat("z", i%7) + string(rune(i))
		name := VethName(DefaultVethPrefix, id)
		if len(name) != maxIfName {
			t.Fatalf("VethName(%q) = %q: %d bytes, want %d", id, name, len(name), maxIfName)
		}
		if !strings.HasPrefix(name, DefaultVethPrefix) {
			t.Fatalf("VethName(%q) = %q: lacks the prefix", id, name)
		}
		if err := checkIfName(name); err != nil {
			t.Fatalf("VethName(%q) = %q: %v", id, name, err)
		}
		if other, ok := seen[name]; ok && other != id {
			t.Fatalf("VethName(%q) = VethName(%q) = %q", id, other, name)
		}
		seen[name] = id
		if again := VethName(DefaultVethPrefix, id); again != name {
			t.Fatalf("VethName(%q) not stable: %q then %q", id, name, again)
		}
	}
	if got := VethName("v", "x"); len(got) != maxIfName {
		t.Errorf("VethName with a short prefix = %q: want %d bytes", got, maxIfName)
	}
	if got := VethName(strings.Repeat("p", 20), "x"); !strings.HasPrefix(got, "ppp") {
		t.Errorf("VethName with an overlong prefix = %q", got)
	}
}

func validConfig() Config {
	return Config{
		Underlay: netip.MustParseAddr("10.47.0.1"),
		Subnet:   netip.MustParsePrefix("10.213.1.0/24"),
		MAC:      MACFromID("n1"),
	}
}

func TestConfig_Validate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*Config)
		want   []string // substrings of the error; none means valid
	}{
		{"defaults", func(*Config) {}, nil},
		{"ipv6 underlay", func(c *Config) { c.Underlay = netip.MustParseAddr("fd00::1") }, nil},
		{"slash 30", func(c *Config) { c.Subnet = netip.MustParsePrefix("10.213.1.4/30") }, nil},
		{"mtu override", func(c *Config) { c.MTU = 1400 }, nil},
		{"nothing", func(c *Config) { *c = Config{} }, []string{"underlay address is required", "subnet is required", "mac: required"}},
		{"unspecified underlay", func(c *Config) { c.Underlay = netip.IPv4Unspecified() }, []string{"want a unicast address"}},
		{"loopback underlay", func(c *Config) { c.Underlay = netip.MustParseAddr("127.0.0.1") }, []string{"want a unicast address"}},
		{"zoned underlay", func(c *Config) { c.Underlay = netip.MustParseAddr("fe80::1%eth0") }, []string{"zoned"}},
		{"v6 subnet", func(c *Config) { c.Subnet = netip.MustParsePrefix("fd00::/64") }, []string{"want IPv4"}},
		{"unmasked subnet", func(c *Config) { c.Subnet = netip.MustParsePrefix("10.213.1.7/24") }, []string{"did you mean 10.213.1.0/24"}},
		{"slash 31", func(c *Config) { c.Subnet = netip.MustParsePrefix("10.213.1.0/31") }, []string{"/30 or larger"}},
		{"multicast mac", func(c *Config) { c.MAC = net.HardwareAddr{1, 0, 0, 0, 0, 1} }, []string{"multicast"}},
		{"short mac", func(c *Config) { c.MAC = net.HardwareAddr{2, 0, 0} }, []string{"6-byte"}},
		{"zero mac", func(c *Config) { c.MAC = make(net.HardwareAddr, 6) }, []string{"all zeros"}},
		{"vni", func(c *Config) { c.VNI = 1 << 24 }, []string{"vni 16777216"}},
		{"negative vni", func(c *Config) { c.VNI = -1 }, []string{"vni -1"}},
		{"port", func(c *Config) { c.Port = 70000 }, []string{"port 70000"}},
		{"mtu", func(c *Config) { c.MTU = 20 }, []string{"mtu 20"}},
		{"long bridge", func(c *Config) { c.Bridge = "abcdefghijklmnop" }, []string{"bridge name", "longer than 15"}},
		{"slash in vxlan", func(c *Config) { c.VXLAN = "a/b" }, []string{"vxlan name"}},
		{"same names", func(c *Config) { c.Bridge, c.VXLAN = "x0", "x0" }, []string{"both named"}},
		{"long prefix", func(c *Config) { c.VethPrefix = "orchveth" }, []string{"at most 7 bytes"}},
		{"all at once", func(c *Config) { c.VNI, c.Port, c.MTU = -5, -5, -5 }, []string{"vni -5", "port -5", "mtu -5"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig()
			tc.change(&c)
			err := c.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want an error mentioning %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to mention %q", err, w)
				}
			}
		})
	}
}

func TestNew_RejectsInvalidConfig(t *testing.T) {
	// Validation comes before any kernel access, so this needs no root.
	if _, err := New(Config{}, nil); err == nil || !strings.Contains(err.Error(), "underlay address is required") {
		t.Fatalf("New(Config{}) = %v, want a validation error", err)
	}
}

func TestGatewayAndBroadcast(t *testing.T) {
	for _, tc := range []struct{ subnet, gw, bcast string }{
		{"10.213.5.0/24", "10.213.5.1", "10.213.5.255"},
		{"10.213.5.4/30", "10.213.5.5", "10.213.5.7"},
		{"10.208.0.0/12", "10.208.0.1", "10.223.255.255"},
	} {
		s := netip.MustParsePrefix(tc.subnet)
		if got := gatewayOf(s).String(); got != tc.gw {
			t.Errorf("gatewayOf(%s) = %s, want %s", s, got, tc.gw)
		}
		if got := broadcastOf(s).String(); got != tc.bcast {
			t.Errorf("broadcastOf(%s) = %s, want %s", s, got, tc.bcast)
		}
	}
}

package netplane

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// Defaults of [Config]; [DefaultConfig] spells them out.
const (
	DefaultBridge     = "orch0"
	DefaultVXLAN      = "orchvx"
	DefaultVethPrefix = "orchv"
	// DefaultVNI is orch's VXLAN network identifier. Any value works as
	// long as every node uses the same one; 4242 stays clear of flannel's
	// 1 and docker overlay's 256+.
	DefaultVNI = 4242
	// DefaultPort is the IANA VXLAN port (RFC 7348), not Linux's legacy
	// default 8472, so packet captures decode it without hints.
	DefaultPort = 4789
)

const (
	// maxIfName is the longest interface name Linux accepts (IFNAMSIZ-1).
	maxIfName = 15

	// MaxVethPrefixLen leaves at least 8 hex digits (32 bits) of the
	// attachment ID's hash in a veth name, so collisions between the few
	// hundred replicas of one node are practically impossible.
	MaxVethPrefixLen = maxIfName - 8

	// maxVNI is the largest 24-bit VXLAN network identifier.
	maxVNI = 1<<24 - 1

	// minMTU is the smallest MTU IPv4 allows (RFC 791); anything lower
	// means the underlay is misconfigured or the override is a typo.
	minMTU = 68

	// encapOverhead4 is what VXLAN over IPv4 adds to every inner IP
	// packet: outer IPv4 header 20 + UDP 8 + VXLAN 8 + inner Ethernet 14.
	encapOverhead4 = 50
	// encapOverhead6 is the same over IPv6: the outer header is 40 bytes.
	encapOverhead6 = 70
)

// Config describes the overlay of one node. The agent builds it from its
// own identity; zero fields take the defaults of [DefaultConfig].
type Config struct {
	// NetNS is the path of the network namespace to program, such as
	// /run/netns/lab-h1. Empty means the namespace of the calling process.
	// It lets tests and benchmarks program several lab hosts from one
	// process.
	NetNS string

	// Bridge is the name of the bridge that holds local replicas' veths
	// and the subnet's gateway address. Default "orch0".
	Bridge string

	// VXLAN is the name of the VXLAN device. Every route, neighbour and
	// FDB entry on it belongs to orch. Default "orchvx".
	VXLAN string

	// VethPrefix starts the name of the host end of every replica veth;
	// the rest is hex of a hash of the attachment ID (see [VethName]). At
	// most [MaxVethPrefixLen] bytes. Default "orchv". Every veth with the
	// prefix is taken to be orch's ([Plane.Attachments], [Cleanup]); only
	// veths, so the VXLAN device may share it, as "orchvx" does.
	VethPrefix string

	// VNI is the VXLAN network identifier, 1..16777215, the same on every
	// node. Default 4242.
	VNI int

	// Port is the UDP destination port of VXLAN packets, the same on every
	// node. Default 4789.
	Port int

	// Underlay is the node's own address on the network between nodes
	// (the agent's advertise address): the VXLAN source address, and how
	// the MTU is derived. Required; IPv4 or IPv6.
	Underlay netip.Addr

	// Subnet is the node's replica subnet: IPv4, masked, /30 or larger.
	// Its first host address is the gateway on the bridge; its network
	// address is put on the VXLAN device. Required.
	Subnet netip.Prefix

	// MAC is the VXLAN device's address, which peers put in their
	// neighbour and FDB entries for this node. Required; the agent passes
	// [MACFromID] of the node ID so it survives restarts.
	MAC net.HardwareAddr

	// MTU of the bridge, the VXLAN device and every veth, in bytes. Zero
	// derives it from the MTU of the interface holding Underlay (see
	// [OverlayMTU]); a positive value overrides that.
	MTU int
}

// DefaultConfig returns a Config with every default set. Underlay, Subnet
// and MAC have no default.
func DefaultConfig() Config {
	return Config{
		Bridge:     DefaultBridge,
		VXLAN:      DefaultVXLAN,
		VethPrefix: DefaultVethPrefix,
		VNI:        DefaultVNI,
		Port:       DefaultPort,
	}
}

// withDefaults fills the zero fields that have defaults.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Bridge == "" {
		c.Bridge = d.Bridge
	}
	if c.VXLAN == "" {
		c.VXLAN = d.VXLAN
	}
	if c.VethPrefix == "" {
		c.VethPrefix = d.VethPrefix
	}
	if c.VNI == 0 {
		c.VNI = d.VNI
	}
	if c.Port == 0 {
		c.Port = d.Port
	}
	return c
}

// Validate reports every problem of c, zero fields counting as their
// defaults.
func (c Config) Validate() error {
	c = c.withDefaults()
	errs := c.validateNames()
	if c.VNI < 1 || c.VNI > maxVNI {
		errs = append(errs, fmt.Errorf("vni %d: want 1..%d", c.VNI, maxVNI))
	}
	if c.Port < 1 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("port %d: want 1..65535", c.Port))
	}
	switch u := c.Underlay; {
	case !u.IsValid():
		errs = append(errs, errors.New("underlay address is required (the node's advertise address)"))
	case u.Zone() != "":
		errs = append(errs, fmt.Errorf("underlay %s: a zoned (link-local) address cannot be a VXLAN source", u))
	case u.IsUnspecified() || u.IsMulticast() || u.IsLoopback():
		errs = append(errs, fmt.Errorf("underlay %s: want a unicast address other nodes can reach", u))
	}
	switch s := c.Subnet; {
	case !s.IsValid():
		errs = append(errs, errors.New("subnet is required (the node's replica subnet, e.g. 10.213.5.0/24)"))
	case !s.Addr().Is4():
		errs = append(errs, fmt.Errorf("subnet %s: want IPv4", s))
	case s != s.Masked():
		errs = append(errs, fmt.Errorf("subnet %s: host bits set; did you mean %s?", s, s.Masked()))
	case s.Bits() > 30:
		errs = append(errs, fmt.Errorf("subnet %s: want /30 or larger (a gateway and at least one replica)", s))
	}
	if err := checkMAC(c.MAC); err != nil {
		errs = append(errs, fmt.Errorf("mac: %w", err))
	}
	if c.MTU != 0 && (c.MTU < minMTU || c.MTU > 65535) {
		errs = append(errs, fmt.Errorf("mtu %d: want %d..65535, or 0 to derive it from the underlay", c.MTU, minMTU))
	}
	return errors.Join(errs...)
}

// validateNames checks the interface names, which is all [Cleanup] needs.
func (c Config) validateNames() []error {
	var errs []error
	for _, n := range []struct{ what, name string }{{"bridge", c.Bridge}, {"vxlan", c.VXLAN}} {
		if err := checkIfName(n.name); err != nil {
			errs = append(errs, fmt.Errorf("%s name: %w", n.what, err))
		}
	}
	if c.Bridge == c.VXLAN {
		errs = append(errs, fmt.Errorf("bridge and vxlan are both named %q", c.Bridge))
	}
	if err := checkIfName(c.VethPrefix); err != nil {
		errs = append(errs, fmt.Errorf("veth prefix: %w", err))
	} else if len(c.VethPrefix) > MaxVethPrefixLen {
		errs = append(errs, fmt.Errorf("veth prefix %q: at most %d bytes, so that names keep 8 hex digits of hash", c.VethPrefix, MaxVethPrefixLen))
	}
	return errs
}

// checkIfName applies the kernel's rules for interface names
// (dev_valid_name).
func checkIfName(name string) error {
	switch {
	case name == "":
		return errors.New("empty")
	case len(name) > maxIfName:
		return fmt.Errorf("%q is longer than %d bytes", name, maxIfName)
	case name == "." || name == "..":
		return fmt.Errorf("%q is not a valid interface name", name)
	case strings.ContainsAny(name, "/: \t\n\r\v\f"):
		return fmt.Errorf("%q contains '/', ':' or white space", name)
	}
	return nil
}

// checkMAC accepts a unicast Ethernet address other than all zeros.
func checkMAC(mac net.HardwareAddr) error {
	switch {
	case len(mac) == 0:
		return errors.New("required (the agent passes MACFromID(nodeID))")
	case len(mac) != 6:
		return fmt.Errorf("%s: want a 6-byte Ethernet address", mac)
	case mac[0]&1 != 0:
		return fmt.Errorf("%s: multicast bit set, want unicast", mac)
	case string(mac) == "\x00\x00\x00\x00\x00\x00":
		return errors.New("all zeros")
	}
	return nil
}

// MACFromID derives a node's VXLAN MAC address from its ID: the first six
// bytes of the ID's SHA-256, marked locally administered and unicast. It
// is stable, so peers' neighbour and FDB entries stay valid across agent
// restarts and a recreated device gets the same address.
func MACFromID(id string) net.HardwareAddr {
	sum := sha256.Sum256([]byte(id))
	mac := net.HardwareAddr(sum[:6:6])
	mac[0] = mac[0]&^0x01 | 0x02 // clear multicast, set locally administered
	return mac
}

// OverlayMTU returns the MTU for the overlay over an underlay interface of
// MTU underlayMTU: what is left for the inner IP packet once VXLAN's
// encapsulation fits, 50 bytes over IPv4 and 70 over IPv6 (the outer IP
// header is 20 or 40 bytes; UDP 8, VXLAN 8 and the inner Ethernet header
// 14 are the same). A larger overlay MTU would make the kernel fragment
// the outer packets, or drop them where DF is set.
func OverlayMTU(underlayMTU int, ipv6 bool) int {
	if ipv6 {
		return underlayMTU - encapOverhead6
	}
	return underlayMTU - encapOverhead4
}

// VethName returns the name of the host end of the veth for attachment
// id: prefix followed by as many hex digits of the SHA-256 of id as fit in
// an interface name (15 bytes). The same id always gives the same name,
// which is how an agent finds its attachments again after a restart.
// prefix should be at most [MaxVethPrefixLen] bytes.
func VethName(prefix, id string) string {
	sum := sha256.Sum256([]byte(id))
	n := max(maxIfName-len(prefix), 0)
	return prefix + hex.EncodeToString(sum[:])[:n]
}

// gatewayOf returns the first host address of s, which the bridge holds.
func gatewayOf(s netip.Prefix) netip.Addr { return s.Masked().Addr().Next() }

// broadcastOf returns the last address of the IPv4 prefix s.
func broadcastOf(s netip.Prefix) netip.Addr {
	a := s.Masked().Addr().As4()
	for i := s.Bits(); i < 32; i++ {
		a[i/8] |= 0x80 >> (i % 8)
	}
	return netip.AddrFrom4(a)
}

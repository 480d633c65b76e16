package gossip

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"regexp"
	"time"

	"github.com/hashicorp/memberlist"
)

// DefaultPort is the gossip port, TCP and UDP, as in serf.
const DefaultPort = 7946

// Profile selects failure-detection timings.
type Profile string

const (
	// ProfileLAN is memberlist's LAN profile, the same as a stock serf agent:
	// a failed node is detected in about 5–9 s, with no false alarms on a
	// busy LAN.
	ProfileLAN Profile = "lan"
	// ProfileFast probes five times as often and suspects for a shorter
	// time: detection in about 1–1.5 s at 20 nodes (docs/benchmarks.md), at
	// the cost of more probe traffic (roughly 5× the packets of ProfileLAN)
	// and little tolerance for stalls: a member that does not answer a
	// probe within 100 ms is suspected. Measured on 2 cores, 20 agents idled
	// 10 minutes without a false failure, but 50 agents on those 2 cores
	// could not even form a cluster; give each agent real CPU.
	ProfileFast Profile = "fast"
)

// Profiles lists the valid profiles.
var Profiles = []Profile{ProfileLAN, ProfileFast}

// memberlistConfig returns memberlist timings for the profile.
func (p Profile) memberlistConfig() (*memberlist.Config, error) {
	c := memberlist.DefaultLANConfig()
	switch p {
	case ProfileLAN, "":
	case ProfileFast:
		c.ProbeInterval = 200 * time.Millisecond
		c.ProbeTimeout = 100 * time.Millisecond
		c.SuspicionMult = 3
		c.GossipInterval = 50 * time.Millisecond
		c.PushPullInterval = 15 * time.Second
		c.TCPTimeout = 2 * time.Second
	default:
		return nil, fmt.Errorf("unknown profile %q (want %q or %q)", p, ProfileLAN, ProfileFast)
	}
	return c, nil
}

// DefaultSyncInterval is how often a member runs anti-entropy with a random
// peer. Joins trigger a sync at once; this only bounds how long a lost
// delta can go unrepaired.
const DefaultSyncInterval = 10 * time.Second

// Reserved tags. Everything else in a member's tags is the agent's.
const (
	// TagRole marks orch agents; members without it (a stock serf agent
	// that has the key, say) are shown but never trusted with work.
	TagRole = "role"
	// RoleOrch is TagRole's value on orch agents.
	RoleOrch = "orch"
	// TagID is the stable node ID.
	TagID = "id"
	// TagProto is the orch protocol version the member speaks.
	TagProto = "proto"
	// ProtocolVersion is the orch protocol version of this build.
	ProtocolVersion = "1"
)

// maxTagsSize is memberlist's limit on a node's metadata (MetaMaxSize),
// which is where serf puts the encoded tags.
const maxTagsSize = memberlist.MetaMaxSize

// nameRE is what a node name may look like: a DNS label, because nodes
// are announced as <name>.node.<domain>.
var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// ValidName reports whether s is a valid node name.
func ValidName(s string) bool { return nameRE.MatchString(s) }

// Config configures a [Node].
type Config struct {
	// Name is the node's name in the cluster: a lower-case DNS label.
	// Required.
	Name string
	// ID is the node's stable identity, kept in its data dir. A node that
	// comes back on another address with the same ID is the same member.
	// Required.
	ID string
	// Bind is where the gossip port listens (TCP and UDP). Default
	// 0.0.0.0:7946; port 0 picks a free port.
	Bind netip.AddrPort
	// Advertise is the address other members use to reach this node.
	// Zero means the bind address, or the first private address of the
	// host when bound to all addresses.
	Advertise netip.Addr
	// DataDir holds the cluster secrets, keyring and serf snapshot.
	// Required; must exist.
	DataDir string
	// Tags are the agent's tags (labels and the like). They are merged with
	// the reserved tags; together they must encode to at most 512 bytes.
	Tags map[string]string
	// Profile selects failure-detection timings. Default ProfileLAN.
	Profile Profile
	// Token, with Join, makes a node with no secrets yet fetch them from a
	// member. A node that already has secrets ignores it unless it names
	// another cluster (see [Node.Join]).
	Token *Token
	// Join lists members (host or host:port) to join at start; tried in
	// turn and retried with backoff until one answers or the node stops.
	Join []string
	// SyncInterval is how often the store syncs with a random member.
	// Zero means DefaultSyncInterval.
	SyncInterval time.Duration
	// TombstoneTTL is how long deleted store entries are remembered.
	// Zero means DefaultTombstoneTTL.
	TombstoneTTL time.Duration
	// OnEvent receives member events. It is called from one goroutine,
	// in order, and must not block. Nil drops them.
	OnEvent func(MemberEvent)
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger

	// dropDelta, set by tests, loses received deltas as gossip
	// sometimes does.
	dropDelta func(deltaMsg) bool
}

// DefaultConfig returns the defaults; Name, ID and DataDir are left empty.
func DefaultConfig() Config {
	return Config{
		Bind:    netip.AddrPortFrom(netip.IPv4Unspecified(), DefaultPort),
		Profile: ProfileLAN,
	}
}

// Validate reports every problem with the configuration.
func (c Config) Validate() error {
	var errs []error
	if !ValidName(c.Name) {
		errs = append(errs, fmt.Errorf("name %q: must be a lower-case DNS label (a-z, 0-9, '-', at most 63 characters)", c.Name))
	}
	if c.ID == "" {
		errs = append(errs, errors.New("id: required"))
	}
	if !c.Bind.IsValid() {
		errs = append(errs, errors.New("bind: required (IP:PORT)"))
	}
	if c.Advertise.IsValid() && c.Advertise.IsUnspecified() {
		errs = append(errs, fmt.Errorf("advertise %s: must be a concrete address", c.Advertise))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("data dir: required"))
	}
	if c.SyncInterval < 0 || c.TombstoneTTL < 0 {
		errs = append(errs, errors.New("sync interval and tombstone TTL must not be negative"))
	}
	if _, err := c.Profile.memberlistConfig(); err != nil {
		errs = append(errs, err)
	}
	for k := range c.Tags {
		if k == TagRole || k == TagID || k == TagProto {
			errs = append(errs, fmt.Errorf("tag %q is reserved", k))
		}
	}
	if n := tagsSize(c.allTags()); n > maxTagsSize {
		errs = append(errs, fmt.Errorf("tags: %d bytes encoded, at most %d fit in gossip metadata (use fewer or shorter labels)", n, maxTagsSize))
	}
	return errors.Join(errs...)
}

func (c Config) allTags() map[string]string {
	t := make(map[string]string, len(c.Tags)+3)
	for k, v := range c.Tags {
		t[k] = v
	}
	t[TagRole] = RoleOrch
	t[TagID] = c.ID
	t[TagProto] = ProtocolVersion
	return t
}

// tagsSize approximates serf's msgpack encoding of tags: a map header, and
// per entry two strings with up to 5 bytes of header each.
func tagsSize(t map[string]string) int {
	n := 1 + 5
	for k, v := range t {
		n += len(k) + len(v) + 4
	}
	return n
}

// advertiseAddr picks the address to advertise.
func (c Config) advertiseAddr() (netip.Addr, error) {
	if c.Advertise.IsValid() {
		return c.Advertise, nil
	}
	if b := c.Bind.Addr(); !b.IsUnspecified() {
		return b, nil
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("list interface addresses: %w", err)
	}
	var fallback netip.Addr
	for _, a := range addrs {
		p, err := netip.ParsePrefix(a.String())
		if err != nil {
			continue
		}
		ip := p.Addr()
		if ip.IsLoopback() || ip.IsLinkLocalUnicast() || !ip.Is4() {
			continue
		}
		if ip.IsPrivate() {
			return ip, nil
		}
		if !fallback.IsValid() {
			fallback = ip
		}
	}
	if fallback.IsValid() {
		return fallback, nil
	}
	return netip.Addr{}, errors.New("no address to advertise: bound to all addresses and the host has no usable IPv4 address; set --advertise")
}

// udpBufferSize derives memberlist's largest UDP payload from the MTU of the
// interface holding addr, leaving room for IPv6 and UDP headers (48 bytes),
// so gossip never relies on IP fragmentation. It falls back to memberlist's
// default when the interface cannot be found (for example a NAT address).
func udpBufferSize(addr netip.Addr) int {
	const headers = 48
	def := memberlist.DefaultLANConfig().UDPBufferSize
	ifs, err := net.Interfaces()
	if err != nil {
		return def
	}
	for _, ifc := range ifs {
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			p, err := netip.ParsePrefix(a.String())
			if err == nil && p.Addr() == addr && ifc.MTU > headers+512 {
				return min(ifc.MTU-headers, 65000)
			}
		}
	}
	return def
}

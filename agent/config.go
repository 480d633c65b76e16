package agent

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/orchproject/orch/agent/api"
	"github.com/orchproject/orch/gossip"
)

// Defaults of the agent's settings.
const (
	DefaultContainerd = "/run/containerd/containerd.sock"
	// ContainerdNone, as Config.Containerd, runs no containers.
	ContainerdNone = "none"
	DefaultDataDir = "/var/lib/orch"
	DefaultProfile = string(gossip.ProfileLAN)
)

var labelKeyRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._/-]{0,61}[A-Za-z0-9])?$`)

// Config configures an [Agent]. The CLI maps flags and the config file onto
// it; see docs/configuration.md for the keys.
type Config struct {
	// Name is the node's name in the cluster, a lower-case DNS label.
	// Default: the host name, lower-cased. A data dir remembers the name it
	// was created with; starting it under another name is an error.
	Name string
	// DataDir holds the node's identity, the cluster secrets and the serf
	// snapshot. Default /var/lib/orch. Created (0700) if missing.
	DataDir string
	// Socket is the API's unix socket (mode 0600). Default /run/orch/orch.sock.
	Socket string
	// Bind is the gossip address (TCP and UDP). Default 0.0.0.0:7946.
	Bind netip.AddrPort
	// Advertise is the address peers use to reach this node. Zero means the
	// bind address, or the host's first private address.
	Advertise netip.Addr
	// Labels are this node's labels (k=v), gossiped to every member, for
	// placement constraints.
	Labels map[string]string
	// Token is the join token of the cluster to join; needed, with Join,
	// the first time a node joins. Empty: found a new cluster, or rejoin
	// the one in the data dir.
	Token string
	// Join lists members to join at start (host or host:port), retried
	// with backoff until one answers.
	Join []string
	// Profile selects failure-detection timings: "lan" (default, like
	// serf) or "fast" (about 1–2 s detection on a quiet LAN).
	Profile string
	// Containerd is containerd's socket, where the slots this node holds
	// run. Default /run/containerd/containerd.sock. ContainerdNone runs
	// nothing: the node claims slots and records them, for clusters that
	// only keep state, and for tests.
	Containerd string
	// InsecureRegistries are registries (host:port) pulled from over plain
	// HTTP.
	InsecureRegistries []string
	// RegistryAuth is a JSON file of registry credentials:
	// {"host:port": {"username": "…", "password": "…"}}.
	RegistryAuth string
	// Overlay is the range the nodes' subnets are taken from. The zero
	// prefix turns the overlay off: replicas get loopback only (for
	// clusters that only keep state, and tests that share one network
	// namespace). DefaultConfig sets DefaultOverlay.
	Overlay netip.Prefix
	// Subnet pins this node's subnet (inside Overlay) instead of claiming
	// one. Zero: claim one.
	Subnet netip.Prefix
	// VNI is the overlay's VXLAN network identifier; every node of a
	// cluster must use the same. Zero means DefaultVNI.
	VNI int
	// Domain is the DNS domain of services (SERVICE.svc.DOMAIN) and nodes.
	Domain string
	// DNS is the host's DNS listener (UDP and TCP). The zero value turns
	// it off; the listener for replicas, on the bridge gateway, runs
	// whenever the overlay does. DefaultConfig sets DefaultDNS.
	DNS netip.AddrPort
	// DNSUpstreams are the resolvers ("ip:port") that names outside the
	// domain are forwarded to, for replicas and loopback only. nil: the
	// nameservers of /etc/resolv.conf.
	DNSUpstreams []string
	// DNSTTL is the TTL of the cluster's records, in seconds; zero means
	// dnsdisc's default (5 s: replicas move, and a client must not keep a
	// dead one's address for long).
	DNSTTL uint32
	// EventHandlers are commands run for the events on this agent's bus
	// (--event-handler [TYPE[:ACTION]=]COMMAND); see handlers.go.
	EventHandlers []EventHandler
	// EventHandlerTimeout bounds one run of a handler's command, after which
	// its process group is killed. Zero means DefaultEventHandlerTimeout.
	EventHandlerTimeout time.Duration
	// SocketGroup, if not empty, is a group (name or numeric ID) whose
	// members may use the API: the socket becomes 0660 and owned by it.
	// Empty: root only (0600).
	SocketGroup string
	// APITLSAddr, if not empty, is where the API is also served over TLS
	// (HOST:PORT; an empty HOST means every address), to clients that
	// present a certificate signed by a CA in APITLSClientCA: the remote
	// API. Empty (the default): the unix socket only. There is no default
	// port.
	APITLSAddr string
	// APITLSCert and APITLSKey are PEM files: the TLS listener's
	// certificate (then any intermediates) and its private key. Required
	// with APITLSAddr; read once, at start.
	APITLSCert, APITLSKey string
	// APITLSClientCA is a PEM file of the CA certificates that client
	// certificates must chain to. Required with APITLSAddr: the listener
	// has no other authentication. Read once, at start.
	APITLSClientCA string
	// Metrics is where the Prometheus metrics endpoint listens
	// (http://ADDR/metrics); the zero value turns it off. It has no
	// authentication: keep it on loopback or a management network.
	Metrics netip.AddrPort
	// ResyncInterval is how often the reconcile loop runs when nothing
	// wakes it. Zero means DefaultResyncInterval.
	ResyncInterval time.Duration
	// Version is the build's version, reported by the API.
	Version string
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
}

// DefaultConfig spells out every default; Name is the host name.
func DefaultConfig() Config {
	host, _ := os.Hostname()
	return Config{
		Name:       strings.ToLower(host),
		DataDir:    DefaultDataDir,
		Socket:     api.DefaultSocket,
		Bind:       netip.AddrPortFrom(netip.IPv4Unspecified(), gossip.DefaultPort),
		Profile:    DefaultProfile,
		Containerd: DefaultContainerd,
		Overlay:    DefaultOverlay,
		VNI:        DefaultVNI,
		Domain:     DefaultDomain,
		DNS:        DefaultDNS,
		Version:    "dev",

		EventHandlerTimeout: DefaultEventHandlerTimeout,
	}
}

// Validate reports every problem with c.
func (c Config) Validate() error {
	var errs []error
	if !gossip.ValidName(c.Name) {
		errs = append(errs, fmt.Errorf("name %q: must be a lower-case DNS label (a-z, 0-9, '-', at most 63 characters)", c.Name))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("data dir: required"))
	}
	if c.Socket == "" {
		errs = append(errs, errors.New("socket: required"))
	}
	if !c.Bind.IsValid() {
		errs = append(errs, errors.New("bind: required (IP:PORT)"))
	}
	if !slices.Contains(gossip.Profiles, gossip.Profile(c.Profile)) {
		errs = append(errs, fmt.Errorf("profile %q: want one of %v", c.Profile, gossip.Profiles))
	}
	if c.Token != "" {
		if _, err := gossip.ParseToken(c.Token); err != nil {
			errs = append(errs, fmt.Errorf("token: %w", err))
		}
		if len(c.Join) == 0 {
			errs = append(errs, errors.New("token: needs --join ADDR (the token says which cluster, the address which member to ask)"))
		}
	}
	if c.Overlay.IsValid() {
		switch {
		case !c.Overlay.Addr().Is4() || c.Overlay != c.Overlay.Masked():
			errs = append(errs, fmt.Errorf("overlay %s: want an IPv4 network address with its prefix length (like %s)", c.Overlay, DefaultOverlay))
		case c.Overlay.Bits() > DefaultSubnetBits:
			errs = append(errs, fmt.Errorf("overlay %s: too small; it is split into /%d node subnets", c.Overlay, DefaultSubnetBits))
		}
	}
	if c.Subnet.IsValid() {
		switch {
		case !c.Overlay.IsValid():
			errs = append(errs, errors.New("subnet: needs the overlay (it is off)"))
		case !c.Subnet.Addr().Is4() || c.Subnet != c.Subnet.Masked() || c.Subnet.Bits() > 30:
			errs = append(errs, fmt.Errorf("subnet %s: want an IPv4 network address with a prefix length of at most 30", c.Subnet))
		case c.Subnet.Bits() < c.Overlay.Bits() || !c.Overlay.Contains(c.Subnet.Addr()):
			errs = append(errs, fmt.Errorf("subnet %s: must lie inside the overlay %s", c.Subnet, c.Overlay))
		}
	}
	if c.VNI < 0 || c.VNI >= 1<<24 {
		errs = append(errs, fmt.Errorf("vni %d: want 1-16777215", c.VNI))
	}
	for _, u := range c.DNSUpstreams {
		if _, err := netip.ParseAddrPort(u); err != nil {
			errs = append(errs, fmt.Errorf("dns upstream %q: want IP:PORT", u))
		}
	}
	errs = append(errs, c.validateAPITLS()...)
	if c.DNSTTL > 86400 {
		errs = append(errs, fmt.Errorf("dns ttl %d: at most 86400 seconds", c.DNSTTL))
	}
	if c.Domain != "" && !validDomain(c.Domain) {
		errs = append(errs, fmt.Errorf("domain %q: want lower-case DNS labels separated by dots", c.Domain))
	}
	for i, h := range c.EventHandlers {
		if err := h.validate(); err != nil {
			errs = append(errs, fmt.Errorf("event handler %d (%q): %w", i+1, h.String(), err))
		}
	}
	if c.EventHandlerTimeout < 0 {
		errs = append(errs, fmt.Errorf("event handler timeout %v: must not be negative", c.EventHandlerTimeout))
	}
	for k, v := range c.Labels {
		if !labelKeyRE.MatchString(k) {
			errs = append(errs, fmt.Errorf("label %q: a key is 1-63 letters, digits, '.', '_', '/', '-', starting and ending with a letter or digit", k))
		}
		if len(v) > 63 || strings.ContainsAny(v, "\x00\n\r\t") {
			errs = append(errs, fmt.Errorf("label %s=%q: a value is at most 63 printable characters", k, v))
		}
	}
	return errors.Join(errs...)
}

// validateAPITLS checks the remote API's settings. The files are read
// (and checked) by New.
func (c Config) validateAPITLS() []error {
	var errs []error
	if c.APITLSAddr == "" {
		for _, f := range []struct{ name, v string }{{"cert", c.APITLSCert}, {"key", c.APITLSKey}, {"client-ca", c.APITLSClientCA}} {
			if f.v != "" {
				errs = append(errs, fmt.Errorf("api-tls-%s %s: needs --api-tls-addr HOST:PORT (without it nothing serves TLS)", f.name, f.v))
			}
		}
		return errs
	}
	if _, port, err := net.SplitHostPort(c.APITLSAddr); err != nil || !validPort(port) {
		errs = append(errs, fmt.Errorf("api-tls-addr %q: want HOST:PORT (like 192.0.2.1:7947, or :7947 for every address)", c.APITLSAddr))
	}
	if c.APITLSCert == "" || c.APITLSKey == "" {
		errs = append(errs, fmt.Errorf("api-tls-addr %s: needs --api-tls-cert FILE and --api-tls-key FILE, the listener's certificate and key (orch tls cert create --server makes them)", c.APITLSAddr))
	}
	if c.APITLSClientCA == "" {
		errs = append(errs, fmt.Errorf("api-tls-addr %s: needs --api-tls-client-ca FILE, the CA that client certificates must be signed by (the TLS API admits only clients with a certificate)", c.APITLSAddr))
	}
	return errs
}

// validPort reports whether p is a port number, 0 (any free port) included.
func validPort(p string) bool {
	n, err := strconv.ParseUint(p, 10, 16)
	return err == nil && strconv.FormatUint(n, 10) == p
}

// ParseLabel parses a k=v label as given to --label.
func ParseLabel(s string) (string, string, error) {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return "", "", fmt.Errorf("label %q: want KEY=VALUE", s)
	}
	return k, v, nil
}

// validDomain reports whether d is one or more lower-case DNS labels.
func validDomain(d string) bool {
	if len(d) > 200 {
		return false
	}
	for _, l := range strings.Split(d, ".") {
		if !gossip.ValidName(l) {
			return false
		}
	}
	return true
}

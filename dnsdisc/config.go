package dnsdisc

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Defaults. Each is what the zero value of the matching [Config] field
// means.
const (
	// DefaultDomain is the cluster's DNS domain: services are
	// <service>.svc.orch, nodes <node>.node.orch.
	DefaultDomain = "orch"
	// DefaultTTL is the TTL of every record the server owns, and its
	// negative-caching TTL, in seconds. Answers change whenever a replica
	// starts, stops, fails its health check or moves to another node; a
	// client that cached a dead replica's address for long would keep
	// connecting to nothing. 5 s is what CoreDNS's kubernetes plugin
	// uses for the same reason: short enough that a moved replica is
	// found again within a client's retry, long enough that a busy client
	// does not ask for every connection. Queries are cheap and local.
	DefaultTTL = 5
	// DefaultForwardTimeout bounds one exchange with one upstream. Stub
	// resolvers (glibc) give up after 5 s, so two upstreams can be tried
	// within one client attempt.
	DefaultForwardTimeout = 2 * time.Second
	// DefaultCacheSize is the number of forwarded answers kept.
	DefaultCacheSize = 1024
)

// Limits, named so the tests and the doc can refer to them.
const (
	// maxTTL caps Config.TTL: a day is already far more than records that
	// follow replicas should live.
	maxTTL = 86400
	// maxUDPSize is the largest UDP answer sent, whatever the client
	// advertises: 1232 bytes is the DNS Flag Day 2020 value, which fits in
	// an IPv6 minimum MTU of 1280 with headers, so answers are never
	// fragmented (fragments get lost on overlays and firewalls, and
	// fragmentation enables cache-poisoning attacks). Larger answers are
	// truncated and the client retries over TCP.
	maxUDPSize = 1232
	// maxCacheTTL caps how long a forwarded answer is cached, so a record
	// changed upstream is seen within a minute even if it had a long TTL.
	maxCacheTTL = 60
	// maxNegativeTTL caps how long a forwarded NXDOMAIN or NODATA is
	// cached (from its SOA): a name created upstream should not stay
	// missing for long.
	maxNegativeTTL = 30
	// maxForwards bounds the forwarded queries in flight; beyond it
	// queries get SERVFAIL at once instead of piling up goroutines.
	maxForwards = 256
	// maxTCPConns bounds the open TCP connections per listener; beyond it
	// new connections are closed at once.
	maxTCPConns = 256
	// tcpFirstReadTimeout and tcpIdleTimeout bound how long a TCP client
	// may take to send its first query and the next ones (RFC 7766 §6.2.3
	// asks servers to time idle connections out; 10 s is generous for a
	// client that retries after truncation).
	tcpFirstReadTimeout = 2 * time.Second
	tcpIdleTimeout      = 10 * time.Second
	// tcpWriteTimeout bounds writing one answer to a TCP client.
	tcpWriteTimeout = 2 * time.Second
)

// Config configures a [Server]. The zero value of every field means its
// default; [DefaultConfig] spells them out.
type Config struct {
	// Domain is the zone the server is authoritative for, without the
	// trailing dot, case-insensitive. Default DefaultDomain ("orch").
	Domain string
	// TTL is the TTL, in seconds, of every record in the zone and of its
	// negative answers (the SOA minimum). Zero means DefaultTTL (5 s);
	// at most 86400. A TTL of 0 ("do not cache") cannot be asked for:
	// every lookup would reach the server and some resolvers treat 0
	// specially; 1 s is the floor.
	TTL uint32
	// NSAddr, if valid, is the address given for ns.<Domain>, the name
	// server named in the zone's NS and SOA records (as glue in answers
	// to NS queries). Zero: ns.<Domain> has no address.
	NSAddr netip.Addr
	// Upstreams are the servers ("ip:port", or "ip" for port 53) that
	// names outside Domain are forwarded to, tried in order until one
	// answers. Empty: nothing is forwarded and such queries get REFUSED
	// ("no recursion here", so a stub resolver with another nameserver
	// line tries that one; SERVFAIL would mean "try again later").
	Upstreams []string
	// ForwardFrom lists the client addresses that may have names outside
	// Domain forwarded (the agent passes loopback and its replica
	// subnet). Others get REFUSED for those names, so the server is never
	// an open resolver. Names in Domain are answered for every client.
	ForwardFrom []netip.Prefix
	// ForwardTimeout bounds one exchange with one upstream. Zero means
	// DefaultForwardTimeout (2 s).
	ForwardTimeout time.Duration
	// CacheSize is the number of forwarded answers cached (LRU, each for
	// the smallest TTL in it, at most 60 s; negative answers for their SOA
	// minimum, at most 30 s). Zero means DefaultCacheSize (1024); negative
	// disables the cache.
	CacheSize int
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
}

// DefaultConfig returns the defaults: DefaultDomain, DefaultTTL,
// DefaultForwardTimeout, DefaultCacheSize, no upstreams, nobody allowed to
// forward.
func DefaultConfig() Config {
	return Config{
		Domain:         DefaultDomain,
		TTL:            DefaultTTL,
		ForwardTimeout: DefaultForwardTimeout,
		CacheSize:      DefaultCacheSize,
	}
}

// Validate reports every problem with the configuration.
func (c Config) Validate() error {
	var errs []error
	if c.Domain != "" {
		if _, err := normalizeDomain(c.Domain); err != nil {
			errs = append(errs, err)
		}
	}
	if c.TTL > maxTTL {
		errs = append(errs, fmt.Errorf("ttl %d: at most %d seconds", c.TTL, maxTTL))
	}
	if c.NSAddr.IsValid() && c.NSAddr.IsUnspecified() {
		errs = append(errs, fmt.Errorf("ns address %s: must be a concrete address", c.NSAddr))
	}
	for _, u := range c.Upstreams {
		if _, err := parseUpstream(u); err != nil {
			errs = append(errs, err)
		}
	}
	for _, p := range c.ForwardFrom {
		if !p.IsValid() {
			errs = append(errs, fmt.Errorf("forward from %s: not a valid prefix", p))
		}
	}
	if c.ForwardTimeout < 0 {
		errs = append(errs, errors.New("forward timeout: must not be negative"))
	}
	return errors.Join(errs...)
}

// withDefaults returns c with zero fields set to their defaults and the
// domain and upstreams normalised. c must be valid.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Domain == "" {
		c.Domain = d.Domain
	}
	c.Domain, _ = normalizeDomain(c.Domain)
	if c.TTL == 0 {
		c.TTL = d.TTL
	}
	if c.ForwardTimeout == 0 {
		c.ForwardTimeout = d.ForwardTimeout
	}
	if c.CacheSize == 0 {
		c.CacheSize = d.CacheSize
	}
	ups := make([]string, 0, len(c.Upstreams))
	for _, u := range c.Upstreams {
		ap, _ := parseUpstream(u)
		ups = append(ups, ap.String())
	}
	c.Upstreams = ups
	c.ForwardFrom = append([]netip.Prefix(nil), c.ForwardFrom...)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// normalizeDomain returns d lower-cased and fully qualified ("orch."), or
// an error if it is not a domain name of host-name labels.
func normalizeDomain(d string) (string, error) {
	fq := dns.Fqdn(strings.ToLower(d))
	if fq == "." {
		return "", fmt.Errorf("domain %q: must not be the root", d)
	}
	if _, ok := dns.IsDomainName(fq); !ok {
		return "", fmt.Errorf("domain %q: not a domain name", d)
	}
	for _, l := range dns.SplitDomainName(fq) {
		if !validLabel(l) {
			return "", fmt.Errorf("domain %q: label %q must be letters, digits and '-', at most 63", d, l)
		}
	}
	return fq, nil
}

// parseUpstream parses "ip:port" or a bare IP (port 53).
func parseUpstream(s string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		if ap.Port() == 0 {
			return netip.AddrPort{}, fmt.Errorf("upstream %q: port 0", s)
		}
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("upstream %q: want ip:port or ip", s)
	}
	return netip.AddrPortFrom(a.Unmap(), 53), nil
}

// validLabel reports whether l is a host-name label: letters, digits and
// '-' (not first or last), 1 to 63 characters. Upper case is accepted;
// the caller lower-cases.
func validLabel(l string) bool {
	if len(l) == 0 || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

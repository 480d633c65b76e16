package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/orchproject/orch/agent"
)

// fileConfig is the --config file: JSON whose keys mirror the flags.
// Unknown keys are an error, so a typo cannot silently change nothing.
type fileConfig struct {
	Name       *string           `json:"name"`
	Bind       *string           `json:"bind"`
	Advertise  *string           `json:"advertise"`
	DataDir    *string           `json:"data_dir"`
	Socket     *string           `json:"socket"`
	Labels     map[string]string `json:"labels"`
	Token      *string           `json:"token"`
	Join       []string          `json:"join"`
	Profile    *string           `json:"profile"`
	Containerd *string           `json:"containerd"`
	// InsecureRegistries and RegistryAuth mirror --insecure-registry and
	// --registry-auth.
	InsecureRegistries []string `json:"insecure_registries"`
	RegistryAuth       *string  `json:"registry_auth"`
	Overlay            *string  `json:"overlay"`
	Subnet             *string  `json:"subnet"`
	VNI                *int     `json:"vni"`
	Domain             *string  `json:"domain"`
	DNS                *string  `json:"dns"`
	DNSUpstreams       []string `json:"dns_upstreams"`
	DNSTTL             *uint32  `json:"dns_ttl"`
	Metrics            *string  `json:"metrics"`
	SocketGroup        *string  `json:"socket_group"`
	// APITLS* mirror --api-tls-addr, --api-tls-cert, --api-tls-key and
	// --api-tls-client-ca.
	APITLSAddr     *string `json:"api_tls_addr"`
	APITLSCert     *string `json:"api_tls_cert"`
	APITLSKey      *string `json:"api_tls_key"`
	APITLSClientCA *string `json:"api_tls_client_ca"`
	// EventHandlers and EventHandlerTimeout mirror --event-handler (one
	// string per handler) and --event-handler-timeout (a duration, "30s").
	EventHandlers       []string `json:"event_handlers"`
	EventHandlerTimeout *string  `json:"event_handler_timeout"`
	LogLevel            *string  `json:"log_level"`
	LogFormat           *string  `json:"log_format"`
}

// parseFileConfig decodes a config file strictly.
func parseFileConfig(b []byte) (fileConfig, error) {
	var fc fileConfig
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&fc); err != nil {
		if errors.Is(err, io.EOF) {
			return fileConfig{}, errors.New("the file is empty (want a JSON object)")
		}
		return fileConfig{}, err
	}
	// Not dec.More: it reports false for a stray '}' or ']', which would
	// let `{...}}` through.
	if _, err := dec.Token(); err != io.EOF {
		return fileConfig{}, errors.New("trailing data after the JSON object")
	}
	return fc, nil
}

// agentFlags holds the raw flag values of `orch agent`.
type agentFlags struct {
	name, bind, advertise, dataDir, token, profile, configFile string
	containerd, registryAuth                                   string
	overlay, subnet, domain, dns, metrics, socketGroup         string
	apiTLSAddr, apiTLSCert, apiTLSKey, apiTLSClientCA          string
	dnsUpstreams                                               []string
	vni                                                        int
	dnsTTL                                                     uint32
	cleanup                                                    bool
	insecureRegistries                                         []string
	logLevel, logFormat                                        string
	eventHandlers                                              []string
	eventHandlerTimeout                                        time.Duration
	labels, join                                               []string
}

func newAgentCmd(g *globals) *cobra.Command {
	var f agentFlags
	def := agent.DefaultConfig()
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run the orch agent on this node",
		Long: `Run the orch agent on this node.

Without --token the agent founds a new cluster (or, with a data dir from an
earlier run, rejoins its cluster by itself). With --token and --join it joins
an existing cluster: it checks the cluster's identity pinned in the token,
proves the token's secret, and only then receives the gossip key.

Settings come from defaults, then --config FILE (JSON, keys as the flags with
'_' for '-': name, bind, advertise, data_dir, socket, labels {"k":"v"},
token, join ["addr"], profile, containerd, insecure_registries ["host:port"],
registry_auth, overlay, subnet, vni, domain, dns, dns_upstreams [".."],
dns_ttl, metrics, socket_group, api_tls_addr, api_tls_cert, api_tls_key,
api_tls_client_ca, event_handlers [".."], event_handler_timeout,
log_level, log_format), then flags.

The remote API: the API is always on the unix socket (--socket). With
--api-tls-addr HOST:PORT it is also served over TLS 1.3 at that address,
to clients whose certificate is signed by a CA in --api-tls-client-ca;
anyone else is refused during the handshake. A client certificate can do
everything root can on the socket. Every mutating call is an "api call"
event naming the certificate (caller cn=NAME, cert_sha256) and the
client's address. "orch tls" makes the CA and the certificates; the files
are read once, at start.

The overlay: each node claims a /24 of --overlay for its replicas (the
first choice derived from its name, conflicts settled by gossip: the
earlier claim keeps it), remembers it in the data dir, and programs a
bridge (orch0, the subnet's first address), a VXLAN device (orchvx, UDP
4789) and a route, neighbour and FDB entry per peer. --cleanup removes
those devices and the secrets tmpfs, and exits; "orch leave" removes them
too.

DNS: the agent answers SERVICE.svc.DOMAIN (running replicas), SLOT.SERVICE,
_PORT._PROTO.SERVICE (SRV), NODE.node.DOMAIN and PTR, on --dns for the
host and on its bridge gateway, port 53, for its replicas (their
resolv.conf names it). Other names are forwarded to the upstreams
(/etc/resolv.conf's nameservers, or --dns-upstream) for replicas and
loopback only; anyone else is refused.

Event handlers: --event-handler [TYPE[:ACTION]=]COMMAND runs
"/bin/sh -c COMMAND" for each event of that type (and action; without a
filter, every event), one at a time per handler, with the event's JSON line
on stdin and ORCH_EVENT_TYPE, _ACTION, _SUBJECT, _NODE, _SEQ, _TIME and
ORCH_EVENT_ATTR_<KEY> in the environment. A run that outlasts
--event-handler-timeout is killed with its process group. A handler that
falls behind loses events (counted and logged); the agent never waits.`,
		Args: argsUsage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := f.toConfig(cmd.Flags(), g.socket, cmd.Flags().Changed("socket"))
			if err != nil {
				return err
			}
			cfg.Version = buildVersion()
			if f.cleanup {
				return agent.CleanupHost(cfg)
			}
			a, err := agent.New(cfg)
			if err != nil {
				return err
			}
			return a.Run(cmd.Context())
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.name, "name", def.Name, "node name, a lower-case DNS label (default: the host name)")
	fl.StringVar(&f.bind, "bind", def.Bind.String(), "gossip address, TCP and UDP (IP:PORT)")
	fl.StringVar(&f.advertise, "advertise", "", "address peers reach this node at (default: the bind address, or the first private address)")
	fl.StringVar(&f.dataDir, "data-dir", def.DataDir, "directory for the node identity, cluster secrets and gossip snapshot")
	fl.StringArrayVar(&f.labels, "label", nil, "node label KEY=VALUE (repeatable)")
	fl.StringVar(&f.token, "token", "", "join token of the cluster to join (from \"orch token\" on a member)")
	fl.StringArrayVar(&f.join, "join", nil, "member to join, HOST[:PORT] (repeatable; retried with backoff)")
	fl.StringVar(&f.profile, "profile", def.Profile, "failure-detection timings: lan (like serf) or fast (~1-2 s detection)")
	fl.StringArrayVar(&f.insecureRegistries, "insecure-registry", nil, "registry HOST:PORT to pull from over plain HTTP (repeatable)")
	fl.StringVar(&f.registryAuth, "registry-auth", "", "JSON file of registry credentials: {\"HOST:PORT\": {\"username\": \"…\", \"password\": \"…\"}}")
	fl.StringVar(&f.containerd, "containerd", def.Containerd, "containerd socket where this node's replicas run; \"none\" runs nothing (claims only)")
	fl.StringVar(&f.overlay, "overlay", def.Overlay.String(), "IPv4 range the nodes' /24 subnets are claimed from; \"none\" turns the overlay off")
	fl.StringVar(&f.subnet, "subnet", "", "pin this node's subnet (inside --overlay) instead of claiming one")
	fl.IntVar(&f.vni, "vni", def.VNI, "VXLAN network identifier of the overlay (the same on every node)")
	fl.StringVar(&f.domain, "domain", def.Domain, "DNS domain of services (SERVICE.svc.DOMAIN) and nodes")
	fl.StringVar(&f.dns, "dns", def.DNS.String(), "host DNS listener IP:PORT, UDP and TCP; \"none\" turns it off (replicas' DNS on the gateway stays)")
	fl.StringArrayVar(&f.dnsUpstreams, "dns-upstream", nil, "resolver IP[:PORT] for names outside the domain (repeatable; default: /etc/resolv.conf's nameservers)")
	fl.Uint32Var(&f.dnsTTL, "dns-ttl", 0, "TTL of the cluster's DNS records in seconds (default 5: replicas move)")
	fl.StringVar(&f.socketGroup, "socket-group", "", "group (name or ID) whose members may use the API socket (0660); default: root only (0600)")
	fl.StringVar(&f.apiTLSAddr, "api-tls-addr", "", "also serve the API over TLS at HOST:PORT to clients with a certificate from --api-tls-client-ca (off by default; no default port)")
	fl.StringVar(&f.apiTLSCert, "api-tls-cert", "", "PEM certificate of the TLS API, for --api-tls-addr (\"orch tls cert create --server\" makes one)")
	fl.StringVar(&f.apiTLSKey, "api-tls-key", "", "PEM private key of --api-tls-cert")
	fl.StringVar(&f.apiTLSClientCA, "api-tls-client-ca", "", "PEM file of the CA certificates client certificates must chain to (required with --api-tls-addr)")
	fl.StringVar(&f.metrics, "metrics", "", "serve Prometheus metrics at http://IP:PORT/metrics (off by default; no authentication: keep it on loopback)")
	fl.StringArrayVar(&f.eventHandlers, "event-handler", nil, "run COMMAND (/bin/sh -c) for each event, as [TYPE[:ACTION]=]COMMAND, with the event's JSON on stdin and ORCH_EVENT_* set (repeatable)")
	fl.DurationVar(&f.eventHandlerTimeout, "event-handler-timeout", def.EventHandlerTimeout, "longest run of an event handler's command; then its process group is killed")
	fl.BoolVar(&f.cleanup, "cleanup", false, "remove the overlay devices and secrets tmpfs orch made on this host, then exit")
	fl.StringVar(&f.configFile, "config", "", "JSON config file; flags override its values")
	fl.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fl.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	return cmd
}

// config merges defaults < config file < flags into an agent.Config.
func (f agentFlags) toConfig(fs *pflag.FlagSet, socket string, socketSet bool) (agent.Config, error) {
	if f.configFile != "" {
		b, err := os.ReadFile(f.configFile)
		if err != nil {
			return agent.Config{}, fmt.Errorf("read config: %w", err)
		}
		fc, err := parseFileConfig(b)
		if err != nil {
			return agent.Config{}, usageError{fmt.Errorf("config file %s: %w", f.configFile, err)}
		}
		set := func(flag string, dst *string, v *string) {
			if v != nil && !fs.Changed(flag) {
				*dst = *v
			}
		}
		set("name", &f.name, fc.Name)
		set("bind", &f.bind, fc.Bind)
		set("advertise", &f.advertise, fc.Advertise)
		set("data-dir", &f.dataDir, fc.DataDir)
		set("token", &f.token, fc.Token)
		set("profile", &f.profile, fc.Profile)
		set("containerd", &f.containerd, fc.Containerd)
		set("registry-auth", &f.registryAuth, fc.RegistryAuth)
		set("overlay", &f.overlay, fc.Overlay)
		set("subnet", &f.subnet, fc.Subnet)
		set("domain", &f.domain, fc.Domain)
		set("dns", &f.dns, fc.DNS)
		set("metrics", &f.metrics, fc.Metrics)
		set("socket-group", &f.socketGroup, fc.SocketGroup)
		set("api-tls-addr", &f.apiTLSAddr, fc.APITLSAddr)
		set("api-tls-cert", &f.apiTLSCert, fc.APITLSCert)
		set("api-tls-key", &f.apiTLSKey, fc.APITLSKey)
		set("api-tls-client-ca", &f.apiTLSClientCA, fc.APITLSClientCA)
		if fc.EventHandlers != nil && !fs.Changed("event-handler") {
			f.eventHandlers = fc.EventHandlers
		}
		if fc.EventHandlerTimeout != nil && !fs.Changed("event-handler-timeout") {
			d, err := time.ParseDuration(*fc.EventHandlerTimeout)
			if err != nil {
				return agent.Config{}, usageError{fmt.Errorf("config file %s: event_handler_timeout %q: want a duration like 30s", f.configFile, *fc.EventHandlerTimeout)}
			}
			f.eventHandlerTimeout = d
		}
		if fc.DNSUpstreams != nil && !fs.Changed("dns-upstream") {
			f.dnsUpstreams = fc.DNSUpstreams
		}
		if fc.DNSTTL != nil && !fs.Changed("dns-ttl") {
			f.dnsTTL = *fc.DNSTTL
		}
		if fc.VNI != nil && !fs.Changed("vni") {
			f.vni = *fc.VNI
		}
		if fc.InsecureRegistries != nil && !fs.Changed("insecure-registry") {
			f.insecureRegistries = fc.InsecureRegistries
		}
		set("log-level", &f.logLevel, fc.LogLevel)
		set("log-format", &f.logFormat, fc.LogFormat)
		if fc.Socket != nil && !socketSet {
			socket = *fc.Socket
		}
		if fc.Join != nil && !fs.Changed("join") {
			f.join = fc.Join
		}
		if fc.Labels != nil && !fs.Changed("label") {
			for k, v := range fc.Labels {
				f.labels = append(f.labels, k+"="+v)
			}
		}
	}
	cfg := agent.DefaultConfig()
	var errs []error
	cfg.Name = f.name
	cfg.DataDir = f.dataDir
	cfg.Socket = socket
	cfg.Token = f.token
	cfg.Join = f.join
	cfg.Profile = f.profile
	cfg.Containerd = f.containerd
	cfg.InsecureRegistries = f.insecureRegistries
	cfg.RegistryAuth = f.registryAuth
	cfg.VNI = f.vni
	cfg.Domain = f.domain
	cfg.DNSTTL = f.dnsTTL
	cfg.EventHandlerTimeout = f.eventHandlerTimeout
	for _, s := range f.eventHandlers {
		h, err := agent.ParseEventHandler(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("--event-handler: %w", err))
			continue
		}
		cfg.EventHandlers = append(cfg.EventHandlers, h)
	}
	cfg.SocketGroup = f.socketGroup
	cfg.APITLSAddr = f.apiTLSAddr
	cfg.APITLSCert = f.apiTLSCert
	cfg.APITLSKey = f.apiTLSKey
	cfg.APITLSClientCA = f.apiTLSClientCA
	if f.metrics != "" {
		ap, err := netip.ParseAddrPort(f.metrics)
		if err != nil {
			errs = append(errs, fmt.Errorf("--metrics %q: want IP:PORT, e.g. 127.0.0.1:9746", f.metrics))
		}
		cfg.Metrics = ap
	}
	cfg.DNS = netip.AddrPort{}
	if f.dns != "none" {
		ap, err := netip.ParseAddrPort(f.dns)
		if err != nil {
			errs = append(errs, fmt.Errorf("--dns %q: want IP:PORT, or none", f.dns))
		}
		cfg.DNS = ap
	}
	for _, u := range f.dnsUpstreams {
		if a, err := netip.ParseAddr(u); err == nil {
			u = netip.AddrPortFrom(a, 53).String()
		}
		if _, err := netip.ParseAddrPort(u); err != nil {
			errs = append(errs, fmt.Errorf("--dns-upstream %q: want IP or IP:PORT", u))
			continue
		}
		cfg.DNSUpstreams = append(cfg.DNSUpstreams, u)
	}
	cfg.Overlay = netip.Prefix{}
	if f.overlay != "none" {
		p, err := netip.ParsePrefix(f.overlay)
		if err != nil {
			errs = append(errs, fmt.Errorf("--overlay %q: want a CIDR like %s, or none", f.overlay, agent.DefaultOverlay))
		}
		cfg.Overlay = p
	}
	if f.subnet != "" {
		p, err := netip.ParsePrefix(f.subnet)
		if err != nil {
			errs = append(errs, fmt.Errorf("--subnet %q: want a CIDR like 10.213.7.0/24", f.subnet))
		}
		cfg.Subnet = p
	}
	bind, err := parseBind(f.bind)
	if err != nil {
		errs = append(errs, err)
	}
	cfg.Bind = bind
	if f.advertise != "" {
		a, err := netip.ParseAddr(f.advertise)
		if err != nil {
			errs = append(errs, fmt.Errorf("--advertise %q: want an IP address", f.advertise))
		}
		cfg.Advertise = a
	}
	if len(f.labels) > 0 {
		cfg.Labels = map[string]string{}
		for _, l := range f.labels {
			k, v, err := agent.ParseLabel(l)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			cfg.Labels[k] = v
		}
	}
	logger, err := newLogger(f.logLevel, f.logFormat)
	if err != nil {
		errs = append(errs, err)
	}
	cfg.Logger = logger
	if err := errors.Join(errs...); err != nil {
		return agent.Config{}, usageError{err}
	}
	if err := cfg.Validate(); err != nil {
		return agent.Config{}, usageError{err}
	}
	return cfg, nil
}

// parseBind accepts IP:PORT, :PORT or IP (default port).
func parseBind(s string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap, nil
	}
	if p, ok := strings.CutPrefix(s, ":"); ok {
		if n, err := strconv.ParseUint(p, 10, 16); err == nil {
			return netip.AddrPortFrom(netip.IPv4Unspecified(), uint16(n)), nil
		}
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.AddrPortFrom(a, 7946), nil
	}
	return netip.AddrPort{}, fmt.Errorf("--bind %q: want IP:PORT, :PORT or IP", s)
}

func newLogger(level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

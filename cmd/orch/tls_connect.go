package main

// Which agent a client command talks to: the local socket (--socket,
// ORCH_SOCKET) or an agent's TLS API (--host, ORCH_HOST, with --tls-ca,
// --tls-cert and --tls-key), resolved once per run before the command runs.

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/orchproject/orch/agent/api"
)

// offline are the top-level commands that never talk to an agent: they
// must work whatever --host and the TLS flags say ("orch tls" makes the
// very files those flags name). "orch agent" serves; its socket is
// --socket and its TLS listener --api-tls-addr. Cobra's hidden completion
// commands parse the flags of the command being completed only after this
// hook has run, so their client is made later, by client.
var offline = map[string]bool{
	"agent": true, "tls": true, "version": true, "completion": true, "help": true,
	cobra.ShellCompRequestCmd: true, cobra.ShellCompNoDescRequestCmd: true,
}

// connect resolves --host, --socket and the TLS flags into g.api before a
// command runs, so that mistakes are usage errors reported before anything
// is done.
func (g *globals) connect(cmd *cobra.Command, _ []string) error {
	top := cmd
	for top.HasParent() && top.Parent().HasParent() {
		top = top.Parent()
	}
	if !cmd.HasParent() || offline[top.Name()] || cmd.HasSubCommands() {
		if top.Name() == "agent" {
			for _, f := range []string{"host", "tls-ca", "tls-cert", "tls-key"} {
				if cmd.Flags().Changed(f) {
					return usageError{fmt.Errorf("--%s chooses the agent a command talks to; orch agent serves TLS with --api-tls-addr, --api-tls-cert, --api-tls-key and --api-tls-client-ca", f)}
				}
			}
		}
		return nil
	}
	c, err := g.dial(cmd.Flags())
	if err != nil {
		return err
	}
	g.mu.Lock()
	g.api = c
	g.mu.Unlock()
	return nil
}

// dial makes the client the flags (and their environment variables) ask
// for. fs says which flags were given on the command line; nil means none.
// Precedence: a --host or --socket flag, then ORCH_HOST, then ORCH_SOCKET,
// then the default socket.
func (g *globals) dial(fs *pflag.FlagSet) (*api.Client, error) {
	changed := func(name string) bool { return fs != nil && fs.Changed(name) }
	host := g.host
	switch {
	case changed("host") && changed("socket"):
		return nil, usageError{errors.New("give --host or --socket, not both")}
	case changed("socket"):
		host = "" // the flag wins over ORCH_HOST
	}
	socket, addr, err := parseHost(host)
	if err != nil {
		return nil, usageError{err}
	}
	if addr == "" {
		if socket == "" {
			socket = g.socket
		}
		for _, f := range []string{"tls-ca", "tls-cert", "tls-key"} {
			if changed(f) {
				return nil, usageError{fmt.Errorf("--%s is for an agent's TLS API: give --host https://HOST:PORT too", f)}
			}
		}
		return api.NewClient(socket), nil
	}
	var missing []string
	for _, f := range []struct{ flag, env, v string }{
		{"--tls-ca", tlsCAEnv, g.tlsCA}, {"--tls-cert", tlsCertEnv, g.tlsCert}, {"--tls-key", tlsKeyEnv, g.tlsKey},
	} {
		if f.v == "" {
			missing = append(missing, f.flag+" FILE (or "+f.env+")")
		}
	}
	if len(missing) > 0 {
		return nil, usageError{fmt.Errorf("--host %s needs the CA that signed the agent's certificate (--tls-ca) and this client's certificate and key (--tls-cert, --tls-key); missing: %s (\"orch tls\" makes them)",
			host, strings.Join(missing, ", "))}
	}
	cfg, err := api.ClientTLS(g.tlsCA, g.tlsCert, g.tlsKey)
	if err != nil {
		return nil, fmt.Errorf("TLS client settings: %w", err)
	}
	return api.NewTLSClient(addr, cfg)
}

// parseHost reads --host: "" (use --socket), unix://PATH, or
// https://HOST:PORT and its synonym tcp://HOST:PORT (the agent's TCP
// listener always speaks TLS). It returns the socket or the TLS address.
func parseHost(s string) (socket, addr string, err error) {
	if s == "" {
		return "", "", nil
	}
	bad := fmt.Errorf("--host %q: want https://HOST:PORT (or tcp://HOST:PORT) for an agent's TLS API, or unix://PATH for a socket", s)
	u, err := url.Parse(s)
	if err != nil {
		return "", "", bad
	}
	switch u.Scheme {
	case "unix":
		p := u.Host + u.Path // unix:///run/x.sock, or unix://relative.sock
		if p == "" || u.RawQuery != "" || u.User != nil {
			return "", "", bad
		}
		return p, "", nil
	case "https", "tcp":
		if u.Port() == "" || u.Hostname() == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
			return "", "", bad
		}
		return "", u.Host, nil
	case "http":
		return "", "", fmt.Errorf("--host %q: the agent serves no plain HTTP; use https://%s", s, u.Host)
	}
	return "", "", bad
}

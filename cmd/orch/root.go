package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/spf13/cobra"

	"github.com/orchproject/orch/agent/api"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// usageError marks errors in how the command was called (exit 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// Environment variables of the TLS client flags; those of --socket and
// --host are api.SocketEnv and api.HostEnv.
const (
	tlsCAEnv   = "ORCH_TLS_CA"
	tlsCertEnv = "ORCH_TLS_CERT"
	tlsKeyEnv  = "ORCH_TLS_KEY"
)

// globals are the options every verb shares.
type globals struct {
	socket string
	// host is --host: empty for the socket, else https://, tcp:// or
	// unix://. tlsCA, tlsCert and tlsKey are the TLS client's files.
	host, tlsCA, tlsCert, tlsKey string
	stdout                       io.Writer
	stderr                       io.Writer

	// mu guards api: commands may call client from several goroutines.
	mu sync.Mutex
	// api is the client of the agent that --host or --socket names; set
	// by connect before any command that talks to an agent runs.
	api *api.Client
}

// client is the API client of the agent the flags name: one per run, so
// that calls reuse its connection. Safe for concurrent use.
func (g *globals) client() *api.Client {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.api == nil {
		// Completion gets here (it runs no command hooks), and callers
		// that build globals without the root command. With wrong
		// settings the client reaches nothing, so completion offers
		// nothing rather than another agent's names.
		c, err := g.dial(nil)
		if err != nil {
			c = api.NewClient("")
		}
		g.api = c
	}
	return g.api
}

// run executes the CLI and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	g := &globals{stdout: stdout, stderr: stderr}
	root := newRoot(g)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	var ue usageError
	if errors.As(err, &ue) || isCobraUsageError(err) {
		fmt.Fprintf(stderr, "orch: %v\n\n", err)
		if cmd == nil {
			cmd = root
		}
		fmt.Fprint(stderr, cmd.UsageString())
		return exitUsage
	}
	fmt.Fprintf(stderr, "orch: %v\n", err)
	return exitError
}

// isCobraUsageError recognises the errors cobra itself returns for unknown
// commands and bad arguments; it has no typed errors for them. Only the
// start of the message counts: a runtime error that merely contains such
// words (EINVAL's "invalid argument" from dialing a socket path that is too
// long, say) is not a usage error.
func isCobraUsageError(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand flag", "accepts ", "requires at least", "invalid argument", "flag needs an argument"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

func newRoot(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:   "orch",
		Short: "A leaderless cluster node agent: gossip membership, containers, overlay, DNS",
		Long: `orch runs one agent on every node. Agents find each other by gossip,
trust only nodes that showed the cluster's join token, and report what
happens as a stream of events.

Start a cluster:       orch agent
Print its join token:  orch token
Join another node:     orch agent --token TOKEN --join ADDR   (or, on a running agent, orch join --token TOKEN ADDR)

Every other command talks to the agent on this host's socket (--socket),
or, with --host https://HOST:PORT and a client certificate (--tls-ca,
--tls-cert, --tls-key; "orch tls" makes them), to an agent's TLS API.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          argsUsage(cobra.NoArgs),
		// A bare "orch" prints help and exits 0, like docker and serf.
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
		// Inherited by every command (none defines its own).
		PersistentPreRunE: g.connect,
	}
	socketDefault := os.Getenv(api.SocketEnv)
	if socketDefault == "" {
		socketDefault = api.DefaultSocket
	}
	root.PersistentFlags().StringVar(&g.socket, "socket", socketDefault, "the agent's API unix socket (env "+api.SocketEnv+")")
	pf := root.PersistentFlags()
	pf.StringVar(&g.host, "host", os.Getenv(api.HostEnv), "the agent to talk to: https://HOST:PORT (or tcp://) for its TLS API, unix://PATH for a socket; default --socket (env "+api.HostEnv+")")
	pf.StringVar(&g.tlsCA, "tls-ca", os.Getenv(tlsCAEnv), "PEM file of the CA that signed the agent's TLS certificate, for --host https:// (env "+tlsCAEnv+")")
	pf.StringVar(&g.tlsCert, "tls-cert", os.Getenv(tlsCertEnv), "PEM client certificate to present to the agent, for --host https:// (env "+tlsCertEnv+")")
	pf.StringVar(&g.tlsKey, "tls-key", os.Getenv(tlsKeyEnv), "PEM private key of --tls-cert (env "+tlsKeyEnv+")")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	// Our own "completion bash|zsh|fish" replaces cobra's default one, so
	// that a wrong shell is a usage error like any other.
	root.CompletionOptions.DisableDefaultCmd = true
	logs := newLogsCmd(g)
	// Set here rather than in newLogsCmd only because logs.go was not part
	// of the change that added completion; it belongs there.
	logs.ValidArgsFunction = completeServices(g, false)
	root.AddCommand(
		newAgentCmd(g),
		newTokenCmd(g),
		newJoinCmd(g),
		newLeaveCmd(g),
		newMembersCmd(g),
		newEventsCmd(g),
		newServiceCmd(g),
		newApplyCmd(g),
		newImageCmd(g),
		logs,
		newKeysCmd(g),
		newSecretCmd(g),
		newStatusCmd(g),
		newTLSCmd(g),
		newVersionCmd(g),
		newCompletionCmd(g),
	)
	return root
}

// argsUsage wraps a cobra.PositionalArgs so its errors are usage errors.
func argsUsage(f cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := f(cmd, args); err != nil {
			return usageError{err}
		}
		return nil
	}
}

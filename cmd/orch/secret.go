package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/orchproject/orch/agent/api"
)

func newSecretCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "secret",
		Short: "Manage secrets: values services get as files, never in plain config",
		Long: `Manage the cluster's secrets. A secret is a small value (at most 64 KiB): a
password, a key, a certificate. It is sealed (AES-256-GCM) with a key every
member derives from the cluster's identity, and only the sealed form is
replicated and written to disk. A node opens a secret only to start a
replica that uses it; the replica sees it as a read-only file
/run/secrets/NAME (mode 0400) on tmpfs. The value is never shown by
"orch service inspect", "orch secret inspect", the events or the logs.

A spec uses a secret as a file:

  containers:
    - name: db
      image: postgres
      secrets:
        - name: db-pass               # /run/secrets/db-pass
        - {name: tls-key, target: server.key, uid: 70}

or, the weaker choice, as an environment value set at start, which then
sits in the process's environment and in containerd's metadata:

      env:
        - name: PGPASSWORD
          valueFrom: {secret: db-pass}

Secrets cannot change: create one under a new name, point the service at it
(with "--secret-rm old --secret-add source=new,target=old" on "orch service
update", the file keeps its name), then remove the old one.`,
		Args: argsUsage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newSecretCreateCmd(g), newSecretLsCmd(g), newSecretInspectCmd(g), newSecretRmCmd(g))
	return cmd
}

func newSecretCreateCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "create NAME FILE|-",
		Short: "Create a secret from a file or stdin",
		Long: `Create a secret from FILE, or from stdin with "-". The value is taken as is,
bytes included (a trailing newline stays). Prefer a file or a pipe to typing
the value on a command line, where shell history and ps would keep it.`,
		Example: `  orch secret create db-pass ./db-pass.txt
  openssl rand -base64 32 | orch secret create api-key -`,
		Args: argsUsage(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := readSecretValue(args[1], cmd.InOrStdin())
			if err != nil {
				return err
			}
			ctx, cancel := withTimeout(cmd)
			defer cancel()
			info, err := g.client().CreateSecret(ctx, args[0], data)
			if err != nil {
				return err
			}
			fmt.Fprintln(g.stdout, info.Name)
			return nil
		},
	}
}

// readSecretValue reads a secret's value, refusing one too large before
// anything is sent.
func readSecretValue(path string, stdin io.Reader) ([]byte, error) {
	r, err := openInput(path, stdin)
	if err != nil {
		return nil, fmt.Errorf("read secret: %w", err)
	}
	defer r.Close()
	data, err := io.ReadAll(io.LimitReader(r, api.MaxSecretSize+1))
	if err != nil {
		return nil, fmt.Errorf("read secret: %w", err)
	}
	switch {
	case len(data) == 0:
		return nil, fmt.Errorf("read secret: %s is empty", secretSource(path))
	case len(data) > api.MaxSecretSize:
		return nil, fmt.Errorf("read secret: %s holds more than %d bytes, the most a secret may hold", secretSource(path), api.MaxSecretSize)
	}
	return data, nil
}

func secretSource(path string) string {
	if path == "-" {
		return "stdin"
	}
	return path
}

func newSecretLsCmd(g *globals) *cobra.Command {
	format := newFormatFlag(api.SecretInfo{}, "table", "json")
	quiet := false
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List secrets (names and sizes, never values)",
		Args:    argsUsage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := format.validate(); err != nil {
				return err
			}
			ctx, cancel := withTimeout(cmd)
			defer cancel()
			list, err := g.client().ListSecrets(ctx)
			if err != nil {
				return err
			}
			return printList(g.stdout, format, list, func(w io.Writer, list []api.SecretInfo) error {
				if quiet {
					for _, s := range list {
						fmt.Fprintln(w, s.Name)
					}
					return nil
				}
				tw := newTable(w)
				fmt.Fprintln(tw, "NAME\tSIZE\tCREATED\tNODE\tSERVICES")
				now := time.Now()
				for _, s := range list {
					users := strings.Join(s.Services, ",")
					if users == "" {
						users = "-"
					}
					fmt.Fprintf(tw, "%s\t%d\t%s ago\t%s\t%s\n", s.Name, s.Size, humanDuration(now.Sub(s.Created)), s.Node, users)
				}
				return tw.Flush()
			})
		},
	}
	format.register(cmd)
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print names only")
	return cmd
}

func newSecretInspectCmd(g *globals) *cobra.Command {
	format := newFormatFlag(api.SecretInfo{}, "json")
	cmd := &cobra.Command{
		Use:   "inspect NAME...",
		Short: "Show secrets' metadata as JSON (never their values)",
		Args:  argsUsage(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := format.validate(); err != nil {
				return err
			}
			ctx, cancel := withTimeout(cmd)
			defer cancel()
			out := make([]api.SecretInfo, 0, len(args))
			for _, name := range args {
				info, err := g.client().GetSecret(ctx, name)
				if err != nil {
					return err
				}
				out = append(out, info)
			}
			return printList(g.stdout, format, out, nil)
		},
	}
	format.register(cmd)
	return cmd
}

func newSecretRmCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "rm NAME...",
		Aliases: []string{"remove"},
		Short:   "Remove secrets no service uses",
		Args:    argsUsage(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := withTimeout(cmd)
			defer cancel()
			var errs []error
			for _, name := range args {
				if err := g.client().RemoveSecret(ctx, name); err != nil {
					errs = append(errs, err)
					continue
				}
				fmt.Fprintln(g.stdout, name)
			}
			return errors.Join(errs...)
		},
	}
}

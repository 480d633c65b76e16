package main

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"maps"
	"slices"

	"github.com/spf13/cobra"

	"github.com/orchproject/orch/agent/api"
)

func newKeysCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Rotate the cluster's gossip encryption keys",
		Long: `Rotate the cluster's gossip encryption keys (AES-256, base64), on every member
at once: each operation is a query that every member answers, and the result
says which nodes did it. The safe order is install (every node can decrypt
the new key), use (every node encrypts with it), remove (the old key is gone:
a node holding only the old key is refused from then on); "orch keys rotate"
does all three with a fresh key. The join token is not a gossip key and does
not change.`,
		Args: argsUsage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	format := newFormatFlag(api.KeyResult{}, "table", "json")
	list := &cobra.Command{
		Use:   "list",
		Short: "List the keys every member holds and uses",
		Args:  argsUsage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := format.validate(); err != nil {
				return err
			}
			ctx, cancel := withTimeout(cmd)
			defer cancel()
			res, err := g.client().Keys(ctx)
			if err != nil {
				return err
			}
			if err := format.print(g.stdout, res, []any{res}, func(w io.Writer) error {
				tw := newTable(w)
				fmt.Fprintln(tw, "KEY\tNODES\tPRIMARY ON")
				for _, k := range slices.Sorted(maps.Keys(res.Keys)) {
					fmt.Fprintf(tw, "%s\t%d/%d\t%d\n", k, res.Keys[k], res.Nodes, res.Primary[k])
				}
				return tw.Flush()
			}); err != nil {
				return err
			}
			if !format.is("table") {
				if res.Responses != res.Nodes || len(res.Failed) > 0 {
					return fmt.Errorf("list: %d of %d nodes did not answer", res.Nodes-res.Responses+len(res.Failed), res.Nodes)
				}
				return nil
			}
			return keyFailures(g.stdout, "list", res)
		},
	}
	format.register(list)
	cmd.AddCommand(list)
	for _, op := range []struct{ name, short string }{
		{api.KeyInstall, "Add a key to every member's keyring (not used to encrypt yet)"},
		{api.KeyUse, "Make an installed key every member's primary (encrypting) key"},
		{api.KeyRemove, "Remove a key that is no longer primary from every member"},
	} {
		cmd.AddCommand(&cobra.Command{
			Use:   op.name + " KEY",
			Short: op.short,
			Args:  argsUsage(cobra.ExactArgs(1)),
			RunE: func(cmd *cobra.Command, args []string) error {
				ctx, cancel := withTimeout(cmd)
				defer cancel()
				res, err := g.client().KeyOp(ctx, op.name, args[0])
				if err != nil {
					return err
				}
				return keyFailures(g.stdout, op.name, res)
			},
		})
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "generate",
		Short: "Print a new random key (base64 of 32 bytes); changes nothing",
		Args:  argsUsage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			k, err := newKey()
			if err != nil {
				return err
			}
			fmt.Fprintln(g.stdout, k)
			return nil
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "rotate",
		Short: "Install a new key, make it primary, and remove every other key",
		Long: `Install a new random key on every member, make it the primary key, then
remove every other key. A step that not every member confirmed is asked
again (up to three times); if it still fails, rotate stops there, leaving
the cluster able to talk (old and new keys both installed).`,
		Args: argsUsage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := withTimeout(cmd)
			defer cancel()
			c := g.client()
			before, err := c.Keys(ctx)
			if err != nil {
				return err
			}
			key, err := newKey()
			if err != nil {
				return err
			}
			// Each step is idempotent, so a member that did not answer in
			// time (a busy node misses serf's query deadline) is asked
			// again before giving up.
			step := func(op, k string) error {
				var err error
				for attempt := 1; attempt <= 3; attempt++ {
					var res api.KeyResult
					if res, err = c.KeyOp(ctx, op, k); err != nil {
						return err
					}
					if err = keyFailures(g.stdout, op, res); err == nil {
						return nil
					}
				}
				return err
			}
			for _, op := range []string{api.KeyInstall, api.KeyUse} {
				if err := step(op, key); err != nil {
					return err
				}
			}
			for _, old := range slices.Sorted(maps.Keys(before.Keys)) {
				if old != key {
					if err := step(api.KeyRemove, old); err != nil {
						return err
					}
				}
			}
			fmt.Fprintln(g.stdout, "rotated: the cluster now uses a new key only")
			return nil
		},
	})
	return cmd
}

func newKey() (string, error) {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return "", fmt.Errorf("generate key: %w", err)
	}
	return base64.StdEncoding.EncodeToString(k), nil
}

// keyFailures prints how many members did op, and every failure; it
// returns an error (exit 1) unless all of them did.
func keyFailures(w io.Writer, op string, r api.KeyResult) error {
	ok := r.Responses - len(r.Failed)
	fmt.Fprintf(w, "%s: %d of %d nodes ok\n", op, ok, r.Nodes)
	for _, n := range slices.Sorted(maps.Keys(r.Failed)) {
		fmt.Fprintf(w, "  %s: %s\n", n, r.Failed[n])
	}
	if ok != r.Nodes || len(r.Failed) > 0 {
		return fmt.Errorf("%s: %d of %d nodes did not confirm", op, r.Nodes-ok, r.Nodes)
	}
	return nil
}

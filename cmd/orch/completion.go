package main

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// completionTimeout bounds the API call behind a completion: a shell
// waiting on <TAB> must not hang on an agent that does not answer.
const completionTimeout = 2 * time.Second

func newCompletionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "completion bash|zsh|fish",
		Short: "Print the shell completion script for bash, zsh or fish",
		Long: `Print the script that makes the shell complete orch's commands, flags and
service names (asked of the agent at completion time; nothing is offered when
it cannot be reached).

bash (needs the bash-completion package):
  source <(orch completion bash)                        # this shell
  orch completion bash > /etc/bash_completion.d/orch    # every new shell
zsh:
  orch completion zsh > "${fpath[1]}/_orch"             # then start a new shell
fish:
  orch completion fish > ~/.config/fish/completions/orch.fish`,
		Example:   "  source <(orch completion bash)",
		ValidArgs: []string{"bash", "zsh", "fish"},
		Args:      argsUsage(cobra.MatchAll(cobra.ExactArgs(1), cobra.OnlyValidArgs)),
		RunE: func(cmd *cobra.Command, args []string) error {
			root := cmd.Root()
			switch args[0] {
			case "bash":
				return root.GenBashCompletionV2(g.stdout, true)
			case "zsh":
				return root.GenZshCompletion(g.stdout)
			default: // fish; Args let nothing else through
				return root.GenFishCompletion(g.stdout, true)
			}
		},
	}
}

// serviceNames asks the agent for the names of the services, for
// completion: nil when it cannot be reached in completionTimeout.
func serviceNames(cmd *cobra.Command, g *globals) []string {
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, completionTimeout)
	defer cancel()
	svcs, err := g.client().ListServices(ctx)
	if err != nil {
		return nil
	}
	names := make([]string, 0, len(svcs))
	for _, s := range svcs {
		names = append(names, s.Name)
	}
	return names
}

// completeServices completes service names for commands that take one
// (multi false) or several, leaving out those already given.
func completeServices(g *globals, multi bool) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if !multi && len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []cobra.Completion
		for _, n := range serviceNames(cmd, g) {
			if strings.HasPrefix(n, toComplete) && !slices.Contains(args, n) {
				out = append(out, n)
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

// completeScale completes "NAME=" for `service scale NAME=REPLICAS`, with
// no space after it, so that the number can be typed at once.
func completeScale(g *globals) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if strings.Contains(toComplete, "=") {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []cobra.Completion
		for _, n := range serviceNames(cmd, g) {
			given := slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, n+"=") })
			if strings.HasPrefix(n, toComplete) && !given {
				out = append(out, n+"=")
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveNoSpace
	}
}

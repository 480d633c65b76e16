package main

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

func TestCLI_CompletionScripts(t *testing.T) {
	for _, tt := range []struct{ shell, want string }{
		{"bash", "complete -o default -F __start_orch orch"},
		{"zsh", "#compdef orch"},
		{"fish", "complete -c orch"},
	} {
		t.Run(tt.shell, func(t *testing.T) {
			r := runCLI(t, "completion", tt.shell)
			if r.code != exitOK || r.stderr != "" {
				t.Fatalf("completion %s: %v", tt.shell, r)
			}
			if !strings.Contains(r.stdout, tt.want) {
				t.Errorf("completion %s does not contain %q (%d bytes)", tt.shell, tt.want, len(r.stdout))
			}
		})
	}
	wantUsage(t, runCLI(t, "completion", "tcsh"), `invalid argument "tcsh"`)
	wantUsage(t, runCLI(t, "completion"), "accepts 1 arg")
}

// complete runs cobra's hidden completion command, as the shell scripts
// do, and returns the candidates and the directive.
func complete(t *testing.T, socket string, args ...string) ([]string, cobra.ShellCompDirective) {
	t.Helper()
	r := runCLI(t, append([]string{"--socket", socket, cobra.ShellCompRequestCmd}, args...)...)
	if r.code != exitOK {
		t.Fatalf("%s %q: %v", cobra.ShellCompRequestCmd, args, r)
	}
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	last := lines[len(lines)-1]
	var d cobra.ShellCompDirective
	if _, err := fmt.Sscanf(last, ":%d", &d); err != nil {
		t.Fatalf("no directive at the end of %q", r.stdout)
	}
	return lines[:len(lines)-1], d
}

func TestCLI_CompleteServices(t *testing.T) {
	t.Run("NoAgent", func(t *testing.T) {
		got, d := complete(t, "/nonexistent/x.sock", "service", "ps", "")
		if len(got) != 0 || d != cobra.ShellCompDirectiveNoFileComp {
			t.Errorf("with no agent: candidates %q, directive %d; want none and no file names", got, d)
		}
	})

	n1 := startAgent(t, "n1", nil)
	n1.ok(t, "service", "create", "-f", sentryFile(t))
	n1.ok(t, "service", "create", "--name", "web", "busybox:stable")
	tests := []struct {
		name string
		args []string
		want []string
		dir  cobra.ShellCompDirective
	}{
		{"Ps", []string{"service", "ps", ""}, []string{"sentry", "web"}, cobra.ShellCompDirectiveNoFileComp},
		{"PsPrefix", []string{"service", "ps", "se"}, []string{"sentry"}, cobra.ShellCompDirectiveNoFileComp},
		{"PsOneOnly", []string{"service", "ps", "web", ""}, nil, cobra.ShellCompDirectiveNoFileComp},
		{"Inspect", []string{"service", "inspect", "web", ""}, []string{"sentry"}, cobra.ShellCompDirectiveNoFileComp},
		{"Update", []string{"service", "update", "w"}, []string{"web"}, cobra.ShellCompDirectiveNoFileComp},
		{"Rm", []string{"service", "rm", "sentry", ""}, []string{"web"}, cobra.ShellCompDirectiveNoFileComp},
		{"Scale", []string{"service", "scale", "web=2", ""}, []string{"sentry="}, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveNoSpace},
		{"Logs", []string{"logs", "s"}, []string{"sentry"}, cobra.ShellCompDirectiveNoFileComp},
		{"Format", []string{"members", "--format", ""}, []string{"json", "table"}, cobra.ShellCompDirectiveNoFileComp},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, d := complete(t, n1.socket, tt.args...)
			slices.Sort(got)
			if !slices.Equal(got, tt.want) && !(len(got) == 0 && len(tt.want) == 0) || d != tt.dir {
				t.Errorf("completing %q: %q, directive %d; want %q, directive %d", tt.args, got, d, tt.want, tt.dir)
			}
		})
	}
}

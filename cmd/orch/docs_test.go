package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/orchproject/orch/agent/api"
	"github.com/orchproject/orch/internal/testenv"
)

// updateDocs rewrites the generated blocks of docs/cli.md from the command
// tree: go test ./cmd/orch -run TestDocsCLI -update.
var updateDocs = flag.Bool("update", false, "rewrite the generated blocks of docs/cli.md")

// docCommands lists the commands docs/cli.md must describe: every command
// of the tree but the hidden ones and cobra's help.
func docCommands(t *testing.T) []*cobra.Command {
	t.Helper()
	// The defaults of --socket, --host and the TLS flags must not depend
	// on the caller's environment.
	for _, env := range []string{api.SocketEnv, api.HostEnv, tlsCAEnv, tlsCertEnv, tlsKeyEnv} {
		t.Setenv(env, "")
	}
	var out []*cobra.Command
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Hidden || c.Name() == "help" {
			return
		}
		out = append(out, c)
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(newRoot(&globals{}))
	return out
}

const (
	blockStart = "<!-- generated from the command tree by TestDocsCLI: "
	blockEnd   = "<!-- end of generated block -->"
)

// blockRE matches a generated block; group 1 is the command path.
var blockRE = regexp.MustCompile("(?s)" + regexp.QuoteMeta(blockStart) + "`([^`]+)`.*?" + regexp.QuoteMeta(blockEnd) + "\n")

// docBlock is the generated part of a command's section: its usage line,
// aliases and flags with their defaults and meanings.
func docBlock(c *cobra.Command) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s`%s`; go test ./cmd/orch -run TestDocsCLI -update -->\n", blockStart, c.CommandPath())
	fmt.Fprintf(&b, "```\n%s\n```\n", c.UseLine())
	if len(c.Aliases) > 0 {
		fmt.Fprintf(&b, "\nAliases: `%s`.\n", strings.Join(c.Aliases, "`, `"))
	}
	var rows []string
	c.LocalFlags().VisitAll(func(f *pflag.Flag) {
		if f.Name == "help" || f.Hidden {
			return
		}
		name := "--" + f.Name
		if f.Shorthand != "" {
			name = "-" + f.Shorthand + ", " + name
		}
		varname, usage := pflag.UnquoteUsage(f)
		if varname != "" {
			name += " " + varname
		}
		def := docDefault(f)
		rows = append(rows, fmt.Sprintf("| `%s` | %s | %s |", name, def, strings.ReplaceAll(usage, "|", `\|`)))
	})
	if len(rows) > 0 {
		b.WriteString("\n| flag | default | meaning |\n|---|---|---|\n")
		b.WriteString(strings.Join(rows, "\n") + "\n")
	}
	if fl := c.LocalFlags().Lookup("format"); fl != nil {
		if f, ok := fl.Value.(*formatFlag); ok {
			fmt.Fprintf(&b, "\nA `--format` template sees %s: `.%s`.\n", itemDesc(c, f), strings.Join(fieldNames(f.row), "`, `."))
		}
	}
	b.WriteString(blockEnd + "\n")
	return b.String()
}

// itemDesc says what a command's template runs on.
func itemDesc(c *cobra.Command, f *formatFlag) string {
	if c.Name() == "status" {
		return fmt.Sprintf("the %T, once", f.row)
	}
	return fmt.Sprintf("each %T", f.row)
}

// docDefault is a flag's default as the doc shows it: nothing for zero
// values, as --help does, and no value that depends on the machine.
func docDefault(f *pflag.Flag) string {
	switch f.DefValue {
	case "", "[]", "false", "0", "0s":
		return ""
	}
	if host, err := os.Hostname(); err == nil && f.DefValue == strings.ToLower(host) {
		return "the host name"
	}
	return "`" + f.DefValue + "`"
}

// docSections splits a markdown document at its "### `orch …`" headings and
// returns each command section's text by command path.
func docSections(doc string) map[string]string {
	heading := regexp.MustCompile("(?m)^### `(orch[^`]*)`\n")
	out := map[string]string{}
	locs := heading.FindAllStringSubmatchIndex(doc, -1)
	for i, l := range locs {
		end := len(doc)
		if i+1 < len(locs) {
			end = locs[i+1][0]
		}
		if j := strings.Index(doc[l[1]:end], "\n## "); j >= 0 {
			end = l[1] + j + 1
		}
		out[doc[l[2]:l[3]]] = doc[l[1]:end]
	}
	return out
}

// TestDocsCLI checks that docs/cli.md describes every command: a section
// per command path, an example of every command that does something, and
// generated usage and flag blocks that match the code. With -update it
// rewrites the blocks (adding missing ones at the end of their section).
func TestDocsCLI(t *testing.T) {
	path := filepath.Join(testenv.RepoRoot(t), "docs", "cli.md")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	cmds := docCommands(t)
	want := map[string]string{}
	for _, c := range cmds {
		want[c.CommandPath()] = docBlock(c)
	}

	if *updateDocs {
		doc = blockRE.ReplaceAllStringFunc(doc, func(m string) string {
			p := blockRE.FindStringSubmatch(m)[1]
			if b, ok := want[p]; ok {
				return b
			}
			return "" // a command that is gone
		})
		for _, c := range cmds {
			p := c.CommandPath()
			if strings.Contains(doc, blockStart+"`"+p+"`") {
				continue
			}
			sec, ok := docSections(doc)[p]
			if !ok {
				continue // reported below
			}
			i := strings.Index(doc, "### `"+p+"`\n") + len("### `"+p+"`\n")
			end := i + len(sec)
			doc = doc[:end] + "\n" + want[p] + "\n" + doc[end:]
			doc = strings.ReplaceAll(doc, "\n\n\n", "\n\n")
		}
		if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	sections := docSections(doc)
	got := map[string]string{}
	for _, m := range blockRE.FindAllStringSubmatch(doc, -1) {
		got[m[1]] = m[0]
	}
	for _, c := range cmds {
		p := c.CommandPath()
		sec, ok := sections[p]
		if !ok {
			t.Errorf("docs/cli.md has no section for %s: add \"### `%s`\" with a sentence and an example, then run go test ./cmd/orch -run TestDocsCLI -update", p, p)
			continue
		}
		if got[p] != want[p] {
			t.Errorf("docs/cli.md: the generated block of %s is out of date; run go test ./cmd/orch -run TestDocsCLI -update\ngot:\n%s\nwant:\n%s", p, got[p], want[p])
		} else if !strings.Contains(sec, want[p]) {
			t.Errorf("docs/cli.md: the generated block of %s is outside its section", p)
		}
		if c.Runnable() && !c.HasSubCommands() && !hasExample(sec, p) {
			t.Errorf("docs/cli.md: the section of %s has no example (a line starting with %q in a ```sh block)", p, p)
		}
	}
	for p := range sections {
		if _, ok := want[p]; !ok {
			t.Errorf("docs/cli.md describes %s, which is not a command", p)
		}
	}
}

// hasExample reports whether section has a ```sh block with a line that
// runs the command at path.
func hasExample(section, path string) bool {
	in := false
	for line := range strings.Lines(section) {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "```"):
			in = line == "```sh"
		case in && (line == path || strings.HasPrefix(line, path+" ")):
			return true
		}
	}
	return false
}

// TestDocsConfiguration checks that docs/configuration.md names every flag
// of `orch agent` and every key of its --config file.
func TestDocsConfiguration(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "docs", "configuration.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	var missing []string
	newAgentCmd(&globals{}).Flags().VisitAll(func(f *pflag.Flag) {
		if f.Name != "help" && !strings.Contains(doc, "`--"+f.Name) {
			missing = append(missing, "--"+f.Name)
		}
	})
	ft := reflect.TypeFor[fileConfig]()
	for i := range ft.NumField() {
		key, _, _ := strings.Cut(ft.Field(i).Tag.Get("json"), ",")
		if key != "" && key != "-" && !strings.Contains(doc, "`"+key+"`") {
			missing = append(missing, key+" (config key)")
		}
	}
	slices.Sort(missing)
	if len(missing) > 0 {
		t.Errorf("docs/configuration.md does not describe %s", strings.Join(missing, ", "))
	}

	// The example file must be one the agent accepts.
	m := regexp.MustCompile("(?s)```json\n(.*?)```").FindStringSubmatch(doc)
	if m == nil {
		t.Fatal("docs/configuration.md has no ```json example")
	}
	p := filepath.Join(t.TempDir(), "orch.json")
	if err := os.WriteFile(p, []byte(m[1]), 0o600); err != nil {
		t.Fatal(err)
	}
	f, fs := parseAgentFlags(t, "--config", p)
	if _, err := f.toConfig(fs, api.DefaultSocket, false); err != nil {
		t.Errorf("docs/configuration.md: the example file is refused: %v", err)
	}
}

// TestPackaging_ConfigExample checks that the agent accepts
// packaging/orch.json.example (with a name, which defaults to the host's).
func TestPackaging_ConfigExample(t *testing.T) {
	p := filepath.Join(testenv.RepoRoot(t), "packaging", "orch.json.example")
	f, fs := parseAgentFlags(t, "--config", p, "--name", "n1")
	if _, err := f.toConfig(fs, api.DefaultSocket, false); err != nil {
		t.Errorf("%s: %v", p, err)
	}
}

// TestPackaging_SystemdUnit runs systemd-analyze verify on
// packaging/orch.service, with ExecStart pointing at an executable that
// exists here.
func TestPackaging_SystemdUnit(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("no systemd-analyze on this machine")
	}
	raw, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "packaging", "orch.service"))
	if err != nil {
		t.Fatal(err)
	}
	const execStart = "ExecStart=/usr/local/bin/orch agent --config /etc/orch/orch.json\n"
	if !strings.Contains(string(raw), execStart) {
		t.Fatalf("orch.service has no %q", execStart)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	unit := filepath.Join(t.TempDir(), "orch.service")
	if err := os.WriteFile(unit, []byte(strings.Replace(string(raw), "/usr/local/bin/orch", self, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(t.Context(), sa, "verify", unit).CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify orch.service: %v\n%s", err, out)
	}
}

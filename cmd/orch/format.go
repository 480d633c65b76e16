package main

// Output formats. Every command that prints API objects takes --format:
// one of a few built-in names ("table", "json"; "pretty" for events), or a
// Go text/template executed once per item, as docker's --format is. The
// template sees the agent/api type of the item (api.Member, api.Task, …)
// with its Go field names, and has docker's json, join, lower, upper and
// split functions; "table TEMPLATE" aligns the rows under a header made of
// the fields' names. See docs/cli.md.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"reflect"
	"slices"
	"strings"
	"text/tabwriter"
	"text/template"
	"text/template/parse"
	"unicode"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/orchproject/orch/agent/api"
)

// formatFlag is the --format flag. Build it with [newFormatFlag], register
// it on its command, and call validate before contacting the agent, so that
// a bad template is a usage error (exit 2).
type formatFlag struct {
	value    string
	builtins []string // accepted names; the first is the default
	row      any      // a zero item, to find unknown fields before any request

	tmpl  *template.Template // the parsed template, when value is not a builtin
	table bool               // "table TEMPLATE": aligned rows under a header
}

// newFormatFlag returns a --format flag that accepts builtins (the first is
// the default) or a template over items of row's type.
func newFormatFlag(row any, builtins ...string) *formatFlag {
	return &formatFlag{value: builtins[0], builtins: builtins, row: row}
}

func (f *formatFlag) register(cmd *cobra.Command) {
	cmd.Flags().Var(f, "format", "output format: "+orList(f.builtins)+", or a Go template such as "+f.example())
	_ = cmd.RegisterFlagCompletionFunc("format", cobra.FixedCompletions(f.builtins, cobra.ShellCompDirectiveNoFileComp))
}

// String, Set and Type make the flag a [pflag.Value]; the value is checked
// by validate, so that its errors read the same for every command.
func (f *formatFlag) String() string     { return f.value }
func (f *formatFlag) Set(v string) error { f.value = v; return nil }
func (f *formatFlag) Type() string       { return "string" }

// example is a template over the flag's items, for messages.
func (f *formatFlag) example() string {
	if names := fieldNames(f.row); len(names) > 0 {
		return "'{{." + names[0] + "}}'"
	}
	return "'{{json .}}'"
}

// is reports whether the flag names the builtin format name.
func (f *formatFlag) is(name string) bool { return f.tmpl == nil && f.value == name }

// escapes turns the \t and \n people type in a shell's single quotes into
// tabs and newlines, as docker does.
var escapes = strings.NewReplacer(`\t`, "\t", `\n`, "\n")

// validate checks the flag and parses a template. Everything wrong with it
// is a usage error: an unknown name, a template that does not parse, or one
// that names a field the items do not have.
func (f *formatFlag) validate() error {
	f.tmpl, f.table = nil, false
	if slices.Contains(f.builtins, f.value) {
		return nil
	}
	text, table := strings.CutPrefix(f.value, "table ")
	if !strings.Contains(text, "{{") {
		return usageError{fmt.Errorf("--format %q: want %s, or a Go template such as %s", f.value, orList(f.builtins), f.example())}
	}
	t, err := template.New("format").Funcs(templateFuncs).Option("missingkey=zero").Parse(escapes.Replace(strings.TrimSpace(text)))
	if err != nil {
		return usageError{fmt.Errorf("--format: %w", err)}
	}
	// Fields are only resolved when the template runs: run it once on a
	// zero item, and report unknown fields now rather than after the
	// request. Other errors on a zero item (a nil pointer) say nothing
	// about real ones.
	if err := t.Execute(io.Discard, f.row); err != nil && strings.Contains(err.Error(), "can't evaluate field") {
		return usageError{fmt.Errorf("--format: %w (the fields of %T are %s)", err, f.row, strings.Join(fieldNames(f.row), ", "))}
	}
	f.tmpl, f.table = t, table
	return nil
}

// templateFuncs are the functions a --format template can call, docker's
// basic ones.
var templateFuncs = template.FuncMap{
	// json writes v as compact JSON, the API's form of it.
	"json": func(v any) (string, error) {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			return "", err
		}
		return strings.TrimSuffix(b.String(), "\n"), nil
	},
	"join":  strings.Join,
	"lower": strings.ToLower,
	"upper": strings.ToUpper,
	"split": strings.Split,
}

// printList prints items as the flag says: table(w, items) for "table",
// an indented JSON array for "json", or the template once per item.
func printList[T any](w io.Writer, f *formatFlag, items []T, table func(io.Writer, []T) error) error {
	if items == nil {
		items = []T{} // "[]", not "null"
	}
	rows := make([]any, len(items))
	for i, it := range items {
		rows[i] = it
	}
	return f.print(w, items, rows, func(w io.Writer) error { return table(w, items) })
}

// print prints v with the builtin printers (table for anything but "json")
// or executes the template on each of rows.
func (f *formatFlag) print(w io.Writer, v any, rows []any, table func(io.Writer) error) error {
	switch {
	case f.tmpl != nil:
		return f.execute(w, rows)
	case f.value == "json":
		return writeJSON(w, v)
	}
	return table(w)
}

// execute runs the template once per row, each followed by a newline.
func (f *formatFlag) execute(w io.Writer, rows []any) error {
	out := w
	var tw *tabwriter.Writer
	if f.table {
		tw = newTable(w)
		out = tw
		fmt.Fprintln(tw, templateHeader(f.tmpl))
	}
	var line bytes.Buffer
	for _, r := range rows {
		line.Reset()
		if err := f.tmpl.Execute(&line, r); err != nil {
			return fmt.Errorf("--format: %w", err)
		}
		line.WriteByte('\n')
		if _, err := out.Write(line.Bytes()); err != nil {
			return err
		}
	}
	if tw != nil {
		return tw.Flush()
	}
	return nil
}

// templateHeader is the header line of a "table TEMPLATE": the template's
// text with each action replaced by the name of the field it prints, in
// capitals ("{{.Name}}\t{{json .Labels}}" → "NAME\tLABELS"), and anything
// else (if, range, a bare dot) by nothing.
func templateHeader(t *template.Template) string {
	var b strings.Builder
	for _, n := range t.Root.Nodes {
		switch n := n.(type) {
		case *parse.TextNode:
			b.Write(n.Text)
		case *parse.ActionNode:
			b.WriteString(headerName(n.Pipe))
		}
	}
	return b.String()
}

// headerName is the capitalised name of the last field in the first
// command of pipe that names one: "SpecVersion" → "SPEC VERSION".
func headerName(pipe *parse.PipeNode) string {
	for _, c := range pipe.Cmds {
		for _, a := range c.Args {
			var ident []string
			switch a := a.(type) {
			case *parse.FieldNode:
				ident = a.Ident
			case *parse.ChainNode:
				ident = a.Field
			case *parse.VariableNode:
				ident = a.Ident[1:]
			}
			if len(ident) > 0 {
				return strings.ToUpper(splitCamel(ident[len(ident)-1]))
			}
		}
	}
	return ""
}

// splitCamel puts a space between the words of a Go identifier:
// "GossipAddr" → "Gossip Addr", "ID" stays "ID".
func splitCamel(s string) string {
	var b strings.Builder
	rs := []rune(s)
	for i, r := range rs {
		if i > 0 && unicode.IsUpper(r) && (unicode.IsLower(rs[i-1]) || (i+1 < len(rs) && unicode.IsLower(rs[i+1]) && unicode.IsUpper(rs[i-1]))) {
			b.WriteByte(' ')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// fieldNames lists the exported fields of v's struct type, for hints.
func fieldNames(v any) []string {
	t := reflect.TypeOf(v)
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t.Kind() != reflect.Struct {
		return nil
	}
	var out []string
	for i := range t.NumField() {
		if f := t.Field(i); f.IsExported() {
			out = append(out, f.Name)
		}
	}
	return out
}

// orList writes names as "a, b or c".
func orList(names []string) string {
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// writeJSON writes v as indented JSON: the API's objects, for scripts.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// newTable is the tabwriter of every table the CLI prints.
func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
}

// listRunE is the RunE of a listing command (members, service ls, service
// ps, image ls): check --format, fetch the items with a short deadline and
// print them as the flag says.
func listRunE[T any](g *globals, f *formatFlag, fetch func(context.Context, *api.Client, []string) ([]T, error), table func(io.Writer, []T) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		if err := f.validate(); err != nil {
			return err
		}
		ctx, cancel := withTimeout(cmd)
		defer cancel()
		items, err := fetch(ctx, g.client(), args)
		if err != nil {
			return err
		}
		return printList(g.stdout, f, items, table)
	}
}

// isTerminal reports whether w is a terminal: a file on which the terminal
// ioctl works (a character device such as /dev/null is not enough).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// wantColour decides whether to colour output: only on a terminal, and
// never when NO_COLOR is set to anything (https://no-color.org) or the
// terminal is "dumb".
func wantColour(terminal bool, getenv func(string) string) bool {
	return terminal && getenv("NO_COLOR") == "" && getenv("TERM") != "dumb"
}

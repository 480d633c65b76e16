package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/orchproject/orch/agent/api"
)

func TestFormatFlag_Validate(t *testing.T) {
	tests := []struct {
		name    string
		value   string
		wantErr string // "" for valid; any error must be a usage error
	}{
		{"Table", "table", ""},
		{"JSON", "json", ""},
		{"Template", "{{.Name}} {{.Status}}", ""},
		{"TableTemplate", `table {{.Name}}\t{{.Status}}`, ""},
		{"JSONFunc", "{{json .Labels}}", ""},
		{"Funcs", `{{join (split .Address ":") " "}} {{upper .Name}} {{lower .Status}}`, ""},
		{"NilPointerIsNotAMistake", `{{.Created.Unix}}`, ""},
		{"NotATemplate", "yaml", `--format "yaml": want table or json, or a Go template`},
		{"Unclosed", "{{.Name", "--format: template: format:1: unclosed action"},
		{"UnknownFunction", "{{bogus .Name}}", `function "bogus" not defined`},
		{"UnknownField", "{{.Nmae}}", "can't evaluate field Nmae in type api.Member (the fields of api.Member are Name, ID, Address"},
		{"UnknownFieldInTable", "table {{.Name}}\t{{.Bogus}}", "can't evaluate field Bogus"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFormatFlag(api.Member{}, "table", "json")
			f.value = tt.value
			err := f.validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("validate(%q) = %v, want nil", tt.value, err)
				}
				return
			}
			var ue usageError
			if !errors.As(err, &ue) {
				t.Fatalf("validate(%q) = %v, want a usage error", tt.value, err)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("validate(%q) = %q, want it to contain %q", tt.value, err, tt.wantErr)
			}
		})
	}
}

func TestPrintList_Formats(t *testing.T) {
	created := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	ms := []api.Member{
		{Name: "n1", Address: "10.0.0.1:7946", Status: "alive", Labels: map[string]string{"zone": "a"}, Orch: true, Self: true, Created: &created},
		{Name: "n2", Address: "10.0.0.2:7946", Status: "failed", Labels: map[string]string{}, Orch: true},
	}
	table := func(w io.Writer, ms []api.Member) error { return printMembers(w, ms, created.Add(time.Hour)) }
	tests := []struct {
		name   string
		format string
		want   string
	}{
		{"Template", "{{.Name}} {{.Status}}", "n1 alive\nn2 failed\n"},
		{"MissingMapKeyIsEmpty", "{{.Name}}:{{.Labels.zone}}", "n1:a\nn2:\n"},
		{"JSONFunc", "{{json .Labels}}", "{\"zone\":\"a\"}\n{}\n"},
		{"JSONOfItem", "{{json .}}", `{"name":"n1","address":"10.0.0.1:7946","status":"alive","labels":{"zone":"a"},"created":"2026-11-01T00:00:00Z","orch":true,"self":true,"tags":null}` + "\n" +
			`{"name":"n2","address":"10.0.0.2:7946","status":"failed","labels":{},"orch":true,"self":false,"tags":null}` + "\n"},
		{"Escapes", `{{.Name}}\t{{.Address}}`, "n1\t10.0.0.1:7946\nn2\t10.0.0.2:7946\n"},
		{"TableTemplateHeader", `table {{.Name}}\t{{json .Labels}}\t{{.Address}}`, "NAME  LABELS        ADDRESS\nn1    {\"zone\":\"a\"}  10.0.0.1:7946\nn2    {}            10.0.0.2:7946\n"},
		{"Table", "table", "NAME  ADDRESS        STATUS  SUBNET  LABELS  AGE\nn1 *  10.0.0.1:7946  alive   -       zone=a  1h\nn2    10.0.0.2:7946  failed  -       -       -\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFormatFlag(api.Member{}, "table", "json")
			f.value = tt.format
			if err := f.validate(); err != nil {
				t.Fatal(err)
			}
			var b bytes.Buffer
			if err := printList(&b, f, ms, table); err != nil {
				t.Fatal(err)
			}
			if b.String() != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s", b.String(), tt.want)
			}
		})
	}

	t.Run("JSON", func(t *testing.T) {
		f := newFormatFlag(api.Member{}, "table", "json")
		f.value = "json"
		if err := f.validate(); err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		if err := printList[api.Member](&b, f, nil, table); err != nil {
			t.Fatal(err)
		}
		if b.String() != "[]\n" {
			t.Errorf("an empty list printed %q, want []", b.String())
		}
		b.Reset()
		if err := printList(&b, f, ms, table); err != nil {
			t.Fatal(err)
		}
		var got []api.Member
		if err := json.Unmarshal(b.Bytes(), &got); err != nil || len(got) != 2 || got[1].Name != "n2" {
			t.Errorf("json printed %s (%v), want both members", b.String(), err)
		}
	})

	t.Run("ExecError", func(t *testing.T) {
		f := newFormatFlag(api.Member{}, "table", "json")
		f.value = "{{.Created.Unix}}" // nil for n2
		if err := f.validate(); err != nil {
			t.Fatal(err)
		}
		var ue usageError
		err := printList(io.Discard, f, ms, table)
		if err == nil || errors.As(err, &ue) || !strings.Contains(err.Error(), "--format") {
			t.Errorf("printList = %v, want a runtime error naming --format", err)
		}
	})
}

// TestFormatFlag_Status checks that a template runs once on a single
// object and that the table printer is used otherwise.
func TestFormatFlag_Status(t *testing.T) {
	info := api.Info{Name: "n1", Subnet: "10.213.4.0/24", Members: map[string]int{"alive": 3}}
	for _, tt := range []struct{ format, want string }{
		{"{{.Name}} {{.Subnet}} {{.Members.alive}} {{.Members.failed}}", "n1 10.213.4.0/24 3 0\n"},
		{"{{json .DNS}}", "null\n"},
	} {
		f := newFormatFlag(api.Info{}, "table", "json")
		f.value = tt.format
		if err := f.validate(); err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		if err := f.print(&b, info, []any{info}, func(io.Writer) error { t.Error("table printer called for a template"); return nil }); err != nil {
			t.Fatal(err)
		}
		if b.String() != tt.want {
			t.Errorf("%s printed %q, want %q", tt.format, b.String(), tt.want)
		}
	}
}

func TestSplitCamel(t *testing.T) {
	for in, want := range map[string]string{
		"Name": "Name", "ID": "ID", "GossipAddr": "Gossip Addr", "SpecVersion": "Spec Version",
		"DNSInfo": "DNS Info", "ForwardFailures": "Forward Failures",
	} {
		if got := splitCamel(in); got != want {
			t.Errorf("splitCamel(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestCLI_FormatTemplates runs the listings with templates against a live
// agent: the template runs per item, and a bad one is a usage error.
func TestCLI_FormatTemplates(t *testing.T) {
	n1 := startAgent(t, "n1", map[string]string{"zone": "a"})
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"Members", []string{"members", "--format", "{{.Name}} {{.Status}} {{.Labels.zone}}"}, "n1 alive a\n"},
		{"MembersJSONFunc", []string{"members", "--format", "{{json .Labels}}"}, "{\"zone\":\"a\"}\n"},
		{"MembersTable", []string{"members", "--format", `table {{.Name}}\t{{.Status}}`}, "NAME  STATUS\nn1    alive\n"},
		{"Status", []string{"status", "--format", "{{.Name}} {{.Members.alive}}"}, "n1 1\n"},
		{"ServiceLsEmpty", []string{"service", "ls", "--format", "{{.Name}}"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := n1.cli(t, tt.args...)
			if r.code != exitOK || r.stdout != tt.want {
				t.Errorf("%q: %v\nwant stdout %q", tt.args, r, tt.want)
			}
		})
	}
	for _, args := range [][]string{
		{"members", "--format", "{{.Name"},
		{"service", "ls", "--format", "{{.Bogus}}"},
		{"service", "ps", "web", "--format", "{{.Nope}}"},
		{"image", "ls", "--format", "{{nofunc .Name}}"},
		{"status", "--format", "{{.Members.alive"},
		{"events", "--format", "{{.Kind}}"},
		{"service", "inspect", "web", "--format", "{{.Spec.Name"},
	} {
		t.Run("Bad/"+strings.Join(args[:len(args)-2], "_"), func(t *testing.T) {
			wantUsage(t, n1.cli(t, args...), "--format")
		})
	}
}

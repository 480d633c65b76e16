package events

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestParseFilter(t *testing.T) {
	tests := []struct {
		name    string
		exprs   []string
		want    []string // f.Strings()
		wantErr []string // substrings that must all appear
	}{
		{name: "nil", exprs: nil, want: nil},
		{name: "one key", exprs: []string{"type=member"}, want: []string{"type=member"}},
		{
			name:  "canonical key order",
			exprs: []string{"node=n2", "subject=n3", "action=failed", "type=member"},
			want:  []string{"type=member", "action=failed", "subject=n3", "node=n2"},
		},
		{
			name:  "repeated key keeps first-given order, drops duplicates",
			exprs: []string{"action=leave", "action=failed", "action=leave"},
			want:  []string{"action=leave", "action=failed"},
		},
		{name: "value may contain =", exprs: []string{"subject=a=b"}, want: []string{"subject=a=b"}},
		{name: "unknown type is allowed", exprs: []string{"type=service"}, want: []string{"type=service"}},
		{
			name:    "no =",
			exprs:   []string{"member"},
			wantErr: []string{`invalid filter "member"`, "want KEY=VALUE", "type, action, subject, node"},
		},
		{
			name:    "unknown key",
			exprs:   []string{"kind=member"},
			wantErr: []string{`invalid filter "kind=member"`, `unknown key "kind"`, "type, action, subject, node"},
		},
		{name: "keys are case-sensitive", exprs: []string{"Type=member"}, wantErr: []string{`unknown key "Type"`}},
		{name: "empty key", exprs: []string{"=member"}, wantErr: []string{`unknown key ""`}},
		{name: "empty value", exprs: []string{"type="}, wantErr: []string{`invalid filter "type="`, "empty value for type"}},
		{name: "empty expression", exprs: []string{""}, wantErr: []string{`invalid filter ""`}},
		{
			name:    "every bad expression reported",
			exprs:   []string{"type=member", "bogus", "node="},
			wantErr: []string{`"bogus"`, `"node="`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := ParseFilter(tt.exprs)
			if tt.wantErr != nil {
				if !errors.Is(err, ErrInvalidFilter) {
					t.Fatalf("ParseFilter(%q) error = %v, want ErrInvalidFilter", tt.exprs, err)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not contain %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseFilter(%q): %v", tt.exprs, err)
			}
			if got := f.Strings(); !slices.Equal(got, tt.want) {
				t.Errorf("Strings() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestFilter_Match(t *testing.T) {
	ev := Event{Seq: 1, Type: TypeMember, Action: ActionFailed, Node: "n1", Subject: "n2"}
	tests := []struct {
		name  string
		exprs []string
		want  bool
	}{
		{name: "zero filter matches all", exprs: nil, want: true},
		{name: "type", exprs: []string{"type=member"}, want: true},
		{name: "other type", exprs: []string{"type=service"}, want: false},
		{name: "same key is OR", exprs: []string{"action=join", "action=failed"}, want: true},
		{name: "same key is OR, none match", exprs: []string{"action=join", "action=leave"}, want: false},
		{name: "different keys are AND", exprs: []string{"type=member", "action=failed", "subject=n2", "node=n1"}, want: true},
		{name: "AND fails on one key", exprs: []string{"type=member", "node=n9"}, want: false},
		{name: "subject exact, not prefix", exprs: []string{"subject=n"}, want: false},
		{name: "OR within AND", exprs: []string{"subject=n3", "subject=n2", "action=failed"}, want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := ParseFilter(tt.exprs)
			if err != nil {
				t.Fatalf("ParseFilter: %v", err)
			}
			if got := f.Match(ev); got != tt.want {
				t.Errorf("Match = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestFilter_StringsRoundTrip(t *testing.T) {
	in := []string{"node=n2", "type=member", "action=join", "action=failed", "subject=x=y"}
	f, err := ParseFilter(in)
	if err != nil {
		t.Fatalf("ParseFilter: %v", err)
	}
	g, err := ParseFilter(f.Strings())
	if err != nil {
		t.Fatalf("ParseFilter(Strings()): %v", err)
	}
	if !reflect.DeepEqual(f, g) {
		t.Errorf("round trip changed the filter: %q -> %q", f.Strings(), g.Strings())
	}
	if !slices.Equal(f.Strings(), g.Strings()) {
		t.Errorf("Strings not stable: %q vs %q", f.Strings(), g.Strings())
	}
}

func FuzzParseFilter(f *testing.F) {
	// Expressions are separated by newlines in the fuzz input.
	for _, seed := range []string{
		"",
		"type=member",
		"type=member\naction=failed\naction=join",
		"subject=a=b\nnode=n1",
		"node=n1\nnode=n1",
		"kind=member",
		"type=",
		"=x",
		"member",
		"type=member\nbogus",
		"subject=\xff\xfe",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		exprs := strings.Split(in, "\n")
		flt, err := ParseFilter(exprs)
		if err != nil {
			if !errors.Is(err, ErrInvalidFilter) {
				t.Fatalf("error %v does not wrap ErrInvalidFilter", err)
			}
			if !reflect.DeepEqual(flt, Filter{}) {
				t.Fatalf("error with a non-zero filter %q", flt.Strings())
			}
			return
		}
		strs := flt.Strings()
		again, err := ParseFilter(strs)
		if err != nil {
			t.Fatalf("ParseFilter(Strings() = %q): %v", strs, err)
		}
		if !reflect.DeepEqual(flt, again) {
			t.Fatalf("round trip changed the filter: %q -> %q", strs, again.Strings())
		}
		// An event built from the first value of each key matches.
		var ev Event
		for _, s := range strs {
			key, value, _ := strings.Cut(s, "=")
			switch key {
			case FilterType:
				if ev.Type == "" {
					ev.Type = Type(value)
				}
			case FilterAction:
				if ev.Action == "" {
					ev.Action = Action(value)
				}
			case FilterSubject:
				if ev.Subject == "" {
					ev.Subject = value
				}
			case FilterNode:
				if ev.Node == "" {
					ev.Node = value
				}
			default:
				t.Fatalf("Strings() produced unknown key in %q", s)
			}
		}
		if !flt.Match(ev) {
			t.Fatalf("filter %q does not match %+v", strs, ev)
		}
	})
}

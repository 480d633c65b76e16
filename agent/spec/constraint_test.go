package spec

import (
	"strings"
	"testing"
)

func TestParseConstraint(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Constraint
		wantErr string
	}{
		{"node name", "node.name==n1", Constraint{"node.name", "==", "n1"}, ""},
		{"node name not", "node.name!=n2", Constraint{"node.name", "!=", "n2"}, ""},
		{"label", "node.label.zone==a", Constraint{"node.label.zone", "==", "a"}, ""},
		{"label not", "node.label.disk!=hdd", Constraint{"node.label.disk", "!=", "hdd"}, ""},
		{"spaces", "  node.label.zone ==  eu west ", Constraint{"node.label.zone", "==", "eu west"}, ""},
		{"docker spelling", "node.labels.zone==a", Constraint{"node.label.zone", "==", "a"}, ""},
		{"label key chars", "node.label.example.com/tier_1==Gold", Constraint{"node.label.example.com/tier_1", "==", "Gold"}, ""},
		{"value with =", "node.label.x===a", Constraint{"node.label.x", "==", "=a"}, ""},
		{"first operator wins", "node.label.x!=a==b", Constraint{"node.label.x", "!=", "a==b"}, ""},
		{"no operator", "node.name=n1", Constraint{}, `constraint "node.name=n1": want FIELD==VALUE or FIELD!=VALUE (FIELD is node.name or node.label.KEY)`},
		{"empty", "", Constraint{}, `constraint "": want FIELD==VALUE or FIELD!=VALUE (FIELD is node.name or node.label.KEY)`},
		{"unknown field", "node.role==manager", Constraint{}, `constraint "node.role==manager": unknown field "node.role": want node.name or node.label.KEY`},
		{"engine labels", "engine.labels.os==linux", Constraint{}, `constraint "engine.labels.os==linux": unknown field "engine.labels.os": want node.name or node.label.KEY`},
		{"bad node name", "node.name==N1", Constraint{}, `constraint "node.name==N1": "N1" is not a node name (a lower-case DNS label)`},
		{"empty node name", "node.name==", Constraint{}, `constraint "node.name==": "" is not a node name (a lower-case DNS label)`},
		{"empty label key", "node.label.==a", Constraint{}, `constraint "node.label.==a": "" is not a node label key (1-63 letters, digits, '.', '_', '/', '-', starting and ending with a letter or digit)`},
		{"empty label value", "node.label.zone==", Constraint{}, `constraint "node.label.zone==": a label value is 1-63 characters without control characters`},
		{"long label value", "node.label.zone==" + strings.Repeat("a", 64), Constraint{}, `constraint "node.label.zone==` + strings.Repeat("a", 64) + `": a label value is 1-63 characters without control characters`},
		{"control in value", "node.label.zone==a\tb", Constraint{}, `constraint "node.label.zone==a\tb": a label value is 1-63 characters without control characters`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseConstraint(tt.in)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tt.want)
			}
			if back, err := ParseConstraint(got.String()); err != nil || back != got {
				t.Errorf("%q does not parse back: %+v, %v", got.String(), back, err)
			}
		})
	}
}

func TestConstraint_Match(t *testing.T) {
	labels := map[string]string{"zone": "a", "disk": "ssd", "empty": ""}
	tests := []struct {
		name       string
		constraint string
		node       string
		want       bool
	}{
		{"name equal", "node.name==n1", "n1", true},
		{"name differs", "node.name==n1", "n2", false},
		{"name not equal", "node.name!=n2", "n1", true},
		{"name not equal, same", "node.name!=n1", "n1", false},
		{"label equal", "node.label.zone==a", "n1", true},
		{"label differs", "node.label.zone==b", "n1", false},
		{"label not equal", "node.label.disk!=hdd", "n1", true},
		{"label not equal, same", "node.label.disk!=ssd", "n1", false},
		{"missing label, ==", "node.label.rack==r1", "n1", false},
		{"missing label, !=", "node.label.rack!=r1", "n1", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseConstraint(tt.constraint)
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Match(tt.node, labels); got != tt.want {
				t.Errorf("Match = %v, want %v", got, tt.want)
			}
		})
	}
	if (Constraint{Field: "node.role", Op: "==", Value: "x"}).Match("n1", labels) {
		t.Error("an unparsed field matched")
	}
	if (Constraint{Field: "node.name", Op: "=", Value: "n1"}).Match("n1", labels) {
		t.Error("an unparsed operator matched")
	}
}

func TestPlacement_Match(t *testing.T) {
	labels := map[string]string{"zone": "a"}
	tests := []struct {
		name        string
		constraints []string
		want        bool
	}{
		{"none", nil, true},
		{"all hold", []string{"node.name==n1", "node.label.zone==a", "node.label.disk!=hdd"}, true},
		{"one fails", []string{"node.name==n1", "node.label.zone==b"}, false},
		{"unparsable fails closed", []string{"node.name==n1", "zone=a"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := (Placement{Constraints: tt.constraints}).Match("n1", labels); got != tt.want {
				t.Errorf("Match = %v, want %v", got, tt.want)
			}
		})
	}
}

func FuzzParseConstraint(f *testing.F) {
	for _, s := range []string{
		"node.name==n1", "node.name!=n2", "node.label.zone==a", "node.labels.disk != hdd",
		"node.label.x===a", "node.label.x!=a==b", "==", "!=", "node.name==", " node.label.a.b/c == d e ",
		"node.label.\x00==\x00", "node.label.k==\u00a0v\u2028",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseConstraint(s)
		if err != nil {
			return
		}
		canon := c.String()
		back, err := ParseConstraint(canon)
		if err != nil {
			t.Fatalf("canonical %q of %q does not parse: %v", canon, s, err)
		}
		if back != c {
			t.Fatalf("%q → %+v → %q → %+v", s, c, canon, back)
		}
		if back.String() != canon {
			t.Fatalf("String not stable: %q then %q", canon, back.String())
		}
		if c.Op != OpEqual && c.Op != OpNotEqual || c.Value == "" {
			t.Fatalf("parsed %+v", c)
		}
		// Equal and not-equal split every node in two.
		labels := map[string]string{"zone": c.Value}
		neg := c
		neg.Op = map[string]string{OpEqual: OpNotEqual, OpNotEqual: OpEqual}[c.Op]
		for _, node := range []string{"n1", c.Value} {
			for _, l := range []map[string]string{nil, labels} {
				if c.Match(node, l) == neg.Match(node, l) {
					t.Fatalf("%q and %q agree on node %q labels %v", c, neg, node, l)
				}
			}
		}
	})
}

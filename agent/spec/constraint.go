package spec

import (
	"fmt"
	"regexp"
	"strings"
)

// Constraint fields.
const (
	// FieldNodeName is the node's name.
	FieldNodeName = "node.name"
	// FieldNodeLabelPrefix, followed by a label key, is that node label.
	FieldNodeLabelPrefix = "node.label."
	// dockerLabelPrefix is Docker Swarm's spelling, accepted and rewritten
	// to FieldNodeLabelPrefix.
	dockerLabelPrefix = "node.labels."
)

// Constraint operators.
const (
	OpEqual    = "=="
	OpNotEqual = "!="
)

// Constraint is a parsed placement constraint such as "node.name==n1" or
// "node.label.zone!=a".
type Constraint struct {
	// Field is "node.name" or "node.label.KEY".
	Field string
	// Op is "==" or "!=".
	Op string
	// Value is compared with the field; never empty.
	Value string
}

// nodeNameRE is what a node name looks like (gossip.ValidName).
var nodeNameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// nodeLabelKeyRE is what a node label key looks like (agent.Config).
var nodeLabelKeyRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._/-]{0,61}[A-Za-z0-9])?$`)

// maxNodeLabelValue is the longest node label value (agent.Config).
const maxNodeLabelValue = 63

// ParseConstraint parses FIELD==VALUE or FIELD!=VALUE, where FIELD is
// node.name or node.label.KEY (Docker's node.labels.KEY is accepted too).
// Space around FIELD and VALUE is ignored. A node.name value must be a
// valid node name; a label value is at most 63 characters without
// control characters, like node labels themselves. [Constraint.String]
// gives the canonical form, which parses to the same Constraint.
func ParseConstraint(s string) (Constraint, error) {
	i := strings.Index(s, OpEqual)
	j := strings.Index(s, OpNotEqual)
	if i < 0 && j < 0 {
		return Constraint{}, fmt.Errorf("constraint %q: want FIELD==VALUE or FIELD!=VALUE (FIELD is node.name or node.label.KEY)", s)
	}
	op := OpEqual
	if i < 0 || (j >= 0 && j < i) {
		i, op = j, OpNotEqual
	}
	c := Constraint{
		Field: strings.TrimSpace(s[:i]),
		Op:    op,
		Value: strings.TrimSpace(s[i+len(op):]),
	}
	if key, ok := strings.CutPrefix(c.Field, dockerLabelPrefix); ok {
		c.Field = FieldNodeLabelPrefix + key
	}
	switch key, isLabel := strings.CutPrefix(c.Field, FieldNodeLabelPrefix); {
	case c.Field == FieldNodeName:
		if !nodeNameRE.MatchString(c.Value) {
			return Constraint{}, fmt.Errorf("constraint %q: %q is not a node name (a lower-case DNS label)", s, c.Value)
		}
	case isLabel:
		if !nodeLabelKeyRE.MatchString(key) {
			return Constraint{}, fmt.Errorf("constraint %q: %q is not a node label key (1-63 letters, digits, '.', '_', '/', '-', starting and ending with a letter or digit)", s, key)
		}
		if c.Value == "" || len(c.Value) > maxNodeLabelValue || hasControl(c.Value) {
			return Constraint{}, fmt.Errorf("constraint %q: a label value is 1-%d characters without control characters", s, maxNodeLabelValue)
		}
	default:
		return Constraint{}, fmt.Errorf("constraint %q: unknown field %q: want node.name or node.label.KEY", s, c.Field)
	}
	return c, nil
}

// String returns the canonical form, such as "node.label.zone==a".
func (c Constraint) String() string { return c.Field + c.Op + c.Value }

// Match reports whether a node with this name and these labels satisfies
// c. A label the node does not have satisfies every != constraint on it
// and no == constraint: "node.label.disk!=hdd" admits nodes without a
// disk label, "node.label.zone==a" only nodes labelled zone=a.
func (c Constraint) Match(nodeName string, labels map[string]string) bool {
	var v string
	var ok bool
	if key, isLabel := strings.CutPrefix(c.Field, FieldNodeLabelPrefix); isLabel {
		v, ok = labels[key]
	} else if c.Field == FieldNodeName {
		v, ok = nodeName, true
	} else {
		return false // not a parsed Constraint
	}
	switch c.Op {
	case OpEqual:
		return ok && v == c.Value
	case OpNotEqual:
		return !ok || v != c.Value
	}
	return false
}

// Match reports whether a node with this name and these labels satisfies
// every constraint. A constraint that does not parse matches no node, so
// an unvalidated spec fails closed.
func (p Placement) Match(nodeName string, labels map[string]string) bool {
	for _, s := range p.Constraints {
		c, err := ParseConstraint(s)
		if err != nil || !c.Match(nodeName, labels) {
			return false
		}
	}
	return true
}

// hasControl reports whether s holds an ASCII or C1 control character.
func hasControl(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return true
		}
	}
	return false
}

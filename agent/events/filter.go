package events

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ErrInvalidFilter is wrapped by every error from [ParseFilter], so the API
// can answer 400 with errors.Is.
var ErrInvalidFilter = errors.New("invalid filter")

// Filter keys, as written in filter expressions (`type=member`).
const (
	FilterType    = "type"
	FilterAction  = "action"
	FilterSubject = "subject"
	FilterNode    = "node"
)

// filterKeyList is the list of valid keys as shown in error messages.
const filterKeyList = FilterType + ", " + FilterAction + ", " + FilterSubject + ", " + FilterNode

// Filter selects events by their fields, like `docker events --filter`:
// values given for the same key are alternatives (OR), and different keys
// must all match (AND). The zero Filter matches every event. Build one with
// [ParseFilter]; a Filter is immutable and safe to share.
type Filter struct {
	// Each slice holds the accepted values for one key, deduplicated, in
	// the order first given. Empty means any value.
	types    []Type
	actions  []Action
	subjects []string
	nodes    []string
}

// ParseFilter builds a Filter from expressions of the form KEY=VALUE, where
// KEY is one of type, action, subject and node and VALUE is matched exactly.
// VALUE may contain '='; everything after the first '=' is the value. The
// error reports every bad expression, each naming the expression and the
// valid keys, and wraps [ErrInvalidFilter].
func ParseFilter(exprs []string) (Filter, error) {
	var f Filter
	var errs []error
	for _, expr := range exprs {
		key, value, ok := strings.Cut(expr, "=")
		if !ok {
			errs = append(errs, fmt.Errorf("%w %q: want KEY=VALUE with KEY one of %s", ErrInvalidFilter, expr, filterKeyList))
			continue
		}
		switch key {
		case FilterType, FilterAction, FilterSubject, FilterNode:
		default:
			errs = append(errs, fmt.Errorf("%w %q: unknown key %q, want one of %s", ErrInvalidFilter, expr, key, filterKeyList))
			continue
		}
		if value == "" {
			errs = append(errs, fmt.Errorf("%w %q: empty value for %s", ErrInvalidFilter, expr, key))
			continue
		}
		switch key {
		case FilterType:
			f.types = appendUnique(f.types, Type(value))
		case FilterAction:
			f.actions = appendUnique(f.actions, Action(value))
		case FilterSubject:
			f.subjects = appendUnique(f.subjects, value)
		case FilterNode:
			f.nodes = appendUnique(f.nodes, value)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Filter{}, err
	}
	return f, nil
}

// Match reports whether e passes f.
func (f Filter) Match(e Event) bool {
	return matchAny(f.types, e.Type) &&
		matchAny(f.actions, e.Action) &&
		matchAny(f.subjects, e.Subject) &&
		matchAny(f.nodes, e.Node)
}

// Strings returns f as expressions that [ParseFilter] turns back into an
// equal Filter: keys in the order type, action, subject, node, and values in
// the order first given, without duplicates. The zero Filter gives nil. Use
// it to pass a Filter over an HTTP query.
func (f Filter) Strings() []string {
	var out []string
	for _, v := range f.types {
		out = append(out, FilterType+"="+string(v))
	}
	for _, v := range f.actions {
		out = append(out, FilterAction+"="+string(v))
	}
	for _, v := range f.subjects {
		out = append(out, FilterSubject+"="+v)
	}
	for _, v := range f.nodes {
		out = append(out, FilterNode+"="+v)
	}
	return out
}

func matchAny[T comparable](accept []T, v T) bool {
	return len(accept) == 0 || slices.Contains(accept, v)
}

func appendUnique[T comparable](s []T, v T) []T {
	if slices.Contains(s, v) {
		return s
	}
	return append(s, v)
}

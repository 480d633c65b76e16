package spec

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Problem is one thing wrong with a spec.
type Problem struct {
	// Path names the field in JSON terms, such as
	// "containers[1].ports[0].containerPort" or `labels["a.b"]`; empty for
	// the spec as a whole. [BuildFromFlags] and [ApplyUpdate] use the flag
	// name, such as "--env", for problems with a flag's value.
	Path string
	// Message says what is wrong, such as "must be 1-65535 (got 0)".
	Message string
}

// String returns "path: message", or the message alone without a path.
func (p Problem) String() string {
	if p.Path == "" {
		return p.Message
	}
	return p.Path + ": " + p.Message
}

// SpecError lists every problem found in a spec. [Decode], [Service.Validate],
// [BuildFromFlags] and [ApplyUpdate] return it for bad input, so a caller
// can tell bad input (an HTTP 400) from other failures with errors.As.
type SpecError struct {
	Problems []Problem
}

// Error returns one problem per line.
func (e *SpecError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// problems collects Problems as validation goes.
type problems []Problem

func (ps *problems) add(path, format string, args ...any) {
	*ps = append(*ps, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
}

// err returns nil without problems, else a *SpecError.
func (ps problems) err() error {
	if len(ps) == 0 {
		return nil
	}
	return &SpecError{Problems: ps}
}

// Paths.
func field(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}
func index(path string, i int) string  { return path + "[" + strconv.Itoa(i) + "]" }
func key(path string, k string) string { return path + "[" + strconv.Quote(k) + "]" }

var (
	// dnsLabelRE is a service or container name: it names DNS records.
	dnsLabelRE = regexp.MustCompile(`^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$`)
	// labelKeyRE is a Docker label key: "com.example.team" and the like.
	labelKeyRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._/-]{0,251}[A-Za-z0-9])?$`)
)

const dnsLabelRule = "must be a DNS label (a-z, 0-9 and '-', at most 63 characters, starting with a letter and ending with a letter or digit)"

// Validate reports every problem with s, each by its path, as a
// *SpecError; nil if there is none. It accepts unset fields that
// [Service.Normalize] would fill, so it works on normalized and raw specs
// alike, and it does not change s.
func (s *Service) Validate() error {
	var ps problems
	if s.Name == "" {
		ps.add("name", "required")
	} else if !dnsLabelRE.MatchString(s.Name) {
		ps.add("name", "%s, not %q", dnsLabelRule, s.Name)
	}
	if r := s.Replicas; r != nil && (*r < 0 || *r > MaxReplicas) {
		ps.add("replicas", "must be 0-%d (got %d)", MaxReplicas, *r)
	}
	s.validateContainers(&ps)
	for _, k := range sortedKeys(s.Labels) {
		p := key("labels", k)
		if !labelKeyRE.MatchString(k) {
			ps.add(p, "key must be 1-253 letters, digits, '.', '_', '/', '-', starting and ending with a letter or digit")
		}
		if v := s.Labels[k]; len(v) > MaxLabelValue {
			ps.add(p, "value is %d bytes, at most %d", len(v), MaxLabelValue)
		} else if strings.ContainsRune(v, 0) {
			ps.add(p, "value must not contain NUL")
		}
	}
	for i, c := range s.Placement.Constraints {
		if _, err := ParseConstraint(c); err != nil {
			ps.add(index("placement.constraints", i), "%v", err)
		}
	}
	s.RestartPolicy.validate(&ps)
	s.Update.validate(&ps)
	if len(ps) == 0 {
		// Checked last and only for an otherwise valid spec: it is what
		// keeps every stored spec decodable.
		if b, err := s.Marshal(); err != nil {
			ps.add("", "encode spec: %v", err)
		} else if len(b) > MaxSpecSize {
			ps.add("", "spec encodes to %d bytes, at most %d", len(b), MaxSpecSize)
		}
	}
	return ps.err()
}

func (r RestartPolicy) validate(ps *problems) {
	switch r.Condition {
	case "", RestartAlways, RestartOnFailure, RestartNone:
	default:
		ps.add("restartPolicy.condition", "must be always, on-failure or none (got %q)", r.Condition)
	}
	if r.MaxAttempts < 0 {
		ps.add("restartPolicy.maxAttempts", "must be 0 (unlimited) or more (got %d)", r.MaxAttempts)
	}
	if r.Delay != nil && *r.Delay < 0 {
		ps.add("restartPolicy.delay", "must not be negative (got %s)", *r.Delay)
	}
}

func (u UpdateConfig) validate(ps *problems) {
	if u.Parallelism != nil && *u.Parallelism < 0 {
		ps.add("update.parallelism", "must be 0 (all at once) or more (got %d)", *u.Parallelism)
	}
	if u.Delay < 0 {
		ps.add("update.delay", "must not be negative (got %s)", u.Delay)
	}
	switch u.Order {
	case "", OrderStopFirst, OrderStartFirst:
	default:
		ps.add("update.order", "must be stop-first or start-first (got %q)", u.Order)
	}
	switch u.FailureAction {
	case "", FailurePause, FailureContinue, FailureRollback:
	default:
		ps.add("update.failureAction", "must be pause, continue or rollback (got %q)", u.FailureAction)
	}
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

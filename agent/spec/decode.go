package spec

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"sigs.k8s.io/yaml"
)

// Decode reads one service spec, written in YAML or JSON, and returns it
// normalized ([Service.Normalize]) and valid ([Service.Validate]). Every
// error it returns for bad input is a *SpecError: too large (more than
// [MaxSpecSize] bytes), not UTF-8, malformed (with the YAML parser's line
// number), more than one YAML document, unknown or repeated fields,
// values of the wrong kind, and all validation problems, each by path.
//
// Input that is valid JSON is decoded as JSON; anything else as YAML,
// converted to JSON by sigs.k8s.io/yaml. Either way, one strict JSON
// decoder fills the Service, so both spellings mean the same. Field names
// are case-sensitive and a key may appear once.
//
// Problems with the document's shape (unknown fields, wrong kinds) are
// reported before, and instead of, validation problems, in key order
// (sorted, for YAML); validation problems follow the fields' order.
func Decode(data []byte) (*Service, error) {
	if len(data) > MaxSpecSize {
		return nil, specError("", "spec is %d bytes, at most %d", len(data), MaxSpecSize)
	}
	if !utf8.Valid(data) {
		return nil, specError("", "spec is not valid UTF-8")
	}
	data = bytes.TrimPrefix(data, []byte("\uFEFF"))
	j, err := toJSON(data)
	if err != nil {
		return nil, specError("", "%v", err)
	}
	var ps problems
	checkShape(j, &ps)
	if len(ps) > 0 {
		return nil, ps.err()
	}
	var s Service
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return nil, specError("", "decode spec: %v", err) // checkShape let something through
	}
	s.Normalize()
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return &s, nil
}

func specError(path, format string, args ...any) *SpecError {
	return &SpecError{Problems: []Problem{{Path: path, Message: fmt.Sprintf(format, args...)}}}
}

// toJSON returns data as one JSON value.
func toJSON(data []byte) ([]byte, error) {
	if json.Valid(data) {
		// Not through YAML: YAML lacks JSON's \/ escape and surrogate
		// pairs, and refuses characters such as DEL that JSON allows.
		return data, nil
	}
	lines := strings.Split(string(data), "\n")
	if n, ok := secondDocument(lines); ok {
		return nil, fmt.Errorf("spec holds more than one YAML document (the second starts at line %d): give one service per spec", n)
	}
	start, end, flow := flowBody(lines)
	if !flow {
		return yamlToJSON(data)
	}
	// The YAML parser stops after a top-level flow node and ignores what
	// follows ("{name: a} {name: b}" reads as {name: a}). Inside a list,
	// what follows is a syntax error or a second item. The '[' goes on the
	// node's own line and "\n]" after it, so line numbers stay true.
	wrapped := make([]byte, 0, len(data)+3)
	wrapped = append(wrapped, data[:start]...)
	wrapped = append(wrapped, '[')
	wrapped = append(wrapped, data[start:end]...)
	wrapped = append(wrapped, "\n]"...)
	wrapped = append(wrapped, data[end:]...)
	j, err := yamlToJSON(wrapped)
	if err != nil {
		return nil, err
	}
	var items []json.RawMessage
	if err := json.Unmarshal(j, &items); err != nil || len(items) != 1 {
		return nil, fmt.Errorf("spec holds %d values: want one mapping", len(items))
	}
	return items[0], nil
}

func yamlToJSON(data []byte) ([]byte, error) {
	// Strict: a key given twice is an error, as the YAML spec says.
	j, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, fmt.Errorf("parse spec: %w", err)
	}
	return j, nil
}

// secondDocument returns the 1-based line at which a second YAML document
// with content starts: its "---", or its first line if it has none. Document markers ("---", "...") are recognised at
// the start of a line only, as YAML does; documents holding only comments
// do not count, so a leading or trailing "---" is fine.
func secondDocument(lines []string) (int, bool) {
	docs, content, start := 0, false, 0
	for i, line := range lines {
		line = strings.TrimSuffix(line, "\r")
		rest := line
		if m, ok := docMarker(line); ok {
			content, start = false, 0
			if m == "..." {
				continue
			}
			start, rest = i+1, line[3:]
		} else if strings.HasPrefix(line, "%") {
			continue // a directive
		}
		if !content && isContent(rest) {
			content = true
			if start == 0 {
				start = i + 1 // a bare document
			}
			if docs++; docs == 2 {
				return start, true
			}
		}
	}
	return 0, false
}

// flowBody reports whether the document's node is a flow collection
// ("{…}" or "[…]", the way JSON looks) and where it starts and ends: from
// its first character to the end of the last line with content.
func flowBody(lines []string) (start, end int, ok bool) {
	first, last := -1, -1
	for i, line := range lines {
		line = strings.TrimSuffix(line, "\r")
		rest := line
		if m, isMarker := docMarker(line); isMarker {
			if m == "..." {
				continue
			}
			rest = line[3:]
		} else if strings.HasPrefix(line, "%") {
			continue
		}
		if isContent(rest) {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	if first < 0 {
		return 0, 0, false
	}
	off := 0
	for _, line := range lines[:first] {
		off += len(line) + 1
	}
	line := lines[first]
	col := len(line) - len(strings.TrimLeft(line, " \t"))
	if _, isMarker := docMarker(line); isMarker {
		col = 3 + len(line[3:]) - len(strings.TrimLeft(line[3:], " \t"))
	}
	if c := line[col]; c != '{' && c != '[' {
		return 0, 0, false
	}
	start = off + col
	end = off
	for _, line := range lines[first : last+1] {
		end += len(line) + 1
	}
	return start, end - 1, true
}

// docMarker returns "---" or "..." if line starts with that document
// marker.
func docMarker(line string) (string, bool) {
	for _, m := range []string{"---", "..."} {
		if strings.HasPrefix(line, m) && (len(line) == 3 || line[3] == ' ' || line[3] == '\t') {
			return m, true
		}
	}
	return "", false
}

// isContent reports whether a line holds more than space and a comment.
func isContent(line string) bool {
	t := strings.TrimSpace(line)
	return t != "" && t[0] != '#'
}

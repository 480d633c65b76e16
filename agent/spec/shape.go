package spec

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
)

// checkShape walks the JSON document j along the Service type and reports,
// by path, every key that is not a field, every key given twice, and
// every value of the wrong kind. encoding/json alone would stop at the
// first, name no path ("json: unknown field \"x\""), match field names
// case-insensitively and let a repeated key win silently; after
// checkShape passes, its strict decoder has nothing left to refuse.
func checkShape(j []byte, ps *problems) {
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.UseNumber()
	switch k := jsonKind(j); k {
	case "an object":
	case "null", "nothing":
		ps.add("", "spec is empty: want a mapping with name and containers")
		return
	default:
		ps.add("", "spec must be a mapping with name and containers, not %s", k)
		return
	}
	w := shapeWalker{dec: dec, ps: ps}
	if err := w.value(reflect.TypeFor[Service](), ""); err != nil {
		// Decode hands checkShape only well-formed JSON.
		ps.add("", "read spec: %v", err)
	}
}

// refusedFields are settings other orchestrators accept that would give a
// container the host: orch has no such fields, on purpose. Keys are lower
// case, matched case-insensitively; the reason goes into the error.
var refusedFields = func() map[string]string {
	m := map[string]string{}
	for why, keys := range map[string][]string{
		"orch never runs privileged containers":                               {"privileged", "allowprivilegeescalation", "securitycontext", "security_opt", "securityopt"},
		"orch keeps containers to Docker's default capabilities":              {"capadd", "cap_add", "capabilities", "capdrop", "cap_drop"},
		"orch never mounts host paths into containers; use secrets for files": {"volumes", "volumemounts", "mounts", "hostpath", "binds", "devices", "tmpfs"},
		"orch never shares the host's namespaces":                             {"hostnetwork", "network_mode", "networkmode", "hostpid", "pid", "hostipc", "ipc", "userns_mode", "usernsmode", "uts"},
		"orch does not change kernel settings for containers":                 {"sysctls", "ulimits", "seccompprofile", "apparmorprofile"},
	} {
		for _, k := range keys {
			m[k] = why
		}
	}
	return m
}()

type shapeWalker struct {
	dec *json.Decoder
	ps  *problems
}

var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()

// value checks the next JSON value against type t at path p. Errors are
// only for malformed JSON; shape problems go to w.ps.
func (w *shapeWalker) value(t reflect.Type, p string) error {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		var raw json.RawMessage
		if err := w.dec.Decode(&raw); err != nil {
			return err
		}
		if err := json.Unmarshal(raw, reflect.New(t).Interface()); err != nil {
			w.ps.add(p, "%v", err)
		}
		return nil
	}
	switch t.Kind() {
	case reflect.Struct:
		fields := map[string]reflect.Type{}
		for f := range t.Fields() {
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if f.IsExported() && name != "" && name != "-" {
				fields[name] = f.Type
			}
		}
		return w.object(p, field, func(k string) error {
			ft, ok := fields[k]
			if ok {
				return w.value(ft, field(p, k))
			}
			hint := ""
			for name := range fields {
				if strings.EqualFold(name, k) {
					hint = " (field names are case-sensitive: did you mean " + strconv.Quote(name) + "?)"
				}
			}
			if why, ok := refusedFields[strings.ToLower(k)]; ok {
				hint = " (" + why + ")"
			}
			w.ps.add(p, "unknown field %q%s", k, hint)
			return w.skip()
		})
	case reflect.Map:
		return w.object(p, key, func(k string) error { return w.value(t.Elem(), key(p, k)) })
	case reflect.Slice:
		ok, err := w.open('[', p, "a list")
		if !ok || err != nil {
			return err
		}
		for i := 0; w.dec.More(); i++ {
			if err := w.value(t.Elem(), index(p, i)); err != nil {
				return err
			}
		}
		_, err = w.dec.Token() // ]
		return err
	}
	var raw json.RawMessage
	if err := w.dec.Decode(&raw); err != nil {
		return err
	}
	kind := jsonKind(raw)
	if kind == "null" {
		return nil
	}
	switch t.Kind() {
	case reflect.String:
		if kind != "a string" {
			w.ps.add(p, "must be a string, not %s (quote it)", kind)
		}
	case reflect.Bool:
		if kind != "a boolean" {
			w.ps.add(p, "must be true or false, not %s", kind)
		}
	case reflect.Int, reflect.Int64, reflect.Int32:
		if kind != "a number" {
			w.ps.add(p, "must be an integer, not %s", kind)
		} else if _, err := strconv.ParseInt(string(raw), 10, t.Bits()); err != nil {
			w.ps.add(p, "must be an integer (got %s)", raw)
		}
	default:
		w.ps.add(p, "cannot hold a value (a %s field): this is a bug", t) // a new field type needs a case
		return nil
	}
	return nil
}

// object checks the next value is an object and calls each(key) with the
// decoder before each member's value. Repeated keys are reported at
// member(p, key).
func (w *shapeWalker) object(p string, member func(p, k string) string, each func(k string) error) error {
	ok, err := w.open('{', p, "a mapping")
	if !ok || err != nil {
		return err
	}
	seen := map[string]bool{}
	for w.dec.More() {
		tok, err := w.dec.Token()
		if err != nil {
			return err
		}
		k, _ := tok.(string)
		if seen[k] {
			w.ps.add(member(p, k), "given twice")
		}
		seen[k] = true
		if err := each(k); err != nil {
			return err
		}
	}
	_, err = w.dec.Token() // }
	return err
}

// open reads the next token, reporting whether it is the delimiter want;
// null is fine (nothing to check) and anything else is a problem.
func (w *shapeWalker) open(want json.Delim, p, what string) (bool, error) {
	tok, err := w.dec.Token()
	if err != nil {
		return false, err
	}
	switch tok := tok.(type) {
	case nil:
		return false, nil
	case json.Delim:
		if tok == want {
			return true, nil
		}
		w.ps.add(p, "must be %s, not %s", what, jsonKind([]byte{byte(tok)}))
		return false, w.skipRest(1)
	case string:
		w.ps.add(p, "must be %s, not a string", what)
	case bool:
		w.ps.add(p, "must be %s, not a boolean", what)
	default:
		w.ps.add(p, "must be %s, not a number", what)
	}
	return false, nil
}

// skip consumes the next value.
func (w *shapeWalker) skip() error {
	var raw json.RawMessage
	return w.dec.Decode(&raw)
}

// skipRest consumes tokens until depth open delimiters are closed.
func (w *shapeWalker) skipRest(depth int) error {
	for depth > 0 {
		tok, err := w.dec.Token()
		if err != nil {
			return err
		}
		if d, ok := tok.(json.Delim); ok {
			if d == '{' || d == '[' {
				depth++
			} else {
				depth--
			}
		}
	}
	return nil
}

package spec

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration written as a Go duration string ("10s",
// "1m30s") in JSON and YAML. Bare numbers are rejected: "10" has no unit.
type Duration time.Duration

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// String formats d like time.Duration does.
func (d Duration) String() string { return time.Duration(d).String() }

// ParseDuration parses a Go duration string with a unit, such as "10s".
// Negative durations parse; [Service.Validate] rejects them where they are
// invalid.
func ParseDuration(s string) (Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration like \"10s\" or \"1m30s\"", s)
	}
	return Duration(d), nil
}

// MarshalJSON writes d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(d.String())
}

// UnmarshalJSON reads a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("must be a duration string like \"10s\", not %s", jsonKind(b))
	}
	v, err := ParseDuration(s)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// ByteSize is a number of bytes, written in JSON and YAML as an integer
// or as a decimal number with a Kubernetes suffix: binary Ki, Mi, Gi, Ti,
// Pi, Ei (powers of 1024) or decimal k, M, G, T, P, E (powers of 1000).
// "512Mi" and "1.5Gi" are fine; Docker's "512m" is rejected as ambiguous.
// It marshals with the largest suffix that divides it exactly ("1Gi",
// "512M"), so equal sizes encode equally.
type ByteSize int64

// byteUnits are the suffixes of ByteSize, largest first.
var byteUnits = []struct {
	suffix string
	n      int64
}{
	{"Ei", 1 << 60}, {"E", 1e18},
	{"Pi", 1 << 50}, {"P", 1e15},
	{"Ti", 1 << 40}, {"T", 1e12},
	{"Gi", 1 << 30}, {"G", 1e9},
	{"Mi", 1 << 20}, {"M", 1e6},
	{"Ki", 1 << 10}, {"k", 1e3},
}

var quantityRE = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?)([A-Za-z]*)$`)

// ParseByteSize parses "268435456", "256Mi", "1Gi", "512M", "1.5Gi".
func ParseByteSize(s string) (ByteSize, error) {
	m := quantityRE.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("%q is not a size like \"256Mi\", \"1Gi\", \"512M\" or a number of bytes", s)
	}
	unit := int64(1)
	if m[2] != "" {
		unit = 0
		for _, u := range byteUnits {
			if u.suffix == m[2] {
				unit = u.n
			}
		}
	}
	if unit == 0 {
		switch strings.ToLower(m[2]) {
		case "m", "g", "t", "p", "e":
			up := strings.ToUpper(m[2])
			return 0, fmt.Errorf("%q is ambiguous: write %s%si for powers of 1024 (Docker's %s) or %s%s for powers of 1000", s, m[1], up, m[2], m[1], up)
		}
		return 0, fmt.Errorf("%q has an unknown suffix %q: use Ki, Mi, Gi, Ti, Pi, Ei (powers of 1024) or k, M, G, T, P, E (powers of 1000)", s, m[2])
	}
	r, ok := new(big.Rat).SetString(m[1])
	if !ok {
		return 0, fmt.Errorf("%q is not a number", s) // unreachable: quantityRE
	}
	r.Mul(r, new(big.Rat).SetInt64(unit))
	if !r.IsInt() {
		return 0, fmt.Errorf("%q is not a whole number of bytes", s)
	}
	if !r.Num().IsInt64() {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return ByteSize(r.Num().Int64()), nil
}

// String formats b with the largest suffix that divides it exactly.
func (b ByteSize) String() string {
	if b != 0 {
		for _, u := range byteUnits {
			if int64(b)%u.n == 0 {
				return strconv.FormatInt(int64(b)/u.n, 10) + u.suffix
			}
		}
	}
	return strconv.FormatInt(int64(b), 10)
}

// MarshalJSON writes b as a string such as "256Mi".
func (b ByteSize) MarshalJSON() ([]byte, error) {
	return json.Marshal(b.String())
}

// UnmarshalJSON reads a size string or a JSON number of bytes. Zero is
// rejected: leave the field out for no limit.
func (b *ByteSize) UnmarshalJSON(data []byte) error {
	s, err := quantityText(data)
	if err == errNull {
		return nil
	}
	if err != nil {
		return err
	}
	v, err := ParseByteSize(s)
	if err != nil {
		return err
	}
	if v == 0 {
		return errZeroLimit
	}
	*b = v
	return nil
}

// MilliCPU is CPU time in thousandths of a core, written in JSON and YAML
// as cores ("2", "0.5", or a number) or as millicores ("500m"). It
// marshals as whole cores when it can ("2"), else as millicores ("1500m").
type MilliCPU int64

var cpuRE = regexp.MustCompile(`^(?:([0-9]+(?:\.[0-9]+)?)|([0-9]+)m)$`)

// ParseCPU parses "2", "0.5" (cores) or "500m" (millicores).
func ParseCPU(s string) (MilliCPU, error) {
	m := cpuRE.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("%q is not a CPU amount like \"0.5\", \"500m\" or \"2\"", s)
	}
	num, scale := m[1], int64(1000)
	if num == "" {
		num, scale = m[2], 1
	}
	r, ok := new(big.Rat).SetString(num)
	if !ok {
		return 0, fmt.Errorf("%q is not a number", s) // unreachable: cpuRE
	}
	r.Mul(r, new(big.Rat).SetInt64(scale))
	if !r.IsInt() {
		return 0, fmt.Errorf("%q is finer than a thousandth of a core (1m)", s)
	}
	if !r.Num().IsInt64() {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return MilliCPU(r.Num().Int64()), nil
}

// String formats c as whole cores ("2") or millicores ("500m").
func (c MilliCPU) String() string {
	if c%1000 == 0 {
		return strconv.FormatInt(int64(c)/1000, 10)
	}
	return strconv.FormatInt(int64(c), 10) + "m"
}

// MarshalJSON writes c as a string such as "500m".
func (c MilliCPU) MarshalJSON() ([]byte, error) {
	return json.Marshal(c.String())
}

// UnmarshalJSON reads a CPU string or a JSON number of cores. Zero is
// rejected: leave the field out for no limit.
func (c *MilliCPU) UnmarshalJSON(data []byte) error {
	s, err := quantityText(data)
	if err == errNull {
		return nil
	}
	if err != nil {
		return err
	}
	v, err := ParseCPU(s)
	if err != nil {
		return err
	}
	if v == 0 {
		return errZeroLimit
	}
	*c = v
	return nil
}

// errNull tells UnmarshalJSON to leave the value alone, as encoding/json
// does for null.
var errNull = errors.New("null")

var errZeroLimit = errors.New("must be more than 0 (leave it out for no limit)")

// quantityText returns the text of a JSON string or number.
func quantityText(data []byte) (string, error) {
	if string(data) == "null" {
		return "", errNull
	}
	var s string
	if json.Unmarshal(data, &s) == nil {
		return s, nil
	}
	var n json.Number
	if json.Unmarshal(data, &n) == nil {
		return n.String(), nil
	}
	return "", fmt.Errorf("must be a string or a number, not %s", jsonKind(data))
}

// jsonKind names the kind of a JSON value for messages.
func jsonKind(b []byte) string {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		case '"':
			return "a string"
		case '{':
			return "an object"
		case '[':
			return "a list"
		case 't', 'f':
			return "a boolean"
		case 'n':
			return "null"
		default:
			return "a number"
		}
	}
	return "nothing"
}

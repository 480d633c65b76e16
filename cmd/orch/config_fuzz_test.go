package main

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// validConfig sets every key of the config file.
const validConfig = `{
	"name": "n1",
	"bind": "10.0.0.1:7946",
	"advertise": "10.0.0.1",
	"data_dir": "/var/lib/orch",
	"socket": "/run/orch/orch.sock",
	"labels": {"zone": "a", "disk": "ssd"},
	"token": "ORCH1-abc-def",
	"join": ["10.0.0.2", "10.0.0.3:7946"],
	"profile": "fast",
	"log_level": "debug",
	"log_format": "json"
}`

// deepNesting is a value nested deeper than encoding/json's limit (10000).
var deepNesting = `{"join":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}`

func TestParseFileConfig(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr string // empty: must parse
	}{
		{name: "Valid", in: validConfig},
		{name: "EmptyObject", in: `{}`},
		{name: "TrailingWhitespace", in: "{\"name\":\"n1\"}\n\t \n"},
		{name: "UnknownKey", in: `{"name":"n1","colour":"blue"}`, wantErr: `unknown field "colour"`},
		{name: "TrailingGarbage", in: `{"name":"n1"} x`, wantErr: "trailing data"},
		{name: "SecondObject", in: `{"name":"n1"}{}`, wantErr: "trailing data"},
		{name: "StrayClosingBrace", in: `{"name":"n1"}}`, wantErr: "trailing data"},
		{name: "StrayClosingBracket", in: `{"name":"n1"}]`, wantErr: "trailing data"},
		{name: "WrongType", in: `{"labels":["a=b"]}`, wantErr: "cannot unmarshal"},
		{name: "Array", in: `[]`, wantErr: "cannot unmarshal"},
		{name: "Truncated", in: `{"name":"n1"`, wantErr: "unexpected EOF"},
		{name: "DeepNesting", in: deepNesting, wantErr: "exceeded max depth"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fc, err := parseFileConfig([]byte(tt.in))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("parseFileConfig: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("parseFileConfig = %v, want an error containing %q", err, tt.wantErr)
			}
			if !reflect.DeepEqual(fc, fileConfig{}) {
				t.Errorf("parseFileConfig returned %+v with its error, want the zero fileConfig", fc)
			}
		})
	}

	fc, err := parseFileConfig([]byte(validConfig))
	if err != nil {
		t.Fatal(err)
	}
	if fc.Name == nil || *fc.Name != "n1" || fc.LogFormat == nil || *fc.LogFormat != "json" ||
		len(fc.Join) != 2 || fc.Labels["disk"] != "ssd" {
		t.Errorf("valid config decoded wrongly: %+v", fc)
	}
}

// FuzzParseFileConfig feeds parseFileConfig arbitrary bytes. It must never
// panic, and whatever it accepts must survive encoding and parsing again
// unchanged: the struct holds nothing JSON cannot represent.
func FuzzParseFileConfig(f *testing.F) {
	for _, seed := range []string{
		validConfig,
		`{}`,
		`null`,
		`{"name":"n1","colour":"blue"}`,
		`{"name":"n1"} x`,
		`{"name":"n1"}}`,
		`{"labels":{"a":"b","a":"c"},"join":[]}`,
		`{"NAME":"n1","name":null}`,
		"{\"name\":\"\xff\xfe\"}",
		deepNesting,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fc, err := parseFileConfig(b)
		if err != nil {
			return
		}
		enc, err := json.Marshal(fc)
		if err != nil {
			t.Fatalf("encode %+v: %v", fc, err)
		}
		again, err := parseFileConfig(enc)
		if err != nil {
			t.Fatalf("re-encoded config does not parse: %v\ninput: %q\nencoded: %s", err, b, enc)
		}
		if !reflect.DeepEqual(fc, again) {
			t.Fatalf("round trip changed the config\ninput: %q\nencoded: %s\n first %+v\nsecond %+v", b, enc, fc, again)
		}
	})
}

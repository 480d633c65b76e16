package spec

import (
	"encoding/json"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Duration
		wantErr string
	}{
		{"seconds", "10s", Duration(10 * time.Second), ""},
		{"compound", "1m30s", Duration(90 * time.Second), ""},
		{"millis", "500ms", Duration(500 * time.Millisecond), ""},
		{"zero", "0s", 0, ""},
		{"bare zero", "0", 0, ""},
		{"negative parses", "-5s", Duration(-5 * time.Second), ""},
		{"no unit", "10", 0, `"10" is not a duration like "10s" or "1m30s"`},
		{"empty", "", 0, `"" is not a duration like "10s" or "1m30s"`},
		{"days", "1d", 0, `"1d" is not a duration like "10s" or "1m30s"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseDuration(tt.in)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

func TestDuration_JSON(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Duration
		wantErr string
	}{
		{"string", `"1m30s"`, Duration(90 * time.Second), ""},
		{"null leaves it", `null`, Duration(7), ""},
		{"number", `10`, 0, `must be a duration string like "10s", not a number`},
		{"bool", `true`, 0, `must be a duration string like "10s", not a boolean`},
		{"bad string", `"ten seconds"`, 0, `"ten seconds" is not a duration like "10s" or "1m30s"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Duration(7)
			err := json.Unmarshal([]byte(tt.in), &d)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || d != tt.want {
				t.Fatalf("got %v, %v; want %v", d, err, tt.want)
			}
		})
	}
	for _, d := range []Duration{0, Duration(time.Millisecond), Duration(90 * time.Second), Duration(1<<63 - 1)} {
		b, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		var back Duration
		if err := json.Unmarshal(b, &back); err != nil || back != d {
			t.Errorf("%v → %s → %v, %v", d, b, back, err)
		}
	}
}

func TestParseByteSize(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    ByteSize
		str     string // the canonical form
		wantErr string
	}{
		{"bytes", "268435456", 256 << 20, "256Mi", ""},
		{"odd bytes", "1000001", 1000001, "1000001", ""},
		{"Mi", "256Mi", 256 << 20, "256Mi", ""},
		{"Gi", "1Gi", 1 << 30, "1Gi", ""},
		{"1024Mi is 1Gi", "1024Mi", 1 << 30, "1Gi", ""},
		{"M", "512M", 512e6, "512M", ""},
		{"k", "1k", 1000, "1k", ""},
		{"Ki", "1Ki", 1024, "1Ki", ""},
		{"fraction", "1.5Gi", 1536 << 20, "1536Mi", ""},
		{"fraction decimal", "0.5M", 500000, "500k", ""},
		{"T and Ti", "2Ti", 2 << 40, "2Ti", ""},
		{"largest", "9223372036854775807", 1<<63 - 1, "9223372036854775807", ""},
		{"zero parses", "0", 0, "0", ""},
		{"docker m", "512m", 0, "", `"512m" is ambiguous: write 512Mi for powers of 1024 (Docker's m) or 512M for powers of 1000`},
		{"docker g", "1g", 0, "", `"1g" is ambiguous: write 1Gi for powers of 1024 (Docker's g) or 1G for powers of 1000`},
		{"MB", "512MB", 0, "", `"512MB" has an unknown suffix "MB": use Ki, Mi, Gi, Ti, Pi, Ei (powers of 1024) or k, M, G, T, P, E (powers of 1000)`},
		{"K", "1K", 0, "", `"1K" has an unknown suffix "K": use Ki, Mi, Gi, Ti, Pi, Ei (powers of 1024) or k, M, G, T, P, E (powers of 1000)`},
		{"fractional bytes", "1.5", 0, "", `"1.5" is not a whole number of bytes`},
		{"too large", "8Ei", 0, "", `"8Ei" is too large`},
		{"negative", "-1Mi", 0, "", `"-1Mi" is not a size like "256Mi", "1Gi", "512M" or a number of bytes`},
		{"space", "1 Gi", 0, "", `"1 Gi" is not a size like "256Mi", "1Gi", "512M" or a number of bytes`},
		{"exponent", "1e9", 0, "", `"1e9" is not a size like "256Mi", "1Gi", "512M" or a number of bytes`},
		{"empty", "", 0, "", `"" is not a size like "256Mi", "1Gi", "512M" or a number of bytes`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseByteSize(tt.in)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %d, %v; want %d", got, err, tt.want)
			}
			if s := got.String(); s != tt.str {
				t.Errorf("String() = %q, want %q", s, tt.str)
			}
			if back, err := ParseByteSize(got.String()); err != nil || back != got {
				t.Errorf("%q does not parse back: %d, %v", got.String(), back, err)
			}
		})
	}
}

func TestParseCPU(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    MilliCPU
		str     string
		wantErr string
	}{
		{"half", "0.5", 500, "500m", ""},
		{"millis", "500m", 500, "500m", ""},
		{"cores", "2", 2000, "2", ""},
		{"cores and a half", "1.5", 1500, "1500m", ""},
		{"2000m is 2", "2000m", 2000, "2", ""},
		{"one milli", "0.001", 1, "1m", ""},
		{"zero parses", "0", 0, "0", ""},
		{"too fine", "0.0005", 0, "", `"0.0005" is finer than a thousandth of a core (1m)`},
		{"fractional millis", "0.5m", 0, "", `"0.5m" is not a CPU amount like "0.5", "500m" or "2"`},
		{"negative", "-1", 0, "", `"-1" is not a CPU amount like "0.5", "500m" or "2"`},
		{"unit", "2cores", 0, "", `"2cores" is not a CPU amount like "0.5", "500m" or "2"`},
		{"too large", "9223372036854775807", 0, "", `"9223372036854775807" is too large`},
		{"empty", "", 0, "", `"" is not a CPU amount like "0.5", "500m" or "2"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseCPU(tt.in)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %d, %v; want %d", got, err, tt.want)
			}
			if s := got.String(); s != tt.str {
				t.Errorf("String() = %q, want %q", s, tt.str)
			}
			if back, err := ParseCPU(got.String()); err != nil || back != got {
				t.Errorf("%q does not parse back: %d, %v", got.String(), back, err)
			}
		})
	}
}

func TestResources_JSON(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Resources
		wantErr string
	}{
		{"strings", `{"memory": "1Gi", "cpu": "500m"}`, Resources{Memory: 1 << 30, CPU: 500}, ""},
		{"numbers", `{"memory": 1048576, "cpu": 0.25}`, Resources{Memory: 1 << 20, CPU: 250}, ""},
		{"zero memory", `{"memory": 0}`, Resources{}, "must be more than 0 (leave it out for no limit)"},
		{"zero cpu", `{"cpu": "0m"}`, Resources{}, "must be more than 0 (leave it out for no limit)"},
		{"bool", `{"cpu": true}`, Resources{}, "must be a string or a number, not a boolean"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Resources
			err := json.Unmarshal([]byte(tt.in), &r)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || r != tt.want {
				t.Fatalf("got %+v, %v; want %+v", r, err, tt.want)
			}
		})
	}
	b, err := json.Marshal(Resources{Memory: 1536 << 20, CPU: 2000})
	if err != nil || string(b) != `{"memory":"1536Mi","cpu":"2"}` {
		t.Errorf("marshal: %s, %v", b, err)
	}
}

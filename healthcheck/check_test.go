package healthcheck

import (
	"net/netip"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestCheck_Validate(t *testing.T) {
	tests := []struct {
		name  string
		check Check
		want  []string // substrings of the error; none means valid
	}{
		{name: "http", check: Check{Kind: KindHTTP, Path: "/healthz?full=1", Port: 8080}},
		{name: "http default path", check: Check{Kind: KindHTTP, Port: 80}},
		{name: "tcp", check: Check{Kind: KindTCP, Port: 6379, Interval: time.Second, Timeout: time.Millisecond, Retries: 1}},
		{name: "exec", check: Check{Kind: KindExec, Command: []string{"/bin/true"}, StartPeriod: time.Minute, InitialDelay: time.Second}},
		{name: "no kind", check: Check{}, want: []string{"kind is missing"}},
		{name: "bad kind", check: Check{Kind: "grpc", Port: 1}, want: []string{`unknown kind "grpc"`}},
		{name: "http relative path", check: Check{Kind: KindHTTP, Path: "healthz", Port: 80}, want: []string{"must start with '/'"}},
		{name: "http bad escape", check: Check{Kind: KindHTTP, Path: "/%zz", Port: 80}, want: []string{`path "/%zz"`}},
		{name: "http no port", check: Check{Kind: KindHTTP}, want: []string{"port 0: must be 1-65535"}},
		{name: "tcp port too big", check: Check{Kind: KindTCP, Port: 65536}, want: []string{"port 65536"}},
		{name: "tcp with path", check: Check{Kind: KindTCP, Port: 1, Path: "/"}, want: []string{"path is only for http"}},
		{name: "http with command", check: Check{Kind: KindHTTP, Port: 1, Command: []string{"x"}}, want: []string{"command is only for exec"}},
		{name: "exec no command", check: Check{Kind: KindExec}, want: []string{"command is missing"}},
		{name: "exec empty argv0", check: Check{Kind: KindExec, Command: []string{""}}, want: []string{"command is missing"}},
		{name: "exec with port", check: Check{Kind: KindExec, Command: []string{"x"}, Port: 80}, want: []string{"port is only for http and tcp"}},
		{
			name:  "every problem at once",
			check: Check{Kind: KindTCP, Interval: time.Microsecond, Timeout: -1, StartPeriod: -time.Second, InitialDelay: -1, Retries: -1},
			want: []string{
				"port 0", "interval 1µs: must be zero (the default) or at least 1ms", "timeout -1ns",
				"start period -1s: must be zero (the default) or at least 0s", "initial delay -1ns", "retries -1",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.check.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want an error with %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestTarget_Validate(t *testing.T) {
	tcp := Check{Kind: KindTCP, Port: 80}
	exec := Check{Kind: KindExec, Command: []string{"x"}}
	tests := []struct {
		name   string
		target Target
		exec   bool
		want   string
	}{
		{name: "tcp", target: Target{ID: "a", Addr: localhost, Check: tcp}},
		{name: "exec", target: Target{ID: "a", Check: exec}, exec: true},
		{name: "no id", target: Target{Addr: localhost, Check: tcp}, want: `target "": id is missing`},
		{name: "no addr", target: Target{ID: "a", Check: tcp}, want: `target "a": tcp check needs an address`},
		{name: "no exec func", target: Target{ID: "a", Check: exec}, want: "no Config.Exec"},
		{name: "bad check", target: Target{ID: "a", Addr: localhost, Check: Check{Kind: KindTCP}}, want: `target "a": port 0`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.target.validate(tt.exec)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("validate() = %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("validate() = %v, want an error with %q", err, tt.want)
			}
		})
	}
}

func TestCheck_WithDefaults(t *testing.T) {
	got := Check{Kind: KindHTTP, Port: 80}.withDefaults()
	want := Check{Kind: KindHTTP, Port: 80, Path: "/", Interval: DefaultInterval, Timeout: DefaultTimeout,
		StartInterval: DefaultInterval, InitialDelay: DefaultInterval, Retries: DefaultRetries}
	if !got.equal(want) {
		t.Errorf("withDefaults() = %+v, want %+v", got, want)
	}
	// A start interval counts only with a start period, and is then where
	// the first probe's delay comes from.
	if got := (Check{Kind: KindTCP, Port: 80, StartInterval: time.Second}).withDefaults(); got.StartInterval != DefaultInterval || got.InitialDelay != DefaultInterval {
		t.Errorf("start interval without a start period: %+v", got)
	}
	if got := (Check{Kind: KindTCP, Port: 80, StartPeriod: time.Minute, StartInterval: time.Second}).withDefaults(); got.StartInterval != time.Second || got.InitialDelay != time.Second {
		t.Errorf("start interval with a start period: %+v", got)
	}
	got = Check{Kind: KindTCP, Port: 80, Interval: time.Second}.withDefaults()
	if got.InitialDelay != time.Second {
		t.Errorf("InitialDelay = %v, want the interval (1s)", got.InitialDelay)
	}
}

func TestProber_URL(t *testing.T) {
	tests := []struct {
		addr, path, want string
	}{
		{"127.0.0.1", "", "http://127.0.0.1:8080/"},
		{"10.0.0.7", "/healthz?full=1", "http://10.0.0.7:8080/healthz?full=1"},
		{"fd00::7", "/h", "http://[fd00::7]:8080/h"},
		{"fe80::1%eth0", "/h", "http://[fe80::1%25eth0]:8080/h"},
	}
	for _, tt := range tests {
		target := Target{ID: "a", Addr: netip.MustParseAddr(tt.addr), Check: Check{Kind: KindHTTP, Port: 8080, Path: tt.path}}
		if p := newProber(target, time.Time{}, time.Time{}); p.url != tt.want {
			t.Errorf("url for %s %q = %q, want %q", tt.addr, tt.path, p.url, tt.want)
		}
	}
}

func TestClip(t *testing.T) {
	long := strings.Repeat("x", MaxOutput-1) + "é" // é is 2 bytes: cut in half
	tests := []struct {
		name, in, want string
	}{
		{"short", "hello", "hello"},
		{"exact", strings.Repeat("x", MaxOutput), strings.Repeat("x", MaxOutput)},
		{"cut at rune boundary", long, strings.Repeat("x", MaxOutput-1)},
		{"invalid utf-8", "a\xffb", "a\uFFFDb"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := clip(tt.in)
			if got != tt.want {
				t.Errorf("clip() = %q (len %d), want %q (len %d)", got, len(got), tt.want, len(tt.want))
			}
			if len(got) > MaxOutput || !utf8.ValidString(got) {
				t.Errorf("clip() returned %d bytes, valid %v", len(got), utf8.ValidString(got))
			}
		})
	}
}

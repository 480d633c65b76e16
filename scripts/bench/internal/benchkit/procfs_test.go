package benchkit

import (
	"strings"
	"testing"
	"time"
)

func TestParseStatCPU(t *testing.T) {
	tests := []struct {
		name    string
		stat    string
		want    time.Duration
		wantErr bool
	}{
		{
			name: "plain",
			stat: "4242 (orch) S 1 4242 4242 0 -1 4194560 1520 0 0 0 37 12 0 0 20 0 9 0 5000 1300000000 4500 18446744073709551615",
			want: 490 * time.Millisecond,
		},
		{
			name: "command with spaces and parentheses",
			stat: "7 (a) b (c)) R 1 7 7 0 -1 0 0 0 0 0 100 200 0 0 20 0 1 0 1 0 0",
			want: 3 * time.Second,
		},
		{
			name: "nested parentheses, trailing newline",
			stat: "1234 (dns (serve)) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 130 0 0 20 0 9 0 100 0 0\n",
			want: 3800 * time.Millisecond,
		},
		{name: "no command", stat: "7 a R 1", wantErr: true},
		{name: "short", stat: "7 (a) R 1 2 3", wantErr: true},
		{name: "garbage", stat: "garbage", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStatCPU([]byte(tt.stat))
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("parseStatCPU() = %v, %v; want %v, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestParseStatus(t *testing.T) {
	status := "Name:\torch\nVmPeak:\t 1300000 kB\nVmHWM:\t   20480 kB\nVmRSS:\t   18204 kB\nThreads:\t9\n"
	if got, err := parseStatus([]byte(status)); err != nil || got != (Mem{RSS: 18204, HWM: 20480}) {
		t.Errorf("parseStatus() = %+v, %v; want RSS 18204, HWM 20480", got, err)
	}
	if _, err := parseStatus([]byte("Name:\tzombie\n")); err == nil {
		t.Error("parseStatus() without VmRSS: want an error")
	}
	if _, err := parseStatus([]byte("VmRSS:\t12 MB\n")); err == nil {
		t.Error("parseStatus() with a unit other than kB: want an error")
	}
}

func TestParseHostCPU(t *testing.T) {
	// Guest time (the last two fields) is already in user and nice.
	stat := "cpu  100 5 50 800 20 3 2 10 7 1\ncpu0 50 2 25 400 10 1 1 5 0 0\n"
	got, err := parseHostCPU([]byte(stat))
	if err != nil {
		t.Fatal(err)
	}
	if got.Busy != 170 || got.Total != 990 {
		t.Errorf("parseHostCPU() = busy %d total %d, want 170 990", got.Busy, got.Total)
	}
	if _, err := parseHostCPU([]byte("intr 1 2 3\n")); err == nil {
		t.Error("parseHostCPU() of a line other than cpu: want an error")
	}
	t0 := time.Unix(0, 0)
	a := HostCPU{At: t0, Busy: 100, Total: 1000}
	b := HostCPU{At: t0.Add(time.Second), Busy: 250, Total: 1600}
	if p := a.BusyPct(b); p != 25 {
		t.Errorf("BusyPct() = %v, want 25", p)
	}
	if c := a.BusyCores(b); c != 1.5 {
		t.Errorf("BusyCores() = %v, want 1.5", c)
	}
	if p := a.BusyPct(a); p == p { // NaN is the only value not equal to itself
		t.Errorf("BusyPct() over no time = %v, want NaN", p)
	}
}

func TestShimAddress(t *testing.T) {
	for argv, want := range map[string]string{
		"/usr/bin/containerd-shim-runc-v2 -namespace orch -id web.0.x -address /tmp/orch-bench-heal/run/h1/ctd/containerd.sock": "/tmp/orch-bench-heal/run/h1/ctd/containerd.sock",
		"/usr/bin/containerd-shim-runc-v2 -namespace orch -address=unix:///a/b.sock -id x":                                      "unix:///a/b.sock",
		"/usr/bin/containerd --config /x/config.toml":                                                                           "",
		"": "",
	} {
		if got := ShimAddress(strings.Fields(argv)); got != want {
			t.Errorf("ShimAddress(%q) = %q, want %q", argv, got, want)
		}
	}
}

func TestGoTool(t *testing.T) {
	for argv, want := range map[string]bool{
		"go build -o /tmp/x ./cmd/orch":                          true,
		"go test -race ./...":                                    true,
		"go env GOPATH":                                          false,
		"/usr/local/go/pkg/tool/linux_amd64/compile -o x":        true,
		"/usr/local/go/pkg/tool/linux_amd64/link -o x":           true,
		"/usr/bin/compile":                                       false,
		"/tmp/orch-bench-heal-bin/orch agent --name h1":          false,
		"/root/go/bin/gopls":                                     false,
		"/usr/local/go/pkg/tool/linux_amd64/vet -unusedresult x": true,
		"": false,
	} {
		if got := GoTool(strings.Fields(argv)); got != want {
			t.Errorf("GoTool(%q) = %v, want %v", argv, got, want)
		}
	}
}

func TestUnescapeMountinfo(t *testing.T) {
	if got := unescapeMountinfo(`/tmp/a\040b\134c\0`); got != `/tmp/a b\c\0` {
		t.Errorf("unescapeMountinfo() = %q", got)
	}
}

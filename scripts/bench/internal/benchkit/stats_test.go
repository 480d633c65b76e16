package benchkit

import (
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestStats(t *testing.T) {
	inf := math.Inf(1)
	xs := []float64{5, 1, 4, 2, 3}
	if Median(xs) != 3 || Quantile(xs, 0.5) != 3 || Quantile(xs, 0.9) != 5 || Mean(xs) != 3 || Max(xs) != 5 {
		t.Errorf("median %v p50 %v p90 %v mean %v max %v", Median(xs), Quantile(xs, 0.5), Quantile(xs, 0.9), Mean(xs), Max(xs))
	}
	if !slices.Equal(xs, []float64{5, 1, 4, 2, 3}) {
		t.Errorf("the statistics sorted their argument: %v", xs)
	}
	if got := Median([]float64{4, 1, 3, 2}); got != 2.5 {
		t.Errorf("median even = %v, want 2.5", got)
	}
	if got := Median([]float64{1, inf, inf}); !math.IsInf(got, 1) {
		t.Errorf("median with timeouts = %v, want +Inf", got)
	}
	if got := Max([]float64{1, inf}); !math.IsInf(got, 1) {
		t.Errorf("max with a timeout = %v, want +Inf", got)
	}
	for name, got := range map[string]float64{"median": Median(nil), "quantile": Quantile(nil, 0.5), "mean": Mean(nil), "max": Max(nil)} {
		if !math.IsNaN(got) {
			t.Errorf("%s(nil) = %v, want NaN", name, got)
		}
	}
	m := map[int]time.Duration{1: 1500 * time.Millisecond, 3: 2 * time.Second}
	if got := LastMs(m, 2); got != 2000 {
		t.Errorf("LastMs() = %v, want 2000", got)
	}
	if got := LastMs(m, 3); !math.IsInf(got, 1) {
		t.Errorf("LastMs() with a survivor missing = %v, want +Inf", got)
	}
	if got := FirstMs(m); got != 1500 {
		t.Errorf("FirstMs() = %v, want 1500", got)
	}
	if got := FirstMs(map[string]time.Duration{}); !math.IsInf(got, 1) {
		t.Errorf("FirstMs() of none = %v, want +Inf", got)
	}
}

func TestPercentile(t *testing.T) {
	var xs []time.Duration
	for i := 1; i <= 1000; i++ {
		xs = append(xs, time.Duration(i))
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{0.5, 500}, {0.99, 990}, {0.999, 999}, {1, 1000}, {0, 1}, {0.07, 70}} {
		if got := Percentile(xs, c.p); got != c.want {
			t.Errorf("Percentile(%v) = %v, want %v", c.p, got, c.want)
		}
	}
	// 0.07·100 is 7.000000000000001 in floating point: still the 7th.
	var hundred []float64
	for i := 100; i >= 1; i-- {
		hundred = append(hundred, float64(i))
	}
	if got := Quantile(hundred, 0.07); got != 7 {
		t.Errorf("Quantile(1..100, 0.07) = %v, want 7", got)
	}
	if Percentile([]time.Duration(nil), 0.5) != 0 {
		t.Error("Percentile of nothing: want the zero value")
	}
}

func TestFormat(t *testing.T) {
	for v, want := range map[float64]string{1234.56: "1235", math.Inf(1): ">timeout", math.NaN(): "-"} {
		if got := FormatMs(v); got != want {
			t.Errorf("FormatMs(%v) = %q, want %q", v, got, want)
		}
	}
	if got := CSVNum(1.25, 1); got != "1.2" {
		t.Errorf("CSVNum(1.25, 1) = %q", got)
	}
	if CSVNum(math.NaN(), 2) != "" || CSVNum(math.Inf(1), 2) != "" {
		t.Error("CSVNum of no value: want empty")
	}
}

func TestParseInts(t *testing.T) {
	got, err := ParseInts("--sizes", " 5,20, ,5,50", 2, 250)
	if err != nil || !slices.Equal(got, []int{5, 20, 50}) {
		t.Errorf("ParseInts() = %v, %v; want [5 20 50]", got, err)
	}
	if got, err := ParseInts("--sizes", "", 2, 250); err != nil || len(got) != 0 {
		t.Errorf("ParseInts(\"\") = %v, %v; want none", got, err)
	}
	for _, bad := range []string{"5,1", "5,x", "251"} {
		if _, err := ParseInts("--sizes", bad, 2, 250); err == nil {
			t.Errorf("ParseInts(%q): want an error", bad)
		}
	}
	if p, err := ParseLabSubnet("10.50.3.7/24"); err != nil || p != netip.MustParsePrefix("10.50.3.0/24") {
		t.Errorf("ParseLabSubnet() = %v, %v", p, err)
	}
	for _, bad := range []string{"10.50.0.0/25", "fd00::/64", "x"} {
		if _, err := ParseLabSubnet(bad); err == nil {
			t.Errorf("ParseLabSubnet(%q): want an error", bad)
		}
	}
}

func TestAppendCSV(t *testing.T) {
	path := filepath.Join(t.TempDir(), "results", "x.csv")
	for range 2 {
		if err := AppendCSVRows(path, [][]string{{"time", "source"}, {"t", "working tree at abc, with changes"}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := AppendCSV(path, "time,source\nu,\"v\"\n"); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := "time,source\nt,\"working tree at abc, with changes\"\nt,\"working tree at abc, with changes\"\nu,\"v\"\n"
	if string(b) != want {
		t.Errorf("file =\n%s\nwant\n%s", b, want)
	}
}

func TestAgentArgv(t *testing.T) {
	a := Agent{Bin: "orch", Name: "h2", Addr: netip.MustParseAddr("10.47.0.2"), DataDir: "/d", Socket: "/d/s", Profile: "fast",
		Extra: []string{"--containerd", "none"}}
	want := []string{"orch", "agent", "--name", "h2", "--bind", "10.47.0.2:7946", "--data-dir", "/d", "--socket", "/d/s", "--profile", "fast",
		"--containerd", "none"}
	if got := a.Argv(); !slices.Equal(got, want) {
		t.Errorf("Argv() = %q", got)
	}
	a.Join, a.Token = netip.MustParseAddr("10.47.0.1"), "tok"
	if got := a.Argv(); !slices.Equal(got, append(want, "--token", "tok", "--join", "10.47.0.1")) {
		t.Errorf("Argv() joining = %q", got)
	}
}

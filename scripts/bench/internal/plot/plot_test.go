package main

import (
	"errors"
	"image/png"
	"os"
	"path/filepath"
	"testing"
)

// TestCharts draws every chart from the fixtures in testdata (columns in
// another order than the benchmarks write them, appended older runs,
// rows without a result) and checks that each is an 800×500 PNG with
// something drawn on it.
func TestCharts(t *testing.T) {
	for _, c := range charts {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), c.name+".png")
			if err := drawChart(c, "testdata", path); err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			img, err := png.Decode(f)
			if err != nil {
				t.Fatal(err)
			}
			if b := img.Bounds(); b.Dx() != widthPx || b.Dy() != heightPx {
				t.Fatalf("size %dx%d, want %dx%d", b.Dx(), b.Dy(), widthPx, heightPx)
			}
			dark := 0
			for y := 0; y < heightPx; y += 2 {
				for x := 0; x < widthPx; x += 2 {
					if r, g, b, _ := img.At(x, y).RGBA(); r+g+b < 3*0x8000 {
						dark++
					}
				}
			}
			if dark < 500 {
				t.Fatalf("only %d dark pixels sampled: nothing drawn?", dark)
			}
		})
	}
}

// TestSkip: a missing CSV, or one with a header and no rows, skips the
// chart (errSkip) and writes no file.
func TestSkip(t *testing.T) {
	empty := t.TempDir()
	headerOnly := t.TempDir()
	for _, name := range []string{"heal-summary.csv", "dns-summary.csv", "overlay-summary.csv", "membership-summary.csv"} {
		if err := os.WriteFile(filepath.Join(headerOnly, name), []byte("time,orch_source,metric,value\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, dir := range []string{empty, headerOnly} {
		for _, c := range charts {
			path := filepath.Join(t.TempDir(), c.name+".png")
			if err := drawChart(c, dir, path); !errors.Is(err, errSkip) {
				t.Errorf("%s from %s: err %v, want errSkip", c.name, dir, err)
			}
			if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s: file written anyway (%v)", c.name, err)
			}
		}
	}
}

// TestByName: fields are found by header name, and the newest run wins.
func TestByName(t *testing.T) {
	tb, err := readTable("testdata", "dns-summary.csv")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, r := range tb.latestRun() {
		v, _ := r.num("value")
		got[r.str("metric")] = v
	}
	if got["orch_qps_median"] != 120000 || got["dnsmasq_qps_median"] != 100000 {
		t.Errorf("newest run: %v", got)
	}
}

package main

import (
	"math"
	"net/netip"
	"testing"
	"time"
)

func TestT1Of(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	dead := netip.MustParseAddr("10.213.1.2")
	a, b, c := netip.MustParseAddr("10.213.2.2"), netip.MustParseAddr("10.213.3.2"), netip.MustParseAddr("10.213.4.2")
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	for _, tc := range []struct {
		name    string
		answers []answer
		t1      float64
		flaps   int
	}{
		{"no answers", nil, math.NaN(), 0},
		{"never leaves", []answer{{at(20), []netip.Addr{dead, a, b}}, {at(40), []netip.Addr{dead, a, b}}}, math.NaN(), 0},
		{"leaves", []answer{{at(20), []netip.Addr{dead, a, b}}, {at(40), []netip.Addr{a, b}}, {at(60), []netip.Addr{a, b, c}}}, 40, 0},
		{"empty answer counts", []answer{{at(20), []netip.Addr{dead}}, {at(40), nil}}, 40, 0},
		{"comes back once", []answer{{at(20), []netip.Addr{dead, a}}, {at(40), []netip.Addr{a}}, {at(60), []netip.Addr{dead, a}}, {at(80), []netip.Addr{a, b}}}, 80, 1},
		{"gone from the start", []answer{{at(20), []netip.Addr{a, b}}}, 20, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t1, flaps := t1Of(tc.answers, dead, t0)
			if flaps != tc.flaps || !(t1 == tc.t1 || math.IsNaN(t1) && math.IsNaN(tc.t1)) {
				t.Errorf("t1Of = %v, %d flaps; want %v, %d", t1, flaps, tc.t1, tc.flaps)
			}
		})
	}
}

func TestStatOf(t *testing.T) {
	s := statOf([]float64{3, 1, math.NaN(), 2})
	if s.median != 2.5 || !math.IsInf(s.max, 1) || s.n != 4 {
		t.Errorf("statOf = %+v, want median 2.5, max +Inf (a repetition that never healed), n 4", s)
	}
	if s := statOf([]float64{5, 1, 3}); s.median != 3 || s.max != 5 {
		t.Errorf("statOf odd = %+v", s)
	}
	if s := statOf(nil); !math.IsNaN(s.median) || !math.IsNaN(s.max) {
		t.Errorf("statOf(nil) = %+v", s)
	}
}

func TestVerdict(t *testing.T) {
	for _, tc := range []struct {
		profile     string
		median, max float64
		want        string
	}{
		{"fast", 3000, 3900, "meets (max)"},
		{"fast", 3000, 4100, "median meets, max MISSES"},
		{"lan", 10500, 11000, "MISSES"},
		{"lan", 9000, math.Inf(1), "median meets, max MISSES"},
		{"other", 1, 1, "–"},
	} {
		if got := verdict(tc.profile, stat{median: tc.median, max: tc.max}); got != tc.want {
			t.Errorf("verdict(%s, %v, %v) = %q, want %q", tc.profile, tc.median, tc.max, got, tc.want)
		}
	}
}

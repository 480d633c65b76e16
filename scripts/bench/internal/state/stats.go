package main

import (
	"math"
	"slices"
	"strconv"
	"time"
)

// lastMs is the time by which every one of want agents had an entry in m,
// in ms; +Inf if some never did.
func lastMs(m map[string]time.Duration, want int) float64 {
	if len(m) < want || want == 0 {
		return math.Inf(1)
	}
	var worst time.Duration
	for _, d := range m {
		worst = max(worst, d)
	}
	return ms(worst)
}

// firstMs is the earliest entry of m in ms; +Inf if m is empty.
func firstMs(m map[string]time.Duration) float64 {
	best := math.Inf(1)
	for _, d := range m {
		best = min(best, ms(d))
	}
	return best
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// median of xs (the mean of the middle two for an even count); +Inf
// values sort last. NaN for no values.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	m := len(s) / 2
	if len(s)%2 == 1 {
		return s[m]
	}
	return (s[m-1] + s[m]) / 2
}

// quantile of xs by the nearest-rank method; NaN for no values.
func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

// maximum of xs; NaN for no values.
func maximum(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	return slices.Max(xs)
}

// mean of xs; NaN for no values.
func mean(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	var sum float64
	for _, x := range xs {
		sum += x
	}
	return sum / float64(len(xs))
}

// fmtMs prints a time in whole ms; +Inf as ">timeout", NaN as "-".
func fmtMs(v float64) string {
	switch {
	case math.IsNaN(v):
		return "-"
	case math.IsInf(v, 1):
		return ">timeout"
	}
	return strconv.FormatFloat(v, 'f', 0, 64)
}

// fmtS prints a time given in ms as seconds with two decimals.
func fmtS(v float64) string {
	switch {
	case math.IsNaN(v):
		return "-"
	case math.IsInf(v, 1):
		return ">timeout"
	}
	return strconv.FormatFloat(v/1000, 'f', 2, 64)
}

// csvMs prints a time in ms with one decimal; empty for no value.
func csvMs(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return ""
	}
	return strconv.FormatFloat(v, 'f', 1, 64)
}

// csvFloat prints v with two decimals; empty for NaN.
func csvFloat(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return ""
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

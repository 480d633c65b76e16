package benchkit

import (
	"math"
	"slices"
	"strconv"
	"time"
)

// Median is the middle value of xs, or the mean of the two middle values
// for an even count; +Inf values (a timeout) sort last. NaN for no values.
func Median(xs []float64) float64 {
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

// Quantile is the q-quantile of xs (0 ≤ q ≤ 1) by the nearest-rank
// method; NaN for no values.
func Quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return Percentile(s, q)
}

// Percentile is the q-quantile (0 ≤ q ≤ 1) of values already sorted in
// ascending order, by the nearest-rank method: the smallest value with
// at least q of the values at or below it. It is T's zero value for no
// values.
func Percentile[T any](sorted []T, q float64) T {
	if len(sorted) == 0 {
		var zero T
		return zero
	}
	// The rank is ceil(q·n), with a little slack so that float error in
	// q·n (0.07·100 = 7.000…01) does not cost a rank.
	k := int(q*float64(len(sorted))+0.999999) - 1
	return sorted[min(max(k, 0), len(sorted)-1)]
}

// Mean of xs; NaN for no values.
func Mean(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	var sum float64
	for _, x := range xs {
		sum += x
	}
	return sum / float64(len(xs))
}

// Max of xs; NaN for no values.
func Max(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	return slices.Max(xs)
}

// Ms is d in milliseconds.
func Ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// MiB is kib KiB in MiB.
func MiB(kib int64) float64 { return float64(kib) / 1024 }

// FormatMs prints a time in whole ms for a table: +Inf (never, within
// the timeout) as ">timeout", NaN (not measured) as "-".
func FormatMs(v float64) string {
	switch {
	case math.IsNaN(v):
		return "-"
	case math.IsInf(v, 1):
		return ">timeout"
	}
	return strconv.FormatFloat(v, 'f', 0, 64)
}

// CSVNum prints v with prec decimals for a CSV cell; empty for NaN and
// infinities, which mean no value.
func CSVNum(v float64, prec int) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return ""
	}
	return strconv.FormatFloat(v, 'f', prec, 64)
}

// LastMs is the time by which every one of want agents had an entry in
// m, in ms: its largest entry; +Inf if fewer than want have one (some
// never got there within the timeout).
func LastMs[K comparable](m map[K]time.Duration, want int) float64 {
	if len(m) < want || want == 0 {
		return math.Inf(1)
	}
	var worst time.Duration
	for _, d := range m {
		worst = max(worst, d)
	}
	return Ms(worst)
}

// FirstMs is the smallest entry of m in ms; +Inf if m is empty.
func FirstMs[K comparable](m map[K]time.Duration) float64 {
	best := math.Inf(1)
	for _, d := range m {
		best = min(best, Ms(d))
	}
	return best
}

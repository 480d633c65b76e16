package events

import (
	"slices"
	"testing"
)

func ringContents(r *ring[int]) []int {
	var out []int
	for i := range r.len() {
		out = append(out, *r.at(i))
	}
	return out
}

func TestRing_GrowsAndEvictsOldest(t *testing.T) {
	r := newRing[int](40)
	for i := range 40 {
		if _, evicted := r.push(i); evicted {
			t.Fatalf("push %d evicted below the limit", i)
		}
	}
	if !r.full() || len(r.buf) != 40 {
		t.Fatalf("full = %v, allocation = %d, want true, 40", r.full(), len(r.buf))
	}
	for i := 40; i < 45; i++ {
		old, evicted := r.push(i)
		if !evicted || old != i-40 {
			t.Fatalf("push %d = (%d, %v), want (%d, true)", i, old, evicted, i-40)
		}
	}
	want := make([]int, 0, 40)
	for i := 5; i < 45; i++ {
		want = append(want, i)
	}
	if got := ringContents(&r); !slices.Equal(got, want) {
		t.Errorf("contents = %v, want %v", got, want)
	}
}

func TestRing_PopAndGrowWrapped(t *testing.T) {
	r := newRing[int](100)
	for i := range 16 {
		r.push(i)
	}
	for range 10 {
		r.pop()
	}
	// head is now mid-buffer; pushing past the allocation wraps, then grows.
	for i := 16; i < 40; i++ {
		r.push(i)
	}
	want := make([]int, 0, 30)
	for i := 10; i < 40; i++ {
		want = append(want, i)
	}
	if got := ringContents(&r); !slices.Equal(got, want) {
		t.Errorf("contents = %v, want %v", got, want)
	}
	if r.full() {
		t.Errorf("full with %d of %d", r.len(), r.limit)
	}
}

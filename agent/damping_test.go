package agent

import (
	"testing"
	"time"
)

func TestClaimBudget(t *testing.T) {
	var b claimBudget
	t0 := time.Unix(1000, 0)
	n := 0
	for b.take(t0) {
		n++
	}
	if n != dampBurst {
		t.Errorf("a fresh bucket allowed %d claims at once, want the burst %d", n, dampBurst)
	}
	// Ten seconds later: refilled at dampRate, capped at the burst.
	if got := countTakes(&b, t0.Add(10*time.Second)); got != dampBurst {
		t.Errorf("after 10 s: %d claims, want %d (capped)", got, dampBurst)
	}
	// Over 5 s in 100 ms steps: about dampRate per second.
	start := t0.Add(20 * time.Second)
	countTakes(&b, start) // empty it
	total := 0
	for i := 1; i <= 50; i++ {
		total += countTakes(&b, start.Add(time.Duration(i)*100*time.Millisecond))
	}
	if want := int(5 * dampRate); total < want-1 || total > want+1 {
		t.Errorf("over 5 s: %d claims, want about %d", total, want)
	}
}

func countTakes(b *claimBudget, now time.Time) int {
	n := 0
	for b.take(now) {
		n++
	}
	return n
}

func TestDamping(t *testing.T) {
	a := &Agent{}
	now := time.Now()
	if a.damping(now) {
		t.Error("damping with no losses")
	}
	a.losses = []time.Time{now.Add(-time.Minute), now.Add(-time.Second)}
	if a.damping(now) {
		t.Error("one recent loss (the other a minute old) counts as a mass failure")
	}
	a.losses = append(a.losses, now)
	if !a.damping(now) {
		t.Errorf("%d losses within %s: want damping", massFailureCount, massFailureWindow)
	}
	if a.damping(now.Add(massFailureWindow + time.Second)) {
		t.Error("damping outlived the window")
	}
	if len(a.losses) != 0 {
		t.Errorf("old losses kept: %v", a.losses)
	}
}

func TestCheckDataDir(t *testing.T) {
	dir := t.TempDir()
	if err := checkDataDir(dir, 1); err != nil {
		t.Errorf("a writable temp dir fails: %v", err)
	}
	if err := checkDataDir(dir, 1<<62); err == nil {
		t.Error("a file system with less free space than asked passes")
	}
	if err := checkDataDir(dir+"/missing", 1); err == nil {
		t.Error("a missing data dir passes")
	}
}

package agent

import (
	"testing"
	"time"

	"github.com/orchproject/orch/agent/spec"
)

func TestRollingHolds(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	svc := func(par int, delay time.Duration, fa spec.FailureAction) map[string]serviceState {
		three := 3
		s := &spec.Service{Name: "web", Replicas: &three, Update: spec.UpdateConfig{Parallelism: &par, Delay: spec.Duration(delay), FailureAction: fa}}
		return map[string]serviceState{"web": {Spec: s, Version: "9@a"}}
	}
	res := map[placeSlot]placeResult{{"web", 0}: {Node: "a"}, {"web", 1}: {Node: "b"}, {"web", 2}: {Node: "c"}}
	rec := func(slot int, node, version, state string, up time.Time) taskRecord {
		r := taskRecord{Service: "web", Slot: slot, Node: node, SpecVersion: version, State: state}
		if !up.IsZero() {
			r.RunningSince = up.UnixMilli()
		}
		return r
	}
	old := func(slot int, node string) taskRecord {
		return rec(slot, node, "5@a", taskRunning, now.Add(-time.Hour))
	}
	tests := []struct {
		name       string
		svcs       map[string]serviceState
		tasks      []taskRecord
		wantHeld   []int
		wantResume time.Time
	}{
		{"first slot goes first", svc(1, 0, ""), []taskRecord{old(0, "a"), old(1, "b"), old(2, "c")}, []int{1, 2}, time.Time{}},
		{"one moving holds the rest", svc(1, 0, ""), []taskRecord{rec(0, "a", "9@a", taskStarting, time.Time{}), old(1, "b"), old(2, "c")}, []int{1, 2}, time.Time{}},
		{"next after the first is up", svc(1, 0, ""), []taskRecord{rec(0, "a", "9@a", taskRunning, now), old(1, "b"), old(2, "c")}, []int{2}, time.Time{}},
		{"parallelism 2", svc(2, 0, ""), []taskRecord{old(0, "a"), old(1, "b"), old(2, "c")}, []int{2}, time.Time{}},
		{"delay holds after one came up", svc(1, 10*time.Second, ""), []taskRecord{rec(0, "a", "9@a", taskRunning, now.Add(-4*time.Second)), old(1, "b"), old(2, "c")}, []int{1, 2}, now.Add(6 * time.Second)},
		{"delay passed", svc(1, 10*time.Second, ""), []taskRecord{rec(0, "a", "9@a", taskRunning, now.Add(-11*time.Second)), old(1, "b"), old(2, "c")}, []int{2}, time.Time{}},
		{"a failed slot pauses", svc(1, 0, spec.FailurePause), []taskRecord{rec(0, "a", "9@a", taskFailed, time.Time{}), old(1, "b"), old(2, "c")}, []int{1, 2}, time.Time{}},
		{"continue goes past it", svc(1, 0, spec.FailureContinue), []taskRecord{rec(0, "a", "9@a", taskFailed, time.Time{}), old(1, "b"), old(2, "c")}, []int{2}, time.Time{}},
		{"claims of other nodes do not count", svc(1, 0, ""), []taskRecord{rec(0, "x", "9@a", taskRunning, now), old(0, "a"), old(1, "b"), old(2, "c")}, []int{1, 2}, time.Time{}},
		{"all at once", svc(0, 0, ""), []taskRecord{old(0, "a"), old(1, "b"), old(2, "c")}, nil, time.Time{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			held, resume := rollingHolds(tc.svcs, tc.tasks, res, now)
			var got []int
			for slot := range 3 {
				if held[placeSlot{"web", slot}] {
					got = append(got, slot)
				}
			}
			if len(got) != len(tc.wantHeld) {
				t.Fatalf("held %v, want %v", got, tc.wantHeld)
			}
			for i := range got {
				if got[i] != tc.wantHeld[i] {
					t.Fatalf("held %v, want %v", got, tc.wantHeld)
				}
			}
			if !resume.Equal(tc.wantResume) {
				t.Errorf("resume at %v, want %v", resume, tc.wantResume)
			}
		})
	}
}

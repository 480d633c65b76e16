package healthcheck

import (
	"testing"
	"time"
)

func TestStep(t *testing.T) {
	t0 := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	check := Check{Retries: 3, StartPeriod: time.Minute}
	type probe struct {
		after time.Duration // since t0, when the probe starts
		ok    bool
	}
	tests := []struct {
		name       string
		from       Status
		probes     []probe
		wantState  State
		wantStreak int
	}{
		{
			name:      "success makes a starting target healthy",
			from:      Status{State: StateStarting},
			probes:    []probe{{time.Second, true}},
			wantState: StateHealthy,
		},
		{
			name:      "failures inside the start period do not count",
			from:      Status{State: StateStarting},
			probes:    []probe{{1 * time.Second, false}, {2 * time.Second, false}, {3 * time.Second, false}, {4 * time.Second, false}},
			wantState: StateStarting,
		},
		{
			name:       "failures after the start period count",
			from:       Status{State: StateStarting},
			probes:     []probe{{59 * time.Second, false}, {60 * time.Second, false}, {61 * time.Second, false}},
			wantState:  StateStarting,
			wantStreak: 2,
		},
		{
			name:       "retries failures after the start period make it unhealthy",
			from:       Status{State: StateStarting},
			probes:     []probe{{61 * time.Second, false}, {62 * time.Second, false}, {63 * time.Second, false}},
			wantState:  StateUnhealthy,
			wantStreak: 3,
		},
		{
			name:       "a success ends the start period",
			from:       Status{State: StateStarting},
			probes:     []probe{{1 * time.Second, true}, {2 * time.Second, false}, {3 * time.Second, false}, {4 * time.Second, false}},
			wantState:  StateUnhealthy,
			wantStreak: 3,
		},
		{
			name:       "healthy stays healthy below retries",
			from:       Status{State: StateHealthy},
			probes:     []probe{{2 * time.Minute, false}, {2 * time.Minute, false}},
			wantState:  StateHealthy,
			wantStreak: 2,
		},
		{
			name:      "a success resets the streak",
			from:      Status{State: StateHealthy, FailingStreak: 2},
			probes:    []probe{{2 * time.Minute, true}, {2 * time.Minute, false}, {2 * time.Minute, false}},
			wantState: StateHealthy, wantStreak: 2,
		},
		{
			name:      "one success makes an unhealthy target healthy",
			from:      Status{State: StateUnhealthy, FailingStreak: 7},
			probes:    []probe{{2 * time.Minute, true}},
			wantState: StateHealthy,
		},
		{
			name:       "unhealthy keeps counting",
			from:       Status{State: StateUnhealthy, FailingStreak: 3},
			probes:     []probe{{2 * time.Minute, false}},
			wantState:  StateUnhealthy,
			wantStreak: 4,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := tt.from
			for i, p := range tt.probes {
				r := ProbeResult{OK: p.ok, At: t0.Add(p.after), Duration: time.Millisecond, Output: "out"}
				prev := st.State
				st = step(st, check, t0, r)
				if st.LastProbe != r.At || st.LastOutput != "out" {
					t.Errorf("probe %d: LastProbe %v LastOutput %q, want %v %q", i, st.LastProbe, st.LastOutput, r.At, "out")
				}
				if st.State != prev && !st.Since.Equal(r.At.Add(r.Duration)) {
					t.Errorf("probe %d: Since = %v, want the probe's end %v", i, st.Since, r.At.Add(r.Duration))
				}
			}
			if st.State != tt.wantState || st.FailingStreak != tt.wantStreak {
				t.Errorf("got %s streak %d, want %s streak %d", st.State, st.FailingStreak, tt.wantState, tt.wantStreak)
			}
		})
	}
}

func TestStep_RetriesOne(t *testing.T) {
	st := step(Status{State: StateHealthy}, Check{Retries: 1}, time.Time{}, ProbeResult{At: time.Now()})
	if st.State != StateUnhealthy || st.FailingStreak != 1 {
		t.Errorf("got %s streak %d, want unhealthy streak 1", st.State, st.FailingStreak)
	}
}

package agent

import (
	"testing"
	"time"

	"github.com/orchproject/orch/agent/runtime"
	"github.com/orchproject/orch/agent/spec"
)

// The start interval: the spec's, else the image's, else Docker's 5s
// default during a start period, never slower than the interval.
func TestCheckOf_StartInterval(t *testing.T) {
	sec := func(s float64) spec.Duration { return spec.Duration(s * float64(time.Second)) }
	h := &health{images: map[string]*runtime.ImageHealth{
		"img": {Test: []string{"CMD", "true"}, Interval: 10 * time.Second, StartPeriod: time.Minute, StartInterval: 300 * time.Millisecond},
	}}
	for _, tc := range []struct {
		name  string
		image string
		hc    *spec.HealthCheck
		want  time.Duration
	}{
		{"no start period", "", &spec.HealthCheck{TCP: &spec.TCPCheck{Port: 80}, Interval: sec(30)}, 0},
		{"docker's default", "", &spec.HealthCheck{TCP: &spec.TCPCheck{Port: 80}, Interval: sec(30), StartPeriod: sec(60)}, 5 * time.Second},
		{"default interval", "", &spec.HealthCheck{TCP: &spec.TCPCheck{Port: 80}, StartPeriod: sec(60)}, 5 * time.Second},
		{"interval shorter than the default", "", &spec.HealthCheck{TCP: &spec.TCPCheck{Port: 80}, Interval: sec(1), StartPeriod: sec(60)}, time.Second},
		{"the spec's", "", &spec.HealthCheck{TCP: &spec.TCPCheck{Port: 80}, StartPeriod: sec(60), StartInterval: sec(0.2)}, 200 * time.Millisecond},
		{"the image's", "img", nil, 300 * time.Millisecond},
		{"the spec's over the image's", "img", &spec.HealthCheck{StartInterval: sec(0.1)}, 100 * time.Millisecond},
	} {
		chk, ok := h.checkOf(t.Context(), spec.Container{Name: "c", Image: tc.image, HealthCheck: tc.hc})
		if !ok || chk.StartInterval != tc.want {
			t.Errorf("%s: start interval %v (checked %v), want %v", tc.name, chk.StartInterval, ok, tc.want)
		}
	}
}

package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/orchproject/orch/internal/lab"
)

// TestMinorityGuard cuts one of three agents off: the cut-off one keeps its
// own slot but takes over none of the others', while the majority takes
// over its slot; after healing, one holder per slot remains.
func TestMinorityGuard(t *testing.T) {
	l := lab.New(t, lab.Config{Hosts: 3})
	var ns []*node
	for i := 1; i <= 3; i++ {
		h := l.Host(i)
		ns = append(ns, newNode(h, h.Name))
	}
	formCluster(t, ns, "--profile", "fast")
	h1, h3 := ns[0], ns[2]
	mustCLI(t, h1, "service", "create", "--name", "web", "--replicas", "3", "busybox:stable")
	var h3slot int
	lab.Eventually(t, 10*time.Second, 50*time.Millisecond, func() error {
		ts, err := tasksOn(t, h1, "web")
		if err != nil {
			return err
		}
		for _, tk := range ts {
			if tk.State != "assigned" {
				return fmt.Errorf("web.%d is %s", tk.Slot, tk.State)
			}
			if tk.Node == h3.name {
				h3slot = tk.Slot
			}
		}
		return nil
	})

	nodeEvents := h3.streamEvents(t, "--filter", "type=node")
	l.Isolate(t, h3.host)
	// The majority (2 of 3) takes over h3's slot.
	lab.Eventually(t, 20*time.Second, 100*time.Millisecond, func() error {
		ts, err := tasksOn(t, h1, "web")
		if err != nil {
			return err
		}
		for _, tk := range ts {
			if tk.State != "assigned" || tk.Node == h3.name {
				return fmt.Errorf("on h1: web.%d is %s on %s", tk.Slot, tk.State, tk.Node)
			}
		}
		return nil
	})
	// The minority (1 of 3) keeps its own slot and claims nothing else:
	// its view places every slot on itself, but only one is claimed.
	lab.Eventually(t, 20*time.Second, 100*time.Millisecond, func() error {
		ts, err := tasksOn(t, h3, "web")
		if err != nil {
			return err
		}
		for _, tk := range ts {
			want := "assigning"
			if tk.Slot == h3slot {
				want = "assigned"
			}
			if tk.Node != h3.name || tk.State != want {
				return fmt.Errorf("on h3: web.%d is %s on %s, want %s on h3", tk.Slot, tk.State, tk.Node, want)
			}
		}
		return nil
	})
	lab.Eventually(t, 5*time.Second, 100*time.Millisecond, func() error {
		for _, l := range nodeEvents.lines() {
			if strings.Contains(l, `"action":"minority"`) {
				return nil
			}
		}
		return fmt.Errorf("no node minority event on h3: %q", nodeEvents.lines())
	})

	l.Heal(t, h3.host)
	allSee(t, 30*time.Second, ns, statusMap("alive", ns...))
	lab.Eventually(t, 20*time.Second, 100*time.Millisecond, func() error {
		for _, n := range ns {
			ts, err := tasksOn(t, n, "web")
			if err != nil {
				return err
			}
			for _, tk := range ts {
				if tk.State != "assigned" || tk.Message != "" {
					return fmt.Errorf("on %s: web.%d is %s on %s (%s)", n.name, tk.Slot, tk.State, tk.Node, tk.Message)
				}
			}
		}
		return nil
	})
}

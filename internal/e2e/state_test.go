package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/orchproject/orch/agent/api"
	"github.com/orchproject/orch/internal/lab"
	"github.com/orchproject/orch/internal/testenv"
)

// table is what one node holds: service name → version and spec.
type table map[string]string

func tableOn(t *testing.T, n *node) (table, error) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	svcs, err := n.client().ListServices(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", n.name, err)
	}
	out := table{}
	for _, s := range svcs {
		out[s.Name] = s.Version + " " + string(s.Spec)
	}
	return out, nil
}

// sameTable polls until every node holds the same table, and returns it.
func sameTable(t *testing.T, timeout time.Duration, ns []*node, check func(table) error) table {
	t.Helper()
	var got table
	lab.Eventually(t, timeout, 50*time.Millisecond, func() error {
		var first table
		for i, n := range ns {
			tb, err := tableOn(t, n)
			if err != nil {
				return err
			}
			if i == 0 {
				first = tb
				continue
			}
			if !reflect.DeepEqual(first, tb) {
				return fmt.Errorf("%s holds %d services, %s holds %d, or versions differ: %s", ns[0].name, len(first), n.name, len(tb), tableDiff(first, tb))
			}
		}
		if check != nil {
			if err := check(first); err != nil {
				return err
			}
		}
		got = first
		return nil
	})
	return got
}

func tableDiff(a, b table) string {
	var d []string
	for k, v := range a {
		if w, ok := b[k]; !ok {
			d = append(d, "-"+k)
		} else if v != w {
			d = append(d, "~"+k+" "+strings.SplitN(v, " ", 2)[0]+" vs "+strings.SplitN(w, " ", 2)[0])
		}
		if len(d) > 5 {
			break
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			d = append(d, "+"+k)
		}
		if len(d) > 10 {
			break
		}
	}
	return strings.Join(d, ", ")
}

func tasksOn(t *testing.T, n *node, svc string) ([]api.Task, error) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	return n.client().ServiceTasks(ctx, svc)
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func mustCLI(t *testing.T, n *node, args ...string) string {
	t.Helper()
	out, errOut, code := n.cli(t, args...)
	if code != 0 {
		t.Fatalf("orch %v on %s: exit %d: %s%s", args, n.name, code, out, errOut)
	}
	return out
}

// TestReplicatedState walks through the replicated state acceptance points
// on six lab hosts: five agents, and a sixth that joins late.
func TestReplicatedState(t *testing.T) {
	l := lab.New(t, lab.Config{Hosts: 6})
	var ns []*node
	for i := 1; i <= 5; i++ {
		h := l.Host(i)
		ns = append(ns, newNode(h, h.Name))
	}
	h1, h2, h5 := ns[0], ns[1], ns[4]
	step := func(name string, f func()) {
		t.Logf("step: %s", name)
		f()
	}
	token := formCluster(t, ns, "--profile", "fast")

	step("a service created on h1 is on every host within 2 s, identical", func() {
		p := filepath.Join(testenv.RepoRoot(t), "agent", "spec", "testdata", "sentry.yaml")
		mustCLI(t, h1, "service", "create", "-f", p)
		sameTable(t, 2*time.Second, ns, func(tb table) error {
			if _, ok := tb["sentry"]; !ok {
				return fmt.Errorf("no sentry yet")
			}
			return nil
		})
	})

	step("service ps shows the identical assignment on every host", func() {
		lab.Eventually(t, 10*time.Second, 50*time.Millisecond, func() error {
			var first []api.Task
			for i, n := range ns {
				ts, err := tasksOn(t, n, "sentry")
				if err != nil {
					return err
				}
				for _, tk := range ts {
					if tk.State != "assigned" {
						return fmt.Errorf("%s: sentry.%d is %s", n.name, tk.Slot, tk.State)
					}
				}
				if i == 0 {
					first = ts
				} else if !reflect.DeepEqual(first, ts) {
					return fmt.Errorf("%s shows %+v, %s shows %+v", h1.name, first, n.name, ts)
				}
			}
			if len(first) != 2 || first[0].Node == first[1].Node {
				return fmt.Errorf("want 2 slots on distinct nodes, got %+v", first)
			}
			return nil
		})
	})

	step("an 8 KiB spec replicates like any other", func() {
		var b strings.Builder
		b.WriteString("name: bigenv\ncontainers:\n  - name: app\n    image: busybox:stable\n    env:\n")
		// The spec is about 8 KiB as JSON: far more than a gossip packet.
		for i := 0; b.Len() < 10<<10; i++ {
			fmt.Fprintf(&b, "      - name: VAR_%d\n        value: %q\n", i, strings.Repeat("x", 100))
		}
		p := writeFile(t, h2.host.Dir, "bigenv.yaml", b.String())
		mustCLI(t, h2, "service", "create", "-f", p)
		sameTable(t, 5*time.Second, ns, func(tb table) error {
			if len(tb["bigenv"]) < 8<<10 {
				return fmt.Errorf("bigenv not everywhere yet (%d bytes on %s)", len(tb["bigenv"]), ns[0].name)
			}
			return nil
		})
	})

	step("bad input is refused with the fields named and changes nothing", func() {
		before := sameTable(t, 5*time.Second, ns, nil)
		dir := h1.host.Dir
		big := writeFile(t, dir, "huge.yaml", "name: huge\ncontainers: []\n# "+strings.Repeat("x", 10<<20)+"\n")
		cases := []struct {
			name, file, want string
		}{
			{"invalid name", "name: Bad_Name\ncontainers:\n  - name: a\n    image: busybox\n", "name:"},
			{"negative replicas", "name: neg\nreplicas: -1\ncontainers:\n  - name: a\n    image: busybox\n", "replicas:"},
			{"unknown field", "name: unk\nbogus: 1\ncontainers:\n  - name: a\n    image: busybox\n", "bogus"},
			{"bad port", "name: port\ncontainers:\n  - name: a\n    image: busybox\n  - name: b\n    image: busybox\n    ports:\n      - name: x\n        containerPort: 70000\n", "containers[1].ports[0].containerPort"},
			{"malformed yaml", "name: [unclosed\ncontainers: {\n", "yaml"},
		}
		for _, c := range cases {
			p := writeFile(t, dir, "bad.yaml", c.file)
			_, errOut, code := h1.cli(t, "service", "create", "-f", p)
			if code == 0 || !strings.Contains(errOut, c.want) {
				t.Errorf("%s: exit %d, stderr %q; want non-zero naming %q", c.name, code, errOut, c.want)
			}
		}
		_, errOut, code := h1.cli(t, "service", "create", "-f", big)
		if code == 0 || !strings.Contains(errOut, "at most") {
			t.Errorf("10 MiB spec: exit %d, stderr %q", code, errOut)
		}
		after := sameTable(t, 5*time.Second, ns, nil)
		if !reflect.DeepEqual(before, after) {
			t.Errorf("the table changed after refused input: %s", tableDiff(before, after))
		}
	})

	var healed time.Time
	step("a partition heals to one table: last writer wins, deletes stick", func() {
		for _, svc := range []string{"bsvc", "csvc"} {
			mustCLI(t, h1, "service", "create", "--name", svc, "busybox:stable", "sleep", "1000")
		}
		sameTable(t, 5*time.Second, ns, func(tb table) error {
			if tb["bsvc"] == "" || tb["csvc"] == "" {
				return fmt.Errorf("bsvc and csvc not everywhere yet")
			}
			return nil
		})
		l.Isolate(t, h5.host)
		cut := time.Now()
		lab.Eventually(t, 15*time.Second, 50*time.Millisecond, func() error { return wantStatusOf(t, h1, h5.name, "failed") })
		mustCLI(t, h1, "service", "create", "--name", "asvc", "busybox:stable")
		mustCLI(t, h5, "service", "rm", "bsvc")
		mustCLI(t, h5, "service", "scale", "csvc=2")
		mustCLI(t, h2, "service", "scale", "csvc=3")
		time.Sleep(time.Until(cut.Add(20 * time.Second))) // the partition lasts 20 s
		l.Heal(t, h5.host)
		healed = time.Now()
		sameTable(t, 10*time.Second, ns, func(tb table) error {
			if tb["asvc"] == "" {
				return fmt.Errorf("asvc missing")
			}
			if tb["bsvc"] != "" {
				return fmt.Errorf("bsvc present")
			}
			if tb["csvc"] == "" {
				return fmt.Errorf("csvc missing")
			}
			return nil
		})
	})

	step("SIGKILL every agent and restart them: every service is back, unchanged", func() {
		before := sameTable(t, 10*time.Second, ns, nil)
		for _, n := range ns {
			if err := n.proc.Kill(); err != nil {
				t.Fatal(err)
			}
		}
		for _, n := range ns {
			n.start(t, "--profile", "fast")
		}
		for _, n := range ns {
			n.waitReady(t)
		}
		allSee(t, 30*time.Second, ns, statusMap("alive", ns...))
		after := sameTable(t, 10*time.Second, ns, nil)
		if !reflect.DeepEqual(before, after) {
			t.Fatalf("after a whole-cluster restart: %s", tableDiff(before, after))
		}
	})

	step("a sixth host joining later receives all of 1,000 services within 5 s", func() {
		c := h1.client()
		for i := range 1000 {
			raw := fmt.Sprintf(`{"name":"bulk-%04d","replicas":0,"containers":[{"name":"app","image":"busybox:stable"}]}`, i)
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			_, err := c.CreateService(ctx, json.RawMessage(raw))
			cancel()
			if err != nil {
				t.Fatalf("create bulk-%04d: %v", i, err)
			}
		}
		want := sameTable(t, 30*time.Second, ns, func(tb table) error {
			if len(tb) < 1000 {
				return fmt.Errorf("%d services", len(tb))
			}
			return nil
		})
		h6 := newNode(l.Host(6), "h6")
		h6.start(t, "--profile", "fast", "--token", token, "--join", h1.host.Addr.String())
		h6.waitReady(t)
		start := time.Now()
		lab.Eventually(t, 5*time.Second, 50*time.Millisecond, func() error {
			got, err := tableOn(t, h6)
			if err != nil {
				return err
			}
			if !reflect.DeepEqual(got, want) {
				return fmt.Errorf("h6 holds %d of %d services", len(got), len(want))
			}
			return nil
		})
		t.Logf("h6 held all %d services %v after it was ready", len(want), time.Since(start).Round(time.Millisecond))
	})

	step("the deleted service is still absent a minute after the partition healed", func() {
		time.Sleep(time.Until(healed.Add(time.Minute)))
		for _, n := range ns {
			tb, err := tableOn(t, n)
			if err != nil {
				t.Fatal(err)
			}
			if tb["bsvc"] != "" {
				t.Errorf("%s holds bsvc again", n.name)
			}
		}
	})
}

// formCluster starts ns[0], then the others with its token, and waits until
// all see each other alive. It returns the token.
func formCluster(t *testing.T, ns []*node, flags ...string) string {
	t.Helper()
	ns[0].start(t, flags...)
	ns[0].waitReady(t)
	out, errOut, code := ns[0].cli(t, "token")
	if code != 0 {
		t.Fatalf("orch token: exit %d: %s", code, errOut)
	}
	token := strings.TrimSpace(out)
	for _, n := range ns[1:] {
		n.start(t, append(append([]string{}, flags...), "--token", token, "--join", ns[0].host.Addr.String())...)
	}
	for _, n := range ns[1:] {
		n.waitReady(t)
	}
	allSee(t, 10*time.Second, ns, statusMap("alive", ns...))
	return token
}

func wantStatusOf(t *testing.T, n *node, name, status string) error {
	st, err := statusesOn(t, n)
	if err != nil {
		return err
	}
	if st[name] != status {
		return fmt.Errorf("%s sees %s as %q, want %q", n.name, name, st[name], status)
	}
	return nil
}

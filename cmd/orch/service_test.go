package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orchproject/orch/agent/api"
	"github.com/orchproject/orch/agent/spec"
	"github.com/orchproject/orch/internal/testenv"
)

// sentryText is the content of sentryFile.
func sentryText(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(sentryFile(t))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// sentryFile is the two-container example of agent/spec/testdata: two
// replicas of a web container and a redis sharing one network namespace.
func sentryFile(t *testing.T) string {
	return filepath.Join(testenv.RepoRoot(t), "agent", "spec", "testdata", "sentry.yaml")
}

// startCluster starts agents n1 and n2 and joins n2 to n1 with `orch join`,
// waiting until each sees the other alive.
func startCluster(t *testing.T) (n1, n2 *testAgent) {
	t.Helper()
	n1 = startAgent(t, "n1", map[string]string{"zone": "a"})
	n2 = startAgent(t, "n2", map[string]string{"zone": "b"})
	r := runCLI(t, "--socket", n1.socket, "token")
	if r.code != exitOK {
		t.Fatalf("token: %v", r)
	}
	r = runCLI(t, "--socket", n2.socket, "join", "--token", strings.TrimSpace(r.stdout), n1.gossipAddr(t))
	if r.code != exitOK {
		t.Fatalf("join n2 to n1: %v", r)
	}
	waitMemberStatus(t, n1.socket, "n2", "alive")
	waitMemberStatus(t, n2.socket, "n1", "alive")
	return n1, n2
}

// cli runs the CLI against agent ta.
func (ta *testAgent) cli(t *testing.T, args ...string) cliResult {
	t.Helper()
	return runCLI(t, append([]string{"--socket", ta.socket}, args...)...)
}

// ok runs the CLI against agent ta and fails the test unless it exits 0.
func (ta *testAgent) ok(t *testing.T, args ...string) cliResult {
	t.Helper()
	r := ta.cli(t, args...)
	if r.code != exitOK {
		t.Fatalf("%s on %s: %v", strings.Join(args, " "), ta.name, r)
	}
	return r
}

// wantFail checks a runtime error: exit 1, every wanted text on stderr,
// no usage and nothing on stdout.
func wantFail(t *testing.T, r cliResult, want ...string) {
	t.Helper()
	if r.code != exitError {
		t.Errorf("exit code %d, want %d\n%v", r.code, exitError, r)
	}
	for _, w := range want {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("stderr does not contain %q:\n%s", w, r.stderr)
		}
	}
	if strings.Contains(r.stderr, "Usage:") {
		t.Errorf("usage printed for a runtime error:\n%s", r.stderr)
	}
	if r.stdout != "" {
		t.Errorf("stdout not empty on an error:\n%s", r.stdout)
	}
}

// decodeJSON decodes the CLI's JSON output strictly into v.
func decodeJSON(t *testing.T, out string, v any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("output is not JSON of %T: %v\n%s", v, err, out)
	}
}

func (ta *testAgent) lsJSON(t *testing.T) []api.ServiceInfo {
	t.Helper()
	var out []api.ServiceInfo
	decodeJSON(t, ta.ok(t, "service", "ls", "--format", "json").stdout, &out)
	return out
}

func (ta *testAgent) psJSON(t *testing.T, name string) []api.Task {
	t.Helper()
	var out []api.Task
	decodeJSON(t, ta.ok(t, "service", "ps", name, "--format", "json").stdout, &out)
	return out
}

// inspect returns `service inspect NAME` and its spec, decoded as stored:
// not through spec.Decode, which would fill in the defaults itself.
func (ta *testAgent) inspect(t *testing.T, name string) (api.ServiceInfo, spec.Service) {
	t.Helper()
	var out []api.ServiceInfo
	decodeJSON(t, ta.ok(t, "service", "inspect", name).stdout, &out)
	if len(out) != 1 || out[0].Name != name {
		t.Fatalf("inspect %s printed %+v, want one service named %s", name, out, name)
	}
	var s spec.Service
	dec := json.NewDecoder(bytes.NewReader(out[0].Spec))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		t.Fatalf("inspect %s: spec does not decode: %v\n%s", name, err, out[0].Spec)
	}
	return out[0], s
}

// eventually polls cond until it reports true, failing the test with its
// last description at the deadline.
func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not so after %v; last seen:\n%s", what, waitTimeout, last)
		}
		select {
		case <-tick.C:
		case <-t.Context().Done():
			t.Fatalf("test ended waiting until %s", what)
		}
	}
}

// waitConvergedOn polls until agent ta shows every slot of service name
// assigned on the service's current version, and returns the tasks.
func waitConvergedOn(t *testing.T, ta *testAgent, name string, replicas int) []api.Task {
	t.Helper()
	var tasks []api.Task
	eventually(t, fmt.Sprintf("%s has %d slots assigned on the current version on %s", name, replicas, ta.name), func() (bool, string) {
		r := ta.cli(t, "service", "ps", name, "--format", "json")
		if r.code != exitOK {
			return false, r.String() // not replicated to ta yet
		}
		tasks = nil
		decodeJSON(t, r.stdout, &tasks)
		if len(tasks) != replicas {
			return false, fmt.Sprintf("%+v", tasks)
		}
		for _, tk := range tasks {
			if tk.State != "assigned" || !tk.Current {
				return false, fmt.Sprintf("%+v", tasks)
			}
		}
		return true, ""
	})
	return tasks
}

// waitVersion polls until agent ta holds service name at version.
func waitVersion(t *testing.T, ta *testAgent, name, version string) {
	t.Helper()
	eventually(t, fmt.Sprintf("%s has %s at version %s", ta.name, name, version), func() (bool, string) {
		s, _ := findService(ta.lsJSON(t), name)
		return s.Version == version, fmt.Sprintf("%+v", s)
	})
}

// writeSpec writes a spec file and returns its path.
func writeSpec(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

var createdRE = regexp.MustCompile(`^(\S+) created \(version (\d+@n[12])\)\n$`)

// desiredState is what the service table holds, without the assignment
// counts that move as agents claim slots.
func desiredState(ss []api.ServiceInfo) string {
	var b strings.Builder
	for _, s := range ss {
		fmt.Fprintf(&b, "%s %s %d %s\n", s.Name, s.Version, s.Replicas, s.Spec)
	}
	return b.String()
}

// TestCLIService_Lifecycle runs the service verbs against two joined
// agents: create, ls, inspect, ps, scale, update, rm, and the events they
// leave.
func TestCLIService_Lifecycle(t *testing.T) {
	n1, n2 := startCluster(t)
	sentryFile := sentryFile(t)
	var sentryVersion string

	t.Run("CreateFromFile", func(t *testing.T) {
		r := n1.ok(t, "service", "create", "-f", sentryFile)
		m := createdRE.FindStringSubmatch(r.stdout)
		if m == nil || m[1] != "sentry" {
			t.Fatalf("create printed %q, want \"sentry created (version N@n1)\"", r.stdout)
		}
		sentryVersion = m[2]
		if r.stderr != "" {
			t.Errorf("stderr not empty: %s", r.stderr)
		}
	})
	if sentryVersion == "" {
		t.FailNow()
	}

	t.Run("LsTable", func(t *testing.T) {
		var rows []map[string]string
		eventually(t, "ls shows sentry 2/2", func() (bool, string) {
			r := n1.ok(t, "service", "ls")
			rows = parseTable(t, r.stdout, "NAME", "VERSION", "REPLICAS", "PENDING", "IMAGE")
			return len(rows) == 1 && rows[0]["REPLICAS"] == "2/2", r.stdout
		})
		want := map[string]string{"NAME": "sentry", "VERSION": sentryVersion, "REPLICAS": "2/2", "PENDING": "0", "IMAGE": "registry.example/sentry:9,redis:3.2-alpine"}
		for col, w := range want {
			if got := rows[0][col]; got != w {
				t.Errorf("%s = %q, want %q", col, got, w)
			}
		}
	})

	t.Run("LsJSON", func(t *testing.T) {
		for _, a := range []*testAgent{n1, n2} {
			var ss []api.ServiceInfo
			eventually(t, "sentry listed with 2 assigned on "+a.name, func() (bool, string) {
				ss = a.lsJSON(t)
				return len(ss) == 1 && ss[0].Assigned == 2, fmt.Sprintf("%+v", ss)
			})
			s := ss[0]
			if s.Name != "sentry" || s.Version != sentryVersion || s.Replicas != 2 || s.Pending != 0 {
				t.Errorf("%s lists {name %q version %q replicas %d pending %d}, want {sentry %s 2 0}",
					a.name, s.Name, s.Version, s.Replicas, s.Pending, sentryVersion)
			}
		}
	})

	t.Run("Inspect", func(t *testing.T) {
		for _, a := range []*testAgent{n1, n2} {
			info, s := a.inspect(t, "sentry")
			if info.Version != sentryVersion || info.Replicas != 2 {
				t.Errorf("%s: version %q replicas %d, want %s and 2", a.name, info.Version, info.Replicas, sentryVersion)
			}
			if len(s.Containers) != 2 || s.Containers[0].Name != "web" || s.Containers[1].Name != "redis" {
				t.Fatalf("%s: containers %+v, want web and redis", a.name, s.Containers)
			}
			web := s.Containers[0]
			if !slices.Equal(web.Args, []string{"run", "web"}) || web.Image != "registry.example/sentry:9" {
				t.Errorf("%s: web container %+v", a.name, web)
			}
			if want := []spec.EnvVar{{Name: "SENTRY_REDIS_HOST", Value: "127.0.0.1"}}; !reflect.DeepEqual(web.Env, want) {
				t.Errorf("%s: env %+v, want %+v", a.name, web.Env, want)
			}
			// Defaults are filled in: what runs is explicit.
			if want := []spec.Port{{Name: "http", ContainerPort: 9000, Protocol: spec.ProtocolTCP}}; !reflect.DeepEqual(web.Ports, want) {
				t.Errorf("%s: web ports %+v, want %+v", a.name, web.Ports, want)
			}
			if s.RestartPolicy.Condition != spec.DefaultRestartCondition || s.RestartPolicy.Delay == nil || *s.RestartPolicy.Delay != spec.DefaultRestartDelay {
				t.Errorf("%s: restart policy %+v, want the defaults filled in", a.name, s.RestartPolicy)
			}
			if u := s.Update; u.Parallelism == nil || *u.Parallelism != spec.DefaultUpdateParallelism || u.Order != spec.DefaultUpdateOrder || u.FailureAction != spec.DefaultFailureAction {
				t.Errorf("%s: update config %+v, want the defaults filled in", a.name, u)
			}
		}
		wantFail(t, n1.cli(t, "service", "inspect", "sentry", "nosuch"), "no such service: nosuch")
		wantUsage(t, n1.cli(t, "service", "inspect", "sentry", "--format", "table"), `--format "table"`)
	})

	t.Run("Ps", func(t *testing.T) {
		// Every agent computes the same table from the replicated state.
		var out1 string
		eventually(t, "ps sentry is the same on n1 and n2, every slot assigned", func() (bool, string) {
			out1 = n1.ok(t, "service", "ps", "sentry").stdout
			out2 := n2.ok(t, "service", "ps", "sentry").stdout
			return out1 == out2 && strings.Count(out1, " assigned ") == 2, "n1:\n" + out1 + "n2:\n" + out2
		})
		rows := parseTable(t, out1, "TASK", "NODE", "DESIRED", "STATE", "VERSION", "MESSAGE")
		if len(rows) != 2 {
			t.Fatalf("ps printed %d slots, want 2:\n%s", len(rows), out1)
		}
		nodes := map[string]bool{}
		for i, row := range rows {
			want := map[string]string{"TASK": fmt.Sprintf("sentry.%d", i), "DESIRED": "running", "STATE": "assigned", "VERSION": sentryVersion, "MESSAGE": ""}
			for col, w := range want {
				if row[col] != w {
					t.Errorf("slot %d: %s = %q, want %q", i, col, row[col], w)
				}
			}
			nodes[row["NODE"]] = true
		}
		if !nodes["n1"] || !nodes["n2"] {
			t.Errorf("slots on %v, want one on each of n1 and n2 (spread)", nodes)
		}

		tasks := n2.psJSON(t, "sentry")
		if len(tasks) != 2 {
			t.Fatalf("ps --format json: %d tasks, want 2: %+v", len(tasks), tasks)
		}
		for i, tk := range tasks {
			if tk.Service != "sentry" || tk.Slot != i || tk.Desired != "running" || tk.State != "assigned" ||
				tk.SpecVersion != sentryVersion || !tk.Current || tk.Message != "" || !nodes[tk.Node] {
				t.Errorf("task %d = %+v", i, tk)
			}
		}
		if tasks[0].Node == tasks[1].Node {
			t.Errorf("both slots on %s", tasks[0].Node)
		}
		wantFail(t, n1.cli(t, "service", "ps", "nosuch"), "no such service: nosuch")
		wantUsage(t, n1.cli(t, "service", "ps", "sentry", "--format", "yaml"), `--format "yaml"`)
	})

	t.Run("CreateFromFlags", func(t *testing.T) {
		r := n1.ok(t, "service", "create", "--name", "web", "--replicas", "3", "--env", "A=1",
			"--port", "http:8080/tcp", "--constraint", "node.name!=nosuch", "--health-http", "/h:8080",
			"busybox:stable", "httpd", "-f", "-p", "8080")
		m := createdRE.FindStringSubmatch(r.stdout)
		if m == nil || m[1] != "web" {
			t.Fatalf("create printed %q, want \"web created (version N@n1)\"", r.stdout)
		}
		waitVersion(t, n2, "web", m[2])
		_, s := n1.inspect(t, "web")
		if s.Replicas == nil || *s.Replicas != 3 {
			t.Errorf("replicas %v, want 3", s.Replicas)
		}
		if len(s.Containers) != 1 {
			t.Fatalf("containers %+v, want one", s.Containers)
		}
		c := s.Containers[0]
		if c.Name != "web" || c.Image != "busybox:stable" {
			t.Errorf("container %q image %q, want web and busybox:stable", c.Name, c.Image)
		}
		// -f and -p after IMAGE are httpd's, not create's.
		if want := []string{"httpd", "-f", "-p", "8080"}; !slices.Equal(c.Args, want) {
			t.Errorf("args %q, want %q", c.Args, want)
		}
		if len(c.Command) != 0 {
			t.Errorf("command %q, want none (the image's entrypoint)", c.Command)
		}
		if want := []spec.EnvVar{{Name: "A", Value: "1"}}; !reflect.DeepEqual(c.Env, want) {
			t.Errorf("env %+v, want %+v", c.Env, want)
		}
		if want := []spec.Port{{Name: "http", ContainerPort: 8080, Protocol: spec.ProtocolTCP}}; !reflect.DeepEqual(c.Ports, want) {
			t.Errorf("ports %+v, want %+v", c.Ports, want)
		}
		want := &spec.HealthCheck{
			HTTP:     &spec.HTTPCheck{Path: "/h", Port: 8080},
			Interval: spec.DefaultHealthInterval, Timeout: spec.DefaultHealthTimeout, Retries: spec.DefaultHealthRetries,
		}
		if !reflect.DeepEqual(c.HealthCheck, want) {
			t.Errorf("health check %+v, want %+v", c.HealthCheck, want)
		}
		if want := []string{"node.name!=nosuch"}; !slices.Equal(s.Placement.Constraints, want) {
			t.Errorf("constraints %q, want %q", s.Placement.Constraints, want)
		}
		waitConvergedOn(t, n2, "web", 3)
	})

	t.Run("CreateTwice", func(t *testing.T) {
		before := desiredState(n1.lsJSON(t))
		wantFail(t, n2.cli(t, "service", "create", "-f", sentryFile), `service "sentry" already exists`)
		wantFail(t, n1.cli(t, "service", "create", "--name", "web", "busybox:stable"), `service "web" already exists`)
		if after := desiredState(n1.lsJSON(t)); after != before {
			t.Errorf("service table changed by refused creates:\nbefore:\n%s\nafter:\n%s", before, after)
		}
	})

	t.Run("CreateUsage", func(t *testing.T) {
		wantUsage(t, n1.cli(t, "service", "create", "-f", sentryFile, "--replicas", "3"), "-f FILE describes the whole service")
		wantUsage(t, n1.cli(t, "service", "create", "-f", sentryFile, "busybox:stable"), "-f FILE describes the whole service")
		wantUsage(t, n1.cli(t, "service", "create", "--name", "nothing"), "give -f FILE, or an IMAGE")
		wantUsage(t, n1.cli(t, "service", "create"), "give -f FILE, or an IMAGE")
		if _, ok := findService(n1.lsJSON(t), "nothing"); ok {
			t.Error("a refused create made service \"nothing\"")
		}
	})

	t.Run("BadSpecs", func(t *testing.T) {
		sentryYAML := sentryText(t)
		huge := sentryYAML + "# " + strings.Repeat("x", spec.MaxSpecSize) + "\n"
		tests := []struct {
			name, body string
			want       []string
		}{
			{"UnknownField", sentryYAML + "colour: blue\n", []string{`unknown field "colour"`}},
			{"BadPort", strings.Replace(sentryYAML, "containerPort: 9000", "containerPort: 70000", 1),
				[]string{"containers[0].ports[0].containerPort: must be 1-65535 (got 70000)"}},
			{"InvalidName", strings.Replace(sentryYAML, "name: sentry", "name: Sentry_2", 1),
				[]string{`name: must be a DNS label`, `not "Sentry_2"`}},
			{"MalformedYAML", "name: sentry\ncontainers: [\n  - name: web\n", []string{"parse spec: yaml: line 2"}},
			{"TooLarge", huge, []string{fmt.Sprintf("spec is %d bytes, at most %d", len(huge), spec.MaxSpecSize)}},
			{"NotAMapping", "- sentry\n", []string{"spec must be a mapping with name and containers, not a list"}},
			{"Empty", "", []string{"spec"}},
		}
		before := desiredState(n1.lsJSON(t))
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				file := writeSpec(t, "bad.yaml", tt.body)
				for _, verb := range [][]string{{"service", "create", "-f", file}, {"apply", "-f", file}} {
					r := n1.cli(t, verb...)
					wantFail(t, r, append([]string{file + ": "}, tt.want...)...)
				}
			})
		}
		if after := desiredState(n1.lsJSON(t)); after != before {
			t.Errorf("service table changed by bad specs:\nbefore:\n%s\nafter:\n%s", before, after)
		}
		wantFail(t, n1.cli(t, "service", "create", "-f", filepath.Join(t.TempDir(), "missing.yaml")), "read spec", "no such file")
	})

	t.Run("Scale", func(t *testing.T) {
		r := n1.ok(t, "service", "scale", "web=5")
		if !regexp.MustCompile(`^web scaled to 5 \(version \d+@n1\)\n$`).MatchString(r.stdout) {
			t.Errorf("scale printed %q", r.stdout)
		}
		if got := len(n1.psJSON(t, "web")); got != 5 {
			t.Errorf("ps shows %d slots after scale web=5, want 5", got)
		}
		tasks := waitConvergedOn(t, n2, "web", 5)
		for i, tk := range tasks {
			if tk.Slot != i {
				t.Errorf("slot %d listed as %d", i, tk.Slot)
			}
		}

		n2.ok(t, "service", "scale", "web=1")
		eventually(t, "web has 1 slot on both agents", func() (bool, string) {
			t1, t2 := n1.psJSON(t, "web"), n2.psJSON(t, "web")
			return len(t1) == 1 && len(t2) == 1, fmt.Sprintf("n1: %+v\nn2: %+v", t1, t2)
		})
		waitConvergedOn(t, n1, "web", 1)

		before := desiredState(n1.lsJSON(t))
		for _, bad := range []string{"web=x", "web=-1", "web", "=3", "web=1.5"} {
			wantUsage(t, n1.cli(t, "service", "scale", bad), fmt.Sprintf("%q: want NAME=REPLICAS", bad))
		}
		wantUsage(t, n1.cli(t, "service", "scale"), "requires at least 1 arg")
		// Arguments are checked before anything changes.
		wantUsage(t, n1.cli(t, "service", "scale", "web=2", "sentry=x"), `"sentry=x"`)
		wantFail(t, n1.cli(t, "service", "scale", "nosuch=1"), "no such service: nosuch")
		if after := desiredState(n1.lsJSON(t)); after != before {
			t.Errorf("service table changed by refused scales:\nbefore:\n%s\nafter:\n%s", before, after)
		}
	})

	t.Run("Update", func(t *testing.T) {
		r := n2.ok(t, "service", "update", "web", "--env-add", "B=2", "--image", "busybox:1.36")
		m := regexp.MustCompile(`^web updated \(version (\d+@n2)\)\n$`).FindStringSubmatch(r.stdout)
		if m == nil {
			t.Fatalf("update printed %q", r.stdout)
		}
		eventually(t, "n1 sees web's update", func() (bool, string) {
			info, _ := n1.inspect(t, "web")
			return info.Version == m[1], info.Version
		})
		_, s := n1.inspect(t, "web")
		c := s.Containers[0]
		if c.Image != "busybox:1.36" {
			t.Errorf("image %q, want busybox:1.36", c.Image)
		}
		if want := []spec.EnvVar{{Name: "A", Value: "1"}, {Name: "B", Value: "2"}}; !reflect.DeepEqual(c.Env, want) {
			t.Errorf("env %+v, want %+v", c.Env, want)
		}
		// What the update did not name is kept.
		if want := []string{"httpd", "-f", "-p", "8080"}; !slices.Equal(c.Args, want) || s.Replicas == nil || *s.Replicas != 1 {
			t.Errorf("args %q, replicas %v: want %q and 1 kept", c.Args, s.Replicas, want)
		}

		before := desiredState(n1.lsJSON(t))
		wantFail(t, n1.cli(t, "service", "update", "sentry", "--image", "busybox:1.36"),
			"--image", `service "sentry" has 2 containers`)
		wantFail(t, n1.cli(t, "service", "update", "web", "--env-add", "1BAD=x"), "--env-add")
		wantFail(t, n1.cli(t, "service", "update", "web", "--replicas", "100000"), "replicas")
		wantFail(t, n1.cli(t, "service", "update", "nosuch", "--image", "x:1"), "no such service: nosuch")
		if after := desiredState(n1.lsJSON(t)); after != before {
			t.Errorf("service table changed by refused updates:\nbefore:\n%s\nafter:\n%s", before, after)
		}
	})

	t.Run("Rm", func(t *testing.T) {
		r := n2.ok(t, "service", "rm", "web", "sentry")
		if r.stdout != "web\nsentry\n" {
			t.Errorf("rm printed %q, want the names removed", r.stdout)
		}
		for _, a := range []*testAgent{n1, n2} {
			eventually(t, "no services on "+a.name, func() (bool, string) {
				ss := a.lsJSON(t)
				return len(ss) == 0, fmt.Sprintf("%+v", ss)
			})
			wantFail(t, a.cli(t, "service", "ps", "web"), "no such service: web")
		}
		wantFail(t, n1.cli(t, "service", "rm", "nosuch"), "no such service: nosuch")
		wantFail(t, n1.cli(t, "service", "rm", "web"), "no such service: web")
	})

	t.Run("ServiceEvents", func(t *testing.T) {
		// Every agent reports what it sees change in the replicated state,
		// whichever agent wrote it.
		for _, a := range []*testAgent{n1, n2} {
			want := []string{"created sentry", "created web", "updated web", "removed web", "removed sentry"}
			evs := collectEvents(t, a, []string{"--filter", "type=service"}, want)
			for _, ev := range evs {
				if ev.Type != "service" || ev.Node != a.name {
					t.Errorf("%s: event %+v, want type service from node %s", a.name, ev, a.name)
				}
				if ev.Action == "created" && ev.Subject == "sentry" && (ev.Attributes["version"] != sentryVersion || ev.Attributes["replicas"] != "2") {
					t.Errorf("%s: created sentry with attributes %v, want version %s and replicas 2", a.name, ev.Attributes, sentryVersion)
				}
			}
		}
	})

	t.Run("TaskEvents", func(t *testing.T) {
		want := []string{"assigned web.0", "assigned web.4", "unassigned web.4", "unassigned web.0", "assigned sentry.0", "assigned sentry.1", "unassigned sentry.1"}
		evs := collectEvents(t, n1, []string{"--filter", "type=task"}, want)
		for _, ev := range evs {
			if ev.Type != "task" || !regexp.MustCompile(`^(web|sentry)\.\d$`).MatchString(ev.Subject) {
				t.Errorf("event %+v, want a task event with a subject like web.0", ev)
			}
			if (ev.Action == "assigned" || ev.Action == "unassigned") && ev.Attributes["node"] != "n1" && ev.Attributes["node"] != "n2" {
				t.Errorf("event %+v names no node", ev)
			}
		}
	})
}

// parseTable parses a table the CLI printed into one map per row, keyed
// by column. Cells are cut at the header's column offsets, since they may
// hold spaces or be empty. The header must hold the wanted columns, in
// that order; others may come between.
func parseTable(t *testing.T, out string, want ...string) []map[string]string {
	t.Helper()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	header := lines[0]
	var cols []string
	var starts []int
	for i := 0; i < len(header); {
		if header[i] == ' ' {
			i++
			continue
		}
		j := i
		for j < len(header) && header[j] != ' ' {
			j++
		}
		cols, starts = append(cols, header[i:j]), append(starts, i)
		i = j
	}
	k := 0
	for _, c := range cols {
		if k < len(want) && c == want[k] {
			k++
		}
	}
	if k != len(want) {
		t.Fatalf("header %q lacks columns %q (in this order)", cols, want)
	}
	var rows []map[string]string
	for _, line := range lines[1:] {
		row := map[string]string{}
		for i, c := range cols {
			end := len(line)
			if i+1 < len(starts) {
				end = min(starts[i+1], len(line))
			}
			if starts[i] < end {
				row[c] = strings.TrimSpace(line[starts[i]:end])
			} else {
				row[c] = ""
			}
		}
		rows = append(rows, row)
	}
	return rows
}

func findService(ss []api.ServiceInfo, name string) (api.ServiceInfo, bool) {
	i := slices.IndexFunc(ss, func(s api.ServiceInfo) bool { return s.Name == name })
	if i < 0 {
		return api.ServiceInfo{}, false
	}
	return ss[i], true
}

// eventWriter is `orch events`'s stdout: it decodes each line and cancels
// the command once every wanted "action subject" has been seen.
type eventWriter struct {
	t      *testing.T
	cancel context.CancelFunc

	mu     sync.Mutex
	buf    []byte
	events []api.Event
	want   map[string]bool // "action subject" → seen
}

func (w *eventWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		var ev api.Event
		if err := json.Unmarshal(w.buf[:i], &ev); err != nil {
			w.t.Errorf("event line is not JSON: %v\n%s", err, w.buf[:i])
		}
		w.buf = w.buf[i+1:]
		w.events = append(w.events, ev)
		if _, ok := w.want[ev.Action+" "+ev.Subject]; ok {
			w.want[ev.Action+" "+ev.Subject] = true
		}
	}
	for _, seen := range w.want {
		if !seen {
			return len(p), nil
		}
	}
	w.cancel()
	return len(p), nil
}

// collectEvents runs `orch events --since 10m` with filters on agent ta
// until every wanted "action subject" has been printed, and returns the
// events printed. The window covers the whole test, and the agent started
// within it.
func collectEvents(t *testing.T, ta *testAgent, filters, want []string) []api.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	w := &eventWriter{t: t, cancel: cancel, want: map[string]bool{}}
	for _, s := range want {
		w.want[s] = false
	}
	var stderr bytes.Buffer
	args := append([]string{"--socket", ta.socket, "events", "--since", "10m"}, filters...)
	code := run(ctx, args, w, &stderr)
	w.mu.Lock()
	defer w.mu.Unlock()
	var missing []string
	for s, seen := range w.want {
		if !seen {
			missing = append(missing, s)
		}
	}
	if len(missing) > 0 {
		var got []string
		for _, ev := range w.events {
			got = append(got, ev.Action+" "+ev.Subject)
		}
		t.Fatalf("events on %s: missing %q; got %q; stderr: %s", ta.name, missing, got, stderr.String())
	}
	if code != exitOK {
		t.Errorf("events interrupted: exit %d, want 0; stderr: %s", code, stderr.String())
	}
	return slices.Clone(w.events)
}

// TestCLIService_Apply covers `orch apply`: create, unchanged, update, and
// --wait until converged or until the timeout with the reason.
func TestCLIService_Apply(t *testing.T) {
	n1, n2 := startCluster(t)
	sentryYAML := sentryText(t)
	file := writeSpec(t, "sentry.yaml", sentryYAML)
	applyRE := regexp.MustCompile(`^sentry (created|updated|unchanged) \(version (\d+@n[12])\)\n`)
	apply := func(t *testing.T, a *testAgent, args ...string) (action, version string, r cliResult) {
		t.Helper()
		r = a.ok(t, append([]string{"apply"}, args...)...)
		m := applyRE.FindStringSubmatch(r.stdout)
		if m == nil {
			t.Fatalf("apply printed %q", r.stdout)
		}
		return m[1], m[2], r
	}

	action, v1, _ := apply(t, n1, "-f", file)
	if action != "created" {
		t.Errorf("first apply: %s, want created", action)
	}
	// n2 must have the spec before it can call it unchanged.
	eventually(t, "n2 has sentry", func() (bool, string) {
		ss := n2.lsJSON(t)
		return len(ss) == 1 && ss[0].Version == v1, fmt.Sprintf("%+v", ss)
	})
	for _, a := range []*testAgent{n1, n2} {
		action, v, _ := apply(t, a, "-f", file)
		if action != "unchanged" || v != v1 {
			t.Errorf("apply of the same file on %s: %s version %s, want unchanged %s", a.name, action, v, v1)
		}
	}
	// The same spec spelled differently (JSON, defaults written out) is
	// still unchanged.
	_, s := n1.inspect(t, "sentry")
	raw, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if action, _, _ := apply(t, n1, "-f", writeSpec(t, "sentry.json", string(raw))); action != "unchanged" {
		t.Errorf("apply of the inspected spec as JSON: %s, want unchanged", action)
	}

	modified := strings.Replace(sentryYAML, "replicas: 2", "replicas: 3", 1)
	action, v2, _ := apply(t, n2, "-f", writeSpec(t, "sentry3.yaml", modified))
	if action != "updated" || v2 == v1 {
		t.Errorf("apply of a modified file: %s version %s, want updated with a version other than %s", action, v2, v1)
	}
	// The next write goes to n1: once n1 has seen this one, so that it
	// comes later in the store's order too, not only in the test's.
	waitVersion(t, n1, "sentry", v2)

	t.Run("Wait", func(t *testing.T) {
		modified := strings.Replace(modified, "redis:3.2-alpine", "redis:7-alpine", 1)
		action, v3, r := apply(t, n1, "--wait", "-f", writeSpec(t, "sentry-redis7.yaml", modified))
		if action != "updated" {
			t.Errorf("apply --wait: %s, want updated", action)
		}
		if !strings.HasSuffix(r.stdout, "sentry: 3/3 replicas in their desired state\n") {
			t.Errorf("apply --wait printed %q", r.stdout)
		}
		// It waited for the new version: it is there the moment it returns.
		tasks := n1.psJSON(t, "sentry")
		if len(tasks) != 3 {
			t.Fatalf("ps after apply --wait: %+v, want 3 slots", tasks)
		}
		for _, tk := range tasks {
			if tk.State != "assigned" || tk.SpecVersion != v3 || !tk.Current {
				t.Errorf("task after apply --wait: %+v, want assigned on %s", tk, v3)
			}
		}
	})

	t.Run("WaitSuperseded", func(t *testing.T) {
		// Waiting for a version another write has replaced can never
		// succeed: say so at once rather than at the timeout.
		var stdout bytes.Buffer
		g := &globals{socket: n1.socket, stdout: &stdout, stderr: &stdout}
		start := time.Now()
		err := waitConverged(t.Context(), g, "sentry", v1, waitTimeout)
		if err == nil || !strings.Contains(err.Error(), "sentry changed to version ") || !strings.Contains(err.Error(), "before version "+v1+" converged") {
			t.Errorf("waitConverged for the replaced version %s = %v, want an error saying it was replaced", v1, err)
		}
		if d := time.Since(start); d >= waitTimeout {
			t.Errorf("waitConverged took %v, the whole timeout", d)
		}
		err = waitConverged(t.Context(), g, "nosuch", v1, waitTimeout)
		if err == nil || !strings.Contains(err.Error(), "nosuch was removed before it converged: no such service: nosuch") {
			t.Errorf("waitConverged for a missing service = %v, want an error saying it is gone", err)
		}
		if stdout.Len() != 0 {
			t.Errorf("waitConverged printed %q", stdout.String())
		}
	})

	t.Run("WaitTimeout", func(t *testing.T) {
		nowhere := `{"name": "nowhere", "replicas": 2,
			"placement": {"constraints": ["node.name==nosuch"]},
			"containers": [{"name": "c", "image": "busybox:stable"}]}`
		start := time.Now()
		r := n1.cli(t, "apply", "--wait", "--timeout", "2s", "-f", writeSpec(t, "nowhere.json", nowhere))
		if r.code != exitError {
			t.Errorf("exit code %d, want %d\n%v", r.code, exitError, r)
		}
		if d := time.Since(start); d < 2*time.Second {
			t.Errorf("gave up after %v, before the 2s timeout", d)
		}
		if !regexp.MustCompile(`^nowhere created \(version \d+@n1\)\n$`).MatchString(r.stdout) {
			t.Errorf("stdout %q, want the create reported", r.stdout)
		}
		for _, w := range []string{"nowhere did not converge within 2s", "nowhere.0: pending", "nowhere.1: pending", "no eligible node satisfies node.name==nosuch"} {
			if !strings.Contains(r.stderr, w) {
				t.Errorf("stderr does not contain %q:\n%s", w, r.stderr)
			}
		}
		// The service is there, pending, with the reason in ps.
		ss := n1.lsJSON(t)
		if s, ok := findService(ss, "nowhere"); !ok || s.Pending != 2 || s.Assigned != 0 {
			t.Errorf("ls: %+v, want nowhere with 2 pending", ss)
		}
		for _, tk := range n1.psJSON(t, "nowhere") {
			if tk.State != "pending" || tk.Node != "" || tk.Message != "no eligible node satisfies node.name==nosuch" {
				t.Errorf("task %+v, want pending with the reason", tk)
			}
		}
	})

	t.Run("Usage", func(t *testing.T) {
		wantUsage(t, n1.cli(t, "apply"), "apply needs -f FILE")
		wantUsage(t, n1.cli(t, "apply", "-f", file, "extra"), `unknown command "extra"`)
		wantUsage(t, n1.cli(t, "apply", "-f", file, "--timeout", "soon"), `invalid argument "soon"`)
	})
}

// TestCLIService_ConcurrentScale scales one service from both agents at
// once. Both succeed (each agent checks the base version it read against
// its own replica of the store, and retries on a conflict), and the
// agents end up agreeing on one of the two values.
func TestCLIService_ConcurrentScale(t *testing.T) {
	n1, n2 := startCluster(t)
	r := n1.ok(t, "service", "create", "--name", "web", "busybox:stable")
	m := createdRE.FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("create printed %q", r.stdout)
	}
	waitVersion(t, n2, "web", m[2])
	for round, vals := range [][2]int{{4, 6}, {2, 7}, {5, 3}} {
		var results [2]cliResult
		var wg sync.WaitGroup
		for i, a := range []*testAgent{n1, n2} {
			wg.Go(func() { results[i] = a.cli(t, "service", "scale", fmt.Sprintf("web=%d", vals[i])) })
		}
		wg.Wait()
		for i, r := range results {
			if r.code != exitOK {
				t.Fatalf("round %d: scale web=%d: %v", round, vals[i], r)
			}
		}
		var final int
		eventually(t, "both agents agree on web", func() (bool, string) {
			i1, s1 := n1.inspect(t, "web")
			i2, _ := n2.inspect(t, "web")
			final = *s1.Replicas
			return i1.Version == i2.Version && string(i1.Spec) == string(i2.Spec),
				fmt.Sprintf("n1: %s %s\nn2: %s %s", i1.Version, i1.Spec, i2.Version, i2.Spec)
		})
		if final != vals[0] && final != vals[1] {
			t.Errorf("round %d: web has %d replicas, want %d or %d", round, final, vals[0], vals[1])
		}
		waitConvergedOn(t, n1, "web", final)
	}
}

// TestCLIService_ConcurrentUpdateOneAgent runs updates that add different
// variables to one service through one agent at once. Each is a
// read-modify-write with the version it read, and the agent checks that
// version and writes as one step, so none may be lost.
func TestCLIService_ConcurrentUpdateOneAgent(t *testing.T) {
	n1 := startAgent(t, "n1", nil)
	n1.ok(t, "service", "create", "--name", "web", "busybox:stable")
	envNames := func() []string {
		_, s := n1.inspect(t, "web")
		var got []string
		for _, e := range s.Containers[0].Env {
			got = append(got, e.Name)
		}
		slices.Sort(got)
		return got
	}

	t.Run("CLI", func(t *testing.T) {
		const writers = 4 // service update gives up after 5 conflicts in a row
		var wg sync.WaitGroup
		results := make([]cliResult, writers)
		for i := range writers {
			wg.Go(func() { results[i] = n1.cli(t, "service", "update", "web", "--env-add", fmt.Sprintf("V%d=%d", i, i)) })
		}
		wg.Wait()
		for i, r := range results {
			if r.code != exitOK {
				t.Errorf("update --env-add V%d: %v", i, r)
			}
		}
		if got, want := envNames(), []string{"V0", "V1", "V2", "V3"}; !slices.Equal(got, want) {
			t.Errorf("env after concurrent updates: %q, want %q (an update was lost)", got, want)
		}
	})

	t.Run("CreateRace", func(t *testing.T) {
		const creators = 4
		var wg sync.WaitGroup
		results := make([]cliResult, creators)
		for i := range creators {
			wg.Go(func() {
				results[i] = n1.cli(t, "service", "create", "--name", "race", "--env", fmt.Sprintf("WHO=%d", i), "busybox:stable")
			})
		}
		wg.Wait()
		won := -1
		for i, r := range results {
			switch {
			case r.code == exitOK && won < 0:
				won = i
			case r.code == exitOK:
				t.Errorf("creates %d and %d both succeeded; the later one replaced the other's service", won, i)
			case !strings.Contains(r.stderr, `service "race" already exists`):
				t.Errorf("create %d: %v", i, r)
			}
		}
		if won < 0 {
			t.Fatal("no create succeeded")
		}
		_, s := n1.inspect(t, "race")
		if want := []spec.EnvVar{{Name: "WHO", Value: fmt.Sprint(won)}}; !reflect.DeepEqual(s.Containers[0].Env, want) {
			t.Errorf("env %+v, want the winner's %+v", s.Containers[0].Env, want)
		}
	})

	// Many more writers than the CLI's retries allow, through the function
	// it uses, retried until each lands: the window between the agent's
	// version check and its write is small, so it takes many tries to hit.
	t.Run("Stress", func(t *testing.T) {
		// Under -race on a busy 2-core machine an update takes tens of
		// milliseconds and each lands after about writers/2 conflicts:
		// this is some hundreds of round trips.
		const writers, each = 8, 10
		ctx, cancel := context.WithTimeout(t.Context(), 3*cliTimeout)
		defer cancel()
		g := &globals{socket: n1.socket}
		var wg sync.WaitGroup
		errs := make([]error, writers)
		for w := range writers {
			wg.Go(func() {
				for i := range each {
					for {
						_, err := modifyService(ctx, g, "web", func(s *spec.Service) error {
							c := &s.Containers[0]
							c.Env = append(c.Env, spec.EnvVar{Name: fmt.Sprintf("W%d_%d", w, i), Value: "x"})
							return nil
						})
						if err == nil {
							break
						}
						if ctx.Err() != nil {
							errs[w] = err
							return
						}
					}
				}
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("writers gave up: %v", err)
		}
		var want []string
		for w := range writers {
			for i := range each {
				want = append(want, fmt.Sprintf("W%d_%d", w, i))
			}
		}
		want = append(want, "V0", "V1", "V2", "V3")
		slices.Sort(want)
		if got := envNames(); !slices.Equal(got, want) {
			t.Errorf("env holds %d variables after %d updates, want %d: lost %q", len(got), writers*each, len(want), missingFrom(got, want))
		}
	})
}

// missingFrom returns the elements of want not in got.
func missingFrom(got, want []string) []string {
	var out []string
	for _, w := range want {
		if !slices.Contains(got, w) {
			out = append(out, w)
		}
	}
	return out
}

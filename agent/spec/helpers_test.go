package spec

import (
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// validService returns a valid spec that sets most fields, for tests to
// break one rule at a time.
func validService() *Service {
	return &Service{
		Name:     "sentry",
		Replicas: ptr(2),
		Containers: []Container{
			{
				Name:       "web",
				Image:      "registry.example/sentry:9",
				Command:    []string{"/usr/local/bin/sentry"},
				Args:       []string{"run", "web"},
				Env:        []EnvVar{{Name: "SENTRY_REDIS_HOST", Value: "127.0.0.1"}},
				Ports:      []Port{{Name: "http", ContainerPort: 9000}},
				WorkingDir: "/srv",
				User:       "1000:1000",
				Resources:  Resources{Memory: 256 << 20, CPU: 500},
				HealthCheck: &HealthCheck{
					HTTP:     &HTTPCheck{Path: "/_health/", Port: 9000},
					Interval: Duration(10 * time.Second),
				},
			},
			{
				Name:        "redis",
				Image:       "redis:3.2-alpine",
				Ports:       []Port{{Name: "redis", ContainerPort: 6379}},
				HealthCheck: &HealthCheck{Test: []string{TestCmd, "redis-cli", "ping"}},
			},
		},
		Labels:        map[string]string{"com.example.team": "sre"},
		Placement:     Placement{Constraints: []string{"node.label.zone==a"}},
		RestartPolicy: RestartPolicy{Condition: RestartOnFailure, MaxAttempts: 3},
		Update:        UpdateConfig{Parallelism: ptr(1), Order: OrderStartFirst},
	}
}

// readFile returns testdata/name.
func readFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// problemLines returns the problems of a *SpecError as "path: message"
// lines; it fails the test for any other error.
func problemLines(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	var se *SpecError
	if !errors.As(err, &se) {
		t.Fatalf("error %v (%T) is not a *SpecError", err, err)
	}
	var out []string
	for _, p := range se.Problems {
		out = append(out, p.String())
	}
	return out
}

// wantProblems checks that err lists exactly want, in order.
func wantProblems(t *testing.T, err error, want ...string) {
	t.Helper()
	got := problemLines(t, err)
	if !slices.Equal(got, want) {
		t.Errorf("problems:\n  got  %q\n  want %q", got, want)
	}
}

// wantProblemContaining checks that err is a *SpecError with a problem
// whose line contains each of subs.
func wantProblemContaining(t *testing.T, err error, subs ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one containing %q", subs)
	}
	for _, line := range problemLines(t, err) {
		if containsAll(line, subs) {
			return
		}
	}
	t.Errorf("error %q: no problem contains all of %q", err, subs)
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

func mustMarshal(t testing.TB, s *Service) []byte {
	t.Helper()
	b, err := s.Marshal()
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	return b
}

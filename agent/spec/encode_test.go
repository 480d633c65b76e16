package spec

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestMarshal_RoundTrip(t *testing.T) {
	for _, name := range []string{"sentry.yaml", "sentry.json", "full.yaml"} {
		t.Run(name, func(t *testing.T) {
			s1, err := Decode(readFile(t, name))
			if err != nil {
				t.Fatal(err)
			}
			b1 := mustMarshal(t, s1)
			s2, err := Decode(b1)
			if err != nil {
				t.Fatalf("canonical bytes do not decode: %v\n%s", err, b1)
			}
			b2 := mustMarshal(t, s2)
			if !bytes.Equal(b1, b2) {
				t.Errorf("not stable:\n%s\n%s", b1, b2)
			}
			if !Equal(s1, s2) {
				t.Error("not Equal")
			}
		})
	}
}

func TestMarshal_Canonical(t *testing.T) {
	a, err := Decode([]byte(`
name: x
containers:
  - name: a
    image: b
    resources: {memory: 1024Mi, cpu: "1"}
    healthCheck: {test: ["CMD-SHELL", "curl -f http://localhost/ && true"], interval: 60s}
labels: {b: "2", a: "1"}
placement: {constraints: ["node.labels.zone == a"]}
`))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Decode([]byte(`{"labels": {"a": "1", "b": "2"}, "name": "x", "replicas": 1,
"containers": [{"image": "b", "name": "a", "resources": {"cpu": "1000m", "memory": 1073741824},
"healthCheck": {"test": ["CMD-SHELL", "curl -f http://localhost/ && true"], "interval": "1m0s", "retries": 3}}],
"placement": {"constraints": ["node.label.zone==a"]}, "restartPolicy": {"delay": "5s"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if !Equal(a, b) {
		t.Errorf("same meaning, different bytes:\n%s\n%s", mustMarshal(t, a), mustMarshal(t, b))
	}
	got := string(mustMarshal(t, a))
	for _, want := range []string{`"memory":"1Gi"`, `"cpu":"1"`, `"interval":"1m0s"`, `&& true`, `"labels":{"a":"1","b":"2"}`, `"node.label.zone==a"`} {
		if !strings.Contains(got, want) {
			t.Errorf("canonical form lacks %s:\n%s", want, got)
		}
	}
}

func TestEqual(t *testing.T) {
	base := validService()
	tests := []struct {
		name   string
		a, b   *Service
		mutate func(s *Service)
		want   bool
	}{
		{"nil and nil", nil, nil, nil, true},
		{"nil and spec", nil, base, nil, false},
		{"spec and nil", base, nil, nil, false},
		{"clone", base, nil, func(*Service) {}, true},
		{"defaults written out", base, nil, func(s *Service) { s.Normalize() }, true},
		{"default replicas", &Service{Name: "x", Containers: []Container{{Name: "a", Image: "b"}}},
			&Service{Name: "x", Replicas: ptr(1), Containers: []Container{{Name: "a", Image: "b"}}}, nil, true},
		{"empty and nil slices", base, nil, func(s *Service) { s.Containers[1].Args = []string{}; s.Containers[1].Env = []EnvVar{} }, true},
		{"replicas differ", base, nil, func(s *Service) { s.Replicas = ptr(3) }, false},
		{"env order differs", base, nil, func(s *Service) {
			s.Containers[0].Env = append([]EnvVar{{Name: "A", Value: "1"}}, s.Containers[0].Env...)
		}, false},
		{"label differs", base, nil, func(s *Service) { s.Labels["x"] = "y" }, false},
		{"explicit zero delay differs from default", base, nil, func(s *Service) { s.RestartPolicy.Delay = ptr(Duration(0)) }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.b
			if tt.mutate != nil {
				b = tt.a.Clone()
				tt.mutate(b)
			}
			if got := Equal(tt.a, b); got != tt.want {
				t.Errorf("Equal = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestClone_IsDeep(t *testing.T) {
	s := validService()
	s.Containers[1].HealthCheck = &HealthCheck{TCP: &TCPCheck{Port: 6379}, Test: nil}
	s.RestartPolicy.Delay = ptr(Duration(time.Second))
	before := mustMarshal(t, s)
	c := s.Clone()
	// Change every reference-typed field of the clone.
	*c.Replicas = 9
	c.Containers[0].Command[0] = "x"
	c.Containers[0].Args[0] = "x"
	c.Containers[0].Env[0].Value = "x"
	c.Containers[0].Ports[0].ContainerPort = 1
	c.Containers[0].HealthCheck.HTTP.Port = 1
	c.Containers[0].HealthCheck.Interval = 1
	c.Containers[1].HealthCheck.TCP.Port = 1
	c.Containers[1].Name = "x"
	c.Labels["com.example.team"] = "x"
	c.Placement.Constraints[0] = "x"
	*c.RestartPolicy.Delay = 0
	*c.Update.Parallelism = 9
	if after := mustMarshal(t, s); !bytes.Equal(before, after) {
		t.Errorf("changing the clone changed the original:\n%s\n%s", before, after)
	}
	if (*Service)(nil).Clone() != nil {
		t.Error("Clone of nil is not nil")
	}
	h := &HealthCheck{Test: []string{TestCmd, "true"}}
	s.Containers[0].HealthCheck = h
	c = s.Clone()
	c.Containers[0].HealthCheck.Test[1] = "false"
	if h.Test[1] != "true" {
		t.Error("health test shared")
	}
}

func TestNormalize_Idempotent(t *testing.T) {
	s := validService()
	s.Containers[0].HealthCheck = &HealthCheck{Test: []string{TestNone}}
	s.Placement.Constraints = append(s.Placement.Constraints, "node.name != n1", "not a constraint")
	s.Normalize()
	once := mustMarshal(t, s)
	s.Normalize()
	if twice := mustMarshal(t, s); !bytes.Equal(once, twice) {
		t.Errorf("second Normalize changed:\n%s\n%s", once, twice)
	}
	if got := s.Placement.Constraints; got[1] != "node.name!=n1" || got[2] != "not a constraint" {
		t.Errorf("constraints %q: want the valid one canonical, the invalid one untouched", got)
	}
	if h := s.Containers[0].HealthCheck; h.Interval != 0 || h.Retries != 0 {
		t.Errorf("NONE check got timings: %+v", h)
	}
	if h := s.Containers[1].HealthCheck; h.Interval != DefaultHealthInterval || h.Timeout != DefaultHealthTimeout || h.Retries != DefaultHealthRetries {
		t.Errorf("CMD check lacks defaults: %+v", h)
	}
	if p := s.Containers[0].Ports[0]; p.Protocol != ProtocolTCP {
		t.Errorf("port protocol %q", p.Protocol)
	}
	// Set values are kept.
	if *s.Replicas != 2 || s.RestartPolicy.Condition != RestartOnFailure || s.Update.Order != OrderStartFirst {
		t.Errorf("Normalize changed set values: %s", once)
	}
}

func TestMarshal_Nil(t *testing.T) {
	b, err := (*Service)(nil).Marshal()
	if err != nil || string(b) != "null" {
		t.Errorf("got %s, %v", b, err)
	}
}

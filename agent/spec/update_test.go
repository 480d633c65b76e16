package spec

import (
	"slices"
	"testing"
)

// oneContainer returns a valid single-container service to update.
func oneContainer() *Service {
	s := &Service{
		Name:     "web",
		Replicas: ptr(2),
		Containers: []Container{{
			Name:  "web",
			Image: "nginx:1.26",
			Env:   []EnvVar{{Name: "A", Value: "1"}, {Name: "B", Value: "2"}},
			Ports: []Port{{Name: "http", ContainerPort: 80}, {Name: "dns", ContainerPort: 53, Protocol: ProtocolUDP}, {Name: "dns-tcp", ContainerPort: 53}},
		}},
		Labels:    map[string]string{"team": "web", "tier": "front"},
		Placement: Placement{Constraints: []string{"node.label.zone==a", "node.name!=n1"}},
	}
	s.Normalize()
	return s
}

func TestApplyUpdate(t *testing.T) {
	tests := []struct {
		name  string
		f     UpdateFlags
		check func(t *testing.T, s *Service)
	}{
		{"nothing", UpdateFlags{}, func(t *testing.T, s *Service) {
			if !Equal(s, oneContainer()) {
				t.Error("changed")
			}
		}},
		{"replicas", UpdateFlags{Replicas: ptr(0)}, func(t *testing.T, s *Service) {
			if *s.Replicas != 0 {
				t.Errorf("replicas %d", *s.Replicas)
			}
		}},
		{"image", UpdateFlags{Image: "nginx:1.27"}, func(t *testing.T, s *Service) {
			if s.Containers[0].Image != "nginx:1.27" {
				t.Errorf("image %q", s.Containers[0].Image)
			}
		}},
		{"env add, replace, remove", UpdateFlags{EnvAdd: []string{"C=3", "A=9"}, EnvRm: []string{"B", "MISSING"}}, func(t *testing.T, s *Service) {
			want := []EnvVar{{Name: "A", Value: "9"}, {Name: "C", Value: "3"}}
			if got := s.Containers[0].Env; !slices.Equal(got, want) {
				t.Errorf("env %v, want %v", got, want)
			}
		}},
		{"env rm then add the same", UpdateFlags{EnvRm: []string{"A"}, EnvAdd: []string{"A=new"}}, func(t *testing.T, s *Service) {
			want := []EnvVar{{Name: "B", Value: "2"}, {Name: "A", Value: "new"}}
			if got := s.Containers[0].Env; !slices.Equal(got, want) {
				t.Errorf("env %v, want %v", got, want)
			}
		}},
		{"labels", UpdateFlags{LabelAdd: []string{"team=ops", "new"}, LabelRm: []string{"tier", "missing"}}, func(t *testing.T, s *Service) {
			if len(s.Labels) != 2 || s.Labels["team"] != "ops" || s.Labels["new"] != "" {
				t.Errorf("labels %v", s.Labels)
			}
		}},
		{"remove every label", UpdateFlags{LabelRm: []string{"team", "tier"}}, func(t *testing.T, s *Service) {
			if s.Labels != nil {
				t.Errorf("labels %v", s.Labels)
			}
		}},
		{"constraints", UpdateFlags{ConstraintRm: []string{"node.name != n1"}, ConstraintAdd: []string{"node.labels.disk==ssd", "node.label.zone == a"}}, func(t *testing.T, s *Service) {
			want := []string{"node.label.zone==a", "node.label.disk==ssd"}
			if got := s.Placement.Constraints; !slices.Equal(got, want) {
				t.Errorf("constraints %q, want %q", got, want)
			}
		}},
		{"ports", UpdateFlags{PortRm: []string{"53/udp", "nope"}, PortAdd: []string{"https:443", "web:80"}}, func(t *testing.T, s *Service) {
			want := []Port{
				{Name: "dns-tcp", ContainerPort: 53, Protocol: ProtocolTCP},
				{Name: "https", ContainerPort: 443, Protocol: ProtocolTCP},
				{Name: "web", ContainerPort: 80, Protocol: ProtocolTCP}, // replaced http:80
			}
			if got := s.Containers[0].Ports; !slices.Equal(got, want) {
				t.Errorf("ports %+v, want %+v", got, want)
			}
		}},
		{"port add replaces by name and by port", UpdateFlags{PortAdd: []string{"dns:53/tcp"}}, func(t *testing.T, s *Service) {
			want := []Port{{Name: "http", ContainerPort: 80, Protocol: ProtocolTCP}, {Name: "dns", ContainerPort: 53, Protocol: ProtocolTCP}}
			if got := s.Containers[0].Ports; !slices.Equal(got, want) {
				t.Errorf("ports %+v, want %+v", got, want)
			}
		}},
		{"port rm by number takes both protocols", UpdateFlags{PortRm: []string{"53"}}, func(t *testing.T, s *Service) {
			want := []Port{{Name: "http", ContainerPort: 80, Protocol: ProtocolTCP}}
			if got := s.Containers[0].Ports; !slices.Equal(got, want) {
				t.Errorf("ports %+v, want %+v", got, want)
			}
		}},
		{"port rm by name", UpdateFlags{PortRm: []string{"http"}}, func(t *testing.T, s *Service) {
			if len(s.Containers[0].Ports) != 2 || s.Containers[0].Ports[0].Name != "dns" {
				t.Errorf("ports %+v", s.Containers[0].Ports)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			orig := oneContainer()
			before := mustMarshal(t, orig)
			s, err := ApplyUpdate(orig, tt.f)
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, s)
			if string(mustMarshal(t, orig)) != string(before) {
				t.Error("ApplyUpdate changed its input")
			}
			if err := s.Validate(); err != nil {
				t.Errorf("result invalid: %v", err)
			}
		})
	}
}

func TestApplyUpdate_ServiceFlagsOnMultiContainer(t *testing.T) {
	s, err := ApplyUpdate(validService(), UpdateFlags{Replicas: ptr(5), LabelAdd: []string{"a=b"}, ConstraintAdd: []string{"node.name==n1"}})
	if err != nil {
		t.Fatal(err)
	}
	if *s.Replicas != 5 || s.Labels["a"] != "b" || !slices.Contains(s.Placement.Constraints, "node.name==n1") {
		t.Errorf("not applied: %s", mustMarshal(t, s))
	}
}

func TestApplyUpdate_Errors(t *testing.T) {
	tests := []struct {
		name string
		s    *Service
		f    UpdateFlags
		want []string
	}{
		{"container flags on two containers", validService(), UpdateFlags{Image: "x", EnvAdd: []string{"A=1"}, PortRm: []string{"80"}},
			[]string{`--image, --env-add, --port-rm: service "sentry" has 2 containers and these flags change one container: edit the spec instead`}},
		{"nil service", nil, UpdateFlags{}, []string{"no service to update"}},
		{"bad image", oneContainer(), UpdateFlags{Image: "a b"},
			[]string{`--image: "a b" is not an image reference like "redis:7" or "registry.example/app@sha256:…" (lower-case repository, no spaces)`}},
		{"bad replicas", oneContainer(), UpdateFlags{Replicas: ptr(-3)}, []string{"--replicas: must be 0-1000 (got -3)"}},
		{"env add syntax", oneContainer(), UpdateFlags{EnvAdd: []string{"A"}},
			[]string{"--env-add A: want NAME=VALUE (the CLI's own environment is not copied)"}},
		{"env add name", oneContainer(), UpdateFlags{EnvAdd: []string{"A-B=1"}},
			[]string{`--env-add: "A-B" is not a variable name (letters, digits and '_', not starting with a digit)`}},
		{"env rm syntax", oneContainer(), UpdateFlags{EnvRm: []string{"A=1"}}, []string{"--env-rm A=1: want a variable NAME"}},
		{"label add syntax", oneContainer(), UpdateFlags{LabelAdd: []string{"=x"}}, []string{"--label-add =x: want KEY=VALUE"}},
		{"label add key", oneContainer(), UpdateFlags{LabelAdd: []string{"a b=x"}},
			[]string{`--label-add: key must be 1-253 letters, digits, '.', '_', '/', '-', starting and ending with a letter or digit`}},
		{"constraint add", oneContainer(), UpdateFlags{ConstraintAdd: []string{"x"}},
			[]string{`--constraint-add: constraint "x": want FIELD==VALUE or FIELD!=VALUE (FIELD is node.name or node.label.KEY)`}},
		{"constraint rm", oneContainer(), UpdateFlags{ConstraintRm: []string{"x"}},
			[]string{`--constraint-rm: constraint "x": want FIELD==VALUE or FIELD!=VALUE (FIELD is node.name or node.label.KEY)`}},
		{"port add syntax", oneContainer(), UpdateFlags{PortAdd: []string{"8080:80"}},
			[]string{"--port-add 8080:80: orch has no host ports (every replica has its own address): write NAME:PORT, like http:80"}},
		{"port add name", oneContainer(), UpdateFlags{PortAdd: []string{"Web:80"}},
			[]string{`--port-add: ` + portNameRule + `, not "Web"`}},
		{"port rm syntax", oneContainer(), UpdateFlags{PortRm: []string{"53/sctp"}}, []string{`--port-rm 53/sctp: protocol must be tcp or udp (got "sctp")`}},
		{"port rm name with proto", oneContainer(), UpdateFlags{PortRm: []string{"dns/udp"}}, []string{`--port-rm dns/udp: want NAME, PORT or PORT/PROTO`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ApplyUpdate(tt.s, tt.f)
			if err == nil {
				t.Fatalf("updated to %s", mustMarshal(t, s))
			}
			wantProblems(t, err, tt.want...)
		})
	}
}

package spec

import (
	"strings"
	"testing"
	"time"
)

func TestValidate_ValidService(t *testing.T) {
	s := validService()
	if err := s.Validate(); err != nil {
		t.Fatalf("raw: %v", err)
	}
	s.Normalize()
	if err := s.Validate(); err != nil {
		t.Fatalf("normalized: %v", err)
	}
}

func TestValidate_Rules(t *testing.T) {
	long := strings.Repeat("v", MaxLabelValue+1)
	tests := []struct {
		name   string
		mutate func(s *Service)
		want   []string
	}{
		// The service.
		{"name required", func(s *Service) { s.Name = "" }, []string{"name: required"}},
		{"name not a DNS label", func(s *Service) { s.Name = "Sentry_1" },
			[]string{`name: ` + dnsLabelRule + `, not "Sentry_1"`}},
		{"name starts with a digit", func(s *Service) { s.Name = "1sentry" },
			[]string{`name: ` + dnsLabelRule + `, not "1sentry"`}},
		{"name too long", func(s *Service) { s.Name = strings.Repeat("a", 64) },
			[]string{`name: ` + dnsLabelRule + `, not "` + strings.Repeat("a", 64) + `"`}},
		{"name ends with a dash", func(s *Service) { s.Name = "web-" },
			[]string{`name: ` + dnsLabelRule + `, not "web-"`}},
		{"replicas negative", func(s *Service) { s.Replicas = ptr(-1) }, []string{"replicas: must be 0-1000 (got -1)"}},
		{"replicas too many", func(s *Service) { s.Replicas = ptr(MaxReplicas + 1) }, []string{"replicas: must be 0-1000 (got 1001)"}},
		{"no containers", func(s *Service) { s.Containers = nil }, []string{"containers: at least one container is required"}},

		// Containers.
		{"container name required", func(s *Service) { s.Containers[1].Name = "" }, []string{"containers[1].name: required"}},
		{"container name invalid", func(s *Service) { s.Containers[1].Name = "Redis" },
			[]string{`containers[1].name: ` + dnsLabelRule + `, not "Redis"`}},
		{"container name duplicate", func(s *Service) { s.Containers[1].Name = "web" },
			[]string{`containers[1].name: duplicate container name "web" (also containers[0])`}},
		{"image required", func(s *Service) { s.Containers[0].Image = "" }, []string{"containers[0].image: required"}},
		{"image with space", func(s *Service) { s.Containers[0].Image = "redis 7" },
			[]string{`containers[0].image: "redis 7" is not an image reference like "redis:7" or "registry.example/app@sha256:…" (lower-case repository, no spaces)`}},
		{"image upper case", func(s *Service) { s.Containers[0].Image = "Redis:7" },
			[]string{`containers[0].image: "Redis:7" is not an image reference like "redis:7" or "registry.example/app@sha256:…" (lower-case repository, no spaces)`}},
		{"image bad digest", func(s *Service) { s.Containers[0].Image = "redis@sha256:abc" },
			[]string{`containers[0].image: "redis@sha256:abc" is not an image reference like "redis:7" or "registry.example/app@sha256:…" (lower-case repository, no spaces)`}},
		{"command program empty", func(s *Service) { s.Containers[0].Command = []string{""} },
			[]string{"containers[0].command[0]: must not be empty: it names the program"}},
		{"command NUL", func(s *Service) { s.Containers[0].Command = []string{"sh", "a\x00b"} },
			[]string{"containers[0].command[1]: must not contain NUL"}},
		{"args NUL", func(s *Service) { s.Containers[0].Args = []string{"ok", "", "a\x00"} },
			[]string{"containers[0].args[2]: must not contain NUL"}},
		{"env name required", func(s *Service) { s.Containers[0].Env = append(s.Containers[0].Env, EnvVar{Value: "x"}) },
			[]string{"containers[0].env[1].name: required"}},
		{"env name invalid", func(s *Service) { s.Containers[0].Env[0].Name = "1X" },
			[]string{`containers[0].env[0].name: "1X" is not a variable name (letters, digits and '_', not starting with a digit)`}},
		{"env name duplicate", func(s *Service) {
			s.Containers[0].Env = append(s.Containers[0].Env, EnvVar{Name: "SENTRY_REDIS_HOST", Value: "x"})
		}, []string{`containers[0].env[1].name: duplicate variable "SENTRY_REDIS_HOST" (also containers[0].env[0])`}},
		{"env value NUL", func(s *Service) { s.Containers[0].Env[0].Value = "a\x00" },
			[]string{"containers[0].env[0].value: must not contain NUL"}},
		{"port name required", func(s *Service) { s.Containers[1].Ports[0].Name = "" },
			[]string{"containers[1].ports[0].name: required: it names the port in DNS SRV records"}},
		{"port name too long", func(s *Service) { s.Containers[1].Ports[0].Name = "redis-replication" },
			[]string{`containers[1].ports[0].name: ` + portNameRule + `, not "redis-replication"`}},
		{"port name digits only", func(s *Service) { s.Containers[1].Ports[0].Name = "6379" },
			[]string{`containers[1].ports[0].name: ` + portNameRule + `, not "6379"`}},
		{"port name double dash", func(s *Service) { s.Containers[1].Ports[0].Name = "a--b" },
			[]string{`containers[1].ports[0].name: ` + portNameRule + `, not "a--b"`}},
		{"port name duplicate across containers", func(s *Service) { s.Containers[1].Ports[0].Name = "http" },
			[]string{`containers[1].ports[0].name: duplicate port name "http" (also containers[0].ports[0])`}},
		{"containerPort zero", func(s *Service) { s.Containers[1].Ports[0].ContainerPort = 0 },
			[]string{"containers[1].ports[0].containerPort: must be 1-65535 (got 0)"}},
		{"containerPort too big", func(s *Service) { s.Containers[1].Ports[0].ContainerPort = 65536 },
			[]string{"containers[1].ports[0].containerPort: must be 1-65535 (got 65536)"}},
		{"protocol upper case", func(s *Service) { s.Containers[1].Ports[0].Protocol = "TCP" },
			[]string{`containers[1].ports[0].protocol: must be tcp or udp (got "TCP")`}},
		{"port duplicate across containers", func(s *Service) { s.Containers[1].Ports[0].ContainerPort = 9000 },
			[]string{"containers[1].ports[0]: duplicate port 9000/tcp (also containers[0].ports[0]): the containers of a replica share one network namespace"}},
		{"port duplicate with default protocol", func(s *Service) {
			s.Containers[1].Ports[0].ContainerPort = 9000
			s.Containers[1].Ports[0].Protocol = ProtocolTCP
		}, []string{"containers[1].ports[0]: duplicate port 9000/tcp (also containers[0].ports[0]): the containers of a replica share one network namespace"}},
		{"workingDir relative", func(s *Service) { s.Containers[0].WorkingDir = "srv" },
			[]string{`containers[0].workingDir: must be an absolute path (got "srv")`}},
		{"user invalid", func(s *Service) { s.Containers[0].User = "a b" },
			[]string{`containers[0].user: must be USER, UID, USER:GROUP or UID:GID (got "a b")`}},
		{"uid too big", func(s *Service) { s.Containers[0].User = "4294967296" },
			[]string{`containers[0].user: must be USER, UID, USER:GROUP or UID:GID (got "4294967296")`}},
		{"memory negative", func(s *Service) { s.Containers[0].Resources.Memory = -1 },
			[]string{"containers[0].resources.memory: must be more than 0 (got -1)"}},
		{"cpu negative", func(s *Service) { s.Containers[0].Resources.CPU = -500 },
			[]string{"containers[0].resources.cpu: must be more than 0 (got -500m)"}},

		// Health checks.
		{"health two probes", func(s *Service) { s.Containers[0].HealthCheck.TCP = &TCPCheck{Port: 9000} },
			[]string{"containers[0].healthCheck: set at most one of test, http and tcp (got http and tcp)"}},
		{"health CMD without program", func(s *Service) { s.Containers[1].HealthCheck.Test = []string{"CMD"} },
			[]string{`containers[1].healthCheck.test: ["CMD", PROGRAM, ARGS...] needs a program`}},
		{"health CMD-SHELL two words", func(s *Service) { s.Containers[1].HealthCheck.Test = []string{"CMD-SHELL", "a", "b"} },
			[]string{`containers[1].healthCheck.test: ["CMD-SHELL", COMMAND] takes exactly one non-empty command line`}},
		{"health NONE with args", func(s *Service) { s.Containers[1].HealthCheck.Test = []string{"NONE", "x"} },
			[]string{`containers[1].healthCheck.test: ["NONE"] takes no arguments`}},
		{"health unknown kind", func(s *Service) { s.Containers[1].HealthCheck.Test = []string{"cmd", "true"} },
			[]string{`containers[1].healthCheck.test: must start with "CMD", "CMD-SHELL" or "NONE" (got "cmd")`}},
		{"health test NUL", func(s *Service) { s.Containers[1].HealthCheck.Test = []string{"CMD", "a\x00"} },
			[]string{`containers[1].healthCheck.test[1]: must not contain NUL`}},
		{"health http path", func(s *Service) { s.Containers[0].HealthCheck.HTTP.Path = "health" },
			[]string{`containers[0].healthCheck.http.path: must start with '/' and contain no spaces or control characters (got "health")`}},
		{"health http port", func(s *Service) { s.Containers[0].HealthCheck.HTTP.Port = 0 },
			[]string{"containers[0].healthCheck.http.port: must be 1-65535 (got 0)"}},
		{"health tcp port", func(s *Service) { s.Containers[1].HealthCheck = &HealthCheck{TCP: &TCPCheck{Port: 70000}} },
			[]string{"containers[1].healthCheck.tcp.port: must be 1-65535 (got 70000)"}},
		{"health http on a udp port", func(s *Service) {
			s.Containers[1].Ports = append(s.Containers[1].Ports, Port{Name: "dns", ContainerPort: 53, Protocol: ProtocolUDP})
			s.Containers[0].HealthCheck.HTTP.Port = 53
		}, []string{"containers[0].healthCheck.http.port: port 53 is declared udp only (containers[1].ports[1]); a probe needs a tcp port"}},
		{"health interval below 1ms", func(s *Service) { s.Containers[0].HealthCheck.Interval = Duration(time.Microsecond) },
			[]string{"containers[0].healthCheck.interval: must be at least 1ms, or 0 for the default (got 1µs)"}},
		{"health timeout negative", func(s *Service) { s.Containers[0].HealthCheck.Timeout = Duration(-time.Second) },
			[]string{"containers[0].healthCheck.timeout: must be at least 1ms, or 0 for the default (got -1s)"}},
		{"health startPeriod negative", func(s *Service) { s.Containers[0].HealthCheck.StartPeriod = Duration(-time.Second) },
			[]string{"containers[0].healthCheck.startPeriod: must not be negative (got -1s)"}},
		{"health startInterval without startPeriod", func(s *Service) { s.Containers[0].HealthCheck.StartInterval = Duration(time.Second) },
			[]string{"containers[0].healthCheck.startInterval: applies only during a start period: set startPeriod too"}},
		{"health startInterval too short", func(s *Service) {
			s.Containers[0].HealthCheck.StartPeriod, s.Containers[0].HealthCheck.StartInterval = Duration(time.Minute), Duration(time.Microsecond)
		}, []string{"containers[0].healthCheck.startInterval: must be at least 1ms, or 0 for the default (got 1µs)"}},
		{"health retries negative", func(s *Service) { s.Containers[0].HealthCheck.Retries = -1 },
			[]string{"containers[0].healthCheck.retries: must be at least 1, or 0 for the default 3 (got -1)"}},

		// Labels, placement, restart, update.
		{"label key invalid", func(s *Service) { s.Labels["-x"] = "1" },
			[]string{`labels["-x"]: key must be 1-253 letters, digits, '.', '_', '/', '-', starting and ending with a letter or digit`}},
		{"label value too long", func(s *Service) { s.Labels["big"] = long },
			[]string{`labels["big"]: value is 1025 bytes, at most 1024`}},
		{"label value NUL", func(s *Service) { s.Labels["nul"] = "\x00" },
			[]string{`labels["nul"]: value must not contain NUL`}},
		{"constraint syntax", func(s *Service) { s.Placement.Constraints = append(s.Placement.Constraints, "zone=a") },
			[]string{`placement.constraints[1]: constraint "zone=a": want FIELD==VALUE or FIELD!=VALUE (FIELD is node.name or node.label.KEY)`}},
		{"constraint field", func(s *Service) { s.Placement.Constraints[0] = "node.role==manager" },
			[]string{`placement.constraints[0]: constraint "node.role==manager": unknown field "node.role": want node.name or node.label.KEY`}},
		{"restart condition", func(s *Service) { s.RestartPolicy.Condition = "any" },
			[]string{`restartPolicy.condition: must be always, on-failure or none (got "any")`}},
		{"restart maxAttempts", func(s *Service) { s.RestartPolicy.MaxAttempts = -1 },
			[]string{"restartPolicy.maxAttempts: must be 0 (unlimited) or more (got -1)"}},
		{"restart delay", func(s *Service) { s.RestartPolicy.Delay = ptr(Duration(-time.Second)) },
			[]string{"restartPolicy.delay: must not be negative (got -1s)"}},
		{"update parallelism", func(s *Service) { s.Update.Parallelism = ptr(-1) },
			[]string{"update.parallelism: must be 0 (all at once) or more (got -1)"}},
		{"update delay", func(s *Service) { s.Update.Delay = Duration(-time.Second) },
			[]string{"update.delay: must not be negative (got -1s)"}},
		{"update order", func(s *Service) { s.Update.Order = "random" },
			[]string{`update.order: must be stop-first or start-first (got "random")`}},
		{"update failureAction", func(s *Service) { s.Update.FailureAction = "panic" },
			[]string{`update.failureAction: must be pause, continue or rollback (got "panic")`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := validService()
			tt.mutate(s)
			before := mustMarshal(t, s)
			wantProblems(t, s.Validate(), tt.want...)
			if after := mustMarshal(t, s); string(after) != string(before) {
				t.Errorf("Validate changed the spec")
			}
		})
	}
}

func TestValidate_Accepts(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(s *Service)
	}{
		{"zero replicas", func(s *Service) { s.Replicas = ptr(0) }},
		{"same port on tcp and udp", func(s *Service) {
			s.Containers[1].Ports = append(s.Containers[1].Ports, Port{Name: "redis-udp", ContainerPort: 6379, Protocol: ProtocolUDP})
		}},
		{"probe on a port declared for tcp and udp", func(s *Service) {
			s.Containers[1].Ports = append(s.Containers[1].Ports, Port{Name: "h-udp", ContainerPort: 9000, Protocol: ProtocolUDP})
		}},
		{"probe on an undeclared port", func(s *Service) { s.Containers[0].HealthCheck.HTTP.Port = 9999 }},
		{"image forms", func(s *Service) {
			s.Containers[0].Image = "localhost:5000/a/b-c__d.e:v1.2_3"
			s.Containers[1].Image = "redis@sha256:" + strings.Repeat("ab", 32)
		}},
		{"user forms", func(s *Service) { s.Containers[0].User = "nobody"; s.Containers[1].User = "www-data:100" }},
		{"health test forms", func(s *Service) {
			s.Containers[1].HealthCheck.Test = []string{TestCmdShell, "redis-cli ping || exit 1"}
			s.Containers[0].HealthCheck = &HealthCheck{Test: []string{TestNone}}
		}},
		{"health timings only", func(s *Service) { s.Containers[0].HealthCheck = &HealthCheck{Interval: Duration(time.Second)} }},
		{"empty label value", func(s *Service) { s.Labels["empty"] = "" }},
		{"docker constraint spelling", func(s *Service) { s.Placement.Constraints = []string{"node.labels.zone == a"} }},
		{"nothing optional", func(s *Service) {
			*s = Service{Name: "min", Containers: []Container{{Name: "min", Image: "busybox"}}}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := validService()
			tt.mutate(s)
			if err := s.Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
		})
	}
}

func TestValidate_ReportsEveryProblem(t *testing.T) {
	_, err := Decode([]byte(`
name: Bad_Name
replicas: -2
containers:
  - name: web
    image: "has space"
    env: [{name: "1X", value: a}, {name: "1X", value: b}]
    ports:
      - {name: http, containerPort: 0}
      - {name: http, containerPort: 80, protocol: sctp}
      - {name: alt, containerPort: 8080}
  - name: web
    image: redis
    ports: [{name: r, containerPort: 8080}]
    healthCheck: {test: ["CMD"], tcp: {port: 80}, retries: -1}
labels: {"-bad": x}
placement: {constraints: ["node.name=n1"]}
restartPolicy: {condition: sometimes, maxAttempts: -1}
update: {parallelism: -1, order: sideways, failureAction: shrug}
`))
	want := []string{
		`name: ` + dnsLabelRule + `, not "Bad_Name"`,
		`replicas: must be 0-1000 (got -2)`,
		`containers[0].image: "has space" is not an image reference like "redis:7" or "registry.example/app@sha256:…" (lower-case repository, no spaces)`,
		`containers[0].env[0].name: "1X" is not a variable name (letters, digits and '_', not starting with a digit)`,
		`containers[0].env[1].name: "1X" is not a variable name (letters, digits and '_', not starting with a digit)`,
		`containers[0].ports[0].containerPort: must be 1-65535 (got 0)`,
		`containers[0].ports[1].protocol: must be tcp or udp (got "sctp")`,
		`containers[0].ports[1].name: duplicate port name "http" (also containers[0].ports[0])`,
		`containers[1].name: duplicate container name "web" (also containers[0])`,
		`containers[1].healthCheck: set at most one of test, http and tcp (got test and tcp)`,
		`containers[1].healthCheck.test: ["CMD", PROGRAM, ARGS...] needs a program`,
		`containers[1].healthCheck.retries: must be at least 1, or 0 for the default 3 (got -1)`,
		`containers[1].ports[0]: duplicate port 8080/tcp (also containers[0].ports[2]): the containers of a replica share one network namespace`,
		`labels["-bad"]: key must be 1-253 letters, digits, '.', '_', '/', '-', starting and ending with a letter or digit`,
		`placement.constraints[0]: constraint "node.name=n1": want FIELD==VALUE or FIELD!=VALUE (FIELD is node.name or node.label.KEY)`,
		`restartPolicy.condition: must be always, on-failure or none (got "sometimes")`,
		`restartPolicy.maxAttempts: must be 0 (unlimited) or more (got -1)`,
		`update.parallelism: must be 0 (all at once) or more (got -1)`,
		`update.order: must be stop-first or start-first (got "sideways")`,
		`update.failureAction: must be pause, continue or rollback (got "shrug")`,
	}
	wantProblems(t, err, want...)
	if got := err.Error(); got != strings.Join(want, "\n") {
		t.Errorf("Error() is not the problems, one per line:\n%s", got)
	}
}

func TestValidate_EncodedSize(t *testing.T) {
	s := validService()
	s.Containers[0].Args = []string{strings.Repeat("x", MaxSpecSize)}
	wantProblemContaining(t, s.Validate(), "spec encodes to ", "bytes, at most 262144")
}

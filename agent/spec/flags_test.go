package spec

import (
	"testing"
	"time"
)

func TestBuildFromFlags(t *testing.T) {
	s, err := BuildFromFlags(Flags{
		Name:               "web",
		Replicas:           ptr(3),
		Image:              "nginx:1.27",
		Command:            []string{"nginx", "-g", "daemon off;"},
		Entrypoint:         "/docker-entrypoint.sh",
		Env:                []string{"A=1", "B=", "A=2", "C=x=y"},
		Ports:              []string{"http:80", "8443", "53/udp", "admin:9000/tcp"},
		Constraints:        []string{"node.labels.zone == a", "node.name!=n2"},
		Labels:             []string{"com.example.team=web", "flag"},
		User:               "101:101",
		Workdir:            "/usr/share/nginx",
		ReadOnly:           true,
		Memory:             "256Mi",
		CPUs:               "0.5",
		HealthHTTP:         "/healthz:80",
		HealthInterval:     "5s",
		HealthTimeout:      "1s",
		HealthStartPeriod:  "10s",
		HealthRetries:      ptr(2),
		RestartCondition:   "on-failure",
		RestartMaxAttempts: ptr(4),
		RestartDelay:       "0s",
		UpdateParallelism:  ptr(2),
		UpdateDelay:        "10s",
		UpdateOrder:        "start-first",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := &Service{
		Name:     "web",
		Replicas: ptr(3),
		Containers: []Container{{
			Name:    "web",
			Image:   "nginx:1.27",
			Command: []string{"/docker-entrypoint.sh"},
			Args:    []string{"nginx", "-g", "daemon off;"},
			Env:     []EnvVar{{Name: "A", Value: "2"}, {Name: "B", Value: ""}, {Name: "C", Value: "x=y"}},
			Ports: []Port{
				{Name: "http", ContainerPort: 80, Protocol: ProtocolTCP},
				{Name: "p8443", ContainerPort: 8443, Protocol: ProtocolTCP},
				{Name: "p53-udp", ContainerPort: 53, Protocol: ProtocolUDP},
				{Name: "admin", ContainerPort: 9000, Protocol: ProtocolTCP},
			},
			WorkingDir:             "/usr/share/nginx",
			User:                   "101:101",
			ReadOnlyRootFilesystem: true,
			Resources:              Resources{Memory: 256 << 20, CPU: 500},
			HealthCheck: &HealthCheck{
				HTTP:        &HTTPCheck{Path: "/healthz", Port: 80},
				Interval:    Duration(5 * time.Second),
				Timeout:     Duration(time.Second),
				StartPeriod: Duration(10 * time.Second),
				Retries:     2,
			},
		}},
		Labels:        map[string]string{"com.example.team": "web", "flag": ""},
		Placement:     Placement{Constraints: []string{"node.label.zone==a", "node.name!=n2"}},
		RestartPolicy: RestartPolicy{Condition: RestartOnFailure, MaxAttempts: 4, Delay: ptr(Duration(0))},
		Update:        UpdateConfig{Parallelism: ptr(2), Delay: Duration(10 * time.Second), Order: OrderStartFirst, FailureAction: FailurePause},
	}
	if !Equal(s, want) {
		t.Errorf("got  %s\nwant %s", mustMarshal(t, s), mustMarshal(t, want))
	}
	if s.Replicas == nil || s.Update.Order == "" {
		t.Error("result is not normalized")
	}
}

func TestBuildFromFlags_Minimal(t *testing.T) {
	s, err := BuildFromFlags(Flags{Name: "box", Image: "busybox"})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"name":"box","replicas":1,"containers":[{"name":"box","image":"busybox"}],` +
		`"restartPolicy":{"condition":"always","delay":"5s"},"update":{"parallelism":1,"order":"stop-first","failureAction":"pause"}}`
	if got := string(mustMarshal(t, s)); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestBuildFromFlags_Health(t *testing.T) {
	tests := []struct {
		name string
		f    Flags
		want *HealthCheck
	}{
		{"cmd", Flags{HealthCmd: "pg_isready"}, &HealthCheck{Test: []string{"CMD-SHELL", "pg_isready"}, Interval: DefaultHealthInterval, Timeout: DefaultHealthTimeout, Retries: DefaultHealthRetries}},
		{"tcp", Flags{HealthTCP: 5432}, &HealthCheck{TCP: &TCPCheck{Port: 5432}, Interval: DefaultHealthInterval, Timeout: DefaultHealthTimeout, Retries: DefaultHealthRetries}},
		{"http path with colon", Flags{HealthHTTP: "/a:b:8080"}, &HealthCheck{HTTP: &HTTPCheck{Path: "/a:b", Port: 8080}, Interval: DefaultHealthInterval, Timeout: DefaultHealthTimeout, Retries: DefaultHealthRetries}},
		{"none", Flags{NoHealthcheck: true}, &HealthCheck{Test: []string{"NONE"}}},
		{"timings only", Flags{HealthInterval: "1s"}, &HealthCheck{Interval: Duration(time.Second), Timeout: DefaultHealthTimeout, Retries: DefaultHealthRetries}},
		{"no health flags", Flags{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.f.Name, tt.f.Image = "db", "postgres:16"
			s, err := BuildFromFlags(tt.f)
			if err != nil {
				t.Fatal(err)
			}
			want := &Service{Name: "db", Containers: []Container{{Name: "db", Image: "postgres:16", HealthCheck: tt.want}}}
			if !Equal(s, want) {
				t.Errorf("got  %s\nwant %s", mustMarshal(t, s), mustMarshal(t, want))
			}
		})
	}
}

func TestBuildFromFlags_Errors(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(f *Flags)
		want   []string
	}{
		{"no name", func(f *Flags) { f.Name = "" }, []string{"--name: required"}},
		{"bad name", func(f *Flags) { f.Name = "Web" }, []string{`--name: ` + dnsLabelRule + `, not "Web"`}},
		{"no image", func(f *Flags) { f.Image = "" }, []string{"IMAGE: required"}},
		{"bad image", func(f *Flags) { f.Image = "Nginx" },
			[]string{`IMAGE: "Nginx" is not an image reference like "redis:7" or "registry.example/app@sha256:…" (lower-case repository, no spaces)`}},
		{"negative replicas", func(f *Flags) { f.Replicas = ptr(-1) }, []string{"--replicas: must be 0-1000 (got -1)"}},
		{"env without =", func(f *Flags) { f.Env = []string{"HOME"} },
			[]string{"--env HOME: want NAME=VALUE (the CLI's own environment is not copied)"}},
		{"env bad name", func(f *Flags) { f.Env = []string{"1X=y"} },
			[]string{`--env: "1X" is not a variable name (letters, digits and '_', not starting with a digit)`}},
		{"port host mapping", func(f *Flags) { f.Ports = []string{"8080:80"} },
			[]string{"--port 8080:80: orch has no host ports (every replica has its own address): write NAME:PORT, like http:80"}},
		{"port host ip mapping", func(f *Flags) { f.Ports = []string{"127.0.0.1:8080:80"} },
			[]string{"--port 127.0.0.1:8080:80: orch has no host ports (every replica has its own address): write NAME:PORT, like http:80"}},
		{"port not a number", func(f *Flags) { f.Ports = []string{"http:web"} },
			[]string{"--port http:web: want [NAME:]PORT[/PROTO] with PORT 1-65535, like http:8080 or 53/udp"}},
		{"port out of range", func(f *Flags) { f.Ports = []string{"70000"} },
			[]string{"--port 70000: want [NAME:]PORT[/PROTO] with PORT 1-65535, like http:8080 or 53/udp"}},
		{"port protocol", func(f *Flags) { f.Ports = []string{"80/sctp"} },
			[]string{`--port 80/sctp: protocol must be tcp or udp (got "sctp")`}},
		{"port bad name", func(f *Flags) { f.Ports = []string{"Web:80"} },
			[]string{`--port: ` + portNameRule + `, not "Web"`}},
		{"port duplicate", func(f *Flags) { f.Ports = []string{"80", "http:80"} },
			[]string{"--port: duplicate port 80/tcp (also containers[0].ports[0]): the containers of a replica share one network namespace"}},
		{"constraint", func(f *Flags) { f.Constraints = []string{"zone=a"} },
			[]string{`--constraint: constraint "zone=a": want FIELD==VALUE or FIELD!=VALUE (FIELD is node.name or node.label.KEY)`}},
		{"label without key", func(f *Flags) { f.Labels = []string{"=v"} }, []string{"--label =v: want KEY=VALUE"}},
		{"label bad key", func(f *Flags) { f.Labels = []string{"-k=v"} },
			[]string{`--label: key must be 1-253 letters, digits, '.', '_', '/', '-', starting and ending with a letter or digit`}},
		{"user", func(f *Flags) { f.User = "a:b:c" }, []string{`--user: must be USER, UID, USER:GROUP or UID:GID (got "a:b:c")`}},
		{"workdir", func(f *Flags) { f.Workdir = "app" }, []string{`--workdir: must be an absolute path (got "app")`}},
		{"entrypoint NUL", func(f *Flags) { f.Entrypoint = "a\x00" }, []string{"--entrypoint: must not contain NUL"}},
		{"memory docker style", func(f *Flags) { f.Memory = "512m" },
			[]string{`--memory: "512m" is ambiguous: write 512Mi for powers of 1024 (Docker's m) or 512M for powers of 1000`}},
		{"memory zero", func(f *Flags) { f.Memory = "0" }, []string{"--memory: must be more than 0 (leave it out for no limit)"}},
		{"cpus", func(f *Flags) { f.CPUs = "half" }, []string{`--cpus: "half" is not a CPU amount like "0.5", "500m" or "2"`}},
		{"cpus zero", func(f *Flags) { f.CPUs = "0" }, []string{"--cpus: must be more than 0 (leave it out for no limit)"}},
		{"two probes", func(f *Flags) { f.HealthCmd = "true"; f.HealthTCP = 80 },
			[]string{"--health-cmd, --health-tcp: give at most one of --health-cmd, --health-http, --health-tcp and --no-healthcheck"}},
		{"no healthcheck with timings", func(f *Flags) { f.NoHealthcheck = true; f.HealthRetries = ptr(2) },
			[]string{"--no-healthcheck: conflicts with --health-interval, --health-timeout, --health-start-period, --health-start-interval and --health-retries"}},
		{"health http syntax", func(f *Flags) { f.HealthHTTP = "/healthz" }, []string{"--health-http /healthz: want PATH:PORT, like /healthz:8080"}},
		{"health http path", func(f *Flags) { f.HealthHTTP = "healthz:80" },
			[]string{`--health-http: must start with '/' and contain no spaces or control characters (got "healthz")`}},
		{"health tcp range", func(f *Flags) { f.HealthTCP = -1 }, []string{"--health-tcp: must be 1-65535 (got -1)"}},
		{"health interval", func(f *Flags) { f.HealthInterval = "10" }, []string{`--health-interval: "10" is not a duration like "10s" or "1m30s"`}},
		{"health timeout", func(f *Flags) { f.HealthTimeout = "-1s" },
			[]string{"--health-timeout: must be at least 1ms, or 0 for the default (got -1s)"}},
		{"health start period", func(f *Flags) { f.HealthStartPeriod = "-1s" }, []string{"--health-start-period: must not be negative (got -1s)"}},
		{"health retries", func(f *Flags) { f.HealthRetries = ptr(-1) },
			[]string{"--health-retries: must be at least 1, or 0 for the default 3 (got -1)"}},
		{"restart condition", func(f *Flags) { f.RestartCondition = "any" },
			[]string{`--restart-condition: must be always, on-failure or none (got "any")`}},
		{"restart attempts", func(f *Flags) { f.RestartMaxAttempts = ptr(-1) },
			[]string{"--restart-max-attempts: must be 0 (unlimited) or more (got -1)"}},
		{"restart delay", func(f *Flags) { f.RestartDelay = "soon" }, []string{`--restart-delay: "soon" is not a duration like "10s" or "1m30s"`}},
		{"update parallelism", func(f *Flags) { f.UpdateParallelism = ptr(-1) },
			[]string{"--update-parallelism: must be 0 (all at once) or more (got -1)"}},
		{"update delay", func(f *Flags) { f.UpdateDelay = "-1s" }, []string{"--update-delay: must not be negative (got -1s)"}},
		{"update order", func(f *Flags) { f.UpdateOrder = "random" },
			[]string{`--update-order: must be stop-first or start-first (got "random")`}},
		{"update failure action", func(f *Flags) { f.UpdateFailureAction = "explode" },
			[]string{`--update-failure-action: must be pause, continue or rollback (got "explode")`}},
		{"several at once", func(f *Flags) { f.Image = ""; f.Env = []string{"X"}; f.Memory = "lots" }, []string{
			"--env X: want NAME=VALUE (the CLI's own environment is not copied)",
			`--memory: "lots" is not a size like "256Mi", "1Gi", "512M" or a number of bytes`,
			"IMAGE: required",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := Flags{Name: "web", Image: "nginx"}
			tt.mutate(&f)
			s, err := BuildFromFlags(f)
			if err == nil {
				t.Fatalf("built %s", mustMarshal(t, s))
			}
			wantProblems(t, err, tt.want...)
		})
	}
}

func TestParsePortFlag(t *testing.T) {
	tests := []struct {
		in   string
		want Port
	}{
		{"80", Port{Name: "p80", ContainerPort: 80, Protocol: ProtocolTCP}},
		{"80/tcp", Port{Name: "p80", ContainerPort: 80, Protocol: ProtocolTCP}},
		{"53/udp", Port{Name: "p53-udp", ContainerPort: 53, Protocol: ProtocolUDP}},
		{"dns:53/udp", Port{Name: "dns", ContainerPort: 53, Protocol: ProtocolUDP}},
		{"http:8080", Port{Name: "http", ContainerPort: 8080, Protocol: ProtocolTCP}},
		{"65535", Port{Name: "p65535", ContainerPort: 65535, Protocol: ProtocolTCP}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParsePortFlag(tt.in)
			if err != nil || got != tt.want {
				t.Errorf("got %+v, %v; want %+v", got, err, tt.want)
			}
			if !validPortName(got.Name) {
				t.Errorf("generated name %q is invalid", got.Name)
			}
		})
	}
}

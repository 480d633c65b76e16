package spec

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Flags are the options of `orch service create`, Docker-style. They
// describe a service of one container, named like the service. String
// fields hold the flag's text as typed ("" when not given), so that
// [BuildFromFlags] can name the flag in its errors; the flag names in the
// comments are the ones it uses.
type Flags struct {
	// Name is the service's name (--name).
	Name string
	// Replicas (--replicas); nil means [DefaultReplicas].
	Replicas *int
	// Image is the IMAGE argument. Required.
	Image string
	// Command is the words after IMAGE. As with `docker run`, they
	// replace the image's CMD, so they become the container's args.
	Command []string
	// Entrypoint (--entrypoint) replaces the image's ENTRYPOINT with one
	// program, as Docker's does.
	Entrypoint string
	// Env (--env NAME=VALUE, repeatable); a later NAME wins, as in Docker.
	// The CLI's own environment is never copied: NAME alone is an error.
	Env []string
	// Secrets (--secret, repeatable), see [ParseSecretFlag].
	Secrets []string
	// Ports (--port [NAME:]PORT[/PROTO], repeatable). Without NAME the
	// port is named "p" PORT, plus "-udp" for udp: "p8080", "p53-udp".
	// There are no host ports: each replica has its own address.
	Ports []string
	// Constraints (--constraint, repeatable), see [ParseConstraint].
	Constraints []string
	// Labels (--label KEY=VALUE or KEY for an empty value, repeatable).
	Labels []string
	// User (--user) is USER, UID, USER:GROUP or UID:GID.
	User string
	// Workdir (--workdir) is an absolute path.
	Workdir string
	// ReadOnly (--read-only) mounts the root file system read-only.
	ReadOnly bool
	// Memory (--memory) is a size such as "256Mi"; see [ByteSize].
	Memory string
	// CPUs (--cpus) is a CPU amount such as "0.5"; see [MilliCPU].
	CPUs string
	// HealthCmd (--health-cmd) is a shell command: ["CMD-SHELL", cmd].
	HealthCmd string
	// HealthHTTP (--health-http PATH:PORT) probes with HTTP GET.
	HealthHTTP string
	// HealthTCP (--health-tcp PORT) probes by connecting; 0 means unset.
	HealthTCP int
	// HealthInterval, HealthTimeout, HealthStartPeriod and
	// HealthStartInterval (--health-interval, --health-timeout,
	// --health-start-period, --health-start-interval) are Go durations
	// such as "10s".
	HealthInterval, HealthTimeout, HealthStartPeriod, HealthStartInterval string
	// HealthRetries (--health-retries); nil means the default.
	HealthRetries *int
	// NoHealthcheck (--no-healthcheck) disables the image's HEALTHCHECK.
	NoHealthcheck bool
	// RestartCondition (--restart-condition) is always, on-failure or none.
	RestartCondition string
	// RestartMaxAttempts (--restart-max-attempts); 0 means unlimited.
	RestartMaxAttempts *int
	// RestartDelay (--restart-delay) is a duration.
	RestartDelay string
	// UpdateParallelism (--update-parallelism); 0 means all at once.
	UpdateParallelism *int
	// UpdateDelay (--update-delay) is a duration.
	UpdateDelay string
	// UpdateOrder (--update-order) is stop-first or start-first.
	UpdateOrder string
	// UpdateFailureAction (--update-failure-action) is pause, continue or
	// rollback.
	UpdateFailureAction string
}

// createFlagPaths maps spec paths of a one-container service to the
// create flags that set them, so that problems name what the user typed.
var createFlagPaths = []struct{ path, flag string }{
	{"name", "--name"},
	{"replicas", "--replicas"},
	{"containers[0].name", "--name"},
	{"containers[0].image", "IMAGE"},
	{"containers[0].command", "--entrypoint"},
	{"containers[0].args", "COMMAND"},
	{"containers[0].env", "--env"},
	{"containers[0].ports", "--port"},
	{"containers[0].secrets", "--secret"},
	{"containers[0].user", "--user"},
	{"containers[0].workingDir", "--workdir"},
	{"containers[0].healthCheck.test", "--health-cmd"},
	{"containers[0].healthCheck.http", "--health-http"},
	{"containers[0].healthCheck.tcp", "--health-tcp"},
	{"containers[0].healthCheck.interval", "--health-interval"},
	{"containers[0].healthCheck.timeout", "--health-timeout"},
	{"containers[0].healthCheck.startPeriod", "--health-start-period"},
	{"containers[0].healthCheck.startInterval", "--health-start-interval"},
	{"containers[0].healthCheck.retries", "--health-retries"},
	{"labels", "--label"},
	{"placement.constraints", "--constraint"},
	{"restartPolicy.condition", "--restart-condition"},
	{"restartPolicy.maxAttempts", "--restart-max-attempts"},
	{"restartPolicy.delay", "--restart-delay"},
	{"update.parallelism", "--update-parallelism"},
	{"update.delay", "--update-delay"},
	{"update.order", "--update-order"},
	{"update.failureAction", "--update-failure-action"},
}

// BuildFromFlags builds and validates a one-container service from
// Docker-style flags. The container is named like the service. Problems
// name the flag (or IMAGE, COMMAND) that caused them, in a *SpecError.
func BuildFromFlags(f Flags) (*Service, error) {
	var ps problems
	c := Container{
		Name:                   f.Name,
		Image:                  f.Image,
		Args:                   slices.Clone(f.Command),
		User:                   f.User,
		WorkingDir:             f.Workdir,
		ReadOnlyRootFilesystem: f.ReadOnly,
	}
	if f.Entrypoint != "" {
		c.Command = []string{f.Entrypoint}
	}
	for _, e := range f.Env {
		ev, err := parseEnvFlag(e)
		if err != nil {
			ps.add(flagPath("--env", e), "%v", err)
			continue
		}
		c.Env = setEnv(c.Env, ev)
	}
	for _, p := range f.Ports {
		port, err := ParsePortFlag(p)
		if err != nil {
			ps.add(flagPath("--port", p), "%v", err)
			continue
		}
		c.Ports = append(c.Ports, port)
	}
	for _, sf := range f.Secrets {
		sr, err := ParseSecretFlag(sf)
		if err != nil {
			ps.add(flagPath("--secret", sf), "%v", err)
			continue
		}
		c.Secrets = append(c.Secrets, sr)
	}
	if f.Memory != "" {
		if v, err := ParseByteSize(f.Memory); err != nil {
			ps.add("--memory", "%v", err)
		} else if v == 0 {
			ps.add("--memory", "must be more than 0 (leave it out for no limit)")
		} else {
			c.Resources.Memory = v
		}
	}
	if f.CPUs != "" {
		if v, err := ParseCPU(f.CPUs); err != nil {
			ps.add("--cpus", "%v", err)
		} else if v == 0 {
			ps.add("--cpus", "must be more than 0 (leave it out for no limit)")
		} else {
			c.Resources.CPU = v
		}
	}
	c.HealthCheck = f.healthCheck(&ps)

	s := &Service{
		Name:       f.Name,
		Replicas:   clonePtr(f.Replicas),
		Containers: []Container{c},
	}
	for _, l := range f.Labels {
		k, v, _ := strings.Cut(l, "=")
		if k == "" {
			ps.add(flagPath("--label", l), "want KEY=VALUE")
			continue
		}
		if s.Labels == nil {
			s.Labels = map[string]string{}
		}
		s.Labels[k] = v
	}
	for _, cs := range f.Constraints {
		pc, err := ParseConstraint(cs)
		if err != nil {
			ps.add("--constraint", "%v", err)
			continue
		}
		s.Placement.Constraints = append(s.Placement.Constraints, pc.String())
	}
	s.RestartPolicy = RestartPolicy{
		Condition:   RestartCondition(f.RestartCondition),
		MaxAttempts: deref(f.RestartMaxAttempts),
	}
	if f.RestartDelay != "" {
		d := parseDurationFlag("--restart-delay", f.RestartDelay, &ps)
		s.RestartPolicy.Delay = &d
	}
	s.Update = UpdateConfig{
		Parallelism:   clonePtr(f.UpdateParallelism),
		Delay:         parseDurationFlag("--update-delay", f.UpdateDelay, &ps),
		Order:         UpdateOrder(f.UpdateOrder),
		FailureAction: FailureAction(f.UpdateFailureAction),
	}
	s.Normalize()
	if err := s.Validate(); err != nil {
		ps = append(ps, flagProblems(err, createFlagPaths)...)
	}
	if err := ps.err(); err != nil {
		return nil, err
	}
	return s, nil
}

// healthCheck builds the container's health check from the health flags;
// nil if none is given.
func (f Flags) healthCheck(ps *problems) *HealthCheck {
	var probes []string
	h := &HealthCheck{}
	if f.HealthCmd != "" {
		probes = append(probes, "--health-cmd")
		h.Test = []string{TestCmdShell, f.HealthCmd}
	}
	if f.HealthHTTP != "" {
		probes = append(probes, "--health-http")
		i := strings.LastIndexByte(f.HealthHTTP, ':')
		path, port := f.HealthHTTP[:max(i, 0)], f.HealthHTTP[i+1:]
		n, err := strconv.Atoi(port)
		if i < 0 || err != nil {
			ps.add(flagPath("--health-http", f.HealthHTTP), "want PATH:PORT, like /healthz:8080")
		} else {
			h.HTTP = &HTTPCheck{Path: path, Port: n}
		}
	}
	if f.HealthTCP != 0 {
		probes = append(probes, "--health-tcp")
		h.TCP = &TCPCheck{Port: f.HealthTCP}
	}
	if f.NoHealthcheck {
		probes = append(probes, "--no-healthcheck")
		h.Test = []string{TestNone}
	}
	if len(probes) > 1 {
		ps.add(strings.Join(probes, ", "), "give at most one of --health-cmd, --health-http, --health-tcp and --no-healthcheck")
		return nil // said once, not again by Validate
	}
	h.Interval = parseDurationFlag("--health-interval", f.HealthInterval, ps)
	h.Timeout = parseDurationFlag("--health-timeout", f.HealthTimeout, ps)
	h.StartPeriod = parseDurationFlag("--health-start-period", f.HealthStartPeriod, ps)
	h.StartInterval = parseDurationFlag("--health-start-interval", f.HealthStartInterval, ps)
	h.Retries = deref(f.HealthRetries)
	timed := f.HealthInterval != "" || f.HealthTimeout != "" || f.HealthStartPeriod != "" || f.HealthStartInterval != "" || f.HealthRetries != nil
	if f.NoHealthcheck && timed {
		ps.add("--no-healthcheck", "conflicts with --health-interval, --health-timeout, --health-start-period, --health-start-interval and --health-retries")
	}
	if len(probes) == 0 && !timed {
		return nil
	}
	return h
}

// ParsePortFlag parses [NAME:]PORT[/PROTO], as given to --port. Without
// NAME the port is named "p"+PORT, plus "-udp" for udp.
func ParsePortFlag(s string) (Port, error) {
	rest, proto, hasProto := strings.Cut(s, "/")
	p := Port{Protocol: ProtocolTCP}
	if hasProto {
		p.Protocol = Protocol(proto)
		if p.Protocol != ProtocolTCP && p.Protocol != ProtocolUDP {
			return Port{}, fmt.Errorf("protocol must be tcp or udp (got %q)", proto)
		}
	}
	name, num, named := strings.Cut(rest, ":")
	if !named {
		name, num = "", rest
	}
	if named && (strings.Contains(num, ":") || strings.Trim(name, "0123456789.[]") == "") {
		return Port{}, fmt.Errorf("orch has no host ports (every replica has its own address): write NAME:PORT, like http:80")
	}
	n, err := strconv.Atoi(num)
	if err != nil || n < 1 || n > 65535 {
		return Port{}, fmt.Errorf("want [NAME:]PORT[/PROTO] with PORT 1-65535, like http:8080 or 53/udp")
	}
	p.ContainerPort = n
	p.Name = name
	if !named {
		p.Name = "p" + strconv.Itoa(n)
		if p.Protocol == ProtocolUDP {
			p.Name += "-udp"
		}
	}
	return p, nil
}

// ParseSecretFlag parses Docker's --secret syntax: NAME, or
// source=NAME[,target=FILE][,uid=N][,gid=N].
func ParseSecretFlag(s string) (SecretRef, error) {
	if !strings.Contains(s, "=") {
		return SecretRef{Name: s}, nil
	}
	var sr SecretRef
	for part := range strings.SplitSeq(s, ",") {
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return SecretRef{}, fmt.Errorf("%q is not KEY=VALUE (want source=NAME[,target=FILE][,uid=N][,gid=N])", part)
		}
		switch k {
		case "source", "src":
			sr.Name = v
		case "target":
			sr.Target = v
		case "uid", "gid":
			n, err := strconv.Atoi(v)
			if err != nil {
				return SecretRef{}, fmt.Errorf("%s=%q is not a number", k, v)
			}
			if k == "uid" {
				sr.UID = &n
			} else {
				sr.GID = &n
			}
		default:
			return SecretRef{}, fmt.Errorf("unknown key %q (want source, target, uid or gid)", k)
		}
	}
	if sr.Name == "" {
		return SecretRef{}, fmt.Errorf("source=NAME is required")
	}
	return sr, nil
}

func parseEnvFlag(s string) (EnvVar, error) {
	name, value, ok := strings.Cut(s, "=")
	if !ok {
		return EnvVar{}, fmt.Errorf("want NAME=VALUE (the CLI's own environment is not copied)")
	}
	return EnvVar{Name: name, Value: value}, nil
}

// setEnv sets e in env: in place if its name is there, else at the end.
func setEnv(env []EnvVar, e EnvVar) []EnvVar {
	for i := range env {
		if env[i].Name == e.Name {
			env[i] = e
			return env
		}
	}
	return append(env, e)
}

// parseDurationFlag parses a duration flag; "" is zero.
func parseDurationFlag(flag, s string, ps *problems) Duration {
	if s == "" {
		return 0
	}
	d, err := ParseDuration(s)
	if err != nil {
		ps.add(flag, "%v", err)
	}
	return d
}

// flagPath names a flag with the value that has a problem.
func flagPath(flag, value string) string {
	if value == "" || strings.ContainsAny(value, " \t\n\"") {
		value = strconv.Quote(value)
	}
	return flag + " " + value
}

// flagProblems returns the problems of a *SpecError with spec paths
// replaced by the flags in table; paths without a flag are kept.
func flagProblems(err error, table []struct{ path, flag string }) []Problem {
	se, ok := err.(*SpecError)
	if !ok {
		return []Problem{{Message: err.Error()}}
	}
	var out []Problem
	for _, p := range se.Problems {
		for _, t := range table {
			if rest, ok := strings.CutPrefix(p.Path, t.path); ok && (rest == "" || rest[0] == '.' || rest[0] == '[') {
				p.Path = t.flag
				break
			}
		}
		// The service and its container share --name: say it once.
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

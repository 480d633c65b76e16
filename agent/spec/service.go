package spec

import (
	"maps"
	"slices"
	"time"
)

// Defaults that [Service.Normalize] writes into a spec. Health check
// defaults are Docker's.
const (
	DefaultReplicas          = 1
	DefaultProtocol          = ProtocolTCP
	DefaultRestartCondition  = RestartAlways
	DefaultRestartDelay      = Duration(5 * time.Second)
	DefaultUpdateParallelism = 1
	DefaultUpdateOrder       = OrderStopFirst
	DefaultFailureAction     = FailurePause
	DefaultHealthInterval    = Duration(30 * time.Second)
	DefaultHealthTimeout     = Duration(30 * time.Second)
	DefaultHealthRetries     = 3
)

// Limits on a spec. They are sanity bounds against typos and hostile
// input, not capacity promises.
const (
	// MaxSpecSize bounds a spec's encoding, both the bytes given to
	// [Decode] and the canonical bytes of [Service.Marshal], so that every
	// stored spec decodes again.
	MaxSpecSize = 256 << 10
	// MaxReplicas bounds Service.Replicas: placement work grows with
	// replicas × members.
	MaxReplicas = 1000
	// MaxLabelValue is the longest label value in bytes.
	MaxLabelValue = 1024
)

// Service is a group of one or more containers that run together as one
// replica and share one network namespace, run Replicas times across the
// cluster. Its JSON form (camelCase keys) is what users write and what the
// API and the replicated store carry.
//
// A Service is plain data: it is not safe for concurrent mutation. Give
// other goroutines a [Service.Clone].
type Service struct {
	// Name names the service in DNS: a DNS label (a-z, 0-9, '-', at most 63
	// characters, starting with a letter). Required.
	Name string `json:"name"`
	// Replicas is how many copies run. Nil means [DefaultReplicas]; 0 is
	// valid (the service exists but runs nothing). At most [MaxReplicas].
	Replicas *int `json:"replicas,omitempty"`
	// Containers run together in each replica, sharing its network
	// namespace (so their ports must not clash). At least one.
	Containers []Container `json:"containers"`
	// Labels are free-form metadata (Docker label keys, values up to
	// [MaxLabelValue] bytes).
	Labels map[string]string `json:"labels,omitempty"`
	// Placement restricts which nodes run replicas.
	Placement Placement `json:"placement,omitzero"`
	// RestartPolicy says when a stopped container is started again.
	RestartPolicy RestartPolicy `json:"restartPolicy,omitzero"`
	// Update says how a changed spec rolls out over running replicas.
	Update UpdateConfig `json:"update,omitzero"`
}

// Container is one container of a replica.
type Container struct {
	// Name is a DNS label, unique within the service. Required.
	Name string `json:"name"`
	// Image is an image reference such as "redis:3.2-alpine" or
	// "registry.example/app@sha256:…". Required.
	Image string `json:"image"`
	// Command replaces the image's ENTRYPOINT; empty keeps it.
	Command []string `json:"command,omitempty"`
	// Args replaces the image's CMD; empty keeps it.
	Args []string `json:"args,omitempty"`
	// Env adds to the image's environment. Names are unique.
	Env []EnvVar `json:"env,omitempty"`
	// Ports are the ports the container listens on, announced in DNS SRV
	// records. There is no host publishing: every replica has its own
	// overlay address.
	Ports []Port `json:"ports,omitempty"`
	// WorkingDir replaces the image's working directory; absolute.
	WorkingDir string `json:"workingDir,omitempty"`
	// User runs the process as USER, UID, USER:GROUP or UID:GID.
	User string `json:"user,omitempty"`
	// ReadOnlyRootFilesystem mounts the image's root file system read-only.
	ReadOnlyRootFilesystem bool `json:"readOnlyRootFilesystem,omitempty"`
	// Resources limits the container; zero fields mean no limit.
	Resources Resources `json:"resources,omitzero"`
	// HealthCheck probes the container; nil means the image's own
	// HEALTHCHECK, if any.
	HealthCheck *HealthCheck `json:"healthCheck,omitempty"`
	// Secrets are cluster secrets (`orch secret create`) given to the
	// container as files under [SecretsDir], on tmpfs, mode 0400.
	Secrets []SecretRef `json:"secrets,omitempty"`
}

// SecretsDir is where a container finds its secrets' files.
const SecretsDir = "/run/secrets"

// SecretRef gives a container one cluster secret as a file.
type SecretRef struct {
	// Name names the secret. Required; it must exist when the service is
	// created or updated.
	Name string `json:"name"`
	// Target is the file's name in [SecretsDir]: one path element. Empty
	// means Name.
	Target string `json:"target,omitempty"`
	// UID and GID own the file. Nil means the container's user when it is
	// numeric (UID or UID:GID), else 0: the file's mode is 0400, so a
	// container that runs as a named non-root user needs them set.
	UID *int `json:"uid,omitempty"`
	GID *int `json:"gid,omitempty"`
}

// EnvSource names where an environment variable's value comes from.
type EnvSource struct {
	// Secret names a cluster secret whose value becomes the variable's.
	Secret string `json:"secret"`
}

// EnvVar is one environment variable.
type EnvVar struct {
	// Name is a portable variable name: letters, digits and '_', not
	// starting with a digit.
	Name string `json:"name"`
	// Value may be empty; it must not contain NUL.
	Value string `json:"value"`
	// ValueFrom takes the value from a cluster secret at start instead;
	// Value must then be empty. This is the weaker choice: the value sits
	// in the container's environment, readable wherever the process's
	// environment is (/proc, containerd's metadata, crash dumps). Prefer
	// [Container.Secrets].
	ValueFrom *EnvSource `json:"valueFrom,omitempty"`
}

// Protocol is a port's transport protocol.
type Protocol string

// Protocols.
const (
	ProtocolTCP Protocol = "tcp"
	ProtocolUDP Protocol = "udp"
)

// Port is a port a container listens on.
type Port struct {
	// Name names the port in DNS SRV records (_NAME._PROTO.SERVICE): at
	// most 15 characters a-z, 0-9 and '-', with a letter, no leading,
	// trailing or double '-' (IANA service name syntax). Unique within
	// the service. Required.
	Name string `json:"name"`
	// ContainerPort is 1-65535. Port and protocol are unique within the
	// service, since its containers share one network namespace.
	ContainerPort int `json:"containerPort"`
	// Protocol is tcp or udp; empty means [DefaultProtocol].
	Protocol Protocol `json:"protocol,omitempty"`
}

// Resources limits a container. Zero means no limit.
type Resources struct {
	// Memory is the memory limit, written "256Mi", "1Gi", "512M" or in
	// bytes.
	Memory ByteSize `json:"memory,omitempty"`
	// CPU is the CPU limit, written "0.5", "500m" or "2" (cores).
	CPU MilliCPU `json:"cpu,omitempty"`
}

// Health check test kinds, the first word of [HealthCheck.Test] (Docker's).
const (
	// TestCmd runs the remaining words as a command: ["CMD", "pg_isready"].
	TestCmd = "CMD"
	// TestCmdShell runs one shell command line: ["CMD-SHELL", "curl -f …"].
	TestCmdShell = "CMD-SHELL"
	// TestNone disables the image's HEALTHCHECK: ["NONE"].
	TestNone = "NONE"
)

// HealthCheck says how a container is probed. At most one of Test, HTTP
// and TCP is set; with none, the image's HEALTHCHECK test runs with these
// timings (Docker's behaviour).
type HealthCheck struct {
	// Test is Docker's form: ["CMD", argv…], ["CMD-SHELL", line] or
	// ["NONE"].
	Test []string `json:"test,omitempty"`
	// HTTP probes with GET; any 2xx or 3xx status is healthy.
	HTTP *HTTPCheck `json:"http,omitempty"`
	// TCP probes by connecting.
	TCP *TCPCheck `json:"tcp,omitempty"`
	// Interval is the time between probes; zero means
	// [DefaultHealthInterval]. At least 1ms when set.
	Interval Duration `json:"interval,omitempty"`
	// Timeout bounds one probe; zero means [DefaultHealthTimeout]. At
	// least 1ms when set.
	Timeout Duration `json:"timeout,omitempty"`
	// StartPeriod is a grace period after start in which failures do not
	// count. Zero (the default) means none.
	StartPeriod Duration `json:"startPeriod,omitempty"`
	// StartInterval is the time between probes during the start period,
	// until the first success (Docker's --health-start-interval): a new
	// replica is found healthy, and announced in DNS, soon after it is
	// ready. Zero means Docker's default, 5s, or Interval if shorter. At
	// least 1ms when set; it needs a StartPeriod.
	StartInterval Duration `json:"startInterval,omitempty"`
	// Retries is how many consecutive failures make the container
	// unhealthy; zero means [DefaultHealthRetries].
	Retries int `json:"retries,omitempty"`
}

// HTTPCheck probes GET http://TASK-IP:Port/Path.
type HTTPCheck struct {
	// Path starts with '/'.
	Path string `json:"path"`
	// Port is 1-65535, and not a port the service declares as udp only.
	Port int `json:"port"`
}

// TCPCheck probes by connecting to TASK-IP:Port.
type TCPCheck struct {
	// Port is 1-65535, and not a port the service declares as udp only.
	Port int `json:"port"`
}

// Placement restricts which nodes run a service's replicas.
type Placement struct {
	// Constraints must all hold on a node for it to run a replica; see
	// [ParseConstraint] for the syntax. [Service.Normalize] rewrites them
	// in canonical form.
	Constraints []string `json:"constraints,omitempty"`
}

// RestartCondition says when a stopped container is restarted (Docker's
// restart policy).
type RestartCondition string

// Restart conditions.
const (
	// RestartAlways restarts whenever the container stops.
	RestartAlways RestartCondition = "always"
	// RestartOnFailure restarts when the container exits non-zero.
	RestartOnFailure RestartCondition = "on-failure"
	// RestartNone never restarts.
	RestartNone RestartCondition = "none"
)

// RestartPolicy says when and how often a stopped container is restarted.
type RestartPolicy struct {
	// Condition is always, on-failure or none; empty means
	// [DefaultRestartCondition].
	Condition RestartCondition `json:"condition,omitempty"`
	// MaxAttempts bounds consecutive restarts; 0 means unlimited.
	MaxAttempts int `json:"maxAttempts,omitempty"`
	// Delay is the wait before a restart; nil means
	// [DefaultRestartDelay]. A pointer, so that an explicit 0s survives.
	Delay *Duration `json:"delay,omitempty"`
}

// UpdateOrder says whether an update stops the old replica before
// starting the new one.
type UpdateOrder string

// Update orders (Docker Swarm's).
const (
	OrderStopFirst  UpdateOrder = "stop-first"
	OrderStartFirst UpdateOrder = "start-first"
)

// FailureAction says what a rolling update does when a new replica fails.
type FailureAction string

// Failure actions (Docker Swarm's).
const (
	FailurePause    FailureAction = "pause"
	FailureContinue FailureAction = "continue"
	FailureRollback FailureAction = "rollback"
)

// UpdateConfig says how a changed spec rolls out (Docker Swarm's update
// config).
type UpdateConfig struct {
	// Parallelism is how many replicas are replaced at once; nil means
	// [DefaultUpdateParallelism], 0 means all at once.
	Parallelism *int `json:"parallelism,omitempty"`
	// Delay is the wait between batches; zero means none.
	Delay Duration `json:"delay,omitempty"`
	// Order is stop-first or start-first; empty means
	// [DefaultUpdateOrder].
	Order UpdateOrder `json:"order,omitempty"`
	// FailureAction is pause, continue or rollback; empty means
	// [DefaultFailureAction].
	FailureAction FailureAction `json:"failureAction,omitempty"`
}

// Normalize fills every default into s, so that the stored and inspected
// spec is explicit, and rewrites valid placement constraints in canonical
// form. It never changes a value that is set, valid or not, so Validate
// still sees what the user wrote. It is idempotent. [Decode] calls it.
func (s *Service) Normalize() {
	if s.Replicas == nil {
		s.Replicas = ptr(DefaultReplicas)
	}
	for i := range s.Containers {
		c := &s.Containers[i]
		for j := range c.Ports {
			if c.Ports[j].Protocol == "" {
				c.Ports[j].Protocol = DefaultProtocol
			}
		}
		for j := range c.Secrets {
			if c.Secrets[j].Target == "" {
				c.Secrets[j].Target = c.Secrets[j].Name
			}
		}
		if h := c.HealthCheck; h != nil && h.probes() {
			if h.Interval == 0 {
				h.Interval = DefaultHealthInterval
			}
			if h.Timeout == 0 {
				h.Timeout = DefaultHealthTimeout
			}
			if h.Retries == 0 {
				h.Retries = DefaultHealthRetries
			}
		}
	}
	for i, c := range s.Placement.Constraints {
		if pc, err := ParseConstraint(c); err == nil {
			s.Placement.Constraints[i] = pc.String()
		}
	}
	if s.RestartPolicy.Condition == "" {
		s.RestartPolicy.Condition = DefaultRestartCondition
	}
	if s.RestartPolicy.Delay == nil {
		s.RestartPolicy.Delay = ptr(DefaultRestartDelay)
	}
	if s.Update.Parallelism == nil {
		s.Update.Parallelism = ptr(DefaultUpdateParallelism)
	}
	if s.Update.Order == "" {
		s.Update.Order = DefaultUpdateOrder
	}
	if s.Update.FailureAction == "" {
		s.Update.FailureAction = DefaultFailureAction
	}
}

// probes reports whether h runs a probe, its own or the image's test, as
// opposed to disabling health checks with ["NONE"]. The timings of a
// probing check are always explicit after Normalize: the image's
// HEALTHCHECK timings are never inherited.
func (h *HealthCheck) probes() bool {
	return len(h.Test) == 0 || h.Test[0] != TestNone || h.HTTP != nil || h.TCP != nil
}

// SecretNames returns the secrets s uses, as files or as environment
// values, sorted, each once.
func (s *Service) SecretNames() []string {
	var names []string
	for _, c := range s.Containers {
		for _, sr := range c.Secrets {
			names = append(names, sr.Name)
		}
		for _, e := range c.Env {
			if e.ValueFrom != nil {
				names = append(names, e.ValueFrom.Secret)
			}
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// Clone returns a deep copy of s; nil for nil.
func (s *Service) Clone() *Service {
	if s == nil {
		return nil
	}
	c := *s
	c.Replicas = clonePtr(s.Replicas)
	c.Labels = maps.Clone(s.Labels)
	c.Placement.Constraints = slices.Clone(s.Placement.Constraints)
	c.RestartPolicy.Delay = clonePtr(s.RestartPolicy.Delay)
	c.Update.Parallelism = clonePtr(s.Update.Parallelism)
	c.Containers = slices.Clone(s.Containers)
	for i := range c.Containers {
		c.Containers[i] = c.Containers[i].clone()
	}
	return &c
}

func (c Container) clone() Container {
	c.Command = slices.Clone(c.Command)
	c.Args = slices.Clone(c.Args)
	c.Env = slices.Clone(c.Env)
	for i := range c.Env {
		c.Env[i].ValueFrom = clonePtr(c.Env[i].ValueFrom)
	}
	c.Ports = slices.Clone(c.Ports)
	c.Secrets = slices.Clone(c.Secrets)
	for i := range c.Secrets {
		c.Secrets[i].UID = clonePtr(c.Secrets[i].UID)
		c.Secrets[i].GID = clonePtr(c.Secrets[i].GID)
	}
	if h := c.HealthCheck; h != nil {
		hc := *h
		hc.Test = slices.Clone(h.Test)
		hc.HTTP = clonePtr(h.HTTP)
		hc.TCP = clonePtr(h.TCP)
		c.HealthCheck = &hc
	}
	return c
}

func ptr[T any](v T) *T { return &v }

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	return ptr(*p)
}

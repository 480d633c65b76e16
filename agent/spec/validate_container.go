package spec

import (
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"
)

var (
	// imageRE is the Docker/OCI reference grammar of
	// github.com/distribution/reference: [HOST[:PORT]/]PATH[:TAG][@DIGEST].
	imageRE = func() *regexp.Regexp {
		const (
			alnum     = `[a-z0-9]+`
			separator = `(?:[._]|__|[-]+)`
			component = alnum + `(?:` + separator + alnum + `)*`
			hostPart  = `(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])`
			host      = `(?:` + hostPart + `(?:\.` + hostPart + `)*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?`
			tag       = `[\w][\w.-]{0,127}`
			digest    = `[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}`
		)
		return regexp.MustCompile(`^((?:` + host + `/)?` + component + `(?:/` + component + `)*)(?::` + tag + `)?(?:@` + digest + `)?$`)
	}()
	// secretNameRE is Docker's secret name rule.
	secretNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)
	// envNameRE is a portable environment variable name.
	envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	// portNameRE is an IANA service name, as Kubernetes checks port names;
	// portNameRule adds: at least one letter, no "--".
	portNameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,13}[a-z0-9])?$`)
	// userRE is USER, UID, USER:GROUP or UID:GID.
	userRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,31})?$`)
)

// SecretNameRule says what [ValidSecretName] accepts.
const SecretNameRule = "must be 1-64 characters A-Z, a-z, 0-9, '_', '.' and '-', starting with a letter or digit"

// ValidSecretName reports whether s can name a secret. A valid name is also
// a safe file name: no '/', and never "." or "..".
func ValidSecretName(s string) bool { return secretNameRE.MatchString(s) }

// maxImageName is the longest repository name (distribution/reference).
const maxImageName = 255

const portNameRule = "must be 1-15 characters a-z, 0-9 and '-', with at least one letter, not starting or ending with '-' and without \"--\""

func validPortName(s string) bool {
	return portNameRE.MatchString(s) && strings.ContainsAny(s, "abcdefghijklmnopqrstuvwxyz") && !strings.Contains(s, "--")
}

// validImage reports whether s is a plausible image reference.
func validImage(s string) bool {
	m := imageRE.FindStringSubmatch(s)
	return m != nil && len(m[1]) <= maxImageName
}

// validUser reports whether s is USER, UID, USER:GROUP or UID:GID, with
// numeric IDs that fit 32 bits.
func validUser(s string) bool {
	if !userRE.MatchString(s) {
		return false
	}
	for part := range strings.SplitSeq(s, ":") {
		if part[0] >= '0' && part[0] <= '9' && strings.Trim(part, "0123456789") == "" {
			if _, err := strconv.ParseUint(part, 10, 32); err != nil {
				return false
			}
		}
	}
	return true
}

type portKey struct {
	port  int
	proto Protocol
}

func (s *Service) validateContainers(ps *problems) {
	if len(s.Containers) == 0 {
		ps.add("containers", "at least one container is required")
		return
	}
	names := map[string]string{}     // container name → its path
	portNames := map[string]string{} // port name → its path
	ports := map[portKey]string{}    // port and protocol → its path
	for i := range s.Containers {
		c := &s.Containers[i]
		p := index("containers", i)
		if c.Name != "" && dnsLabelRE.MatchString(c.Name) {
			if first, dup := names[c.Name]; dup {
				ps.add(field(p, "name"), "duplicate container name %q (also %s)", c.Name, first)
			} else {
				names[c.Name] = p
			}
		}
		c.validate(p, ps)
		for j, port := range c.Ports {
			pp := index(field(p, "ports"), j)
			if validPortName(port.Name) {
				if first, dup := portNames[port.Name]; dup {
					ps.add(field(pp, "name"), "duplicate port name %q (also %s)", port.Name, first)
				} else {
					portNames[port.Name] = pp
				}
			}
			proto := port.Protocol
			if proto == "" {
				proto = DefaultProtocol
			}
			k := portKey{port.ContainerPort, proto}
			if first, dup := ports[k]; dup && port.ContainerPort > 0 {
				ps.add(pp, "duplicate port %d/%s (also %s): the containers of a replica share one network namespace", k.port, k.proto, first)
			} else if !dup {
				ports[k] = pp
			}
		}
	}
	// A health probe connects over TCP, so a port the service declares for
	// UDP alone is a mistake worth catching.
	for i, c := range s.Containers {
		h := c.HealthCheck
		if h == nil {
			continue
		}
		p := field(index("containers", i), "healthCheck")
		check := func(path string, port int) {
			_, tcp := ports[portKey{port, ProtocolTCP}]
			if udp, ok := ports[portKey{port, ProtocolUDP}]; ok && !tcp {
				ps.add(path, "port %d is declared udp only (%s); a probe needs a tcp port", port, udp)
			}
		}
		if h.HTTP != nil {
			check(field(p, "http.port"), h.HTTP.Port)
		}
		if h.TCP != nil {
			check(field(p, "tcp.port"), h.TCP.Port)
		}
	}
}

// validate checks c alone; p is its path.
func (c *Container) validate(p string, ps *problems) {
	switch {
	case c.Name == "":
		ps.add(field(p, "name"), "required")
	case !dnsLabelRE.MatchString(c.Name):
		ps.add(field(p, "name"), "%s, not %q", dnsLabelRule, c.Name)
	}
	switch {
	case c.Image == "":
		ps.add(field(p, "image"), "required")
	case !validImage(c.Image):
		ps.add(field(p, "image"), "%q is not an image reference like \"redis:7\" or \"registry.example/app@sha256:…\" (lower-case repository, no spaces)", c.Image)
	}
	for j, w := range c.Command {
		if j == 0 && w == "" {
			ps.add(index(field(p, "command"), j), "must not be empty: it names the program")
		}
		if strings.ContainsRune(w, 0) {
			ps.add(index(field(p, "command"), j), "must not contain NUL")
		}
	}
	for j, w := range c.Args {
		if strings.ContainsRune(w, 0) {
			ps.add(index(field(p, "args"), j), "must not contain NUL")
		}
	}
	env := map[string]string{}
	for j, e := range c.Env {
		ep := index(field(p, "env"), j)
		switch {
		case e.Name == "":
			ps.add(field(ep, "name"), "required")
		case !envNameRE.MatchString(e.Name):
			ps.add(field(ep, "name"), "%q is not a variable name (letters, digits and '_', not starting with a digit)", e.Name)
		default:
			if first, dup := env[e.Name]; dup {
				ps.add(field(ep, "name"), "duplicate variable %q (also %s)", e.Name, first)
			} else {
				env[e.Name] = ep
			}
		}
		if strings.ContainsRune(e.Value, 0) {
			ps.add(field(ep, "value"), "must not contain NUL")
		}
		if e.ValueFrom != nil {
			switch {
			case e.Value != "":
				ps.add(field(ep, "valueFrom"), "give value or valueFrom, not both")
			case e.ValueFrom.Secret == "":
				ps.add(field(field(ep, "valueFrom"), "secret"), "required: the secret that holds the value")
			case !ValidSecretName(e.ValueFrom.Secret):
				ps.add(field(field(ep, "valueFrom"), "secret"), "%s, not %q", SecretNameRule, e.ValueFrom.Secret)
			}
		}
	}
	targets := map[string]string{}
	for j, sr := range c.Secrets {
		sp := index(field(p, "secrets"), j)
		switch {
		case sr.Name == "":
			ps.add(field(sp, "name"), "required")
		case !ValidSecretName(sr.Name):
			ps.add(field(sp, "name"), "%s, not %q", SecretNameRule, sr.Name)
		}
		switch {
		case sr.Target == "":
		case !ValidSecretName(sr.Target):
			// One plain file name: a secret never lands outside
			// /run/secrets.
			ps.add(field(sp, "target"), "must be a file name in %s (%s), not %q", SecretsDir, SecretNameRule, sr.Target)
		default:
			if first, dup := targets[sr.Target]; dup {
				ps.add(field(sp, "target"), "duplicate file %q (also %s)", sr.Target, first)
			} else {
				targets[sr.Target] = sp
			}
		}
		for _, id := range []struct {
			name string
			v    *int
		}{{"uid", sr.UID}, {"gid", sr.GID}} {
			if id.v != nil && (*id.v < 0 || *id.v > 1<<31-1) {
				ps.add(field(sp, id.name), "must be 0-2147483647 (got %d)", *id.v)
			}
		}
	}
	for j, port := range c.Ports {
		pp := index(field(p, "ports"), j)
		switch {
		case port.Name == "":
			ps.add(field(pp, "name"), "required: it names the port in DNS SRV records")
		case !validPortName(port.Name):
			ps.add(field(pp, "name"), "%s, not %q", portNameRule, port.Name)
		}
		checkPort(field(pp, "containerPort"), port.ContainerPort, ps)
		switch port.Protocol {
		case "", ProtocolTCP, ProtocolUDP:
		default:
			ps.add(field(pp, "protocol"), "must be tcp or udp (got %q)", port.Protocol)
		}
	}
	if c.WorkingDir != "" && (!path.IsAbs(c.WorkingDir) || strings.ContainsRune(c.WorkingDir, 0)) {
		ps.add(field(p, "workingDir"), "must be an absolute path (got %q)", c.WorkingDir)
	}
	if c.User != "" && !validUser(c.User) {
		ps.add(field(p, "user"), "must be USER, UID, USER:GROUP or UID:GID (got %q)", c.User)
	}
	if c.Resources.Memory < 0 {
		ps.add(field(p, "resources.memory"), "must be more than 0 (got %d)", c.Resources.Memory)
	}
	if c.Resources.CPU < 0 {
		ps.add(field(p, "resources.cpu"), "must be more than 0 (got %dm)", c.Resources.CPU)
	}
	if c.HealthCheck != nil {
		c.HealthCheck.validate(field(p, "healthCheck"), ps)
	}
}

func checkPort(p string, port int, ps *problems) {
	if port < 1 || port > 65535 {
		ps.add(p, "must be 1-65535 (got %d)", port)
	}
}

func (h *HealthCheck) validate(p string, ps *problems) {
	var set []string
	if len(h.Test) > 0 {
		set = append(set, "test")
	}
	if h.HTTP != nil {
		set = append(set, "http")
	}
	if h.TCP != nil {
		set = append(set, "tcp")
	}
	if len(set) > 1 {
		ps.add(p, "set at most one of test, http and tcp (got %s)", strings.Join(set, " and "))
	}
	if len(h.Test) > 0 {
		tp := field(p, "test")
		switch kind, rest := h.Test[0], h.Test[1:]; kind {
		case TestCmd:
			if len(rest) == 0 || rest[0] == "" {
				ps.add(tp, `["CMD", PROGRAM, ARGS...] needs a program`)
			}
		case TestCmdShell:
			if len(rest) != 1 || strings.TrimSpace(rest[0]) == "" {
				ps.add(tp, `["CMD-SHELL", COMMAND] takes exactly one non-empty command line`)
			}
		case TestNone:
			if len(rest) != 0 {
				ps.add(tp, `["NONE"] takes no arguments`)
			}
		default:
			ps.add(tp, `must start with "CMD", "CMD-SHELL" or "NONE" (got %q)`, kind)
		}
		for j, w := range h.Test {
			if strings.ContainsRune(w, 0) {
				ps.add(index(tp, j), "must not contain NUL")
			}
		}
	}
	if h.HTTP != nil {
		if !strings.HasPrefix(h.HTTP.Path, "/") || strings.ContainsFunc(h.HTTP.Path, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
			ps.add(field(p, "http.path"), "must start with '/' and contain no spaces or control characters (got %q)", h.HTTP.Path)
		}
		checkPort(field(p, "http.port"), h.HTTP.Port, ps)
	}
	if h.TCP != nil {
		checkPort(field(p, "tcp.port"), h.TCP.Port, ps)
	}
	for _, d := range []struct {
		name string
		d    Duration
	}{{"interval", h.Interval}, {"timeout", h.Timeout}, {"startInterval", h.StartInterval}} {
		if d.d != 0 && d.d < Duration(time.Millisecond) {
			ps.add(field(p, d.name), "must be at least 1ms, or 0 for the default (got %s)", d.d)
		}
	}
	if h.StartPeriod < 0 {
		ps.add(field(p, "startPeriod"), "must not be negative (got %s)", h.StartPeriod)
	}
	if h.StartInterval != 0 && h.StartPeriod == 0 {
		ps.add(field(p, "startInterval"), "applies only during a start period: set startPeriod too")
	}
	if h.Retries < 0 {
		ps.add(field(p, "retries"), "must be at least 1, or 0 for the default %d (got %d)", DefaultHealthRetries, h.Retries)
	}
}

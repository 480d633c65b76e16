package spec

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// UpdateFlags are the options of `orch service update NAME`, Docker-style.
// Zero fields change nothing. The flag names in the comments are the ones
// [ApplyUpdate] uses in its errors.
type UpdateFlags struct {
	// Replicas (--replicas) sets the number of replicas.
	Replicas *int
	// Image (--image) sets the container's image.
	Image string
	// EnvAdd (--env-add NAME=VALUE) sets variables: in place if the name
	// is there, else at the end.
	EnvAdd []string
	// EnvRm (--env-rm NAME) removes variables.
	EnvRm []string
	// LabelAdd (--label-add KEY=VALUE, or KEY for an empty value) sets
	// labels.
	LabelAdd []string
	// LabelRm (--label-rm KEY) removes labels.
	LabelRm []string
	// ConstraintAdd (--constraint-add) adds constraints not already there.
	ConstraintAdd []string
	// ConstraintRm (--constraint-rm) removes constraints, compared in
	// canonical form ("node.name == a" removes "node.name==a").
	ConstraintRm []string
	// PortAdd (--port-add [NAME:]PORT[/PROTO], see [ParsePortFlag]) adds
	// ports, replacing one with the same name or the same port and
	// protocol.
	PortAdd []string
	// PortRm (--port-rm NAME, PORT or PORT/PROTO) removes ports; PORT
	// alone removes it for tcp and udp.
	PortRm []string
	// SecretAdd (--secret-add, see [ParseSecretFlag]) adds secrets,
	// replacing one with the same target file.
	SecretAdd []string
	// SecretRm (--secret-rm NAME) removes the secret's files.
	SecretRm []string
}

// containerFlags reports which of f's flags change the container rather
// than the service.
func (f UpdateFlags) containerFlags() []string {
	var out []string
	for _, c := range []struct {
		flag string
		set  bool
	}{
		{"--image", f.Image != ""},
		{"--env-add", len(f.EnvAdd) > 0},
		{"--env-rm", len(f.EnvRm) > 0},
		{"--port-add", len(f.PortAdd) > 0},
		{"--port-rm", len(f.PortRm) > 0},
		{"--secret-add", len(f.SecretAdd) > 0},
		{"--secret-rm", len(f.SecretRm) > 0},
	} {
		if c.set {
			out = append(out, c.flag)
		}
	}
	return out
}

var updateFlagPaths = []struct{ path, flag string }{
	{"replicas", "--replicas"},
	{"containers[0].image", "--image"},
	{"containers[0].env", "--env-add"},
	{"containers[0].ports", "--port-add"},
	{"containers[0].secrets", "--secret-add"},
	{"labels", "--label-add"},
	{"placement.constraints", "--constraint-add"},
}

// ApplyUpdate returns a copy of s changed by f, normalized and validated;
// s itself is not changed. Removals apply before additions, so
// "--env-rm A --env-add A=2" works, and removing what is not there is
// not an error (Docker's behaviour). Flags that change the container
// (--image, --env-*, --port-*) work on single-container services only;
// for others they are an error, since there is no way to say which
// container. Problems come in a *SpecError that names the flags.
func ApplyUpdate(s *Service, f UpdateFlags) (*Service, error) {
	var ps problems
	if s == nil {
		ps.add("", "no service to update")
		return nil, ps.err()
	}
	n := s.Clone()
	if cf := f.containerFlags(); len(cf) > 0 && len(n.Containers) != 1 {
		ps.add(strings.Join(cf, ", "), "service %q has %d containers and these flags change one container: edit the spec instead", n.Name, len(n.Containers))
		return nil, ps.err()
	}
	if f.Replicas != nil {
		n.Replicas = ptr(*f.Replicas)
	}
	if len(n.Containers) == 1 {
		c := &n.Containers[0]
		if f.Image != "" {
			c.Image = f.Image
		}
		for _, name := range f.EnvRm {
			if name == "" || strings.Contains(name, "=") {
				ps.add(flagPath("--env-rm", name), "want a variable NAME")
				continue
			}
			c.Env = slices.DeleteFunc(c.Env, func(e EnvVar) bool { return e.Name == name })
		}
		for _, e := range f.EnvAdd {
			ev, err := parseEnvFlag(e)
			if err != nil {
				ps.add(flagPath("--env-add", e), "%v", err)
				continue
			}
			c.Env = setEnv(c.Env, ev)
		}
		for _, pr := range f.PortRm {
			match, err := portMatcher(pr)
			if err != nil {
				ps.add(flagPath("--port-rm", pr), "%v", err)
				continue
			}
			c.Ports = slices.DeleteFunc(c.Ports, match)
		}
		for _, pa := range f.PortAdd {
			p, err := ParsePortFlag(pa)
			if err != nil {
				ps.add(flagPath("--port-add", pa), "%v", err)
				continue
			}
			c.Ports = slices.DeleteFunc(c.Ports, func(q Port) bool {
				return q.Name == p.Name || q.ContainerPort == p.ContainerPort && protocolOf(q) == p.Protocol
			})
			c.Ports = append(c.Ports, p)
		}
		for _, name := range f.SecretRm {
			c.Secrets = slices.DeleteFunc(c.Secrets, func(sr SecretRef) bool { return sr.Name == name })
		}
		for _, sa := range f.SecretAdd {
			sr, err := ParseSecretFlag(sa)
			if err != nil {
				ps.add(flagPath("--secret-add", sa), "%v", err)
				continue
			}
			target := cmp.Or(sr.Target, sr.Name)
			c.Secrets = slices.DeleteFunc(c.Secrets, func(q SecretRef) bool { return cmp.Or(q.Target, q.Name) == target })
			c.Secrets = append(c.Secrets, sr)
		}
	}
	for _, k := range f.LabelRm {
		delete(n.Labels, k)
	}
	for _, l := range f.LabelAdd {
		k, v, _ := strings.Cut(l, "=")
		if k == "" {
			ps.add(flagPath("--label-add", l), "want KEY=VALUE")
			continue
		}
		if n.Labels == nil {
			n.Labels = map[string]string{}
		}
		n.Labels[k] = v
	}
	if len(n.Labels) == 0 {
		n.Labels = nil
	}
	for _, cs := range f.ConstraintRm {
		pc, err := ParseConstraint(cs)
		if err != nil {
			ps.add("--constraint-rm", "%v", err)
			continue
		}
		n.Placement.Constraints = slices.DeleteFunc(n.Placement.Constraints, func(x string) bool {
			xc, err := ParseConstraint(x)
			return err == nil && xc == pc
		})
	}
	for _, cs := range f.ConstraintAdd {
		pc, err := ParseConstraint(cs)
		if err != nil {
			ps.add("--constraint-add", "%v", err)
			continue
		}
		if !slices.Contains(n.Placement.Constraints, pc.String()) {
			n.Placement.Constraints = append(n.Placement.Constraints, pc.String())
		}
	}
	n.Normalize()
	if err := n.Validate(); err != nil {
		ps = append(ps, flagProblems(err, updateFlagPaths)...)
	}
	if err := ps.err(); err != nil {
		return nil, err
	}
	return n, nil
}

// portMatcher returns a func matching the ports that --port-rm s names:
// NAME, PORT (tcp and udp) or PORT/PROTO.
func portMatcher(s string) (func(Port) bool, error) {
	num, proto, hasProto := strings.Cut(s, "/")
	n, err := strconv.Atoi(num)
	if err != nil {
		if hasProto || s == "" {
			return nil, fmt.Errorf("want NAME, PORT or PORT/PROTO")
		}
		return func(p Port) bool { return p.Name == s }, nil
	}
	if hasProto && proto != string(ProtocolTCP) && proto != string(ProtocolUDP) {
		return nil, fmt.Errorf("protocol must be tcp or udp (got %q)", proto)
	}
	return func(p Port) bool {
		return p.ContainerPort == n && (!hasProto || protocolOf(p) == Protocol(proto))
	}, nil
}

// protocolOf returns p's protocol, defaulted.
func protocolOf(p Port) Protocol {
	if p.Protocol == "" {
		return DefaultProtocol
	}
	return p.Protocol
}

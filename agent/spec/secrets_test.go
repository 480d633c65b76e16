package spec

import (
	"slices"
	"strings"
	"testing"
)

func TestDecode_Secrets(t *testing.T) {
	s, err := Decode([]byte(`
name: db
containers:
  - name: db
    image: postgres
    user: "999:998"
    secrets:
      - name: db-pass
      - {name: tls.key, target: server.key, uid: 70}
    env:
      - {name: PGUSER, value: app}
      - name: PGPASSWORD
        valueFrom: {secret: db-pass}
      - name: API_TOKEN
        valueFrom: {secret: api-token}
`))
	if err != nil {
		t.Fatal(err)
	}
	c := s.Containers[0]
	if c.Secrets[0].Target != "db-pass" || c.Secrets[1].Target != "server.key" || *c.Secrets[1].UID != 70 || c.Secrets[1].GID != nil {
		t.Errorf("secrets = %+v", c.Secrets)
	}
	if got := s.SecretNames(); !slices.Equal(got, []string{"api-token", "db-pass", "tls.key"}) {
		t.Errorf("SecretNames = %q", got)
	}
	// A clone shares nothing.
	cl := s.Clone()
	*cl.Containers[0].Secrets[1].UID = 1
	cl.Containers[0].Env[1].ValueFrom.Secret = "other"
	if *c.Secrets[1].UID != 70 || c.Env[1].ValueFrom.Secret != "db-pass" {
		t.Error("Clone shares secret references with the original")
	}
	// The canonical form round-trips.
	b, err := s.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	again, err := Decode(b)
	if err != nil || !Equal(s, again) {
		t.Errorf("round trip: %v\n%s", err, b)
	}
}

func TestDecode_SecretProblems(t *testing.T) {
	tests := []struct {
		name, container, want string
	}{
		{"no name", `secrets: [{target: x}]`, "containers[0].secrets[0].name: required"},
		{"bad name", `secrets: [{name: "../etc/passwd"}]`, `containers[0].secrets[0].name: must be 1-64 characters`},
		{"target with slash", `secrets: [{name: a, target: "../../etc/shadow"}]`, `containers[0].secrets[0].target: must be a file name in /run/secrets`},
		{"target dot dot", `secrets: [{name: a, target: ".."}]`, `containers[0].secrets[0].target: must be a file name`},
		{"absolute target", `secrets: [{name: a, target: /etc/shadow}]`, `containers[0].secrets[0].target: must be a file name`},
		{"duplicate target", `secrets: [{name: a}, {name: b, target: a}]`, `containers[0].secrets[1].target: duplicate file "a"`},
		{"negative uid", `secrets: [{name: a, uid: -1}]`, `containers[0].secrets[0].uid: must be 0-2147483647`},
		{"value and valueFrom", `env: [{name: A, value: x, valueFrom: {secret: s}}]`, "containers[0].env[0].valueFrom: give value or valueFrom, not both"},
		{"valueFrom without secret", `env: [{name: A, valueFrom: {}}]`, "containers[0].env[0].valueFrom.secret: required"},
		{"valueFrom unknown key", `env: [{name: A, valueFrom: {file: /etc/passwd}}]`, `unknown field "file"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode([]byte("name: web\ncontainers:\n  - name: web\n    image: nginx\n    " + tt.container + "\n"))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want %q", err, tt.want)
			}
		})
	}
}

// Settings that would hand a container the host are refused, and the
// error says why rather than only "unknown field".
func TestDecode_HostAccessRefused(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"privileged", "    privileged: true\n", `unknown field "privileged" (orch never runs privileged containers)`},
		{"securityContext", "    securityContext: {privileged: true}\n", `unknown field "securityContext" (orch never runs privileged containers)`},
		{"capAdd", "    capAdd: [SYS_ADMIN]\n", `unknown field "capAdd" (orch keeps containers to Docker's default capabilities)`},
		{"volumes", "    volumes: [\"/:/host\"]\n", `unknown field "volumes" (orch never mounts host paths into containers; use secrets for files)`},
		{"hostPath", "    mounts: [{hostPath: /var/run/docker.sock}]\n", `unknown field "mounts" (orch never mounts host paths`},
		{"devices", "    devices: [/dev/mem]\n", `unknown field "devices" (orch never mounts host paths`},
		{"hostNetwork", "    hostNetwork: true\n", `unknown field "hostNetwork" (orch never shares the host's namespaces)`},
		{"pid", "    pid: host\n", `unknown field "pid" (orch never shares the host's namespaces)`},
		{"sysctls", "    sysctls: {net.ipv4.ip_forward: \"1\"}\n", `unknown field "sysctls" (orch does not change kernel settings`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode([]byte("name: web\ncontainers:\n  - name: web\n    image: nginx\n" + tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want %q", err, tt.want)
			}
		})
	}
	// At the service level too.
	if _, err := Decode([]byte("name: web\nhostNetwork: true\ncontainers: [{name: web, image: nginx}]\n")); err == nil || !strings.Contains(err.Error(), "never shares the host's namespaces") {
		t.Errorf("service-level hostNetwork: %v", err)
	}
}

func TestParseSecretFlag(t *testing.T) {
	u := 5
	tests := []struct {
		in   string
		want SecretRef
		err  string
	}{
		{"db-pass", SecretRef{Name: "db-pass"}, ""},
		{"source=a,target=b,uid=5", SecretRef{Name: "a", Target: "b", UID: &u}, ""},
		{"src=a", SecretRef{Name: "a"}, ""},
		{"target=b", SecretRef{}, "source=NAME is required"},
		{"source=a,mode=0777", SecretRef{}, `unknown key "mode"`},
		{"source=a,uid=x", SecretRef{}, `uid="x" is not a number`},
		{"source=a,junk", SecretRef{}, `"junk" is not KEY=VALUE`},
	}
	for _, tt := range tests {
		got, err := ParseSecretFlag(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%q: error %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || got.Name != tt.want.Name || got.Target != tt.want.Target || (got.UID == nil) != (tt.want.UID == nil) {
			t.Errorf("%q = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
	s, err := BuildFromFlags(Flags{Name: "web", Image: "nginx", Secrets: []string{"a", "source=b,target=../x"}})
	if err == nil || !strings.Contains(err.Error(), "--secret") || !strings.Contains(err.Error(), "must be a file name") {
		t.Errorf("BuildFromFlags with a bad target: %v, %v", s, err)
	}
	n, err := ApplyUpdate(&Service{Name: "web", Containers: []Container{{Name: "web", Image: "nginx", Secrets: []SecretRef{{Name: "a", Target: "a"}, {Name: "b", Target: "b"}}}}},
		UpdateFlags{SecretRm: []string{"a"}, SecretAdd: []string{"source=c,target=b"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := n.Containers[0].Secrets; len(got) != 1 || got[0].Name != "c" || got[0].Target != "b" {
		t.Errorf("after update: %+v", got)
	}
}

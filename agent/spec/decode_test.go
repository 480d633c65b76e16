package spec

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

func TestDecode_SentryYAMLEqualsJSON(t *testing.T) {
	y, err := Decode(readFile(t, "sentry.yaml"))
	if err != nil {
		t.Fatalf("yaml: %v", err)
	}
	j, err := Decode(readFile(t, "sentry.json"))
	if err != nil {
		t.Fatalf("json: %v", err)
	}
	if !Equal(y, j) {
		t.Errorf("yaml and json differ:\n%s\n%s", mustMarshal(t, y), mustMarshal(t, j))
	}
	if y.Name != "sentry" || *y.Replicas != 2 || len(y.Containers) != 2 ||
		y.Containers[0].Env[0] != (EnvVar{Name: "SENTRY_REDIS_HOST", Value: "127.0.0.1"}) ||
		y.Containers[1].Ports[0] != (Port{Name: "redis", ContainerPort: 6379, Protocol: ProtocolTCP}) {
		t.Errorf("decoded wrong: %s", mustMarshal(t, y))
	}
}

func TestDecode_FillsDefaults(t *testing.T) {
	s, err := Decode([]byte(`
name: web
containers:
  - name: web
    image: nginx
    ports: [{name: http, containerPort: 80}]
    healthCheck: {tcp: {port: 80}}
`))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"name":"web","replicas":1,"containers":[{"name":"web","image":"nginx",` +
		`"ports":[{"name":"http","containerPort":80,"protocol":"tcp"}],` +
		`"healthCheck":{"tcp":{"port":80},"interval":"30s","timeout":"30s","retries":3}}],` +
		`"restartPolicy":{"condition":"always","delay":"5s"},` +
		`"update":{"parallelism":1,"order":"stop-first","failureAction":"pause"}}`
	if got := string(mustMarshal(t, s)); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	// Decode normalizes s itself, not only its encoding.
	if s.Replicas == nil || s.RestartPolicy.Delay == nil || s.Update.Parallelism == nil || s.Containers[0].HealthCheck.Retries != 3 {
		t.Errorf("Decode did not normalize: %+v", s)
	}
}

func TestDecode_KeepsExplicitZeros(t *testing.T) {
	s, err := Decode([]byte(`
name: batch
replicas: 0
containers: [{name: job, image: busybox}]
restartPolicy: {delay: 0s}
update: {parallelism: 0}
`))
	if err != nil {
		t.Fatal(err)
	}
	if *s.Replicas != 0 || *s.RestartPolicy.Delay != 0 || *s.Update.Parallelism != 0 {
		t.Errorf("explicit zeros lost: %s", mustMarshal(t, s))
	}
}

func TestDecode_Accepts(t *testing.T) {
	const body = "name: x\ncontainers: [{name: a, image: b}]\n"
	tests := []struct {
		name string
		in   string
	}{
		{"leading marker", "---\n" + body},
		{"trailing marker", body + "---\n"},
		{"end marker", body + "...\n"},
		{"comments only after marker", body + "---\n# nothing here\n"},
		{"directive", "%YAML 1.1\n---\n" + body},
		{"CRLF", strings.ReplaceAll(body, "\n", "\r\n")},
		{"BOM", "\uFEFF" + body},
		{"flow", `{name: x, containers: [{name: a, image: b}]}`},
		{"flow after marker", `--- {name: x, containers: [{name: a, image: b}]}`},
		{"flow with comment", "# c\n{name: x,\n containers: [{name: a, image: b}]} # c\n---\n"},
		{"multi-line json", "{\n\"name\": \"x\",\n\"containers\": [{\"name\": \"a\", \"image\": \"b\"}]\n}\n"},
		{"json escapes yaml lacks", `{"name": "x", "containers": [{"name": "a", "image": "b", "args": ["a\/b", "\ud83d\ude00", "` + "\x7f" + `"]}]}`},
		{"tabs in json", "{\n\t\"name\": \"x\",\n\t\"containers\": [{\"name\": \"a\", \"image\": \"b\"}]\n}"},
		{"numbers for sizes", "name: x\ncontainers: [{name: a, image: b, resources: {memory: 1073741824, cpu: 0.5}}]"},
		{"YAML 1.1 bool", "name: x\ncontainers: [{name: a, image: b, readOnlyRootFilesystem: yes}]"},
		{"null fields", "name: x\nreplicas: null\nlabels: ~\ncontainers: [{name: a, image: b, env: null, resources: {memory: null}}]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Decode([]byte(tt.in))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if s.Name != "x" || len(s.Containers) != 1 || s.Containers[0].Image != "b" {
				t.Errorf("decoded %s", mustMarshal(t, s))
			}
		})
	}
}

func TestDecode_JSONEscapesSurvive(t *testing.T) {
	s, err := Decode([]byte(`{"name": "x", "containers": [{"name": "a", "image": "b", "args": ["a\/b", "\ud83d\ude00", "` + "\x7f" + `"]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"a/b", "😀", "\x7f"}
	if got := s.Containers[0].Args; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("args %q, want %q", got, want)
	}
}

func TestDecode_Rejects(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string // the exact problems
	}{
		{
			name: "unknown top-level field",
			in:   "name: x\ncontainers: [{name: a, image: b}]\nreplica: 2\n",
			want: []string{`unknown field "replica"`},
		},
		{
			name: "unknown nested fields, all of them",
			in: `
name: x
containers:
  - name: a
    image: b
    ports: [{name: http, containerPort: 80, hostPort: 8080}]
    healthCheck: {http: {path: /, port: 80, scheme: https}}
restartPolicy: {condition: always, window: 1m}
`,
			// YAML reaches the checks as JSON with sorted keys, so
			// problems come in key order.
			want: []string{
				`containers[0].healthCheck.http: unknown field "scheme"`,
				`containers[0].ports[0]: unknown field "hostPort"`,
				`restartPolicy: unknown field "window"`,
			},
		},
		{
			name: "field names are case-sensitive",
			in:   `{"name": "x", "Containers": [{"name": "a", "image": "b"}]}`,
			want: []string{`unknown field "Containers" (field names are case-sensitive: did you mean "containers"?)`},
		},
		{
			name: "repeated key in JSON",
			in:   `{"name": "x", "name": "y", "containers": [{"name": "a", "image": "b", "env": [{"name": "A", "value": "1", "value": "2"}]}], "labels": {"k": "1", "k": "2"}}`,
			want: []string{
				`name: given twice`,
				`containers[0].env[0].value: given twice`,
				`labels["k"]: given twice`,
			},
		},
		{
			name: "wrong kinds",
			in: `
name: [x]
replicas: "2"
containers:
  - name: a
    image: b
    readOnlyRootFilesystem: "true"
    env: [{name: PORT, value: 8080}]
    ports: {name: http}
    healthCheck: {interval: 10, retries: 1.5}
labels: [a]
placement: "node.name==a"
`,
			want: []string{
				`containers[0].env[0].value: must be a string, not a number (quote it)`,
				`containers[0].healthCheck.interval: must be a duration string like "10s", not a number`,
				`containers[0].healthCheck.retries: must be an integer (got 1.5)`,
				`containers[0].ports: must be a list, not an object`,
				`containers[0].readOnlyRootFilesystem: must be true or false, not a string`,
				`labels: must be a mapping, not a list`,
				`name: must be a string, not a list (quote it)`,
				`placement: must be a mapping, not a string`,
				`replicas: must be an integer, not a string`,
			},
		},
		{
			name: "bad sizes and durations",
			in: `
name: x
containers:
  - name: a
    image: b
    resources: {memory: 512m, cpu: "0"}
    healthCheck: {timeout: 10}
update: {delay: soon}
`,
			want: []string{
				`containers[0].healthCheck.timeout: must be a duration string like "10s", not a number`,
				`containers[0].resources.cpu: must be more than 0 (leave it out for no limit)`,
				`containers[0].resources.memory: "512m" is ambiguous: write 512Mi for powers of 1024 (Docker's m) or 512M for powers of 1000`,
				`update.delay: "soon" is not a duration like "10s" or "1m30s"`,
			},
		},
		{
			name: "huge number",
			in:   "name: x\nreplicas: 99999999999999999999\ncontainers: [{name: a, image: b}]",
			want: []string{`replicas: must be an integer (got 100000000000000000000)`},
		},
		{
			name: "multiple documents",
			in:   "name: a\ncontainers: [{name: a, image: b}]\n---\nname: b\ncontainers: [{name: a, image: b}]\n",
			want: []string{"spec holds more than one YAML document (the second starts at line 3): give one service per spec"},
		},
		{
			name: "document after end marker",
			in:   "name: a\n...\nname: b\n",
			want: []string{"spec holds more than one YAML document (the second starts at line 3): give one service per spec"},
		},
		{
			name: "two JSON objects",
			in:   `{"name": "a"} {"name": "b"}`,
			want: []string{"parse spec: yaml: did not find expected ',' or ']'"},
		},
		{
			name: "two flow mappings",
			in:   `{name: a}, {name: b}`,
			want: []string{"spec holds 2 values: want one mapping"},
		},
		{
			name: "malformed YAML",
			in:   "name: x\ncontainers:\n  - name: a\n    image: [b\n",
			want: []string{"parse spec: yaml: line 4: did not find expected ',' or ']'"},
		},
		{
			name: "repeated key in YAML",
			in:   "name: x\nname: y\n",
			want: []string{"parse spec: yaml: unmarshal errors:\n  line 2: key \"name\" already set in map"},
		},
		{
			name: "empty",
			in:   "",
			want: []string{"spec is empty: want a mapping with name and containers"},
		},
		{
			name: "comments only",
			in:   "# nothing\n",
			want: []string{"spec is empty: want a mapping with name and containers"},
		},
		{
			name: "a list",
			in:   "- name: x\n",
			want: []string{"spec must be a mapping with name and containers, not a list"},
		},
		{
			name: "not UTF-8",
			in:   "name: \xff\n",
			want: []string{"spec is not valid UTF-8"},
		},
		{
			name: "valid shape, invalid values",
			in:   "name: X\ncontainers: []\n",
			want: []string{
				`name: ` + dnsLabelRule + `, not "X"`,
				`containers: at least one container is required`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Decode([]byte(tt.in))
			if err == nil {
				t.Fatalf("Decode succeeded: %s", mustMarshal(t, s))
			}
			wantProblems(t, err, tt.want...)
		})
	}
}

func TestDecode_SizeLimit(t *testing.T) {
	big := bytes.Repeat([]byte("#"), 10<<20)
	_, err := Decode(big)
	wantProblems(t, err, "spec is 10485760 bytes, at most 262144")
	if got := err.Error(); got != "spec is 10485760 bytes, at most 262144" {
		t.Errorf("Error() = %q", got)
	}
}

func TestDecode_LargeEnvIsFine(t *testing.T) {
	var b strings.Builder
	b.WriteString("name: big\ncontainers:\n  - name: app\n    image: app:1\n    env:\n")
	n := 0
	for ; b.Len() < 8<<10; n++ {
		fmt.Fprintf(&b, "      - name: VAR_%03d\n        value: %q\n", n, strings.Repeat("v", 40))
	}
	s, err := Decode([]byte(b.String()))
	if err != nil {
		t.Fatalf("%d-byte spec: %v", b.Len(), err)
	}
	if got := len(s.Containers[0].Env); got != n {
		t.Errorf("%d variables, want %d", got, n)
	}
}

func TestDecode_EncodedSizeLimit(t *testing.T) {
	// Under MaxSpecSize as YAML, over it as JSON: YAML aliases repeat the
	// list without repeating its bytes. Such a spec could not be stored and
	// decoded again, so Decode refuses it.
	var b strings.Builder
	b.WriteString("name: big\ncontainers:\n  - name: app\n    image: app:1\n    args: &a [")
	for i := range 1000 {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q", strings.Repeat("x", 60))
	}
	b.WriteString("]\n")
	for i := range 4 {
		fmt.Fprintf(&b, "  - {name: c%d, image: app:1, args: *a}\n", i)
	}
	if b.Len() > MaxSpecSize {
		t.Fatalf("test spec is %d bytes: too big to test this", b.Len())
	}
	_, err := Decode([]byte(b.String()))
	wantProblemContaining(t, err, "spec encodes to ", fmt.Sprintf("bytes, at most %d", MaxSpecSize))
}

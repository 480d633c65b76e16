package main

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Spec kinds of the propagation benchmark. A store delta rides a serf user
// event when its encoding fits in a gossip packet (MTU − 48 − 400 bytes of
// headroom: 952 bytes at the lab's usual MTU of 1400), and is pushed over a
// TLS stream to every member otherwise; the two kinds exercise one path
// each.
const (
	kindSmall = "small" // ~300 bytes canonical: a serf user event
	kindLarge = "large" // ~8 KiB canonical: a TCP push
)

// largeEnvBytes is the size the large spec's environment is grown to.
const largeEnvBytes = 8 << 10

// specFor returns the JSON spec of a propagation service. Both kinds have
// one replica, like a typical service; the claim that follows the write is
// a separate (small) delta and not part of the measurement.
func specFor(kind, name string) json.RawMessage {
	c := map[string]any{
		"name":  "app",
		"image": "registry.example/team/app:1.4.2",
		"args":  []string{"serve", "--listen", ":8080"},
		"ports": []map[string]any{{"name": "http", "containerPort": 8080}},
	}
	if kind == kindLarge {
		var env []map[string]string
		size := 0
		for i := 0; size < largeEnvBytes; i++ {
			v := map[string]string{"name": fmt.Sprintf("VAR_%03d", i), "value": strings.Repeat("x", 100)}
			env = append(env, v)
			size += len(v["name"]) + len(v["value"]) + len(`{"name":"","value":""},`)
		}
		c["env"] = env
	}
	b, err := json.Marshal(map[string]any{"name": name, "containers": []any{c}})
	if err != nil {
		panic(err) // plain maps of strings always encode
	}
	return b
}

// bulkSpec is a service of the full-sync benchmark: the acceptance test's
// shape (internal/e2e TestReplicatedState), replicas as given.
func bulkSpec(name string, replicas int) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"name":%q,"replicas":%d,"containers":[{"name":"app","image":"busybox:stable"}]}`, name, replicas))
}

// bulkName is the name of bulk service i (0-based).
func bulkName(i int) string { return fmt.Sprintf("bulk-%05d", i) }

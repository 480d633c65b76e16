package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/orchproject/orch/agent/api"
	"github.com/orchproject/orch/internal/lab"
	"github.com/orchproject/orch/internal/testimage"
)

// TestSecrets runs a 3-replica service that uses a secret on a 4-host
// cluster whose fourth host runs none of it. The secret is readable inside
// every replica at /run/secrets/NAME with mode 0400; its value is absent
// from "orch service inspect", "orch secret ls/inspect", the event streams,
// the agents' logs and every node's on-disk state (grepped), and the host
// without a replica has it nowhere, not even on its secrets tmpfs. A
// secret used as an environment value reaches the process too. A secret
// in use cannot be removed; a spec naming a missing secret is refused.
func TestSecrets(t *testing.T) {
	l := lab.New(t, lab.Config{Hosts: 4})
	ws, ns := workCluster(t, l)
	h1, h4 := ns[0], ns[3]
	var streams []*eventLog
	for _, n := range ns {
		streams = append(streams, n.streamEvents(t))
	}

	value := "s3cr3t-" + randomHex(t, 12)
	envValue := "env-" + randomHex(t, 12)
	// Created from stdin, as a user would pipe it.
	createFromStdin := func(n *node, name, v string) (string, int) {
		cmd := exec.CommandContext(t.Context(), orchBin(t), "--socket", n.socket, "secret", "create", name, "-")
		cmd.Stdin = strings.NewReader(v)
		out, err := cmd.CombinedOutput()
		code := 0
		if err != nil {
			code = cmd.ProcessState.ExitCode()
		}
		return string(out), code
	}
	if out, code := createFromStdin(h1, "db-pass", value); code != 0 {
		t.Fatalf("secret create: exit %d: %s", code, out)
	}
	if out, code := createFromStdin(ns[1], "api-key", envValue); code != 0 {
		t.Fatalf("secret create api-key: exit %d: %s", code, out)
	}
	// Replicated like everything else: every node learns of both.
	lab.Eventually(t, 30*time.Second, 100*time.Millisecond, func() error {
		for _, n := range ns {
			if out := mustCLI(t, n, "secret", "ls", "-q"); out != "api-key\ndb-pass\n" {
				return fmt.Errorf("%s lists %q", n.name, out)
			}
		}
		return nil
	})
	// Immutable: a second create is refused, the first value stays.
	if out, code := createFromStdin(ns[2], "db-pass", "other"); code == 0 || !strings.Contains(out, "already exists") {
		t.Errorf("second create of db-pass: exit %d: %s", code, out)
	}
	// A spec naming a missing secret is refused before anything runs.
	bad := writeFile(t, t.TempDir(), "bad.yaml", "name: bad\ncontainers: [{name: app, image: "+testimage.DefaultName+", secrets: [{name: nope}]}]\n")
	if _, errOut, code := h1.cli(t, "service", "create", "-f", bad); code == 0 || !strings.Contains(errOut, "secrets that do not exist: nope") {
		t.Errorf("spec with a missing secret: exit %d: %s", code, errOut)
	}

	specFile := writeFile(t, t.TempDir(), "db.yaml", `name: db
replicas: 3
placement:
  constraints: ["node.name != h4"]
containers:
  - name: app
    image: `+testimage.DefaultName+`
    command: [sleep, "1000000"]
    user: "1000"
    secrets:
      - name: db-pass
      - {name: db-pass, target: root-copy, uid: 0}
    env:
      - name: API_KEY
        valueFrom: {secret: api-key}
`)
	mustCLI(t, h1, "service", "create", "-f", specFile)
	tasksUntil(t, h1, "db", 90*time.Second, allRunningOn(3, true))

	// Every replica reads it; the owner is the container's user.
	for _, w := range ws[:3] {
		reps := w.replicasOf(t, "db")
		if len(reps) != 1 {
			t.Fatalf("%s runs %d replicas of db, want 1", w.name, len(reps))
		}
		c := reps[0].Container
		if out, err := w.execIn(t, c, "cat", "/run/secrets/db-pass"); err != nil || out != value {
			t.Errorf("%s: cat /run/secrets/db-pass = %q, %v", w.name, out, err)
		}
		if out, err := w.execIn(t, c, "stat", "-c", "%a %u", "/run/secrets/db-pass", "/run/secrets/root-copy"); err != nil || out != "400 1000\n400 0\n" {
			t.Errorf("%s: modes and owners %q, %v; want 400 1000, 400 0", w.name, out, err)
		}
		if out, err := w.execIn(t, c, "cat", "/run/secrets/root-copy"); err == nil {
			t.Errorf("%s: user 1000 read root's copy: %q", w.name, out)
		}
		if out, err := w.execIn(t, c, "sh", "-c", `echo "$API_KEY"`); err != nil || strings.TrimSpace(out) != envValue {
			t.Errorf("%s: $API_KEY = %q, %v", w.name, out, err)
		}
		if out, err := w.execIn(t, c, "grep", " /run/secrets ", "/proc/mounts"); err != nil || !strings.Contains(out, "tmpfs") || !strings.Contains(out, "ro,") {
			t.Errorf("%s: /run/secrets mount %q, %v: want read-only tmpfs", w.name, out, err)
		}
	}
	if reps := ws[3].replicasOf(t, "db"); len(reps) != 0 {
		t.Fatalf("h4 runs %d replicas of db", len(reps))
	}

	// In use: cannot be removed.
	if _, errOut, code := ns[2].cli(t, "secret", "rm", "db-pass"); code == 0 || !strings.Contains(errOut, "in use by db") {
		t.Errorf("rm of a used secret: exit %d: %s", code, errOut)
	}
	ls := mustCLI(t, h4, "secret", "ls", "--format", "json")
	var infos []api.SecretInfo
	if err := json.Unmarshal([]byte(ls), &infos); err != nil || len(infos) != 2 || infos[1].Name != "db-pass" || infos[1].Size != len(value) || strings.Join(infos[1].Services, ",") != "db" {
		t.Errorf("secret ls on h4: %v\n%s", err, ls)
	}

	// Nowhere in what the tools show.
	shown := mustCLI(t, h1, "service", "inspect", "db") + ls + mustCLI(t, h4, "secret", "inspect", "db-pass", "api-key") + mustCLI(t, ns[1], "service", "ps", "db")
	for _, v := range []string{value, envValue} {
		if strings.Contains(shown, v) {
			t.Errorf("a secret's value is shown by the CLI:\n%s", shown)
		}
	}
	// Nowhere in events (each stream saw the secret created) or logs.
	for i, s := range streams {
		text := strings.Join(s.lines(), "\n")
		if !hasEvent(s, "secret", "created", "db-pass") {
			t.Errorf("%s: no secret event in the stream", ns[i].name)
		}
		for _, v := range []string{value, envValue} {
			if strings.Contains(text, v) {
				t.Errorf("%s: a secret's value is in the event stream", ns[i].name)
			}
		}
	}
	for _, n := range ns {
		b, err := os.ReadFile(n.proc.LogPath())
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(value)) || bytes.Contains(b, []byte(envValue)) {
			t.Errorf("%s: a secret's value is in the agent's log", n.name)
		}
	}
	// Not on disk: every node's data dir, its secrets tmpfs aside on the
	// nodes that run a replica. The file value is on no node's containerd
	// either (the environment value is, by design: that is why it is the
	// weaker choice).
	for i, w := range ws {
		tmpfs := filepath.Join(w.dataDir, "runtime", "secrets")
		skip := tmpfs
		if i == 3 {
			skip = "" // h4 must have it nowhere, tmpfs included
		}
		// The control: the grep does read the persisted store, which
		// holds the secret sealed, under its name.
		lab.Eventually(t, 30*time.Second, 500*time.Millisecond, func() error {
			if len(grepTree(t, w.dataDir, skip, `"db-pass"`)) == 0 {
				return fmt.Errorf("%s: the sealed secret is not in the persisted store yet", w.name)
			}
			return nil
		})
		if where := grepTree(t, w.dataDir, skip, value, envValue); len(where) > 0 {
			t.Errorf("%s: a secret's value is on disk in %v", w.name, where)
		}
		if where := grepTree(t, w.ctd.Root, "", value); len(where) > 0 {
			t.Errorf("%s: the file secret's value is in containerd's root: %v", w.name, where)
		}
		if i == 3 {
			if where := grepTree(t, w.ctd.Root, "", envValue); len(where) > 0 {
				t.Errorf("h4: the env secret's value is in containerd's root: %v", where)
			}
		}
	}

	// Removing the service frees the secret; its files go with the
	// replicas.
	mustCLI(t, h1, "service", "rm", "db")
	lab.Eventually(t, 60*time.Second, 200*time.Millisecond, func() error {
		for _, w := range ws[:3] {
			if where := grepTree(t, filepath.Join(w.dataDir, "runtime", "secrets"), "", value); len(where) > 0 {
				return fmt.Errorf("%s still holds the secret in %v", w.name, where)
			}
		}
		return nil
	})
	mustCLI(t, ns[2], "secret", "rm", "db-pass", "api-key")
	lab.Eventually(t, 30*time.Second, 200*time.Millisecond, func() error {
		for _, n := range ns {
			if out := mustCLI(t, n, "secret", "ls", "-q"); strings.TrimSpace(out) != "" {
				return fmt.Errorf("%s still lists %q", n.name, out)
			}
		}
		for i, s := range streams {
			if !hasEvent(s, "secret", "removed", "db-pass") {
				return fmt.Errorf("%s: no secret removed event yet", ns[i].name)
			}
		}
		return nil
	})
}

func randomHex(t *testing.T, n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// grepTree returns the regular files under dir (not under skip) that
// contain any of the values.
func grepTree(t *testing.T, dir, skip string, values ...string) []string {
	t.Helper()
	var hits []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // vanished while walking
		}
		if skip != "" && p == skip {
			return filepath.SkipDir
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		for _, v := range values {
			if bytes.Contains(b, []byte(v)) {
				hits = append(hits, p)
				break
			}
		}
		return nil
	})
	return hits
}

// hasEvent reports whether the stream holds an event of that type, action
// and subject.
func hasEvent(el *eventLog, typ, action, subject string) bool {
	for _, line := range el.lines() {
		var ev struct{ Type, Action, Subject string }
		if json.Unmarshal([]byte(line), &ev) == nil && ev.Type == typ && ev.Action == action && ev.Subject == subject {
			return true
		}
	}
	return false
}

package runtime

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Secrets reach the container as 0400 files on tmpfs, owned by the
// container's user, and go away with the replica.
func TestRuntime_Secrets(t *testing.T) {
	rt, _ := newTestRuntime(t)
	t.Cleanup(func() {
		if err := CleanupSecrets(rt.cfg.StateDir); err != nil {
			t.Error(err)
		}
	})
	ctx := t.Context()
	spec := ReplicaSpec{Node: "n1", Service: "sec", Slot: 0, SpecVersion: "1@n1", Containers: []ContainerSpec{
		{Name: "app", Image: testImage, Command: []string{"sleep", "100000"}, User: "1000", ReadOnlyRoot: true, Secrets: []SecretFile{
			{Secret: "db", File: "db-pass", Data: []byte("hunter2-s3cr3t"), UID: 1000},
			{Secret: "o", File: "other", Data: []byte("x"), UID: 0},
		}, EnvSecrets: []EnvSecret{{Var: "PW", Secret: "db", Value: "env-s3cr3t"}}},
	}}
	if err := rt.StartReplica(ctx, spec); err != nil {
		t.Fatal(err)
	}
	defer rt.RemoveReplica(context.WithoutCancel(ctx), spec.ID(), time.Second)
	cid := containerID(spec.ID(), "app")
	code, out, err := rt.Exec(ctx, cid, []string{"cat", "/run/secrets/db-pass"})
	if err != nil || code != 0 || string(out) != "hunter2-s3cr3t" {
		t.Fatalf("cat /run/secrets/db-pass: code %d, %q, %v", code, out, err)
	}
	code, out, err = rt.Exec(ctx, cid, []string{"stat", "-c", "%a %u", "/run/secrets/db-pass"})
	if err != nil || code != 0 || strings.TrimSpace(string(out)) != "400 1000" {
		t.Errorf("stat db-pass: code %d, %q, %v; want 400 1000", code, out, err)
	}
	if code, out, err := rt.Exec(ctx, cid, []string{"sh", "-c", "echo $PW"}); err != nil || code != 0 || strings.TrimSpace(string(out)) != "env-s3cr3t" {
		t.Errorf("$PW: code %d, %q, %v", code, out, err)
	}
	// The file owned by root is not readable by the container's user.
	if code, _, _ := rt.Exec(ctx, cid, []string{"cat", "/run/secrets/other"}); code == 0 {
		t.Error("user 1000 read a root-owned 0400 secret")
	}
	// Read-only, inside and out.
	if code, _, _ := rt.Exec(ctx, cid, []string{"sh", "-c", "echo x > /run/secrets/new"}); code == 0 {
		t.Error("/run/secrets is writable from the container")
	}
	dir := secretsDir(rt.cfg.StateDir)
	if !isTmpfs(dir) {
		t.Fatalf("%s is not a tmpfs", dir)
	}
	host := filepath.Join(dir, spec.ID(), "app", "db-pass")
	if fi, err := os.Stat(host); err != nil || fi.Mode().Perm() != 0o400 {
		t.Errorf("host file %s: %v, %v", host, fi, err)
	}
	// A second start (as after a reboot) rewrites, and drops what the
	// spec no longer names.
	spec.Containers[0].Secrets = spec.Containers[0].Secrets[:1]
	if err := rt.StartReplica(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, spec.ID(), "app", "other")); !os.IsNotExist(err) {
		t.Errorf("dropped secret file still there: %v", err)
	}
	// Values stay out of the replica's ID.
	same := spec
	same.Containers = []ContainerSpec{spec.Containers[0]}
	same.Containers[0].Secrets = []SecretFile{{Secret: "db", File: "db-pass", Data: []byte("other value"), UID: 1000}}
	if same.ID() != spec.ID() {
		t.Error("a secret's value changes the replica ID")
	}
	// An unresolved secret is an error, not an empty file.
	unres := spec
	unres.Slot = 2
	unres.Containers = []ContainerSpec{{Name: "app", Image: testImage, Command: []string{"true"}, EnvSecrets: []EnvSecret{{Var: "X", Secret: "x"}}}}
	if err := rt.StartReplica(ctx, unres); err == nil || !strings.Contains(err.Error(), `secret "x" for variable X has no value`) {
		t.Errorf("unresolved env secret: %v", err)
	}
	// A bad file name never reaches the file system.
	bad := spec
	bad.Slot = 1
	bad.Containers = []ContainerSpec{{Name: "app", Image: testImage, Command: []string{"true"}, Secrets: []SecretFile{{Secret: "e", File: "../escape", Data: []byte("x")}}}}
	if err := rt.StartReplica(ctx, bad); err == nil || !strings.Contains(err.Error(), "not one path element") {
		t.Errorf("secret file ../escape: %v", err)
	}
	if err := rt.RemoveReplica(ctx, spec.ID(), time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, spec.ID())); !os.IsNotExist(err) {
		t.Errorf("secrets of a removed replica remain: %v", err)
	}
	if err := CleanupSecrets(rt.cfg.StateDir); err != nil || isTmpfs(dir) {
		t.Errorf("CleanupSecrets: %v, still tmpfs: %v", err, isTmpfs(dir))
	}
}

func TestSecretOwner(t *testing.T) {
	for user, want := range map[string][2]int{"": {0, 0}, "1000": {1000, 0}, "1000:50": {1000, 50}, "nobody": {0, 0}, "app:1": {0, 0}, "-5": {0, 0}} {
		if u, g := SecretOwner(user); u != want[0] || g != want[1] {
			t.Errorf("SecretOwner(%q) = %d, %d; want %v", user, u, g, want)
		}
	}
}

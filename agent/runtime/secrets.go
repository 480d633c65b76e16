package runtime

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// SecretFile is one secret a container gets as a file in /run/secrets.
type SecretFile struct {
	// Secret names the cluster secret, File the file: one path element.
	Secret, File string
	// UID and GID own the file; its mode is 0400.
	UID, GID int
	// Data is the secret's value, in the clear, filled in by the caller
	// just before the start. It is written to tmpfs only, never logged,
	// and kept out of the replica's ID (json:"-"): a hash of a weak
	// secret in a container's name could be guessed back.
	Data []byte `json:"-"`
}

// EnvSecret is an environment variable whose value is a secret.
type EnvSecret struct {
	Var, Secret string
	// Value is filled in by the caller just before the start; out of the
	// ID for the same reason as [SecretFile.Data].
	Value string `json:"-"`
}

// checkResolved reports a secret its caller left unresolved: starting
// without it would run the container with an empty file or variable.
func (cs ContainerSpec) checkResolved() error {
	for _, s := range cs.Secrets {
		if s.Data == nil {
			return fmt.Errorf("secret %q for file %s has no value", s.Secret, s.File)
		}
	}
	for _, e := range cs.EnvSecrets {
		if e.Value == "" {
			return fmt.Errorf("secret %q for variable %s has no value", e.Secret, e.Var)
		}
	}
	return nil
}

// secretsMountPoint is where the container sees its secrets.
const secretsMountPoint = "/run/secrets"

// secretsFSSize bounds the tmpfs that holds every replica's secrets.
const secretsFSSize = "64m"

func secretsDir(stateDir string) string { return filepath.Join(stateDir, "secrets") }

// writeSecrets writes a container's secret files on the runtime's tmpfs
// (mounting it first if needed) and returns the bind mount that shows them
// read-only at /run/secrets; no mount when the container has none. It runs
// on every start, so files lost with a reboot come back, and it replaces
// the directory's content, so a file the spec dropped disappears.
func (r *Runtime) writeSecrets(replica string, cs ContainerSpec) ([]specs.Mount, error) {
	if err := cs.checkResolved(); err != nil {
		return nil, err
	}
	if len(cs.Secrets) == 0 {
		return nil, nil
	}
	if err := r.ensureSecretsFS(); err != nil {
		return nil, err
	}
	dir := filepath.Join(secretsDir(r.cfg.StateDir), replica, cs.Name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("secrets of %s: %w", replica, err)
	}
	want := map[string]bool{}
	for _, s := range cs.Secrets {
		if !validFileName(s.File) {
			return nil, fmt.Errorf("secret file name %q is not one path element", s.File)
		}
		want[s.File] = true
		if err := writeSecretFile(dir, s); err != nil {
			return nil, fmt.Errorf("secrets of %s: %w", replica, err)
		}
	}
	if ents, err := os.ReadDir(dir); err == nil {
		for _, e := range ents {
			if !want[e.Name()] {
				os.Remove(filepath.Join(dir, e.Name()))
			}
		}
	}
	// r-x for all: a non-root container user must reach its file; the
	// file's own mode and owner keep others out.
	if err := os.Chmod(dir, 0o555); err != nil {
		return nil, fmt.Errorf("secrets of %s: %w", replica, err)
	}
	return []specs.Mount{{
		Destination: secretsMountPoint, Type: "bind", Source: dir,
		Options: []string{"rbind", "ro", "nosuid", "nodev", "noexec"},
	}}, nil
}

// writeSecretFile writes one file through a temporary name and a rename,
// so a running container never reads half a secret; its owner and mode
// are set before the rename.
func writeSecretFile(dir string, s SecretFile) error {
	tmp := filepath.Join(dir, "."+s.File+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o400)
	if err != nil {
		return err
	}
	_, werr := f.Write(s.Data)
	if err := errors.Join(werr, f.Chown(s.UID, s.GID), f.Chmod(0o400), f.Close()); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write secret file %s: %w", s.File, err)
	}
	return os.Rename(tmp, filepath.Join(dir, s.File))
}

func validFileName(s string) bool {
	return s != "" && s != "." && s != ".." && filepath.Base(s) == s && len(s) <= 255
}

// ensureSecretsFS mounts a tmpfs for secrets unless one is mounted there:
// secrets live in memory only, never on the node's disk. The tmpfs stays
// mounted when the agent stops (running containers keep their files);
// [Runtime.CleanupSecrets] unmounts it.
func (r *Runtime) ensureSecretsFS() error {
	r.secretsMu.Lock()
	defer r.secretsMu.Unlock()
	dir := secretsDir(r.cfg.StateDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("secrets directory: %w", err)
	}
	if isTmpfs(dir) {
		return nil
	}
	opts := "mode=0700,size=" + secretsFSSize
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, opts); err != nil {
		return fmt.Errorf("mount tmpfs for secrets on %s: %w", dir, err)
	}
	r.log.Info("secrets tmpfs mounted", "dir", dir, "size", secretsFSSize)
	return nil
}

func isTmpfs(dir string) bool {
	var st unix.Statfs_t
	return unix.Statfs(dir, &st) == nil && st.Type == unix.TMPFS_MAGIC
}

// removeSecrets deletes a replica's secret files.
func (r *Runtime) removeSecrets(replica string) error {
	dir := filepath.Join(secretsDir(r.cfg.StateDir), replica)
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove secrets of %s: %w", replica, err)
	}
	return nil
}

// CleanupSecrets removes every replica's secret files and unmounts the
// secrets tmpfs; for a node that leaves or is cleaned up.
func CleanupSecrets(stateDir string) error {
	dir := secretsDir(stateDir)
	if !isTmpfs(dir) {
		return nil
	}
	if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
		return fmt.Errorf("unmount secrets tmpfs %s: %w", dir, err)
	}
	return nil
}

// SecretOwner returns the owner a secret file gets by default: the
// container's numeric user (UID or UID:GID, group 0 when not given), else
// root. Only the owner can read the file (mode 0400), so the group matters
// little.
func SecretOwner(user string) (uid, gid int) {
	u, g, _ := strings.Cut(user, ":")
	uid, err := strconv.Atoi(u)
	if err != nil || uid < 0 {
		return 0, 0
	}
	if n, err := strconv.Atoi(g); err == nil && n >= 0 {
		gid = n
	}
	return uid, gid
}

// Package testenv gates tests on what the machine provides (root, binaries on
// PATH) and locates the repository, so that kernel, lab and end-to-end tests
// skip with a reason on a developer laptop and run for real in CI.
//
// The rule: a test that needs something the machine lacks calls t.Skip with a
// sentence saying what is missing. In CI (environment variable CI=true) a
// missing binary is a setup bug, not a reason to skip, so the same helpers
// fail the test instead. CI runs as root, so a missing root is always a skip.
//
// testenv imports only the standard library; any package may use it from
// its tests. All functions are safe for concurrent use.
package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// RequireRoot skips the test unless the process runs with effective UID 0,
// which network namespaces, veth devices and netlink writes need.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces; run as root (CI does)")
	}
}

// InCI reports whether the tests run under CI (environment variable CI=true).
func InCI() bool {
	return os.Getenv("CI") == "true"
}

// RequireCommand skips the test if any of the named binaries is not on PATH,
// naming the missing ones. Under CI (see [InCI]) it fails the test instead,
// because there a missing tool means the CI setup forgot to install it.
func RequireCommand(t testing.TB, names ...string) {
	t.Helper()
	var missing []string
	for _, name := range names {
		if _, err := exec.LookPath(name); err != nil {
			missing = append(missing, name)
		}
	}
	if len(missing) == 0 {
		return
	}
	msg := "needs " + strings.Join(missing, ", ") + " on PATH"
	if InCI() {
		t.Fatal(msg + " (CI=true, so the CI setup must install it)")
	}
	t.Skip(msg)
}

// RepoRoot returns the absolute path of the repository root: the nearest
// directory holding go.mod above this source file or, when the source path
// is unusable (a -trimpath build), above the working directory. It fails
// the test if neither leads to a go.mod.
func RepoRoot(t testing.TB) string {
	t.Helper()
	var starts []string
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		starts = append(starts, filepath.Dir(file))
	}
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	for _, dir := range starts {
		if root, ok := findGoMod(dir); ok {
			return root
		}
	}
	t.Fatalf("cannot find the repository root: no go.mod above %v", starts)
	return ""
}

// findGoMod walks up from dir to the first directory that has a go.mod.
func findGoMod(dir string) (string, bool) {
	for {
		if fi, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil && fi.Mode().IsRegular() {
			return dir, true
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", false
		}
		dir = parent
	}
}

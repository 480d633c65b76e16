package lab

// Ownership of labs across test processes.
//
// go test runs the test binaries of different packages in parallel, and a
// test binary killed by -timeout or SIGKILL runs no cleanups. So every lab
// has a marker file, markerDir/PREFIX, holding "PID STARTTIME" of the test
// process that owns it (STARTTIME is field 22 of /proc/PID/stat, so a
// recycled PID does not look like a live owner). The rules, all under an
// exclusive flock of markerDir/.lock:
//
//   - claim: the marker is created (O_EXCL) before any namespace exists;
//   - release: the marker is removed only after `scripts/lab down`
//     succeeded;
//   - sweep: namespaces are listed *before* markers are read. A lab is
//     stale if its marker names a dead owner, or if it is an automatic
//     "oXXXX-" lab with no marker. Listing namespaces first means a
//     namespace we see had its marker written before we looked, so "no
//     marker" can only mean its owner already released it or never wrote
//     one (a crash before the script ran, or a marker lost some other way).
//
// Release does not take the lock, so a sweep may run `down` on a lab
// whose owner is tearing it down at that moment; both downs tolerate that.

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// markerDir holds one owner marker per lab. It is on the /run tmpfs, like
// /run/netns, so both are forgotten together at reboot.
const markerDir = "/run/orch-lab"

// lockName is the flock file inside markerDir; it is not a prefix because
// prefixes start with a letter or digit.
const lockName = ".lock"

// autoPrefixRE matches the namespace names of labs with automatic prefixes
// and captures the prefix.
var autoPrefixRE = regexp.MustCompile(`^(o[0-9a-f]{4}-)(sw|h[0-9]+)$`)

// owner identifies a process across PID reuse.
type owner struct {
	pid   int
	start uint64 // clock ticks after boot, /proc/PID/stat field 22
}

func (o owner) String() string {
	return strconv.Itoa(o.pid) + " " + strconv.FormatUint(o.start, 10)
}

// parseOwner parses a marker's contents, "PID STARTTIME\n".
func parseOwner(b []byte) (owner, error) {
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return owner{}, fmt.Errorf("owner marker %q: want \"PID STARTTIME\"", b)
	}
	pid, err := strconv.Atoi(f[0])
	if err != nil || pid <= 0 {
		return owner{}, fmt.Errorf("owner marker %q: bad pid", b)
	}
	start, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil {
		return owner{}, fmt.Errorf("owner marker %q: bad start time", b)
	}
	return owner{pid: pid, start: start}, nil
}

// parseStat returns field 3 (state) and field 22 (starttime) of a
// /proc/PID/stat line. Field 2, the command name, is in parentheses and may
// itself contain spaces and parentheses, so fields are counted after the
// last ')'.
func parseStat(stat []byte) (state string, start uint64, err error) {
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return "", 0, fmt.Errorf("parse /proc stat %q: no command name", s)
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3
	const startField = 22 - 3
	if len(f) <= startField {
		return "", 0, fmt.Errorf("parse /proc stat %q: only %d fields", s, len(f)+2)
	}
	start, err = strconv.ParseUint(f[startField], 10, 64)
	if err != nil {
		return "", 0, fmt.Errorf("parse /proc stat %q: start time: %w", s, err)
	}
	return f[0], start, nil
}

// processOwner returns the identity of process pid and whether it has
// exited (a zombie nobody has reaped yet).
func processOwner(pid int) (o owner, zombie bool, err error) {
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return owner{}, false, err
	}
	state, start, err := parseStat(stat)
	if err != nil {
		return owner{}, false, err
	}
	return owner{pid: pid, start: start}, state == "Z", nil
}

// alive reports whether the process o still runs.
func (o owner) alive() bool {
	cur, zombie, err := processOwner(o.pid)
	return err == nil && !zombie && cur == o
}

// withMarkerLock runs f holding the exclusive flock that serialises sweeps
// and claims across test processes. flock locks belong to the open file
// description, so goroutines of one process exclude each other too.
func withMarkerLock(f func() error) error {
	if err := os.MkdirAll(markerDir, 0o755); err != nil {
		return err
	}
	lf, err := os.OpenFile(filepath.Join(markerDir, lockName), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	defer lf.Close()
	for {
		err = syscall.Flock(int(lf.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("lock %s: %w", lf.Name(), err)
	}
	return f() // closing lf releases the lock
}

// claimPrefix sweeps stale labs, then claims want (or, if want is empty, a
// fresh automatic prefix) for this process by writing its marker.
func claimPrefix(t testing.TB, script, want string) (string, error) {
	t.Helper()
	self, _, err := processOwner(os.Getpid())
	if err != nil {
		return "", fmt.Errorf("read own process start time: %w", err)
	}
	var claimed string
	err = withMarkerLock(func() error {
		live, err := sweepLocked(t, script)
		if err != nil {
			return err
		}
		if want != "" {
			if err := checkOverlap(want, live); err != nil {
				return err
			}
			if err := writeMarker(want, self); err != nil {
				return err
			}
			claimed = want
			return nil
		}
		nss, err := listNamespaces()
		if err != nil {
			return err
		}
		// 65536 prefixes; a handful of live labs make a collision rare,
		// and each retry is independent.
		for range 32 {
			p, err := randomPrefix()
			if err != nil {
				return err
			}
			if checkOverlap(p, live) != nil || anyHasPrefix(nss, p) {
				continue
			}
			err = writeMarker(p, self)
			if errors.Is(err, fs.ErrExist) {
				continue
			}
			if err != nil {
				return err
			}
			claimed = p
			return nil
		}
		return errors.New("no free lab prefix after 32 tries")
	})
	return claimed, err
}

// releasePrefix removes the marker of prefix; a missing marker is fine.
func releasePrefix(prefix string) error {
	err := os.Remove(filepath.Join(markerDir, prefix))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// sweepLocked tears down stale labs and returns the prefixes of live ones.
// The caller holds the marker lock.
func sweepLocked(t testing.TB, script string) (live []string, err error) {
	t.Helper()
	nss, err := listNamespaces() // before the markers; see the file comment
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(markerDir)
	if err != nil {
		return nil, err
	}
	marked := make(map[string]bool)
	var stale []string
	for _, e := range entries {
		prefix := e.Name()
		if prefix == lockName || !e.Type().IsRegular() {
			continue
		}
		marked[prefix] = true
		b, err := os.ReadFile(filepath.Join(markerDir, prefix))
		if errors.Is(err, fs.ErrNotExist) {
			continue // released since ReadDir
		}
		if err != nil {
			return nil, err
		}
		o, err := parseOwner(b)
		if err == nil && o.alive() {
			live = append(live, prefix)
			continue
		}
		// A corrupt marker cannot name a live owner either.
		t.Logf("lab: removing stale lab %s (marker %q: owner gone)", prefix, strings.TrimSpace(string(b)))
		stale = append(stale, prefix)
	}
	orphans := make(map[string]bool)
	for _, ns := range nss {
		if m := autoPrefixRE.FindStringSubmatch(ns); m != nil && !marked[m[1]] && !orphans[m[1]] {
			orphans[m[1]] = true
			t.Logf("lab: removing stale lab %s (namespace %s has no owner marker)", m[1], ns)
			stale = append(stale, m[1])
		}
	}
	var errs []error
	for _, prefix := range stale {
		if _, err := runScript(script, "down", "--prefix", prefix); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := releasePrefix(prefix); err != nil {
			errs = append(errs, err)
		}
	}
	// A stale lab that cannot be removed does not stop a new one.
	if err := errors.Join(errs...); err != nil {
		t.Logf("lab: sweeping stale labs: %v", err)
	}
	return live, nil
}

// checkOverlap rejects a prefix that is a prefix of a live lab's prefix or
// starts with one: `scripts/lab down` of either would delete the other.
func checkOverlap(prefix string, live []string) error {
	for _, q := range live {
		if strings.HasPrefix(q, prefix) || strings.HasPrefix(prefix, q) {
			return fmt.Errorf("lab prefix %q overlaps %q of a lab owned by a live process (see %s)", prefix, q, markerDir)
		}
	}
	return nil
}

func anyHasPrefix(names []string, prefix string) bool {
	for _, n := range names {
		if strings.HasPrefix(n, prefix) {
			return true
		}
	}
	return false
}

// writeMarker creates the marker of prefix; it fails with fs.ErrExist if
// one exists.
func writeMarker(prefix string, o owner) error {
	f, err := os.OpenFile(filepath.Join(markerDir, prefix), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	_, err = f.WriteString(o.String() + "\n")
	return errors.Join(err, f.Close())
}

// randomPrefix returns "o" + 4 random hex digits + "-".
func randomPrefix() (string, error) {
	var b [2]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return "o" + hex.EncodeToString(b[:]) + "-", nil
}

// listNamespaces returns the names of all named network namespaces.
func listNamespaces() ([]string, error) {
	entries, err := os.ReadDir(netnsDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names, nil
}

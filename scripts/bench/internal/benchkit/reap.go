package benchkit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Paths containerd 1.6 and its runc shim do not let us move (see
// internal/testenv/containerd.go): runc's state is RuncStateRoot/NS/ID for
// every containerd on the machine, and bundles are
// STATE/TaskDir/NS/ID under each containerd's state directory.
const (
	RuncStateRoot = "/run/containerd/runc"
	TaskDir       = "io.containerd.runtime.v2.task"
)

// ReapOptions say what else than processes and files a run leaves.
type ReapOptions struct {
	// ContainerdStates are glob patterns, relative to the work
	// directory, of the state directories of the run's containerds
	// ("ctd/state", "run/*/ctd/state"). The runc state, cgroup leaf and
	// shim socket of every bundle left there are removed.
	ContainerdStates []string
	// OwnNamespaces are containerd namespaces that nothing else on the
	// machine uses; their cgroup parents and runc state directories are
	// removed too, if empty. The agents' namespace "orch" is shared with
	// every test's containerd, so a benchmark lists it only if it accepts
	// removing it when empty.
	OwnNamespaces []string
}

// Reap removes everything a run with work directory work left but its
// logs: processes naming the directory in their command line (daemons
// started with paths below it) and containerd shims whose -address is
// below it, each with its descendants (the containers); what
// o.ContainerdStates lists; mounts below the directory (rootfs overlays,
// replicas' network namespaces); and everything in the directory except
// logs/. It refuses a relative or root work directory.
func Reap(work string, o ReapOptions) error {
	work = filepath.Clean(work)
	if !filepath.IsAbs(work) || work == "/" {
		return fmt.Errorf("refusing to reap %q: want an absolute path below /", work)
	}
	var errs []error
	ps := ListProcs(true)
	mine := Ancestors(ps)
	var roots []int
	for _, p := range ps {
		if mine[p.PID] {
			continue
		}
		addr := strings.TrimPrefix(ShimAddress(p.Argv), "unix://")
		named := slices.ContainsFunc(p.Argv, func(a string) bool { return a == work || strings.Contains(a, work+"/") })
		if named || strings.HasPrefix(addr, work+"/") {
			roots = append(roots, p.PID)
		}
	}
	KillTrees(ps, roots)

	var cgroups []string
	for _, pattern := range o.ContainerdStates {
		states, _ := filepath.Glob(filepath.Join(work, pattern))
		for _, state := range states {
			cg, err := reapBundles(filepath.Join(state, TaskDir))
			cgroups = append(cgroups, cg...)
			errs = append(errs, err)
		}
	}
	// The parents after their leaves: removeCgroups goes deepest first,
	// and rmdir leaves a busy or non-empty one alone.
	for _, ns := range o.OwnNamespaces {
		cgroups = append(cgroups, "/"+ns)
	}
	removeCgroups(cgroups)
	for _, ns := range o.OwnNamespaces {
		os.Remove(filepath.Join(RuncStateRoot, ns))
	}

	errs = append(errs, unmountUnder(work))
	entries, err := os.ReadDir(work)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, err)
	}
	for _, e := range entries {
		if e.Name() == "logs" {
			continue
		}
		if err := os.RemoveAll(filepath.Join(work, e.Name())); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// reapBundles removes the shim socket and runc state of every bundle under
// tasks (a containerd state's TaskDir) and returns their cgroup paths.
func reapBundles(tasks string) (cgroups []string, err error) {
	var errs []error
	nss, _ := os.ReadDir(tasks)
	for _, ns := range nss {
		ids, _ := os.ReadDir(filepath.Join(tasks, ns.Name()))
		for _, id := range ids {
			bundle := filepath.Join(tasks, ns.Name(), id.Name())
			if b, err := os.ReadFile(filepath.Join(bundle, "address")); err == nil {
				os.Remove(strings.TrimPrefix(strings.TrimSpace(string(b)), "unix://"))
			}
			root := filepath.Join(RuncStateRoot, ns.Name())
			if _, err := os.Stat(filepath.Join(root, id.Name(), "state.json")); err == nil {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				out, err := exec.CommandContext(ctx, "runc", "--root", root, "delete", "--force", id.Name()).CombinedOutput()
				cancel()
				if err != nil {
					errs = append(errs, fmt.Errorf("runc delete --force %s: %v: %s", id.Name(), err, bytes.TrimSpace(out)))
				}
			} else {
				os.RemoveAll(filepath.Join(root, id.Name()))
			}
			cgroups = append(cgroups, "/"+ns.Name()+"/"+id.Name())
		}
	}
	return cgroups, errors.Join(errs...)
}

// mountPoints returns mount points and types of /proc/self/mountinfo.
func mountPoints() (points, types []string) {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		sep := slices.Index(f, "-")
		if len(f) < 5 || sep < 5 || sep+1 >= len(f) {
			continue
		}
		points = append(points, unescapeMountinfo(f[4]))
		types = append(types, f[sep+1])
	}
	return points, types
}

// unescapeMountinfo undoes the octal escapes (\040 for a space) of a
// mountinfo field.
func unescapeMountinfo(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// removeCgroups rmdirs each cgroup path (deepest first) in every cgroup
// hierarchy; busy or missing ones are left alone.
func removeCgroups(rels []string) {
	slices.SortStableFunc(rels, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
	points, types := mountPoints()
	for i, p := range points {
		if types[i] != "cgroup" && types[i] != "cgroup2" {
			continue
		}
		for _, rel := range rels {
			syscall.Rmdir(filepath.Join(p, rel))
		}
	}
}

// unmountUnder unmounts everything at or below dir, deepest and newest first.
func unmountUnder(dir string) error {
	var errs []error
	for range 3 { // stacked mounts: repeat
		points, _ := mountPoints()
		var under []string
		for i := len(points) - 1; i >= 0; i-- {
			if p := points[i]; p == dir || strings.HasPrefix(p, dir+"/") {
				under = append(under, p)
			}
		}
		if len(under) == 0 {
			return nil
		}
		slices.SortStableFunc(under, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
		errs = errs[:0]
		for _, p := range under {
			err := syscall.Unmount(p, 0)
			if err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
				err = syscall.Unmount(p, syscall.MNT_DETACH)
			}
			if err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
				errs = append(errs, fmt.Errorf("unmount %s: %w", p, err))
			}
		}
	}
	return errors.Join(errs...)
}

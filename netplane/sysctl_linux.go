package netplane

import (
	"fmt"
	"os"
	"strings"

	"github.com/orchproject/orch/internal/netnsthread"
)

// ensureSysctl sets the sysctl at key (a path under /proc/sys, such as
// "net/ipv4/ip_forward") to want in the network namespace at nsPath ("" =
// the caller's), and reports whether it had to.
func ensureSysctl(nsPath, key, want string) (changed bool, err error) {
	err = inNetNS(nsPath, func() error {
		path := "/proc/sys/" + key
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("read %s: %w", path, err)
		}
		if strings.TrimSpace(string(b)) == want {
			return nil
		}
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
		changed = true
		return nil
	})
	return changed, err
}

// inNetNS runs fn on an OS thread that is in the network namespace at
// nsPath; "" runs it in place. /proc/sys/net shows the namespace of the
// thread that opens it, which is why a sysctl needs this and netlink does
// not (its sockets are bound to a namespace when created).
//
// The thread is switched back to its own namespace afterwards and only
// then unlocked. Leaving it locked so that it dies with the goroutine is
// not enough: the goroutine may run on the process's main thread, which
// the Go runtime cannot end and parks instead, still in the other
// namespace, and /proc/PID/ns/net (what `ip netns pids` and
// scripts/lab down look at) then names that namespace for the whole
// process. Only when switching back fails does the thread stay locked, and
// is discarded. No unshare(CLONE_FS): a network namespace does not need
// it, and a thread that returns to the scheduler must share the process's
// working directory.
func inNetNS(nsPath string, fn func() error) error {
	if nsPath == "" {
		return fn()
	}
	return netnsthread.Do(nsPath, fn)
}

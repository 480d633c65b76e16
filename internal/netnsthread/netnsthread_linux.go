// Package netnsthread runs code inside another network namespace on a
// locked OS thread, and brings the thread back: the one implementation of
// that dance for the agent, netplane, the tests and the benchmarks.
package netnsthread

import (
	"errors"
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// Do runs fn on an OS thread switched into the network namespace at path
// (a bind mount such as /run/netns/NAME, or /proc/PID/ns/net). Sockets fn
// opens belong to that namespace for good, whichever thread later uses
// them.
//
// The thread is switched back to its own namespace afterwards and only
// then unlocked. Leaving it locked so that it dies with the goroutine is
// not enough: the goroutine may run on the process's main thread, which
// the Go runtime cannot end and parks instead, still in the other
// namespace, and /proc/PID/ns/net (what `ip netns pids` and scripts/lab
// down look at) then names that namespace for the whole process. Only when
// switching back fails does the thread stay locked, and is discarded. No
// unshare(CLONE_FS): a network namespace does not need it, and a thread
// that returns to the scheduler must share the process's working
// directory.
func Do(path string, fn func() error) error {
	errc := make(chan error, 1) // buffered: the goroutine must finish even if nobody reads
	go func() {
		runtime.LockOSThread()
		errc <- func() error {
			target, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				runtime.UnlockOSThread()
				return fmt.Errorf("open network namespace %s: %w", path, err)
			}
			defer unix.Close(target)
			home, err := unix.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()), unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				runtime.UnlockOSThread()
				return fmt.Errorf("open the thread's own network namespace: %w", err)
			}
			defer unix.Close(home)
			if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
				runtime.UnlockOSThread() // still at home
				return fmt.Errorf("enter network namespace %s: %w", path, err)
			}
			ferr := fn()
			if err := unix.Setns(home, unix.CLONE_NEWNET); err != nil {
				// Stay locked: the thread is discarded with the goroutine.
				return errors.Join(ferr, fmt.Errorf("return from network namespace %s: %w", path, err))
			}
			runtime.UnlockOSThread()
			return ferr
		}()
	}()
	return <-errc
}

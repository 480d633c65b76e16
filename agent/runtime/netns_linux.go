package runtime

import (
	"errors"
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// loopbackUp brings up "lo" inside the network namespace at path. A new
// namespace starts with it down, and the containers of a replica talk to
// each other over it.
//
// It switches one locked OS thread into the namespace and back. The thread
// is unlocked only once it is home again: a thread that cannot switch back
// stays locked and is discarded with its goroutine. Leaving every switched
// thread locked (and never coming back) is not enough: the runtime cannot
// discard the process's main thread, which would stay parked in the
// replica's namespace, where /proc/self/ns/net and `ip netns pids` see it.
func loopbackUp(path string) error {
	errc := make(chan error, 1) // buffered: the goroutine must finish even if nobody reads
	go func() {
		runtime.LockOSThread()
		errc <- func() error {
			target, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				runtime.UnlockOSThread()
				return fmt.Errorf("open %s: %w", path, err)
			}
			defer unix.Close(target)
			home, err := unix.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()), unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				runtime.UnlockOSThread()
				return fmt.Errorf("open the thread's network namespace: %w", err)
			}
			defer unix.Close(home)
			if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
				runtime.UnlockOSThread() // still at home
				return fmt.Errorf("enter %s: %w", path, err)
			}
			ferr := setLoopbackUp()
			if err := unix.Setns(home, unix.CLONE_NEWNET); err != nil {
				// Stay locked: the thread is discarded with the goroutine.
				return errors.Join(ferr, fmt.Errorf("return from %s: %w", path, err))
			}
			runtime.UnlockOSThread()
			if ferr != nil {
				return fmt.Errorf("in %s: %w", path, ferr)
			}
			return nil
		}()
	}()
	return <-errc
}

// setLoopbackUp sets IFF_UP on "lo" of the calling thread's namespace.
func setLoopbackUp() error {
	sock, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	defer unix.Close(sock)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(sock, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("read flags of lo: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(sock, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bring lo up: %w", err)
	}
	return nil
}

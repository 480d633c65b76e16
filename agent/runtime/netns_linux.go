package runtime

import (
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// loopbackUp brings up "lo" inside the network namespace at path. A new
// namespace starts with it down, and the containers of a replica talk to
// each other over it.
//
// It switches one OS thread into the namespace; the thread is never handed
// back to the scheduler (it exits with its goroutine), so a failure to
// switch back cannot leak the namespace into unrelated goroutines.
func loopbackUp(path string) error {
	errc := make(chan error, 1) // buffered: the goroutine must finish even if nobody reads
	go func() {
		runtime.LockOSThread()
		// No UnlockOSThread: the goroutine ends and takes the thread with it.
		errc <- func() error {
			fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				return fmt.Errorf("open %s: %w", path, err)
			}
			defer unix.Close(fd)
			if err := unix.Unshare(unix.CLONE_FS); err != nil {
				return fmt.Errorf("unshare: %w", err)
			}
			if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
				return fmt.Errorf("enter %s: %w", path, err)
			}
			sock, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return fmt.Errorf("socket in %s: %w", path, err)
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
		}()
	}()
	return <-errc
}

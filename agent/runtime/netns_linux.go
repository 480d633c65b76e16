package runtime

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/orchproject/orch/internal/netnsthread"
)

// loopbackUp brings up "lo" inside the network namespace at path. A new
// namespace starts with it down, and the containers of a replica talk to
// each other over it.
func loopbackUp(path string) error {
	return netnsthread.Do(path, setLoopbackUp)
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

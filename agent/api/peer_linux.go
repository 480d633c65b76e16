package api

import (
	"net"

	"golang.org/x/sys/unix"
)

// peer is the process at the other end of a unix socket connection.
type peer struct{ uid, gid, pid int }

// peerCred asks the kernel who is connected (SO_PEERCRED); -1s when it
// cannot tell, and for TLS connections (a *tls.Conn, not a unix socket),
// whose caller is on another machine and known by its certificate.
func peerCred(c net.Conn) peer {
	p := peer{-1, -1, -1}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return p
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return p
	}
	raw.Control(func(fd uintptr) {
		if cred, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED); err == nil {
			p = peer{int(cred.Uid), int(cred.Gid), int(cred.Pid)}
		}
	})
	return p
}

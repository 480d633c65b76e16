package dnsdisc

// System call numbers the syscall package lacks on amd64 (it has no
// SYS_SENDMMSG there).
const (
	sysRecvmmsg = 299
	sysSendmmsg = 307
)

package agent

import (
	"fmt"
	"os/user"
	"strconv"

	"github.com/orchproject/orch/agent/api"
	"github.com/orchproject/orch/agent/events"
)

// API events: every mutating call, with its caller.
const (
	typeAPI events.Type   = "api"
	actCall events.Action = "call"
)

// audit records a mutating API call as an event: who, what and how it
// ended. Who is the caller's uid, gid and pid from the socket's peer
// credentials, or, for a TLS caller, its certificate (caller "cn=NAME",
// cert_sha256) and remote address, with uid, gid and pid -1. Bodies are
// never recorded: they may hold secrets.
func (a *Agent) audit(r api.AuditRecord) {
	attrs := map[string]string{
		"uid": strconv.Itoa(r.UID), "gid": strconv.Itoa(r.GID), "pid": strconv.Itoa(r.PID), "status": strconv.Itoa(r.Status),
	}
	if r.Remote != "" {
		attrs["caller"] = "cn=" + r.CN
		attrs["cert_sha256"] = r.Fingerprint
		attrs["remote"] = r.Remote
	}
	a.bus.Publish(typeAPI, actCall, r.Method+" "+r.Path, attrs)
}

// lookupGroup resolves a group name or numeric ID.
func lookupGroup(g string) (int, error) {
	if id, err := strconv.Atoi(g); err == nil && id >= 0 {
		return id, nil
	}
	gr, err := user.LookupGroup(g)
	if err != nil {
		return -1, fmt.Errorf("socket group %q: %w", g, err)
	}
	return strconv.Atoi(gr.Gid)
}

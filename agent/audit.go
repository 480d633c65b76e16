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

// audit records a mutating API call as an event: who (the caller's uid,
// gid and pid, from the socket's peer credentials), what and how it ended.
// Bodies are never recorded: they may hold secrets.
func (a *Agent) audit(r api.AuditRecord) {
	a.bus.Publish(typeAPI, actCall, r.Method+" "+r.Path, map[string]string{
		"uid": strconv.Itoa(r.UID), "gid": strconv.Itoa(r.GID), "pid": strconv.Itoa(r.PID), "status": strconv.Itoa(r.Status),
	})
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

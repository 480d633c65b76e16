package agent

import (
	"maps"
	"testing"
	"time"

	"github.com/orchproject/orch/agent/api"
	"github.com/orchproject/orch/agent/events"
)

// TestAudit_Attributes: an api call event names a socket caller by uid,
// gid and pid, and a TLS caller by its certificate and address.
func TestAudit_Attributes(t *testing.T) {
	tests := []struct {
		name string
		rec  api.AuditRecord
		want map[string]string
	}{
		{"Socket", api.AuditRecord{Method: "POST", Path: "/v1/services", UID: 65534, GID: 65534, PID: 42, Status: 200},
			map[string]string{"uid": "65534", "gid": "65534", "pid": "42", "status": "200"}},
		{"TLS", api.AuditRecord{Method: "DELETE", Path: "/v1/services/web", UID: -1, GID: -1, PID: -1, Status: 404,
			CN: "alice", Fingerprint: "ab12", Remote: "192.0.2.7:50123"},
			map[string]string{"uid": "-1", "gid": "-1", "pid": "-1", "status": "404",
				"caller": "cn=alice", "cert_sha256": "ab12", "remote": "192.0.2.7:50123"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bus, err := events.New(events.Config{Node: "n1"})
			if err != nil {
				t.Fatal(err)
			}
			defer bus.Close()
			a := &Agent{bus: bus}
			a.audit(tt.rec)
			sub, err := bus.Subscribe(events.SubscribeOptions{Since: time.Now().Add(-time.Hour)})
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
			select {
			case ev := <-sub.C():
				if ev.Type != "api" || ev.Action != "call" || ev.Subject != tt.rec.Method+" "+tt.rec.Path {
					t.Errorf("event %s %s %q, want api call %q", ev.Type, ev.Action, ev.Subject, tt.rec.Method+" "+tt.rec.Path)
				}
				if !maps.Equal(ev.Attributes, tt.want) {
					t.Errorf("attributes = %v, want %v", ev.Attributes, tt.want)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("no event")
			}
		})
	}
}

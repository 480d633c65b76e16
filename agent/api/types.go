package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// Version is the API's path prefix; a breaking change gets a new one.
const Version = "v1"

// Member is one cluster member, as `orch members` shows it.
type Member struct {
	Name string `json:"name"`
	// ID is the stable node ID; empty for members that are not orch agents.
	ID      string `json:"id,omitempty"`
	Address string `json:"address"`
	// Status is alive, leaving, left or failed.
	Status string            `json:"status"`
	Labels map[string]string `json:"labels"`
	// Subnet is the overlay subnet the member claims for its replicas;
	// empty before it has one, or with the overlay off.
	Subnet string `json:"subnet,omitempty"`
	// Created is when the node first started with its data dir; age is
	// counted from it. Absent for members that are not orch agents.
	Created *time.Time `json:"created,omitempty"`
	// Orch is false for members that are not orch agents (a stock serf
	// agent holding the key, say): shown, never given work.
	Orch bool `json:"orch"`
	// Self marks the member answering the request.
	Self bool              `json:"self"`
	Tags map[string]string `json:"tags"`
}

// Info describes the agent answering.
type Info struct {
	Name    string `json:"name"`
	ID      string `json:"id"`
	Version string `json:"version"`
	// Cluster is the cluster's short ID; empty until the agent is a member.
	Cluster string `json:"cluster,omitempty"`
	// GossipAddr is the gossip address the agent advertises.
	GossipAddr string `json:"gossip_addr,omitempty"`
	// Members counts the members this agent knows, by status.
	Members map[string]int `json:"members,omitempty"`
	// Subnet is this node's overlay subnet; empty with the overlay off or
	// before it is claimed.
	Subnet string `json:"subnet,omitempty"`
	// Replicas counts the slots this node holds, by state.
	Replicas map[string]int `json:"replicas,omitempty"`
	// DNS is the node's DNS server; nil when it is off.
	DNS *DNSInfo `json:"dns,omitempty"`
}

// DNSInfo describes the node's DNS server and its counters since start.
type DNSInfo struct {
	Domain    string   `json:"domain"`
	Listeners []string `json:"listeners"`
	// Queries counts queries by type (A, AAAA, SRV, PTR, SOA, NS, ANY,
	// other); Responses counts answers by rcode.
	Queries         map[string]uint64 `json:"queries"`
	Responses       map[string]uint64 `json:"responses"`
	Forwarded       uint64            `json:"forwarded"`
	CacheHits       uint64            `json:"cache_hits"`
	ForwardFailures uint64            `json:"forward_failures"`
	Truncated       uint64            `json:"truncated"`
	Malformed       uint64            `json:"malformed"`
	Dropped         uint64            `json:"dropped"`
}

// TokenResponse carries the cluster's join token.
type TokenResponse struct {
	Token string `json:"token"`
}

// JoinRequest asks the agent to join the members at Addresses. Token is
// needed when the agent is still alone in a cluster of its own.
type JoinRequest struct {
	Token     string   `json:"token,omitempty"`
	Addresses []string `json:"addresses"`
}

// JoinResponse reports how many addresses answered.
type JoinResponse struct {
	Contacted int `json:"contacted"`
}

// Event is one entry of the event stream; `orch events` prints it as one
// line of JSON.
type Event struct {
	Time       time.Time         `json:"time"`
	Seq        uint64            `json:"seq"`
	Type       string            `json:"type"`
	Action     string            `json:"action"`
	Node       string            `json:"node"`
	Subject    string            `json:"subject"`
	Attributes map[string]string `json:"attributes"`
}

// EventTimeFormat is how an Event's time is written: RFC 3339 in UTC with
// exactly nine fractional digits. A fixed width keeps lines from every node
// sortable as plain strings (time.RFC3339Nano trims trailing zeros).
const EventTimeFormat = "2006-01-02T15:04:05.000000000Z07:00"

// MarshalJSON writes Time in [EventTimeFormat] and attributes as {} when
// there are none. time is the first key, so that lines from every node
// sort by time as plain text (a shadowing field of an embedded struct
// would come last).
func (e Event) MarshalJSON() ([]byte, error) {
	attrs := e.Attributes
	if attrs == nil {
		attrs = map[string]string{}
	}
	return json.Marshal(struct {
		Time       string            `json:"time"`
		Seq        uint64            `json:"seq"`
		Type       string            `json:"type"`
		Action     string            `json:"action"`
		Node       string            `json:"node"`
		Subject    string            `json:"subject"`
		Attributes map[string]string `json:"attributes"`
	}{e.Time.UTC().Format(EventTimeFormat), e.Seq, e.Type, e.Action, e.Node, e.Subject, attrs})
}

// EventsRequest selects events: Filters like "type=member" (same key
// repeated = any of, different keys = all of), replay of retained events
// after a sequence number or younger than Since, then the live stream.
type EventsRequest struct {
	Filters []string
	After   uint64
	Since   time.Duration
}

// Error is the body of every failed request, and the error the Client
// returns for it.
type Error struct {
	// Status is the HTTP status; not part of the body.
	Status  int    `json:"-"`
	Message string `json:"error"`
}

func (e *Error) Error() string { return e.Message }

// Errorf returns an *Error with the given HTTP status, for a Backend to say
// how a failure should be reported (400 for bad input, 409 for conflicts,
// 503 while not ready). Other errors are reported as 500.
func Errorf(status int, format string, args ...any) error {
	return &Error{Status: status, Message: fmt.Sprintf(format, args...)}
}

// BadRequest wraps err as a 400 error.
func BadRequest(err error) error {
	return &Error{Status: http.StatusBadRequest, Message: err.Error()}
}

// ServiceInfo is one service as `orch service ls` and `inspect` show it.
type ServiceInfo struct {
	Name string `json:"name"`
	// Version identifies the spec's revision cluster-wide: the Lamport time
	// of the write and the node that wrote it, "12@n1".
	Version string `json:"version"`
	// Spec is the service spec (see agent/spec), with defaults filled in.
	Spec     json.RawMessage `json:"spec"`
	Replicas int             `json:"replicas"`
	// Assigned counts slots held by the node placement chose, working on
	// the current version; Pending counts slots no node can take.
	Assigned int `json:"assigned"`
	Pending  int `json:"pending"`
}

// ServiceWrite carries a spec to create or update a service. BaseVersion,
// if set, makes an update fail with 409 when the service has changed since
// that version was read (read-modify-write without lost updates).
type ServiceWrite struct {
	Spec        json.RawMessage `json:"spec"`
	BaseVersion string          `json:"base_version,omitempty"`
}

// ApplyResult reports what `orch apply` did.
type ApplyResult struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	// Action is created, updated or unchanged.
	Action string `json:"action"`
}

// Task is one replica slot of a service, as `orch service ps` shows it.
type Task struct {
	Service string `json:"service"`
	Slot    int    `json:"slot"`
	// Node is where placement puts the slot; empty while pending.
	Node string `json:"node,omitempty"`
	// Desired is what the slot should be doing: running.
	Desired string `json:"desired"`
	// State is pending (no node can take it; Message says why), assigning
	// (placed, not yet claimed by its node), assigned (claimed, on an agent
	// that runs no containers), or what the node's containerd says:
	// starting, running, restarting, exited, failed, unavailable (the image
	// is missing there).
	State       string `json:"state"`
	Message     string `json:"message,omitempty"`
	SpecVersion string `json:"spec_version,omitempty"`
	// Current is true when the slot works on the service's current version.
	Current bool `json:"current"`
	// Restarts counts restarts of the slot's containers on its node.
	Restarts int `json:"restarts"`
	// Addr is the replica's overlay address; empty before it has one, or
	// when the overlay is off.
	Addr string `json:"addr,omitempty"`
	// Health is starting, healthy or unhealthy for a running replica with
	// a health check; empty without one. DNS announces a running replica
	// only when it is healthy or has no check.
	Health string `json:"health,omitempty"`
}

// Image is an image in the agent's containerd, as `orch image ls` shows it.
type Image struct {
	Name string `json:"name"`
	// Digest is the manifest digest: what replicas run.
	Digest  string    `json:"digest"`
	Size    int64     `json:"size"`
	Created time.Time `json:"created"`
}

// LogsRequest selects the logs of a service's replicas on the answering
// node: one slot or all, the last Tail lines (all with -1), then new lines
// while Follow.
type LogsRequest struct {
	Service string
	Slot    *int
	Tail    int
	Follow  bool
}

// LogLine is one line of a container's output.
type LogLine struct {
	// Source is "service.slot/container".
	Source string `json:"source"`
	Line   string `json:"line"`
}

// PullRequest asks the agent's node to pull an image.
type PullRequest struct {
	Ref string `json:"ref"`
}

// PullProgress is one line of a pull's NDJSON stream: progress while bytes
// come in, then a last line with Image (or the error).
type PullProgress struct {
	Done  int64  `json:"done,omitempty"`
	Total int64  `json:"total,omitempty"`
	Image *Image `json:"image,omitempty"`
	Error string `json:"error,omitempty"`
}

// KeyRequest names a gossip key (base64 of 32 bytes) for install, use or
// remove.
type KeyRequest struct {
	Key string `json:"key"`
}

// KeyResult is a cluster-wide key operation's outcome: how many members
// were asked and answered, the errors by node, and (for a listing) how
// many nodes hold each key and use it as primary.
type KeyResult struct {
	Nodes     int               `json:"nodes"`
	Responses int               `json:"responses"`
	Failed    map[string]string `json:"failed,omitempty"`
	Keys      map[string]int    `json:"keys,omitempty"`
	Primary   map[string]int    `json:"primary,omitempty"`
}

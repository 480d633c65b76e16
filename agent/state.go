package agent

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/orchproject/orch/agent/spec"
	"github.com/orchproject/orch/gossip"
)

// Store tables. The store holds bytes; these types give them meaning.
const (
	// tableServices is desired state: service name → canonical spec JSON,
	// shared, last writer wins.
	tableServices = "svc"
	// tablePrevious holds, per service, the spec its last update replaced:
	// what update.failureAction rollback goes back to. Shared, LWW.
	tablePrevious = "svcprev"
	// tableTasks is observed state: "<service>/<slot>" → taskRecord JSON,
	// owned by the node holding the slot.
	tableTasks = "task"
)

// Task states, as `orch service ps` shows them.
const (
	taskAssigned  = "assigned"  // claimed by the node placement chose
	taskAssigning = "assigning" // placed, not yet claimed by its node
	taskPending   = "pending"   // no node can take it (see the message)
)

// taskRecord is a node's claim on a slot: "I hold (service, slot)".
type taskRecord struct {
	Service string `json:"service"`
	Slot    int    `json:"slot"`
	Node    string `json:"node"`
	// SpecVersion is the service version the node is working on.
	SpecVersion string `json:"spec_version"`
	// Since is the Lamport time of the claim, kept across updates of the
	// record: placement keeps the later claim when two nodes hold a slot.
	Since uint64 `json:"since"`
	State string `json:"state"`
	// Message explains the state (an exit code, why a start failed).
	Message string `json:"message,omitempty"`
	// Restarts counts restarts of the slot's containers on this node.
	Restarts int `json:"restarts,omitempty"`
	// Addr is the replica's overlay address, once it has one.
	Addr string `json:"addr,omitempty"`
	// Health is the worst health of the replica's checked containers:
	// starting, healthy or unhealthy; empty when none is checked. DNS
	// announces a running replica only when it is empty or healthy.
	Health string `json:"health,omitempty"`
	// RunningSince is when the slot last came up (Unix ms, the owner's
	// clock): rolling updates wait update.delay after it.
	RunningSince int64 `json:"running_since,omitempty"`
}

func taskKey(service string, slot int) string { return service + "/" + strconv.Itoa(slot) }

// taskSubject turns a task key into the name users see: "web.0", as in
// `orch service ps` (and Docker's task names).
func taskSubject(key string) string { return strings.Replace(key, "/", ".", 1) }

// serviceState is one service as the store holds it.
type serviceState struct {
	Spec    *spec.Service
	Version string
}

func versionString(v gossip.Version) string { return v.String() }

// decodeServices reads the services table. Entries that do not decode are
// skipped: they were validated by the writer, so one that fails here comes
// from a newer or broken agent, and skipping it must not stop the rest.
func decodeServices(es []gossip.Entry) map[string]serviceState {
	out := make(map[string]serviceState, len(es))
	for _, e := range es {
		if s := decodeService(e); s != nil {
			out[e.Key] = serviceState{Spec: s, Version: versionString(e.Version)}
		}
	}
	return out
}

// decodeService decodes one entry of the services table; nil if it does
// not decode or names another service.
func decodeService(e gossip.Entry) *spec.Service {
	s, err := spec.Decode(e.Value)
	if err != nil || s.Name != e.Key {
		return nil
	}
	return s
}

// specCache keeps decoded specs by key and store version. The reconcile
// loop, the DNS loop and the API each read the whole services table, many
// times a second while tasks churn, and decoding 1,000 specs takes about
// 45 ms and 15 MB (BenchmarkDecodeServices); an entry's version names its
// value, so a spec is decoded once per write. The specs it returns are
// shared: nobody may modify them (Clone to change one).
type specCache struct {
	mu sync.Mutex
	m  map[string]cachedSpec
}

type cachedSpec struct {
	version gossip.Version
	st      serviceState // Spec nil: the entry does not decode
}

// services is decodeServices through the cache. The cache keeps only the
// entries of the latest call, so deleted services do not pile up.
func (c *specCache) services(es []gossip.Entry) map[string]serviceState {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]serviceState, len(es))
	next := make(map[string]cachedSpec, len(es))
	for _, e := range es {
		cs, ok := c.m[e.Key]
		if !ok || cs.version != e.Version {
			cs = cachedSpec{version: e.Version, st: serviceState{Spec: decodeService(e), Version: versionString(e.Version)}}
		}
		next[e.Key] = cs
		if cs.st.Spec != nil {
			out[e.Key] = cs.st
		}
	}
	c.m = next
	return out
}

// decodeTasks reads the tasks table, keeping records whose owner matches
// the node they name.
func decodeTasks(es []gossip.Entry) []taskRecord {
	out := make([]taskRecord, 0, len(es))
	for _, e := range es {
		var r taskRecord
		if err := json.Unmarshal(e.Value, &r); err != nil || r.Node != e.Owner || e.Key != taskKey(r.Service, r.Slot) {
			continue
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Service != out[j].Service {
			return out[i].Service < out[j].Service
		}
		if out[i].Slot != out[j].Slot {
			return out[i].Slot < out[j].Slot
		}
		return out[i].Node < out[j].Node
	})
	return out
}

func replicasOf(s *spec.Service) int {
	if s.Replicas == nil {
		return spec.DefaultReplicas
	}
	return *s.Replicas
}

// placementInput turns the cluster's state into placement's input.
func placementInput(members []gossip.Member, svcs map[string]serviceState, tasks []taskRecord) placeInput {
	var in placeInput
	for _, m := range members {
		if !m.Orch || m.Status != gossip.StatusAlive {
			continue
		}
		_, inelig := m.Tags[tagIneligible]
		in.Nodes = append(in.Nodes, placeNode{Name: m.Name, Labels: memberLabels(m), Eligible: !inelig})
	}
	for name, st := range svcs {
		ps := placeService{Name: name, Replicas: replicasOf(st.Spec)}
		for _, c := range st.Spec.Placement.Constraints {
			pc, err := spec.ParseConstraint(c)
			if err != nil {
				// Validated on write; an unparsable one must keep the
				// service off every node rather than be ignored.
				pc = spec.Constraint{Field: "invalid", Op: "==", Value: c}
			}
			ps.Constraints = append(ps.Constraints, placeConstraint{Field: pc.Field, Op: pc.Op, Value: pc.Value})
		}
		in.Services = append(in.Services, ps)
	}
	for _, t := range tasks {
		in.Claims = append(in.Claims, placeClaim{Service: t.Service, Slot: t.Slot, Node: t.Node, LTime: t.Since})
	}
	return in
}

// memberLabels extracts a member's node labels from its tags.
func memberLabels(m gossip.Member) map[string]string {
	l := map[string]string{}
	for k, v := range m.Tags {
		if key, ok := strings.CutPrefix(k, tagLabelPrefix); ok {
			l[key] = v
		}
	}
	return l
}

// taskView is one slot of a service as `orch service ps` shows it.
type taskView struct {
	Slot        int
	Node        string
	State       string
	Message     string
	SpecVersion string
	Current     bool // working on the service's current version
	Restarts    int
	Addr        string
	Health      string
}

// viewTasks computes the slots of one service from the replicated claims and
// the placement every node computes, so every node shows the same table.
func viewTasks(name string, st serviceState, tasks []taskRecord, res map[placeSlot]placeResult) []taskView {
	n := replicasOf(st.Spec)
	claims := map[int][]taskRecord{}
	for _, t := range tasks {
		if t.Service == name {
			claims[t.Slot] = append(claims[t.Slot], t)
		}
	}
	out := make([]taskView, 0, n)
	for slot := range n {
		r := res[placeSlot{Service: name, Slot: slot}]
		v := taskView{Slot: slot, Node: r.Node}
		switch {
		case r.Node == "":
			v.State, v.Message = taskPending, r.Pending
		default:
			v.State = taskAssigning
			for _, c := range claims[slot] {
				if c.Node == r.Node {
					v.State, v.SpecVersion, v.Message, v.Restarts, v.Addr, v.Health = c.State, c.SpecVersion, c.Message, c.Restarts, c.Addr, c.Health
					v.Current = c.SpecVersion == st.Version
				}
			}
			if len(claims[slot]) > 1 && v.Message == "" {
				v.Message = fmt.Sprintf("claimed by %d nodes; the later claim wins", len(claims[slot]))
			}
		}
		out = append(out, v)
	}
	return out
}

package agent

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/orchproject/orch/agent/spec"
	"github.com/orchproject/orch/gossip"
)

// taskEntry returns the store entry that node owner would write for r
// under key.
func taskEntry(t *testing.T, key, owner string, r taskRecord) gossip.Entry {
	t.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return gossip.Entry{Table: tableTasks, Key: key, Owner: owner, Value: b, Version: gossip.Version{LTime: r.Since, Writer: owner}}
}

func TestDecodeTasks(t *testing.T) {
	web0n1 := taskRecord{Service: "web", Slot: 0, Node: "n1", SpecVersion: "3@n1", Since: 4, State: taskAssigned}
	web0n2 := taskRecord{Service: "web", Slot: 0, Node: "n2", SpecVersion: "3@n1", Since: 5, State: taskAssigned}
	web1n2 := taskRecord{Service: "web", Slot: 1, Node: "n2", SpecVersion: "3@n1", Since: 6, State: taskAssigned}
	api0n1 := taskRecord{Service: "api", Slot: 0, Node: "n1", SpecVersion: "7@n2", Since: 8, State: taskAssigned}
	tests := []struct {
		name    string
		entries func(t *testing.T) []gossip.Entry
		want    []taskRecord
	}{
		{
			name:    "Empty",
			entries: func(t *testing.T) []gossip.Entry { return nil },
			want:    []taskRecord{},
		},
		{
			name: "SortedByServiceSlotNode",
			entries: func(t *testing.T) []gossip.Entry {
				return []gossip.Entry{
					taskEntry(t, "web/1", "n2", web1n2),
					taskEntry(t, "web/0", "n2", web0n2),
					taskEntry(t, "api/0", "n1", api0n1),
					taskEntry(t, "web/0", "n1", web0n1),
				}
			},
			want: []taskRecord{api0n1, web0n1, web0n2, web1n2},
		},
		{
			// n2 writing a record that says n1 holds the slot must not
			// make n1 look busy: only a node speaks for itself.
			name: "OwnerIsNotTheNodeNamed",
			entries: func(t *testing.T) []gossip.Entry {
				return []gossip.Entry{
					taskEntry(t, "web/0", "n2", web0n1),
					taskEntry(t, "web/1", "n2", web1n2),
				}
			},
			want: []taskRecord{web1n2},
		},
		{
			name: "NoOwner",
			entries: func(t *testing.T) []gossip.Entry {
				return []gossip.Entry{taskEntry(t, "web/0", "", web0n1)}
			},
			want: []taskRecord{},
		},
		{
			name: "KeyDoesNotMatchRecord",
			entries: func(t *testing.T) []gossip.Entry {
				return []gossip.Entry{
					taskEntry(t, "web/1", "n1", web0n1),  // wrong slot
					taskEntry(t, "api/0", "n1", web0n1),  // wrong service
					taskEntry(t, "web.0", "n1", web0n1),  // the user-facing spelling is not a key
					taskEntry(t, "web/00", "n1", web0n1), // not the canonical number
					taskEntry(t, "web/1", "n2", web1n2),  // fine
				}
			},
			want: []taskRecord{web1n2},
		},
		{
			name: "UndecodableValue",
			entries: func(t *testing.T) []gossip.Entry {
				bad := taskEntry(t, "web/0", "n1", web0n1)
				bad.Value = []byte(`{"service":"web","slot":"zero","node":"n1"}`)
				junk := taskEntry(t, "web/0", "n1", web0n1)
				junk.Value = []byte("not json")
				return []gossip.Entry{bad, junk, taskEntry(t, "web/1", "n2", web1n2)}
			},
			want: []taskRecord{web1n2},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := decodeTasks(tt.entries(t))
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("decodeTasks:\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// testService returns a stored service with the given replicas and
// constraints at version.
func testService(t *testing.T, name string, replicas int, version string, constraints ...string) serviceState {
	t.Helper()
	s, err := spec.BuildFromFlags(spec.Flags{Name: name, Image: "busybox:stable", Replicas: &replicas, Constraints: constraints})
	if err != nil {
		t.Fatalf("build service %s: %v", name, err)
	}
	return serviceState{Spec: s, Version: version}
}

func TestViewTasks(t *testing.T) {
	const cur, old = "9@n1", "5@n1"
	claim := func(slot int, node, version string, since uint64) taskRecord {
		return taskRecord{Service: "web", Slot: slot, Node: node, SpecVersion: version, Since: since, State: taskAssigned}
	}
	const noNode = "no eligible node satisfies node.label.zone==eu"
	tests := []struct {
		name     string
		replicas int
		tasks    []taskRecord
		res      map[placeSlot]placeResult
		want     []taskView
	}{
		{
			name:     "AssignedOnCurrentVersion",
			replicas: 2,
			tasks:    []taskRecord{claim(0, "n1", cur, 10), claim(1, "n2", cur, 11)},
			res:      map[placeSlot]placeResult{{"web", 0}: {Node: "n1"}, {"web", 1}: {Node: "n2"}},
			want: []taskView{
				{Slot: 0, Node: "n1", State: taskAssigned, SpecVersion: cur, Current: true},
				{Slot: 1, Node: "n2", State: taskAssigned, SpecVersion: cur, Current: true},
			},
		},
		{
			name:     "AssignedOnOldVersionIsNotCurrent",
			replicas: 1,
			tasks:    []taskRecord{claim(0, "n1", old, 6)},
			res:      map[placeSlot]placeResult{{"web", 0}: {Node: "n1"}},
			want:     []taskView{{Slot: 0, Node: "n1", State: taskAssigned, SpecVersion: old}},
		},
		{
			name:     "AssigningUntilClaimed",
			replicas: 1,
			res:      map[placeSlot]placeResult{{"web", 0}: {Node: "n2"}},
			want:     []taskView{{Slot: 0, Node: "n2", State: taskAssigning}},
		},
		{
			// The slot moved to n2 (n1 no longer satisfies the spec, say);
			// n1's claim is not n2's.
			name:     "ClaimByAnotherNodeIsAssigning",
			replicas: 1,
			tasks:    []taskRecord{claim(0, "n1", cur, 10)},
			res:      map[placeSlot]placeResult{{"web", 0}: {Node: "n2"}},
			want:     []taskView{{Slot: 0, Node: "n2", State: taskAssigning}},
		},
		{
			name:     "PendingWithReason",
			replicas: 2,
			res: map[placeSlot]placeResult{
				{"web", 0}: {Pending: noNode},
				{"web", 1}: {Pending: noNode},
			},
			want: []taskView{
				{Slot: 0, State: taskPending, Message: noNode},
				{Slot: 1, State: taskPending, Message: noNode},
			},
		},
		{
			name:     "MissingFromPlacementIsPending",
			replicas: 1,
			res:      nil,
			want:     []taskView{{Slot: 0, State: taskPending}},
		},
		{
			name:     "DuplicateClaim",
			replicas: 1,
			tasks:    []taskRecord{claim(0, "n1", cur, 10), claim(0, "n2", cur, 12)},
			res:      map[placeSlot]placeResult{{"web", 0}: {Node: "n2"}},
			want: []taskView{{
				Slot: 0, Node: "n2", State: taskAssigned, SpecVersion: cur, Current: true,
				Message: "claimed by 2 nodes; the later claim wins",
			}},
		},
		{
			name:     "OtherServicesAndExtraSlotsIgnored",
			replicas: 1,
			tasks: []taskRecord{
				{Service: "api", Slot: 0, Node: "n2", SpecVersion: "1@n2", Since: 2, State: taskAssigned},
				claim(0, "n1", cur, 10),
				claim(3, "n2", cur, 11), // left over from a larger scale
			},
			res: map[placeSlot]placeResult{{"web", 0}: {Node: "n1"}, {"api", 0}: {Node: "n2"}},
			want: []taskView{
				{Slot: 0, Node: "n1", State: taskAssigned, SpecVersion: cur, Current: true},
			},
		},
		{
			name:     "ZeroReplicas",
			replicas: 0,
			tasks:    []taskRecord{claim(0, "n1", cur, 10)},
			want:     []taskView{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := testService(t, "web", tt.replicas, cur)
			got := viewTasks("web", st, tt.tasks, tt.res)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("viewTasks:\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestPlacementInput(t *testing.T) {
	orchTags := func(labels map[string]string) map[string]string {
		tags := map[string]string{"role": "orch", "id": "x", "proto": "1", tagCreated: "1700000000"}
		for k, v := range labels {
			tags[tagLabelPrefix+k] = v
		}
		return tags
	}
	members := []gossip.Member{
		{Name: "n1", Status: gossip.StatusAlive, Orch: true, Tags: orchTags(map[string]string{"zone": "eu", "disk": "ssd"})},
		{Name: "n2", Status: gossip.StatusAlive, Orch: true, Tags: orchTags(nil)},
		{Name: "n3", Status: gossip.StatusFailed, Orch: true, Tags: orchTags(map[string]string{"zone": "eu"})},
		{Name: "n4", Status: gossip.StatusLeft, Orch: true, Tags: orchTags(nil)},
		{Name: "n5", Status: gossip.StatusLeaving, Orch: true, Tags: orchTags(nil)},
		// A stock serf agent holding the key: alive, never given work.
		{Name: "serf1", Status: gossip.StatusAlive, Orch: false, Tags: map[string]string{"l.zone": "eu"}},
	}
	svcs := map[string]serviceState{
		"web": testService(t, "web", 3, "4@n1", "node.label.zone == eu", "node.name!=n2"),
		"api": testService(t, "api", 1, "6@n2"),
	}
	tasks := []taskRecord{
		{Service: "web", Slot: 0, Node: "n1", SpecVersion: "4@n1", Since: 5, State: taskAssigned},
		{Service: "web", Slot: 1, Node: "n3", SpecVersion: "4@n1", Since: 7, State: taskAssigned},
	}
	in := placementInput(members, svcs, tasks)

	wantNodes := []placeNode{
		// Reserved tags (role, id, created, …) are not labels; "l."
		// tags are, without the prefix.
		{Name: "n1", Labels: map[string]string{"zone": "eu", "disk": "ssd"}, Eligible: true},
		{Name: "n2", Labels: map[string]string{}, Eligible: true},
	}
	if !reflect.DeepEqual(in.Nodes, wantNodes) {
		t.Errorf("nodes:\n got %+v\nwant %+v", in.Nodes, wantNodes)
	}

	gotSvcs := map[string]placeService{}
	for _, s := range in.Services {
		gotSvcs[s.Name] = s
	}
	wantSvcs := map[string]placeService{
		// Constraints arrive in canonical form, split into their parts.
		"web": {Name: "web", Replicas: 3, Constraints: []placeConstraint{
			{Field: "node.label.zone", Op: "==", Value: "eu"},
			{Field: "node.name", Op: "!=", Value: "n2"},
		}},
		"api": {Name: "api", Replicas: 1},
	}
	if len(in.Services) != len(wantSvcs) || !reflect.DeepEqual(gotSvcs, wantSvcs) {
		t.Errorf("services:\n got %+v\nwant %+v", in.Services, wantSvcs)
	}

	// Claims pass through, dead nodes' included: place ignores those.
	wantClaims := []placeClaim{
		{Service: "web", Slot: 0, Node: "n1", LTime: 5},
		{Service: "web", Slot: 1, Node: "n3", LTime: 7},
	}
	if !reflect.DeepEqual(in.Claims, wantClaims) {
		t.Errorf("claims:\n got %+v\nwant %+v", in.Claims, wantClaims)
	}
}

// TestPlacementInput_UnparsableConstraintBlocksService checks that a stored
// constraint that does not parse (written by a newer agent, say) keeps the
// service off every node instead of being dropped.
func TestPlacementInput_UnparsableConstraintBlocksService(t *testing.T) {
	st := testService(t, "web", 2, "4@n1")
	st.Spec.Placement.Constraints = []string{"node.colour ~= blue"}
	members := []gossip.Member{{Name: "n1", Status: gossip.StatusAlive, Orch: true, Tags: map[string]string{}}}
	in := placementInput(members, map[string]serviceState{"web": st}, nil)
	if len(in.Services) != 1 || len(in.Services[0].Constraints) != 1 || in.Services[0].Constraints[0].Field != "invalid" {
		t.Fatalf("services = %+v, want web with one constraint on the field %q", in.Services, "invalid")
	}
	res := place(in)
	for slot := range 2 {
		r := res[placeSlot{"web", slot}]
		if r.Node != "" || r.Pending == "" {
			t.Errorf("slot %d = %+v, want pending with a reason", slot, r)
		}
	}
}

// TestDecodeServices checks that entries that do not decode, or whose key
// is not the name in the spec, are skipped without losing the rest.
func TestDecodeServices(t *testing.T) {
	good := testService(t, "web", 2, "")
	raw, err := good.Spec.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	es := []gossip.Entry{
		{Table: tableServices, Key: "web", Value: raw, Version: gossip.Version{LTime: 3, Writer: "n1"}},
		{Table: tableServices, Key: "other", Value: raw, Version: gossip.Version{LTime: 4, Writer: "n1"}},
		{Table: tableServices, Key: "junk", Value: []byte(`{"name":"junk"}`), Version: gossip.Version{LTime: 5, Writer: "n2"}},
	}
	got := decodeServices(es)
	if len(got) != 1 {
		t.Fatalf("decodeServices kept %d services, want web only: %v", len(got), got)
	}
	st, ok := got["web"]
	if !ok {
		t.Fatalf("web missing: %v", got)
	}
	if st.Version != "3@n1" || replicasOf(st.Spec) != 2 {
		t.Errorf("web = version %q, %d replicas; want 3@n1, 2", st.Version, replicasOf(st.Spec))
	}
}

func TestTaskSubject(t *testing.T) {
	for _, tt := range []struct {
		service string
		slot    int
		want    string
	}{
		{"web", 0, "web.0"},
		{"web", 12, "web.12"},
	} {
		if got := taskSubject(taskKey(tt.service, tt.slot)); got != tt.want {
			t.Errorf("taskSubject(taskKey(%q, %d)) = %q, want %q", tt.service, tt.slot, got, tt.want)
		}
	}
}

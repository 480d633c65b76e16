package events

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestEvent_MarshalJSON(t *testing.T) {
	cet := time.FixedZone("CET", 3600)
	tests := []struct {
		name string
		ev   Event
		want string
	}{
		{
			name: "zero nanoseconds keep nine digits",
			ev: Event{Time: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), Seq: 1, Type: TypeMember,
				Action: ActionJoin, Node: "n1", Subject: "n2", Attributes: map[string]string{"addr": "10.0.0.2"}},
			want: `{"time":"2026-03-01T12:00:00.000000000Z","seq":1,"type":"member","action":"join","node":"n1","subject":"n2","attributes":{"addr":"10.0.0.2"}}`,
		},
		{
			name: "nanoseconds and zone converted to UTC",
			ev:   Event{Time: time.Date(2026, 3, 1, 13, 0, 0, 1200, cet), Seq: 7, Type: TypeMember, Action: ActionFailed, Node: "n1", Subject: "n3"},
			want: `{"time":"2026-03-01T12:00:00.000001200Z","seq":7,"type":"member","action":"failed","node":"n1","subject":"n3","attributes":{}}`,
		},
		{
			name: "marker with empty subject",
			ev: Event{Time: time.Date(2026, 3, 1, 12, 0, 0, 5, time.UTC), Type: TypeStream, Action: ActionLagged, Node: "n1",
				Attributes: map[string]string{AttrMissed: "2", AttrFirstSeq: "3", AttrLastSeq: "4"}},
			want: `{"time":"2026-03-01T12:00:00.000000005Z","seq":0,"type":"stream","action":"lagged","node":"n1","subject":"","attributes":{"first_seq":"3","last_seq":"4","missed":"2"}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := json.Marshal(tt.ev)
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			if string(got) != tt.want {
				t.Errorf("Marshal:\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestEvent_JSONRoundTrip(t *testing.T) {
	want := Event{Time: time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC), Seq: 42, Type: TypeMember,
		Action: ActionUpdate, Node: "n1", Subject: "n2", Attributes: map[string]string{"tags": "role=db"}}
	data, err := json.Marshal(want)
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	var got Event
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatalf("Unmarshal(%s): %v", data, err)
	}
	if !got.Time.Equal(want.Time) || got.Seq != want.Seq || got.Type != want.Type || got.Action != want.Action ||
		got.Node != want.Node || got.Subject != want.Subject || got.Attributes["tags"] != "role=db" || len(got.Attributes) != 1 {
		t.Errorf("round trip: got %+v, want %+v", got, want)
	}
}

func TestEvent_UnmarshalJSON(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		wantTime time.Time
		wantErr  string
	}{
		{
			name:     "no fraction, null attributes",
			in:       `{"time":"2026-03-01T12:00:00Z","seq":1,"type":"member","action":"join","node":"n1","subject":"n2","attributes":null}`,
			wantTime: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC),
		},
		{
			name:     "offset and short fraction",
			in:       `{"time":"2026-03-01T13:00:00.5+01:00","seq":1,"type":"member","action":"join","node":"n1","subject":"n2"}`,
			wantTime: time.Date(2026, 3, 1, 12, 0, 0, 500000000, time.UTC),
		},
		{
			name:    "bad time",
			in:      `{"time":"yesterday","seq":1}`,
			wantErr: `parse event time "yesterday"`,
		},
		{
			name:    "not an object",
			in:      `[1]`,
			wantErr: "cannot unmarshal",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got Event
			err := json.Unmarshal([]byte(tt.in), &got)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Unmarshal error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Unmarshal: %v", err)
			}
			if !got.Time.Equal(tt.wantTime) {
				t.Errorf("Time = %v, want %v", got.Time, tt.wantTime)
			}
			if got.Attributes == nil {
				t.Errorf("Attributes is nil, want an empty map")
			}
		})
	}
}

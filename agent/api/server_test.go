package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// waitTimeout bounds every wait in these tests; they normally end in
// milliseconds.
const waitTimeout = 10 * time.Second

// fakeBackend is a Backend that records its calls and answers from its
// fields. Safe for concurrent use.
type fakeBackend struct {
	mu    sync.Mutex
	calls []string // "Method arg…", in order

	// err, if set, is what every method but Info and Events returns.
	err error
	// events, if set, serves Events; nil returns nil at once.
	events func(ctx context.Context, req EventsRequest, emit func(Event) error) error
}

var _ Backend = (*fakeBackend)(nil)

func (f *fakeBackend) record(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
}

// Calls returns the calls so far.
func (f *fakeBackend) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func (f *fakeBackend) Info(ctx context.Context) Info {
	f.record("Info")
	return Info{Name: "n1", ID: "id1", Version: "test"}
}

func (f *fakeBackend) Members(ctx context.Context) ([]Member, error) {
	f.record("Members")
	return []Member{{Name: "n1", Status: "alive", Orch: true, Self: true}}, f.err
}

func (f *fakeBackend) Token(ctx context.Context) (string, error) {
	f.record("Token")
	return "ORCH1-x-y", f.err
}

func (f *fakeBackend) Join(ctx context.Context, req JoinRequest) (JoinResponse, error) {
	f.record("Join %s %v", req.Token, req.Addresses)
	return JoinResponse{Contacted: len(req.Addresses)}, f.err
}

func (f *fakeBackend) Leave(ctx context.Context) error {
	f.record("Leave")
	return f.err
}

func (f *fakeBackend) Events(ctx context.Context, req EventsRequest, emit func(Event) error) error {
	f.record("Events %v %d %v", req.Filters, req.After, req.Since)
	if f.events == nil {
		return nil
	}
	return f.events(ctx, req, emit)
}

func (f *fakeBackend) ListServices(ctx context.Context) ([]ServiceInfo, error) {
	f.record("ListServices")
	return []ServiceInfo{{Name: "web", Version: "1@n1", Spec: json.RawMessage(`{"name":"web"}`)}}, f.err
}

func (f *fakeBackend) GetService(ctx context.Context, name string) (ServiceInfo, error) {
	f.record("GetService %s", name)
	return ServiceInfo{Name: name, Version: "1@n1", Spec: json.RawMessage(`{"name":"web"}`)}, f.err
}

func (f *fakeBackend) CreateService(ctx context.Context, spec json.RawMessage) (ServiceInfo, error) {
	f.record("CreateService %s", spec)
	return ServiceInfo{Name: "web", Version: "1@n1", Spec: spec}, f.err
}

func (f *fakeBackend) UpdateService(ctx context.Context, name string, w ServiceWrite) (ServiceInfo, error) {
	f.record("UpdateService %s %s base=%s", name, w.Spec, w.BaseVersion)
	return ServiceInfo{Name: name, Version: "2@n1", Spec: w.Spec}, f.err
}

func (f *fakeBackend) ApplyService(ctx context.Context, spec json.RawMessage) (ApplyResult, error) {
	f.record("ApplyService %s", spec)
	return ApplyResult{Name: "web", Version: "3@n1", Action: "created"}, f.err
}

func (f *fakeBackend) RemoveService(ctx context.Context, name string) error {
	f.record("RemoveService %s", name)
	return f.err
}

func (f *fakeBackend) ServiceTasks(ctx context.Context, name string) ([]Task, error) {
	f.record("ServiceTasks %s", name)
	return []Task{{Service: name, Slot: 0, Node: "n1", Desired: "running", State: "assigned"}}, f.err
}

func (f *fakeBackend) ImportImage(ctx context.Context, r io.Reader) ([]Image, error) {
	n, _ := io.Copy(io.Discard, r)
	f.record("ImportImage %d", n)
	return []Image{{Name: "docker.io/x/y:1", Digest: "sha256:00"}}, f.err
}

func (f *fakeBackend) RotateToken(ctx context.Context) (string, error) { return "ORCH1-new", nil }

func (f *fakeBackend) Keys(ctx context.Context) (KeyResult, error) {
	return KeyResult{Nodes: 1, Responses: 1, Keys: map[string]int{"k": 1}, Primary: map[string]int{"k": 1}}, nil
}

func (f *fakeBackend) KeyOp(ctx context.Context, op, key string) (KeyResult, error) {
	if key == "" {
		return KeyResult{}, BadRequest(errors.New("key: required"))
	}
	return KeyResult{Nodes: 1, Responses: 1}, nil
}

func (f *fakeBackend) Logs(ctx context.Context, req LogsRequest, emit func(LogLine) error) error {
	f.record("Logs %s", req.Service)
	return f.err
}

func (f *fakeBackend) PullImage(ctx context.Context, ref string, fn func(PullProgress)) (Image, error) {
	f.record("PullImage %s", ref)
	return Image{Name: ref}, f.err
}

func (f *fakeBackend) ListImages(ctx context.Context) ([]Image, error) {
	f.record("ListImages")
	return nil, f.err
}

// socketPath returns a socket path in a fresh short directory: unix socket
// paths hold about 107 bytes, and t.TempDir paths can be longer.
func socketPath(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "orchapi")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "api.sock")
}

// testServer is a Server running on a socket until the test ends.
type testServer struct {
	*Server
	socket string
	cancel context.CancelFunc
	done   chan struct{} // closed when Run has returned; err is set then
	err    error
}

// startServer runs a Server for b on socket and waits until it is ready.
// Cleanup stops it and checks that Run returns nil.
func startServer(t *testing.T, socket string, b Backend) *testServer {
	t.Helper()
	s, err := NewServer(ServerConfig{Socket: socket, Backend: b})
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	return runServer(t, s)
}

// runServer runs s and waits until it is ready. Cleanup stops it and
// checks that Run returns nil.
func runServer(t *testing.T, s *Server) *testServer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ts := &testServer{Server: s, socket: s.cfg.Socket, cancel: cancel, done: make(chan struct{})}
	go func() {
		ts.err = s.Run(ctx)
		close(ts.done)
	}()
	t.Cleanup(func() {
		if err := ts.stop(); err != nil {
			t.Error(err)
		}
	})
	select {
	case <-s.Ready():
	case <-ts.done:
		t.Fatalf("Run returned before it was ready: %v", ts.err)
	case <-time.After(waitTimeout):
		t.Fatalf("server not ready after %v", waitTimeout)
	}
	return ts
}

// stop cancels Run and reports anything but a timely nil. Safe to call
// more than once.
func (ts *testServer) stop() error {
	ts.cancel()
	select {
	case <-ts.done:
		if ts.err != nil {
			return fmt.Errorf("Run returned %v, want nil", ts.err)
		}
		return nil
	case <-time.After(waitTimeout):
		return fmt.Errorf("Run did not return within %v of cancel", waitTimeout)
	}
}

// rawResponse is a response read in full.
type rawResponse struct {
	status int
	header http.Header
	body   []byte
}

func (r rawResponse) String() string { return fmt.Sprintf("%d %s", r.status, r.body) }

// errorMessage decodes an error body, failing the test if it is not one.
func (r rawResponse) errorMessage(t *testing.T) string {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("error Content-Type = %q, want application/json", ct)
	}
	var e struct {
		Error *string `json:"error"`
	}
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil || e.Error == nil {
		t.Fatalf("body is not {\"error\": …}: %v\n%s", err, r.body)
	}
	return *e.Error
}

// rawRequest sends a request the Client would never send, over the socket.
func rawRequest(t *testing.T, socket, method, path string, body io.Reader) rawResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "http://orch"+path, body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := rawClient(socket).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return rawResponse{status: resp.StatusCode, header: resp.Header, body: b}
}

func rawClient(socket string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
	}}
}

// TestServer_ClientRoutes checks that each Client method reaches the
// Backend method it names, with its arguments intact, and decodes the
// answer.
func TestServer_ClientRoutes(t *testing.T) {
	fb := &fakeBackend{}
	ts := startServer(t, socketPath(t), fb)
	c := NewClient(ts.socket)
	spec := json.RawMessage(`{"name":"web","replicas":2}`)
	tests := []struct {
		name     string
		call     func(ctx context.Context) (any, error)
		wantCall string
		want     any
	}{
		{"Info", func(ctx context.Context) (any, error) { return c.Info(ctx) },
			"Info", Info{Name: "n1", ID: "id1", Version: "test"}},
		{"Members", func(ctx context.Context) (any, error) { return c.Members(ctx) },
			"Members", []Member{{Name: "n1", Status: "alive", Orch: true, Self: true}}},
		{"Token", func(ctx context.Context) (any, error) { return c.Token(ctx) },
			"Token", "ORCH1-x-y"},
		{"Join", func(ctx context.Context) (any, error) {
			return c.Join(ctx, JoinRequest{Token: "tok", Addresses: []string{"a:1", "b:2"}})
		}, "Join tok [a:1 b:2]", JoinResponse{Contacted: 2}},
		{"Leave", func(ctx context.Context) (any, error) { return nil, c.Leave(ctx) },
			"Leave", nil},
		{"ListServices", func(ctx context.Context) (any, error) { return c.ListServices(ctx) },
			"ListServices", []ServiceInfo{{Name: "web", Version: "1@n1", Spec: json.RawMessage(`{"name":"web"}`)}}},
		{"GetService", func(ctx context.Context) (any, error) { return c.GetService(ctx, "web") },
			"GetService web", ServiceInfo{Name: "web", Version: "1@n1", Spec: json.RawMessage(`{"name":"web"}`)}},
		{"CreateService", func(ctx context.Context) (any, error) { return c.CreateService(ctx, spec) },
			"CreateService " + string(spec), ServiceInfo{Name: "web", Version: "1@n1", Spec: spec}},
		{"UpdateService", func(ctx context.Context) (any, error) {
			return c.UpdateService(ctx, "web", ServiceWrite{Spec: spec, BaseVersion: "1@n1"})
		}, "UpdateService web " + string(spec) + " base=1@n1", ServiceInfo{Name: "web", Version: "2@n1", Spec: spec}},
		{"ApplyService", func(ctx context.Context) (any, error) { return c.ApplyService(ctx, spec) },
			"ApplyService " + string(spec), ApplyResult{Name: "web", Version: "3@n1", Action: "created"}},
		{"RemoveService", func(ctx context.Context) (any, error) { return nil, c.RemoveService(ctx, "web") },
			"RemoveService web", nil},
		{"ServiceTasks", func(ctx context.Context) (any, error) { return c.ServiceTasks(ctx, "web") },
			"ServiceTasks web", []Task{{Service: "web", Slot: 0, Node: "n1", Desired: "running", State: "assigned"}}},
		// A name that is not a path segment arrives whole, not as a
		// different route.
		{"EscapedName", func(ctx context.Context) (any, error) { return c.GetService(ctx, "a/b c") },
			"GetService a/b c", ServiceInfo{Name: "a/b c", Version: "1@n1", Spec: json.RawMessage(`{"name":"web"}`)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
			defer cancel()
			before := len(fb.Calls())
			got, err := tt.call(ctx)
			if err != nil {
				t.Fatalf("call: %v", err)
			}
			if calls := fb.Calls()[before:]; !slices.Equal(calls, []string{tt.wantCall}) {
				t.Errorf("backend calls = %q, want %q", calls, tt.wantCall)
			}
			if tt.want != nil && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("result:\n got %#v\nwant %#v", got, tt.want)
			}
		})
	}
}

// TestServer_Routing checks the answers to requests no route serves.
func TestServer_Routing(t *testing.T) {
	fb := &fakeBackend{}
	ts := startServer(t, socketPath(t), fb)
	tests := []struct {
		name, method, path string
		wantStatus         int
		wantMsg            string
	}{
		{"UnknownRoute", "GET", "/v1/bogus", http.StatusNotFound, "no such endpoint: GET /v1/bogus"},
		{"NoVersion", "GET", "/info", http.StatusNotFound, "no such endpoint: GET /info"},
		{"Root", "GET", "/", http.StatusNotFound, "no such endpoint: GET /"},
		{"TrailingSlash", "GET", "/v1/services/", http.StatusNotFound, "no such endpoint: GET /v1/services/"},
		{"TooDeep", "GET", "/v1/services/web/tasks/0", http.StatusNotFound, "no such endpoint: GET /v1/services/web/tasks/0"},
		// The catch-all "/" pattern matches every method, so Go's
		// ServeMux (1.22+) never answers 405 here: a known path with the
		// wrong method reaches the catch-all and is a JSON 404.
		{"WrongMethodInfo", "POST", "/v1/info", http.StatusNotFound, "no such endpoint: POST /v1/info"},
		{"WrongMethodLeave", "GET", "/v1/leave", http.StatusNotFound, "no such endpoint: GET /v1/leave"},
		{"WrongMethodTasks", "DELETE", "/v1/services/web/tasks", http.StatusNotFound, "no such endpoint: DELETE /v1/services/web/tasks"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := rawRequest(t, ts.socket, tt.method, tt.path, nil)
			if r.status != tt.wantStatus {
				t.Errorf("status %d, want %d: %v", r.status, tt.wantStatus, r)
			}
			if msg := r.errorMessage(t); msg != tt.wantMsg {
				t.Errorf("error %q, want %q", msg, tt.wantMsg)
			}
		})
	}
	if calls := fb.Calls(); len(calls) != 0 {
		t.Errorf("backend called for unrouted requests: %q", calls)
	}
}

// TestServer_BadBodies checks that bodies that cannot be what the endpoint
// wants are refused with 400 before the backend sees them.
func TestServer_BadBodies(t *testing.T) {
	fb := &fakeBackend{}
	ts := startServer(t, socketPath(t), fb)
	// Valid JSON, one byte over the limit once the spec's padding is counted.
	huge := `{"spec":{"name":"` + strings.Repeat("x", maxBody) + `"}}`
	tests := []struct {
		name, method, path, body string
		wantMsg                  []string
	}{
		{"TooLarge", "POST", "/v1/services", huge, []string{"decode request body", "request body too large"}},
		{"TooLargeApply", "POST", "/v1/apply", huge, []string{"request body too large"}},
		{"TooLargeUpdate", "PUT", "/v1/services/web", huge, []string{"request body too large"}},
		{"UnknownField", "POST", "/v1/services", `{"spec":{"name":"web"},"colour":"blue"}`, []string{`unknown field "colour"`}},
		{"UnknownFieldJoin", "POST", "/v1/join", `{"addresses":["a:1"],"tokn":"x"}`, []string{`unknown field "tokn"`}},
		{"NotJSON", "POST", "/v1/apply", "name: web\n", []string{"decode request body", "invalid character"}},
		{"Empty", "POST", "/v1/join", "", []string{"decode request body", "EOF"}},
		{"WrongType", "PUT", "/v1/services/web", `{"spec":{},"base_version":7}`, []string{"decode request body", "base_version"}},
		{"Truncated", "POST", "/v1/services", `{"spec":{"name":`, []string{"decode request body", "unexpected EOF"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := rawRequest(t, ts.socket, tt.method, tt.path, strings.NewReader(tt.body))
			if r.status != http.StatusBadRequest {
				t.Errorf("status %d, want 400: %.300s", r.status, r)
			}
			msg := r.errorMessage(t)
			for _, w := range tt.wantMsg {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
		})
	}
	if calls := fb.Calls(); len(calls) != 0 {
		t.Errorf("backend called for bad bodies: %q", calls)
	}

	// A body just under the limit is read whole and reaches the backend.
	t.Run("AtLimit", func(t *testing.T) {
		pad := maxBody - len(`{"spec":{"name":""}}`) - 1 // the -1 leaves room for no newline
		body := `{"spec":{"name":"` + strings.Repeat("x", pad) + `"}}`
		r := rawRequest(t, ts.socket, "POST", "/v1/services", strings.NewReader(body))
		if r.status != http.StatusOK {
			t.Fatalf("status %d, want 200: %.300s", r.status, r)
		}
		if calls := fb.Calls(); len(calls) != 1 || !strings.HasPrefix(calls[0], "CreateService ") {
			t.Errorf("backend calls = %.100q, want one CreateService", calls)
		}
	})
}

// TestServer_ErrorStatus checks how Backend errors become responses: an
// *Error keeps its status and message, anything else is a 500.
func TestServer_ErrorStatus(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		wantStatus int
		wantMsg    string
	}{
		{"Conflict", Errorf(http.StatusConflict, "service %q already exists", "web"), http.StatusConflict, `service "web" already exists`},
		{"Forbidden", Errorf(http.StatusForbidden, "join refused"), http.StatusForbidden, "join refused"},
		{"Unavailable", Errorf(http.StatusServiceUnavailable, "not a member yet"), http.StatusServiceUnavailable, "not a member yet"},
		{"NotFound", Errorf(http.StatusNotFound, "no such service: web"), http.StatusNotFound, "no such service: web"},
		{"BadRequest", BadRequest(errors.New("replicas: must be at most 1000")), http.StatusBadRequest, "replicas: must be at most 1000"},
		{"Wrapped", fmt.Errorf("update: %w", Errorf(http.StatusConflict, "stale")), http.StatusConflict, "stale"},
		{"Plain", errors.New("disk on fire"), http.StatusInternalServerError, "disk on fire"},
		{"NoStatus", &Error{Message: "forgot the status"}, http.StatusInternalServerError, "forgot the status"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startServer(t, socketPath(t), &fakeBackend{err: tt.err})
			// Through the raw socket: status and body as sent.
			r := rawRequest(t, ts.socket, "GET", "/v1/services/web", nil)
			if r.status != tt.wantStatus {
				t.Errorf("status %d, want %d: %v", r.status, tt.wantStatus, r)
			}
			if msg := r.errorMessage(t); msg != tt.wantMsg {
				t.Errorf("error %q, want %q", msg, tt.wantMsg)
			}
			// Through the Client: an *Error with the same status and message.
			ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
			defer cancel()
			err := NewClient(ts.socket).RemoveService(ctx, "web")
			var ae *Error
			if !errors.As(err, &ae) {
				t.Fatalf("client error %v (%T), want *Error", err, err)
			}
			if ae.Status != tt.wantStatus || ae.Message != tt.wantMsg {
				t.Errorf("client error = {%d %q}, want {%d %q}", ae.Status, ae.Message, tt.wantStatus, tt.wantMsg)
			}
		})
	}
}

// TestServer_EventsBadQuery checks that a bad after or since is refused
// before the backend is asked.
func TestServer_EventsBadQuery(t *testing.T) {
	fb := &fakeBackend{}
	ts := startServer(t, socketPath(t), fb)
	tests := []struct {
		name, query, wantMsg string
	}{
		{"AfterNotNumber", "after=x", `after="x": want a sequence number`},
		{"AfterNegative", "after=-1", `after="-1"`},
		{"SinceNoUnit", "since=10", `since="10": want a positive duration`},
		{"SinceGarbage", "since=soon", `since="soon"`},
		{"SinceNegative", "since=-5m", `since="-5m"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := rawRequest(t, ts.socket, "GET", "/v1/events?"+tt.query, nil)
			if r.status != http.StatusBadRequest {
				t.Errorf("status %d, want 400: %v", r.status, r)
			}
			if msg := r.errorMessage(t); !strings.Contains(msg, tt.wantMsg) {
				t.Errorf("error %q does not contain %q", msg, tt.wantMsg)
			}
		})
	}
	if calls := fb.Calls(); len(calls) != 0 {
		t.Errorf("backend called for bad queries: %q", calls)
	}
}

// TestServer_EventsBackendRefuses checks that an error the backend returns
// before emitting anything is an ordinary error response.
func TestServer_EventsBackendRefuses(t *testing.T) {
	fb := &fakeBackend{events: func(ctx context.Context, req EventsRequest, emit func(Event) error) error {
		return BadRequest(fmt.Errorf("invalid filter %q", req.Filters[0]))
	}}
	ts := startServer(t, socketPath(t), fb)
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	err := NewClient(ts.socket).Events(ctx, EventsRequest{Filters: []string{"bogus=1"}}, func(Event) error {
		t.Error("event delivered by a refused stream")
		return nil
	})
	var ae *Error
	if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest || ae.Message != `invalid filter "bogus=1"` {
		t.Errorf("Events = %v, want a 400 *Error naming the filter", err)
	}
}

// TestServer_EventsEmpty checks that a stream that ends without events is
// a clean, empty NDJSON response.
func TestServer_EventsEmpty(t *testing.T) {
	ts := startServer(t, socketPath(t), &fakeBackend{})
	r := rawRequest(t, ts.socket, "GET", "/v1/events", nil)
	if r.status != http.StatusOK || len(r.body) != 0 {
		t.Errorf("got %v, want 200 and no body", r)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/x-ndjson" {
		t.Errorf("Content-Type = %q, want application/x-ndjson", ct)
	}
}

// TestServer_EventsFlushedPerEvent reads the first event line while the
// backend is still holding the second: each event must be flushed on its
// own, not when a buffer fills or the stream ends.
func TestServer_EventsFlushedPerEvent(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 500, time.UTC)
	ev1 := Event{Time: t0, Seq: 1, Type: "member", Action: "join", Node: "n1", Subject: "n2", Attributes: map[string]string{"address": "127.0.0.1:7946"}}
	ev2 := Event{Time: t0.Add(time.Second), Seq: 2, Type: "service", Action: "created", Node: "n1", Subject: "web"}
	gate := make(chan struct{})
	fb := &fakeBackend{events: func(ctx context.Context, req EventsRequest, emit func(Event) error) error {
		if emit(ev1) != nil {
			return nil
		}
		select {
		case <-gate:
		case <-ctx.Done():
			return nil
		}
		if emit(ev2) != nil {
			return nil
		}
		<-ctx.Done()
		return nil
	}}
	ts := startServer(t, socketPath(t), fb)

	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", "http://orch/v1/events?filter=type%3Dmember&filter=type%3Dservice&after=7", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := rawClient(ts.socket).Do(req)
	if err != nil {
		t.Fatalf("GET /v1/events: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want 200", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/x-ndjson" {
		t.Errorf("Content-Type = %q, want application/x-ndjson", ct)
	}
	br := bufio.NewReader(resp.Body)
	line1, err := br.ReadString('\n')
	if err != nil {
		t.Fatalf("first line (not flushed before the second event?): %v", err)
	}
	want1 := `{"time":"2026-11-25T10:00:00.000000500Z","seq":1,"type":"member","action":"join","node":"n1","subject":"n2","attributes":{"address":"127.0.0.1:7946"}}` + "\n"
	if line1 != want1 {
		t.Errorf("first line:\n got %s\nwant %s", line1, want1)
	}
	close(gate)
	line2, err := br.ReadString('\n')
	if err != nil {
		t.Fatalf("second line: %v", err)
	}
	want2 := `{"time":"2026-11-25T10:00:01.000000500Z","seq":2,"type":"service","action":"created","node":"n1","subject":"web","attributes":{}}` + "\n"
	if line2 != want2 {
		t.Errorf("second line:\n got %s\nwant %s", line2, want2)
	}
	if calls := fb.Calls(); !slices.Equal(calls, []string{"Events [type=member type=service] 7 0s"}) {
		t.Errorf("backend calls = %q", calls)
	}
}

// TestClient_EventsStopsOnCancel checks that the client's Events returns
// nil when its context is cancelled mid-stream, and that the cancellation
// reaches the backend through the request's context.
func TestClient_EventsStopsOnCancel(t *testing.T) {
	backendDone := make(chan struct{})
	fb := &fakeBackend{events: func(ctx context.Context, req EventsRequest, emit func(Event) error) error {
		defer close(backendDone)
		for i := uint64(1); ; i++ {
			if emit(Event{Seq: i, Type: "member", Action: "join"}) != nil {
				return nil
			}
			if i == 3 {
				<-ctx.Done() // a quiet stream: nothing more until cancelled
				return nil
			}
		}
	}}
	ts := startServer(t, socketPath(t), fb)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var got []uint64
	errc := make(chan error, 1) // buffered: read once below, or never if the test fails first
	go func() {
		errc <- NewClient(ts.socket).Events(ctx, EventsRequest{Since: 10 * time.Minute}, func(ev Event) error {
			got = append(got, ev.Seq)
			if len(got) == 3 {
				cancel()
			}
			return nil
		})
	}()
	select {
	case err := <-errc:
		if err != nil {
			t.Errorf("Events after cancel = %v, want nil", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Events did not return after its context was cancelled")
	}
	if !slices.Equal(got, []uint64{1, 2, 3}) {
		t.Errorf("events seen = %v, want [1 2 3]", got)
	}
	select {
	case <-backendDone:
	case <-time.After(waitTimeout):
		t.Fatal("the backend's Events still runs after the client went away")
	}
	if calls := fb.Calls(); !slices.Equal(calls, []string{"Events [] 0 10m0s"}) {
		t.Errorf("backend calls = %q", calls)
	}
}

// TestClient_EventsCallbackError checks that an error from the callback
// ends the stream and is returned as is.
func TestClient_EventsCallbackError(t *testing.T) {
	fb := &fakeBackend{events: func(ctx context.Context, req EventsRequest, emit func(Event) error) error {
		for i := uint64(1); emit(Event{Seq: i}) == nil; i++ {
		}
		return nil
	}}
	ts := startServer(t, socketPath(t), fb)
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	stop := errors.New("enough")
	n := 0
	err := NewClient(ts.socket).Events(ctx, EventsRequest{}, func(Event) error {
		if n++; n == 5 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 5 {
		t.Errorf("Events = %v after %d events, want the callback's error after 5", err, n)
	}
}

// TestServer_Socket covers the socket's life: its mode, refusing to take
// over a live socket, replacing a stale one, and removal at the end.
func TestServer_Socket(t *testing.T) {
	t.Run("Mode0600", func(t *testing.T) {
		ts := startServer(t, socketPath(t), &fakeBackend{})
		fi, err := os.Lstat(ts.socket)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
			t.Errorf("socket mode = %v, want a socket with 0600", fi.Mode())
		}
		// No temporary socket is left beside it.
		entries, err := os.ReadDir(filepath.Dir(ts.socket))
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != 1 {
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			t.Errorf("socket directory holds %q, want only %s", names, filepath.Base(ts.socket))
		}
	})

	t.Run("ConfiguredMode", func(t *testing.T) {
		socket := socketPath(t)
		s, err := NewServer(ServerConfig{Socket: socket, Mode: 0o660, Backend: &fakeBackend{}})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1) // buffered: read once below
		go func() { done <- s.Run(ctx) }()
		select {
		case <-s.Ready():
		case err := <-done:
			t.Fatalf("Run: %v", err)
		}
		fi, err := os.Lstat(socket)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o660 {
			t.Errorf("socket mode = %v, want 0660", fi.Mode().Perm())
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
	})

	t.Run("LiveSocketNotTakenOver", func(t *testing.T) {
		first := startServer(t, socketPath(t), &fakeBackend{})
		second, err := NewServer(ServerConfig{Socket: first.socket, Backend: &fakeBackend{}})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
		defer cancel()
		err = second.Run(ctx)
		if err == nil || !strings.Contains(err.Error(), "another agent is serving on "+first.socket) {
			t.Errorf("second Run = %v, want an error saying another agent is serving on %s", err, first.socket)
		}
		// The first server still answers on its socket.
		info, err := NewClient(first.socket).Info(ctx)
		if err != nil || info.Name != "n1" {
			t.Errorf("first server after a refused takeover: %+v, %v", info, err)
		}
	})

	t.Run("StaleSocketReplaced", func(t *testing.T) {
		socket := socketPath(t)
		// A socket file nobody listens on, as a crashed agent leaves it.
		ln, err := net.Listen("unix", socket)
		if err != nil {
			t.Fatal(err)
		}
		ln.(*net.UnixListener).SetUnlinkOnClose(false)
		ln.Close()
		if _, err := os.Lstat(socket); err != nil {
			t.Fatalf("stale socket not left in place: %v", err)
		}
		ts := startServer(t, socket, &fakeBackend{})
		ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
		defer cancel()
		if _, err := NewClient(ts.socket).Info(ctx); err != nil {
			t.Errorf("Info on the replaced socket: %v", err)
		}
	})

	t.Run("NotASocketLeftAlone", func(t *testing.T) {
		socket := socketPath(t)
		if err := os.WriteFile(socket, []byte("precious"), 0o644); err != nil {
			t.Fatal(err)
		}
		s, err := NewServer(ServerConfig{Socket: socket, Backend: &fakeBackend{}})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
		defer cancel()
		if err := s.Run(ctx); err == nil || !strings.Contains(err.Error(), "not a socket") {
			t.Errorf("Run over a regular file = %v, want an error saying it is not a socket", err)
		}
		if b, err := os.ReadFile(socket); err != nil || string(b) != "precious" {
			t.Errorf("the file at the socket path was changed: %q, %v", b, err)
		}
	})

	t.Run("RunRemovesSocketOnCancel", func(t *testing.T) {
		// An open event stream must not hold up shutdown.
		streaming := make(chan struct{})
		fb := &fakeBackend{events: func(ctx context.Context, req EventsRequest, emit func(Event) error) error {
			emit(Event{Seq: 1})
			close(streaming)
			<-ctx.Done()
			return nil
		}}
		ts := startServer(t, socketPath(t), fb)
		ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
		defer cancel()
		streamErr := make(chan error, 1) // buffered: read once below
		go func() {
			streamErr <- NewClient(ts.socket).Events(ctx, EventsRequest{}, func(Event) error { return nil })
		}()
		select {
		case <-streaming:
		case <-ctx.Done():
			t.Fatal("stream did not start")
		}
		start := time.Now()
		if err := ts.stop(); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d >= shutdownGrace {
			t.Errorf("Run took %v to return with an open stream; streams must end at once, not after the %v grace", d, shutdownGrace)
		}
		if _, err := os.Lstat(ts.socket); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("socket still there after Run returned: %v", err)
		}
		select {
		case err := <-streamErr:
			if err != nil {
				t.Errorf("client stream ended with %v, want nil (a clean end)", err)
			}
		case <-ctx.Done():
			t.Error("client stream still open after the server stopped")
		}
		// A new client finds no agent.
		_, err := NewClient(ts.socket).Info(ctx)
		var ce *ConnError
		if !errors.As(err, &ce) {
			t.Errorf("Info after stop = %v, want *ConnError", err)
		}
	})
}

func TestNewServer_Validate(t *testing.T) {
	_, err := NewServer(ServerConfig{})
	if err == nil {
		t.Fatal("NewServer accepted an empty config")
	}
	for _, want := range []string{"socket: required", "backend: required"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not report %q", err, want)
		}
	}
}

// TestClient_ConnError checks that an agent that cannot be reached is a
// *ConnError naming the socket, whatever the reason.
func TestClient_ConnError(t *testing.T) {
	dir := t.TempDir()
	stale := socketPath(t)
	ln, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	tests := []struct {
		name, socket string
		wantErr      error
	}{
		{"Missing", filepath.Join(dir, "missing.sock"), os.ErrNotExist},
		{"NoDir", "/nonexistent/orch.sock", os.ErrNotExist},
		{"Stale", stale, nil},
		{"Directory", dir, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
			defer cancel()
			_, err := NewClient(tt.socket).Members(ctx)
			var ce *ConnError
			if !errors.As(err, &ce) {
				t.Fatalf("Members = %v (%T), want *ConnError", err, err)
			}
			if ce.Socket != tt.socket {
				t.Errorf("ConnError.Socket = %q, want %q", ce.Socket, tt.socket)
			}
			if want := "cannot reach the agent at " + tt.socket + ": "; !strings.HasPrefix(err.Error(), want) {
				t.Errorf("error %q does not start with %q", err, want)
			}
			if !strings.Contains(err.Error(), SocketEnv) {
				t.Errorf("error %q gives no hint about %s", err, SocketEnv)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("error %v does not wrap %v", err, tt.wantErr)
			}
			// Events goes through the same path.
			err = NewClient(tt.socket).Events(ctx, EventsRequest{}, func(Event) error { return nil })
			if !errors.As(err, &ce) {
				t.Errorf("Events = %v, want *ConnError", err)
			}
		})
	}
}

// TestClient_NonJSONError checks the message for an error response that
// is not an orch error body (a proxy, or another program on the socket).
func TestClient_NonJSONError(t *testing.T) {
	socket := socketPath(t)
	ln, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "upstream exploded", http.StatusBadGateway)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	_, err = NewClient(socket).Info(ctx)
	var ae *Error
	if !errors.As(err, &ae) {
		t.Fatalf("Info = %v, want *Error", err)
	}
	if ae.Status != http.StatusBadGateway || ae.Message != "agent answered 502 Bad Gateway: upstream exploded" {
		t.Errorf("error = {%d %q}", ae.Status, ae.Message)
	}
}

// A pull with progress streams the progress lines and ends with the image.
func TestServer_PullProgress(t *testing.T) {
	fb := &progressBackend{fakeBackend: &fakeBackend{}}
	sock := socketPath(t)
	startServer(t, sock, fb)
	c := NewClient(sock)
	var seen []PullProgress
	img, err := c.PullImage(t.Context(), "r.example/x:1", func(p PullProgress) { seen = append(seen, p) })
	if err != nil {
		t.Fatal(err)
	}
	if img.Digest != "sha256:ab" {
		t.Errorf("image %+v", img)
	}
	if len(seen) == 0 || seen[len(seen)-1].Done != 10 {
		t.Errorf("progress seen: %+v", seen)
	}
	fb.fail = true
	if _, err := c.PullImage(t.Context(), "r.example/x:1", func(PullProgress) {}); err == nil {
		t.Error("a failed pull returned no error")
	}
}

type progressBackend struct {
	*fakeBackend
	fail bool
}

func (p *progressBackend) PullImage(ctx context.Context, ref string, fn func(PullProgress)) (Image, error) {
	if fn != nil {
		fn(PullProgress{Done: 10, Total: 20})
	}
	if p.fail {
		return Image{}, errors.New("registry said no")
	}
	return Image{Name: ref, Digest: "sha256:ab"}, nil
}

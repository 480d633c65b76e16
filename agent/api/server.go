// Package api is the agent's HTTP+JSON API on a unix socket and, when
// configured, on a TLS listener that requires client certificates (see
// tls.go), and the typed Client that the orch CLI uses.
//
// The wire types here are the stable contract: the agent converts its
// internal types to them, so those can change without changing the JSON.
// api imports no other orch package; the agent satisfies [Backend].
//
// Endpoints (all under /v1):
//
//	GET  /info      Info
//	GET  /members   []Member
//	GET  /token     TokenResponse
//	POST /join      JoinRequest -> JoinResponse
//	POST /leave     leave the cluster; the agent then exits
//	GET  /events    NDJSON stream of Event; query: filter (repeatable), after, since
//	GET  /services                 []ServiceInfo
//	POST /services                 ServiceWrite (spec) -> ServiceInfo; 409 if it exists
//	GET  /services/{name}          ServiceInfo
//	PUT  /services/{name}          ServiceWrite -> ServiceInfo; 404 if missing, 409 on a stale base version
//	DELETE /services/{name}
//	GET  /services/{name}/tasks    []Task
//	POST /apply                    ServiceWrite (spec) -> ApplyResult
//	GET  /services/{name}/logs     NDJSON stream of LogLine; query: slot, tail, follow
//	GET  /images                   []Image
//	POST /images/import            an image archive (the raw body) -> []Image
//	POST /images/pull              PullRequest -> Image; with ?progress=1 an NDJSON stream of PullProgress
package api

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/orchproject/orch/internal/loglimit"
	"github.com/orchproject/orch/internal/pki"
)

const (
	// maxBody bounds request bodies; the largest legitimate one is a few KiB.
	maxBody = 1 << 20
	// maxImage bounds an imported image archive.
	maxImage = 16 << 30
	// shutdownGrace is how long in-flight requests may finish at shutdown;
	// event streams are cancelled at once.
	shutdownGrace = 3 * time.Second
)

// Backend is what the API serves. Implementations must be safe for
// concurrent use; every method may block up to ctx's deadline.
type Backend interface {
	Info(ctx context.Context) Info
	Members(ctx context.Context) ([]Member, error)
	Token(ctx context.Context) (string, error)
	Join(ctx context.Context, req JoinRequest) (JoinResponse, error)
	// Leave leaves the cluster gracefully. The agent stops after the
	// response has been sent.
	Leave(ctx context.Context) error
	// Events calls emit for each selected event, in order, until ctx ends
	// or emit fails, and returns nil in both cases. It returns an error
	// only if the request is bad (before any emit).
	Events(ctx context.Context, req EventsRequest, emit func(Event) error) error

	ListServices(ctx context.Context) ([]ServiceInfo, error)
	GetService(ctx context.Context, name string) (ServiceInfo, error)
	// CreateService fails with 409 if the service exists.
	CreateService(ctx context.Context, spec json.RawMessage) (ServiceInfo, error)
	// UpdateService fails with 404 if the service does not exist.
	UpdateService(ctx context.Context, name string, w ServiceWrite) (ServiceInfo, error)
	// ApplyService creates or updates, and does nothing for an equal spec.
	ApplyService(ctx context.Context, spec json.RawMessage) (ApplyResult, error)
	RemoveService(ctx context.Context, name string) error
	ServiceTasks(ctx context.Context, name string) ([]Task, error)

	// ImportImage imports an image archive (OCI or Docker) streamed in r.
	ImportImage(ctx context.Context, r io.Reader) ([]Image, error)
	ListImages(ctx context.Context) ([]Image, error)
	// PullImage pulls an image from its registry into this node,
	// reporting progress to fn (which may be nil; it must not block).
	PullImage(ctx context.Context, ref string, fn func(PullProgress)) (Image, error)
	// Logs calls emit for each selected log line, like Events.
	Logs(ctx context.Context, req LogsRequest, emit func(LogLine) error) error

	// Keys lists the gossip keys of every member; KeyOp installs, uses
	// (makes primary) or removes a key on every member.
	Keys(ctx context.Context) (KeyResult, error)
	// RotateToken makes a new join secret for the whole cluster and
	// returns the new token; the old one no longer admits nodes.
	RotateToken(ctx context.Context) (string, error)
	KeyOp(ctx context.Context, op string, key string) (KeyResult, error)

	SecretBackend
}

// Key operations of [Backend.KeyOp].
const (
	KeyInstall = "install"
	KeyUse     = "use"
	KeyRemove  = "remove"
)

// ServerConfig configures a [Server].
type ServerConfig struct {
	// Socket is the unix socket path. Required.
	Socket string
	// Mode is the socket's permission bits. Default 0600: root only; 0660
	// when Group is set.
	Mode os.FileMode
	// Group, if not negative, is the group ID given the socket, whose
	// members may then use the API. -1 (or 0 with Mode unset) keeps root's.
	Group int
	// TLSAddr, if not empty, is a TCP address (HOST:PORT; an empty HOST
	// means every address, port 0 any free port) where the same API is
	// also served, over TLS, to clients with a certificate that TLS
	// accepts. Empty: the socket only.
	TLSAddr string
	// TLS configures the TLSAddr listener; required with it, and it must
	// require and verify client certificates. Build it with [ServerTLS].
	TLS *tls.Config
	// Audit, if set, is called after every mutating request (POST, PUT,
	// DELETE) with who made it (on the socket as the kernel says,
	// SO_PEERCRED; over TLS as the client certificate says) and the
	// response's status. It must not block.
	Audit func(AuditRecord)
	// Backend answers requests. Required.
	Backend Backend
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
}

// Server serves the API on a unix socket and, if configured, over TLS.
type Server struct {
	cfg     ServerConfig
	log     *slog.Logger
	ready   chan struct{}
	tlsAddr net.Addr // the TLS listener's bound address; set before ready closes
}

// NewServer validates cfg. It starts nothing.
func NewServer(cfg ServerConfig) (*Server, error) {
	var errs []error
	if cfg.Socket == "" {
		errs = append(errs, errors.New("socket: required"))
	}
	if cfg.Backend == nil {
		errs = append(errs, errors.New("backend: required"))
	}
	switch {
	case cfg.TLSAddr != "" && cfg.TLS == nil:
		errs = append(errs, errors.New("tls: required with a TLS address"))
	case cfg.TLSAddr == "" && cfg.TLS != nil:
		errs = append(errs, errors.New("tls: given without a TLS address"))
	case cfg.TLS != nil && (cfg.TLS.ClientAuth != tls.RequireAndVerifyClientCert || cfg.TLS.ClientCAs == nil):
		// The listener has no other authentication: without verified
		// client certificates, anyone who reaches it is root.
		errs = append(errs, errors.New("tls: must require and verify client certificates (build it with ServerTLS)"))
	}
	if cfg.TLS != nil {
		cfg.TLS = cfg.TLS.Clone() // Run must not see later changes
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("api config: %w", err)
	}
	if cfg.Mode == 0 {
		cfg.Mode = 0o600
		if cfg.Group > 0 {
			cfg.Mode = 0o660
		}
	}
	lg := cfg.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	return &Server{cfg: cfg, log: lg.With("component", "api"), ready: make(chan struct{})}, nil
}

// Ready is closed once the socket, and the TLS listener if configured,
// accept connections.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// TLSAddr is the address the TLS listener is bound to (useful with port
// 0); nil without one, or before [Server.Ready] is closed.
func (s *Server) TLSAddr() net.Addr {
	select {
	case <-s.ready:
		return s.tlsAddr
	default:
		return nil
	}
}

// Run listens on the socket (and the TLS address) and serves until ctx
// ends, then stops accepting on both, lets in-flight requests finish
// briefly, and removes the socket. One handler serves both listeners.
func (s *Server) Run(ctx context.Context) error {
	ln, err := listenUnix(s.cfg.Socket, s.cfg.Mode, s.cfg.Group)
	if err != nil {
		return err
	}
	defer os.Remove(s.cfg.Socket)
	var tln net.Listener
	if s.cfg.TLSAddr != "" {
		tcp, err := net.Listen("tcp", s.cfg.TLSAddr)
		if err != nil {
			ln.Close()
			return fmt.Errorf("listen for the TLS API on %s: %w", s.cfg.TLSAddr, err)
		}
		s.tlsAddr = tcp.Addr()
		// http.Server runs the handshake (bounded by ReadHeaderTimeout)
		// and fills in Request.TLS, which audited reads.
		tln = tls.NewListener(tcp, s.cfg.TLS)
	}
	// Streams end with the server's context; requests see it as their base.
	baseCtx, cancelBase := context.WithCancel(context.Background())
	defer cancelBase()
	srv := &http.Server{
		Handler:           s.routes(),
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return baseCtx },
		ConnContext:       withPeer,
		// Anyone who reaches the TLS port can fail a handshake, one
		// warning each: rate-limited, so a scanner cannot fill the disk.
		ErrorLog: slog.NewLogLogger(loglimit.New(s.log).Handler(), slog.LevelWarn),
	}
	// One Serve per listener; Run waits for each to return, which is when
	// its listener is closed (a Serve that starts after Shutdown returns
	// at once, but closes its listener only then).
	listeners := []net.Listener{ln}
	if tln != nil {
		listeners = append(listeners, tln)
	}
	errc := make(chan error, len(listeners)) // buffered: every result is read below, none blocks
	for _, l := range listeners {
		go func() { errc <- srv.Serve(l) }()
	}
	waitServe := func(n int) {
		for range n {
			<-errc
		}
	}
	close(s.ready)
	if tln != nil {
		s.log.Info("api listening", "socket", s.cfg.Socket, "tls_addr", s.tlsAddr.String())
	} else {
		s.log.Info("api listening", "socket", s.cfg.Socket)
	}
	select {
	case err := <-errc:
		srv.Close() // and the other listener
		waitServe(len(listeners) - 1)
		return fmt.Errorf("serve api: %w", err)
	case <-ctx.Done():
	}
	cancelBase() // end event streams so Shutdown need not wait for them
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		s.log.Warn("api shutdown", "err", err)
		srv.Close()
	}
	waitServe(len(listeners))
	return nil
}

// listenUnix binds the socket under a temporary name, sets its mode and
// renames it into place, so it is never reachable with looser permissions.
// A socket file left by a crashed agent is replaced; a live one is not.
func listenUnix(path string, mode os.FileMode, group int) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("create socket directory: %w", err)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("another agent is serving on %s (stop it, or give this one another --socket)", path)
	}
	// Only a socket may be replaced: the rename below would otherwise
	// swap a mistyped --socket's file for the socket, and Run's cleanup
	// would then delete it.
	if fi, err := os.Lstat(path); err == nil && fi.Mode().Type() != os.ModeSocket {
		return nil, fmt.Errorf("%s exists and is not a socket (remove it, or give another --socket)", path)
	}
	tmp := fmt.Sprintf("%s.%d.tmp", path, os.Getpid())
	os.Remove(tmp)
	ln, err := net.Listen("unix", tmp)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	if group > 0 {
		if err := os.Chown(tmp, -1, group); err != nil {
			ln.Close()
			os.Remove(tmp)
			return nil, fmt.Errorf("chown %s to group %d: %w", tmp, group, err)
		}
	}
	if err := os.Chmod(tmp, mode); err != nil {
		ln.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("chmod %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		ln.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("move socket into place at %s: %w", path, err)
	}
	return ln, nil
}

// AuditRecord is one mutating API call: what, by whom, with what outcome.
type AuditRecord struct {
	Method, Path string
	// UID, GID and PID are the caller's, from the socket's peer
	// credentials; -1 when unknown, and for TLS callers.
	UID, GID, PID int
	// CN is the subject common name of a TLS caller's certificate, and
	// Fingerprint the SHA-256 of that certificate (hex, as
	// [pki.Fingerprint]); Remote is the caller's address (IP:PORT). All
	// empty for socket callers.
	CN, Fingerprint, Remote string
	Status                  int
}

type peerKey struct{}

// withPeer stores the connection's peer credentials in its context.
func withPeer(ctx context.Context, c net.Conn) context.Context {
	cred := peerCred(c)
	return context.WithValue(ctx, peerKey{}, cred)
}

// statusRecorder remembers the status a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// Flush keeps streaming responses (pull progress) working.
func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// audited calls Audit after every mutating request.
func (s *Server) audited(h http.Handler) http.Handler {
	if s.cfg.Audit == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			h.ServeHTTP(w, r)
			return
		}
		rec := &statusRecorder{ResponseWriter: w}
		h.ServeHTTP(rec, r)
		p, _ := r.Context().Value(peerKey{}).(peer)
		ar := AuditRecord{Method: r.Method, Path: r.URL.Path, UID: p.uid, GID: p.gid, PID: p.pid, Status: rec.status}
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			// Verified by the handshake (RequireAndVerifyClientCert): the
			// first certificate is the caller's.
			c := r.TLS.PeerCertificates[0]
			ar.CN, ar.Fingerprint, ar.Remote = c.Subject.CommonName, pki.Fingerprint(c), r.RemoteAddr
		}
		s.cfg.Audit(ar)
	})
}

func (s *Server) routes() http.Handler {
	return s.audited(s.mux())
}

func (s *Server) mux() http.Handler {
	mux := http.NewServeMux()
	b := s.cfg.Backend
	mux.HandleFunc("GET /v1/info", func(w http.ResponseWriter, r *http.Request) {
		s.reply(w, b.Info(r.Context()), nil)
	})
	mux.HandleFunc("GET /v1/members", func(w http.ResponseWriter, r *http.Request) {
		m, err := b.Members(r.Context())
		s.reply(w, m, err)
	})
	mux.HandleFunc("GET /v1/token", func(w http.ResponseWriter, r *http.Request) {
		t, err := b.Token(r.Context())
		s.reply(w, TokenResponse{Token: t}, err)
	})
	mux.HandleFunc("POST /v1/join", func(w http.ResponseWriter, r *http.Request) {
		var req JoinRequest
		if err := decodeBody(w, r, &req); err != nil {
			s.reply(w, nil, err)
			return
		}
		resp, err := b.Join(r.Context(), req)
		s.reply(w, resp, err)
	})
	mux.HandleFunc("POST /v1/leave", func(w http.ResponseWriter, r *http.Request) {
		s.reply(w, struct{}{}, b.Leave(r.Context()))
	})
	mux.HandleFunc("GET /v1/events", s.serveEvents)
	mux.HandleFunc("POST /v1/token/rotate", func(w http.ResponseWriter, r *http.Request) {
		t, err := b.RotateToken(r.Context())
		s.reply(w, TokenResponse{Token: t}, err)
	})
	mux.HandleFunc("GET /v1/keys", func(w http.ResponseWriter, r *http.Request) {
		res, err := b.Keys(r.Context())
		s.reply(w, res, err)
	})
	mux.HandleFunc("POST /v1/keys/{op}", func(w http.ResponseWriter, r *http.Request) {
		op := r.PathValue("op")
		if op != KeyInstall && op != KeyUse && op != KeyRemove {
			s.reply(w, nil, BadRequest(fmt.Errorf("key operation %q: want %s, %s or %s", op, KeyInstall, KeyUse, KeyRemove)))
			return
		}
		var req KeyRequest
		if err := decodeBody(w, r, &req); err != nil {
			s.reply(w, nil, err)
			return
		}
		res, err := b.KeyOp(r.Context(), op, req.Key)
		s.reply(w, res, err)
	})
	s.secretRoutes(mux)
	mux.HandleFunc("GET /v1/services", func(w http.ResponseWriter, r *http.Request) {
		v, err := b.ListServices(r.Context())
		s.reply(w, v, err)
	})
	mux.HandleFunc("POST /v1/services", func(w http.ResponseWriter, r *http.Request) {
		var req ServiceWrite
		if err := decodeBody(w, r, &req); err != nil {
			s.reply(w, nil, err)
			return
		}
		v, err := b.CreateService(r.Context(), req.Spec)
		s.reply(w, v, err)
	})
	mux.HandleFunc("GET /v1/services/{name}", func(w http.ResponseWriter, r *http.Request) {
		v, err := b.GetService(r.Context(), r.PathValue("name"))
		s.reply(w, v, err)
	})
	mux.HandleFunc("PUT /v1/services/{name}", func(w http.ResponseWriter, r *http.Request) {
		var req ServiceWrite
		if err := decodeBody(w, r, &req); err != nil {
			s.reply(w, nil, err)
			return
		}
		v, err := b.UpdateService(r.Context(), r.PathValue("name"), req)
		s.reply(w, v, err)
	})
	mux.HandleFunc("DELETE /v1/services/{name}", func(w http.ResponseWriter, r *http.Request) {
		s.reply(w, struct{}{}, b.RemoveService(r.Context(), r.PathValue("name")))
	})
	mux.HandleFunc("GET /v1/services/{name}/tasks", func(w http.ResponseWriter, r *http.Request) {
		v, err := b.ServiceTasks(r.Context(), r.PathValue("name"))
		s.reply(w, v, err)
	})
	mux.HandleFunc("POST /v1/apply", func(w http.ResponseWriter, r *http.Request) {
		var req ServiceWrite
		if err := decodeBody(w, r, &req); err != nil {
			s.reply(w, nil, err)
			return
		}
		v, err := b.ApplyService(r.Context(), req.Spec)
		s.reply(w, v, err)
	})
	mux.HandleFunc("GET /v1/services/{name}/logs", s.serveLogs)
	mux.HandleFunc("GET /v1/images", func(w http.ResponseWriter, r *http.Request) {
		v, err := b.ListImages(r.Context())
		s.reply(w, v, err)
	})
	mux.HandleFunc("POST /v1/images/pull", func(w http.ResponseWriter, r *http.Request) {
		var req PullRequest
		if err := decodeBody(w, r, &req); err != nil {
			s.reply(w, nil, err)
			return
		}
		if r.URL.Query().Get("progress") != "1" {
			v, err := b.PullImage(r.Context(), req.Ref, nil)
			s.reply(w, v, err)
			return
		}
		s.servePullProgress(w, r, req.Ref)
	})
	mux.HandleFunc("POST /v1/images/import", func(w http.ResponseWriter, r *http.Request) {
		v, err := b.ImportImage(r.Context(), http.MaxBytesReader(w, r.Body, maxImage))
		s.reply(w, v, err)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.reply(w, nil, Errorf(http.StatusNotFound, "no such endpoint: %s %s", r.Method, r.URL.Path))
	})
	return mux
}

// serveEvents streams NDJSON, one event per line, flushed per event.
func (s *Server) serveEvents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	req := EventsRequest{Filters: q["filter"]}
	if v := q.Get("after"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			s.reply(w, nil, Errorf(http.StatusBadRequest, "after=%q: want a sequence number", v))
			return
		}
		req.After = n
	}
	if v := q.Get("since"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			s.reply(w, nil, Errorf(http.StatusBadRequest, "since=%q: want a positive duration like 10m", v))
			return
		}
		req.Since = d
	}
	streamNDJSON(s, w, func(emit func(Event) error) error { return s.cfg.Backend.Events(r.Context(), req, emit) })
}

// serveLogs streams a service's log lines on this node as NDJSON.
func (s *Server) serveLogs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	req := LogsRequest{Service: r.PathValue("name"), Tail: -1, Follow: q.Get("follow") == "1"}
	if v := q.Get("slot"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			s.reply(w, nil, Errorf(http.StatusBadRequest, "slot=%q: want a slot number", v))
			return
		}
		req.Slot = &n
	}
	if v := q.Get("tail"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < -1 {
			s.reply(w, nil, Errorf(http.StatusBadRequest, "tail=%q: want a number of lines", v))
			return
		}
		req.Tail = n
	}
	streamNDJSON(s, w, func(emit func(LogLine) error) error { return s.cfg.Backend.Logs(r.Context(), req, emit) })
}

// servePullProgress streams a pull's progress, then its result.
func (s *Server) servePullProgress(w http.ResponseWriter, r *http.Request, ref string) {
	// Progress comes from the runtime's goroutine; the handler writes.
	progress := make(chan PullProgress, 1) // latest value wins; older ones are dropped
	type result struct {
		img Image
		err error
	}
	done := make(chan result, 1) // buffered: the pull must finish even if the client left
	go func() {
		img, err := s.cfg.Backend.PullImage(r.Context(), ref, func(p PullProgress) {
			select {
			case progress <- p:
			default:
			}
		})
		done <- result{img, err}
	}()
	streamNDJSON(s, w, func(emit func(PullProgress) error) error {
		for {
			select {
			case p := <-progress:
				if err := emit(p); err != nil {
					return nil
				}
			case res := <-done:
				select {
				case p := <-progress: // the last progress before the result
					if err := emit(p); err != nil {
						return nil
					}
				default:
				}
				if res.err != nil {
					return emit(PullProgress{Error: res.err.Error()})
				}
				img := res.img
				return emit(PullProgress{Image: &img})
			}
		}
	})
}

// streamNDJSON runs a backend stream, writing each value as one JSON line
// flushed at once. An error before the first value is an ordinary error
// reply; after it, the stream just ends.
func streamNDJSON[T any](s *Server, w http.ResponseWriter, run func(emit func(T) error) error) {
	flusher, _ := w.(http.Flusher)
	enc := json.NewEncoder(w)
	started := false
	err := run(func(v T) error {
		if !started {
			w.Header().Set("Content-Type", "application/x-ndjson")
			started = true
		}
		if err := enc.Encode(v); err != nil {
			return err
		}
		if flusher != nil {
			flusher.Flush()
		}
		return nil
	})
	if err != nil && !started {
		s.reply(w, nil, err)
		return
	}
	if !started {
		// Nothing before the stream ended: send the headers anyway so the
		// client sees a clean, empty stream rather than an error.
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.WriteHeader(http.StatusOK)
	}
}

func decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return Errorf(http.StatusBadRequest, "decode request body: %v", err)
	}
	return nil
}

// reply writes v as JSON, or err as an Error body.
func (s *Server) reply(w http.ResponseWriter, v any, err error) {
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		var ae *Error
		if !errors.As(err, &ae) {
			ae = &Error{Status: http.StatusInternalServerError, Message: err.Error()}
		}
		if ae.Status == 0 {
			ae.Status = http.StatusInternalServerError
		}
		w.WriteHeader(ae.Status)
		json.NewEncoder(w).Encode(ae)
		return
	}
	if err := json.NewEncoder(w).Encode(v); err != nil {
		s.log.Debug("write response", "err", err)
	}
}

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
	"net/url"
	"os"
	"strconv"
)

// DefaultSocket is where the agent listens and the CLI looks by default.
const DefaultSocket = "/run/orch/orch.sock"

// SocketEnv names the environment variable the CLI reads for the socket.
const SocketEnv = "ORCH_SOCKET"

// ConnError means the agent could not be reached at all.
type ConnError struct {
	// Socket is the unix socket dialled; empty for a TLS client.
	Socket string
	// Host is the TLS listener dialled, as https://HOST:PORT; empty for a
	// socket client.
	Host string
	Err  error
}

func (e *ConnError) Error() string {
	if e.Host != "" {
		return fmt.Sprintf("cannot reach the agent at %s: %v (is \"orch agent\" running with --api-tls-addr on that address? set --host or %s)", e.Host, e.Err, HostEnv)
	}
	if errors.Is(e.Err, os.ErrPermission) {
		return fmt.Sprintf("permission denied on the agent's socket %s: it is for root only (run as root, or start the agent with --socket-group GROUP and be in that group)", e.Socket)
	}
	return fmt.Sprintf("cannot reach the agent at %s: %v (is \"orch agent\" running? set --socket or %s)", e.Socket, e.Err, SocketEnv)
}

func (e *ConnError) Unwrap() error { return e.Err }

// Client talks to an agent's API over its unix socket ([NewClient]) or
// its TLS listener ([NewTLSClient]).
type Client struct {
	socket string // the unix socket; empty for a TLS client
	host   string // https://HOST:PORT of a TLS client; empty for a socket client
	hc     *http.Client
}

// NewClient returns a client for the agent at socket.
func NewClient(socket string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		MaxIdleConns: 2,
	}
	return &Client{socket: socket, hc: &http.Client{Transport: tr}}
}

// Socket is the socket path the client uses; empty for a TLS client.
func (c *Client) Socket() string { return c.socket }

// Info returns the agent's identity.
func (c *Client) Info(ctx context.Context) (Info, error) {
	var v Info
	return v, c.do(ctx, http.MethodGet, "/v1/info", nil, &v)
}

// Members lists the cluster's members as the agent sees them.
func (c *Client) Members(ctx context.Context) ([]Member, error) {
	var v []Member
	return v, c.do(ctx, http.MethodGet, "/v1/members", nil, &v)
}

// Token returns the cluster's join token.
func (c *Client) Token(ctx context.Context) (string, error) {
	var v TokenResponse
	return v.Token, c.do(ctx, http.MethodGet, "/v1/token", nil, &v)
}

// Join asks the agent to join other members.
func (c *Client) Join(ctx context.Context, req JoinRequest) (JoinResponse, error) {
	var v JoinResponse
	return v, c.do(ctx, http.MethodPost, "/v1/join", req, &v)
}

// Leave makes the agent leave the cluster and stop.
func (c *Client) Leave(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "/v1/leave", struct{}{}, nil)
}

// ListServices lists every service.
func (c *Client) ListServices(ctx context.Context) ([]ServiceInfo, error) {
	var v []ServiceInfo
	return v, c.do(ctx, http.MethodGet, "/v1/services", nil, &v)
}

// GetService returns one service.
func (c *Client) GetService(ctx context.Context, name string) (ServiceInfo, error) {
	var v ServiceInfo
	return v, c.do(ctx, http.MethodGet, "/v1/services/"+url.PathEscape(name), nil, &v)
}

// CreateService creates a service from a spec (JSON).
func (c *Client) CreateService(ctx context.Context, spec json.RawMessage) (ServiceInfo, error) {
	var v ServiceInfo
	return v, c.do(ctx, http.MethodPost, "/v1/services", ServiceWrite{Spec: spec}, &v)
}

// UpdateService replaces a service's spec.
func (c *Client) UpdateService(ctx context.Context, name string, w ServiceWrite) (ServiceInfo, error) {
	var v ServiceInfo
	return v, c.do(ctx, http.MethodPut, "/v1/services/"+url.PathEscape(name), w, &v)
}

// ApplyService creates or updates a service.
func (c *Client) ApplyService(ctx context.Context, spec json.RawMessage) (ApplyResult, error) {
	var v ApplyResult
	return v, c.do(ctx, http.MethodPost, "/v1/apply", ServiceWrite{Spec: spec}, &v)
}

// RemoveService deletes a service.
func (c *Client) RemoveService(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/v1/services/"+url.PathEscape(name), nil, nil)
}

// ServiceTasks lists a service's slots.
func (c *Client) ServiceTasks(ctx context.Context, name string) ([]Task, error) {
	var v []Task
	return v, c.do(ctx, http.MethodGet, "/v1/services/"+url.PathEscape(name)+"/tasks", nil, &v)
}

// ImportImage uploads an image archive to the agent's containerd.
func (c *Client) ImportImage(ctx context.Context, archive io.Reader) ([]Image, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://orch/v1/images/import", archive)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-tar")
	resp, err := c.roundTrip(ctx, req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var v []Image
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		return nil, fmt.Errorf("decode import response: %w", err)
	}
	return v, nil
}

// PullImage makes the agent's node pull an image, calling fn (if not nil)
// with its progress.
func (c *Client) PullImage(ctx context.Context, ref string, fn func(PullProgress)) (Image, error) {
	if fn == nil {
		var v Image
		return v, c.do(ctx, http.MethodPost, "/v1/images/pull", PullRequest{Ref: ref}, &v)
	}
	resp, err := c.send(ctx, http.MethodPost, "/v1/images/pull?progress=1", PullRequest{Ref: ref})
	if err != nil {
		return Image{}, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		var p PullProgress
		if err := json.Unmarshal(sc.Bytes(), &p); err != nil {
			return Image{}, fmt.Errorf("decode pull progress: %w", err)
		}
		switch {
		case p.Error != "":
			return Image{}, &Error{Status: http.StatusBadGateway, Message: p.Error}
		case p.Image != nil:
			return *p.Image, nil
		default:
			fn(p)
		}
	}
	if err := sc.Err(); err != nil {
		return Image{}, fmt.Errorf("read pull progress: %w", err)
	}
	return Image{}, errors.New("the agent ended the pull without a result")
}

// ListImages lists the images in the agent's containerd.
func (c *Client) ListImages(ctx context.Context) ([]Image, error) {
	var v []Image
	return v, c.do(ctx, http.MethodGet, "/v1/images", nil, &v)
}

// Logs streams a service's log lines from the agent's node to fn.
func (c *Client) Logs(ctx context.Context, req LogsRequest, fn func(LogLine) error) error {
	q := url.Values{}
	if req.Slot != nil {
		q.Set("slot", strconv.Itoa(*req.Slot))
	}
	q.Set("tail", strconv.Itoa(req.Tail))
	if req.Follow {
		q.Set("follow", "1")
	}
	resp, err := c.send(ctx, http.MethodGet, "/v1/services/"+url.PathEscape(req.Service)+"/logs?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return readNDJSON(ctx, resp.Body, 4<<20, "log line", fn)
}

// Events streams events to fn until ctx ends, the agent closes the stream,
// or fn returns an error (which Events returns).
func (c *Client) Events(ctx context.Context, req EventsRequest, fn func(Event) error) error {
	q := url.Values{}
	for _, f := range req.Filters {
		q.Add("filter", f)
	}
	if req.After > 0 {
		q.Set("after", strconv.FormatUint(req.After, 10))
	}
	if req.Since > 0 {
		q.Set("since", req.Since.String())
	}
	resp, err := c.send(ctx, http.MethodGet, "/v1/events?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return readNDJSON(ctx, resp.Body, 1<<20, "event", fn)
}

// readNDJSON decodes one JSON value per line (lines up to maxLine bytes)
// and hands each to fn until the stream ends, fn fails (its error is
// returned) or ctx ends (nil).
func readNDJSON[T any](ctx context.Context, r io.Reader, maxLine int, what string, fn func(T) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	for sc.Scan() {
		var v T
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			return fmt.Errorf("decode %s: %w", what, err)
		}
		if err := fn(v); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil {
		return fmt.Errorf("read %s stream: %w", what, err)
	}
	return nil
}

func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	resp, err := c.send(ctx, method, path, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decode %s response: %w", path, err)
	}
	return nil
}

// send performs a request and turns non-2xx answers into *Error.
func (c *Client) send(ctx context.Context, method, path string, body any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://orch"+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return c.roundTrip(ctx, req)
}

// roundTrip sends a request and turns failures into *ConnError (the agent
// is not there) or *Error (it answered non-2xx).
func (c *Client) roundTrip(ctx context.Context, req *http.Request) (*http.Response, error) {
	resp, err := c.hc.Do(req)
	if err != nil {
		if te := c.tlsFailure(err); te != nil {
			return nil, te
		}
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return nil, &ConnError{Socket: c.socket, Host: c.host, Err: op.Err}
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%s %s: %w", req.Method, req.URL.Path, err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		ae := &Error{Status: resp.StatusCode}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxBody))
		if json.Unmarshal(b, ae) != nil || ae.Message == "" {
			ae.Message = fmt.Sprintf("agent answered %s: %s", resp.Status, bytes.TrimSpace(b))
		}
		return nil, ae
	}
	return resp, nil
}

// Keys lists the gossip keys of every member.
func (c *Client) Keys(ctx context.Context) (KeyResult, error) {
	var v KeyResult
	return v, c.do(ctx, http.MethodGet, "/v1/keys", nil, &v)
}

// KeyOp installs, uses or removes a gossip key on every member.
func (c *Client) KeyOp(ctx context.Context, op, key string) (KeyResult, error) {
	var v KeyResult
	return v, c.do(ctx, http.MethodPost, "/v1/keys/"+op, KeyRequest{Key: key}, &v)
}

// RotateToken makes a new join token for the cluster.
func (c *Client) RotateToken(ctx context.Context) (string, error) {
	var v TokenResponse
	return v.Token, c.do(ctx, http.MethodPost, "/v1/token/rotate", nil, &v)
}

package healthcheck

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"
)

// userAgent identifies probes in the probed service's access log, as
// Kubernetes' "kube-probe/1.x" does.
const userAgent = "orch-healthcheck/1"

// maxResponseHeaderBytes bounds the headers of a probe's response: a
// health endpoint has no business sending more, and the agent must not
// buffer a megabyte (net/http's default) per probe.
const maxResponseHeaderBytes = 16 << 10

// newHTTPClient returns the client every HTTP probe of a monitor shares.
// Keep-alives are off so each probe opens a fresh connection, like
// Kubernetes: a probe must see whether the service still accepts
// connections, and idle connections to a thousand replicas would pin file
// descriptors and go stale when replicas restart. The proxy is never taken
// from the environment: replica addresses are on the overlay, which no
// proxy of the host's can reach. Redirects are not followed: a 3xx is
// already an answer (healthy), and following it could leave the replica.
func newHTTPClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:                  nil,
			DialContext:            (&net.Dialer{}).DialContext,
			DisableKeepAlives:      true,
			DisableCompression:     true,
			MaxResponseHeaderBytes: maxResponseHeaderBytes,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// probe runs one probe of p bounded by its timeout and returns its result.
// A probe cut short by ctx (the target was stopped) returns a result the
// caller discards.
func (m *Monitor) probe(ctx context.Context, p *prober) ProbeResult {
	r := ProbeResult{ID: p.target.ID, Kind: p.check.Kind, At: m.now()}
	// Durations come from the real clock even when Config.Now is faked:
	// they are latencies, not timestamps.
	begin := time.Now()
	pctx, cancel := context.WithTimeout(ctx, p.check.Timeout)
	defer cancel()
	var out string
	var err error
	switch p.check.Kind {
	case KindHTTP:
		out, err = m.probeHTTP(pctx, p.url)
	case KindTCP:
		out, err = probeTCP(pctx, p.hostport)
	case KindExec:
		out, err = m.probeExec(pctx, p.target.ID, p.check.Command)
	}
	r.Duration = time.Since(begin)
	switch {
	case err == nil:
		r.OK = true
	case errors.Is(pctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil:
		// Whatever error the probe returned, the cause is the deadline;
		// say so the way Docker does.
		r.TimedOut = true
		out = fmt.Sprintf("probe timed out after %v", p.check.Timeout)
	default:
		out = joinOutput(err.Error(), out)
	}
	r.Output = clip(out)
	return r
}

// probeHTTP GETs url. A status of 200–399 is healthy; anything else, or a
// failure to read the head or the first MaxOutput bytes of the body, is an
// error. The output is the start of the body; the status line goes into
// the error on failure and before the body on success, so both read
// "HTTP 503 Service Unavailable: <body>".
func (m *Monitor) probeHTTP(ctx context.Context, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", fmt.Errorf("build request for %s: %w", url, err)
	}
	req.Header.Set("User-Agent", userAgent)
	resp, err := m.client.Do(req)
	if err != nil {
		return "", err // a *url.Error: it names the method and URL already
	}
	// Closing without draining is fine: the connection is not reused.
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxOutput))
	if err != nil {
		return string(body), fmt.Errorf("HTTP %s: read body: %w", resp.Status, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 399 {
		return string(body), fmt.Errorf("HTTP %s", resp.Status)
	}
	return joinOutput("HTTP "+resp.Status, string(body)), nil
}

// probeTCP connects to hostport and closes the connection at once.
func probeTCP(ctx context.Context, hostport string) (string, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", hostport)
	if err != nil {
		return "", err // a *net.OpError: "dial tcp ADDR: connect: connection refused"
	}
	// A close error after a successful connect says nothing about the
	// target's health.
	_ = c.Close()
	return "connected to " + hostport, nil
}

// probeExec runs argv in target id through Config.Exec. Exit code 0 is
// healthy. The output is the command's, after "exit status N" on failure.
func (m *Monitor) probeExec(ctx context.Context, id string, argv []string) (string, error) {
	code, output, err := m.cfg.Exec(ctx, id, argv)
	// Clip before converting: output can be large and is kept only in part.
	out := clip(string(output[:min(len(output), MaxOutput+utf8.UTFMax)]))
	if err != nil {
		return out, fmt.Errorf("exec %s: %w", argv[0], err)
	}
	if code != 0 {
		return out, fmt.Errorf("exit status %d", code)
	}
	return out, nil
}

// joinOutput joins a failure message and the probe's output, either of
// which may be empty.
func joinOutput(msg, out string) string {
	switch {
	case out == "":
		return msg
	case msg == "":
		return out
	default:
		return msg + ": " + out
	}
}

// clip returns s as valid UTF-8 of at most MaxOutput bytes, cut at a rune
// boundary: outputs end up in JSON events and observed state.
func clip(s string) string {
	if len(s) <= MaxOutput && utf8.ValidString(s) {
		return s
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= MaxOutput {
		return s
	}
	i := MaxOutput
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i]
}

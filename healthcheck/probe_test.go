package healthcheck

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// newHTTPServer starts a real server on 127.0.0.1 and returns a target of
// it with the test timings.
func newHTTPServer(t *testing.T, path string, h http.HandlerFunc) Target {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	ap := netip.MustParseAddrPort(srv.Listener.Addr().String())
	c := fastCheck(KindHTTP, 3)
	c.Port, c.Path = int(ap.Port()), path
	return Target{ID: "web", Addr: ap.Addr(), Check: c}
}

// statusScript answers the n-th request with codes[n-1], repeating the last.
func statusScript(codes ...int) (http.HandlerFunc, *atomic.Int32) {
	var n atomic.Int32
	return func(w http.ResponseWriter, r *http.Request) {
		i := int(n.Add(1))
		w.WriteHeader(codes[min(i, len(codes))-1])
	}, &n
}

func TestMonitor_HTTPHealthy(t *testing.T) {
	var (
		mu      sync.Mutex
		remotes = map[string]bool{}
		bad     []string
	)
	target := newHTTPServer(t, "/healthz?full=1", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		remotes[r.RemoteAddr] = true
		if r.URL.Path != "/healthz" || r.URL.RawQuery != "full=1" || r.Method != http.MethodGet || r.Header.Get("User-Agent") != userAgent {
			bad = append(bad, r.Method+" "+r.URL.String()+" "+r.Header.Get("User-Agent"))
		}
		w.Write([]byte("all good"))
	})
	var rec recorder
	m := newTestMonitor(t, rec.config(Config{}))
	mustSet(t, m, target)
	equalWords(t, rec.waitTranscript(t, "web", 4), []string{"ok", "starting>healthy", "ok", "ok"})
	st, _ := m.Status("web")
	if st.LastOutput != "HTTP 200 OK: all good" {
		t.Errorf("LastOutput = %q, want %q", st.LastOutput, "HTTP 200 OK: all good")
	}
	m.Close()
	mu.Lock()
	defer mu.Unlock()
	if len(bad) > 0 {
		t.Errorf("unexpected requests: %q", bad)
	}
	// Keep-alives are off: every probe came on a connection of its own.
	if n := len(rec.probes("web")); len(remotes) != n {
		t.Errorf("%d probes came from %d client addresses, want a fresh connection each", n, len(remotes))
	}
}

func TestMonitor_HTTPServerErrorUnhealthyAfterRetries(t *testing.T) {
	h, _ := statusScript(http.StatusInternalServerError)
	target := newHTTPServer(t, "/", h)
	target.Check.Retries = 2
	var rec recorder
	m := newTestMonitor(t, rec.config(Config{}))
	mustSet(t, m, target)
	equalWords(t, rec.waitTranscript(t, "web", 5), []string{"fail", "fail", "starting>unhealthy", "fail", "fail"})
	st, _ := m.Status("web")
	if !strings.Contains(st.LastOutput, "HTTP 500 Internal Server Error") || st.FailingStreak < 4 {
		t.Errorf("status = %+v, want a failing streak of at least 4 and the 500 in the output", st)
	}
}

func TestMonitor_HTTPRedirectIsHealthyAndNotFollowed(t *testing.T) {
	var followed atomic.Int32
	target := newHTTPServer(t, "/old", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/new" {
			followed.Add(1)
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		http.Redirect(w, r, "/new", http.StatusFound)
	})
	var rec recorder
	m := newTestMonitor(t, rec.config(Config{}))
	mustSet(t, m, target)
	equalWords(t, rec.waitTranscript(t, "web", 4), []string{"ok", "starting>healthy", "ok", "ok"})
	if n := followed.Load(); n != 0 {
		t.Errorf("the redirect was followed %d times", n)
	}
}

func TestMonitor_HTTPTimeoutFails(t *testing.T) {
	target := newHTTPServer(t, "/", func(w http.ResponseWriter, r *http.Request) {
		// Slower than any timeout: answer only when the client gives up
		// (or the test ends), so no goroutine outlives the test.
		select {
		case <-r.Context().Done():
		case <-time.After(waitDeadline):
		}
	})
	target.Check.Timeout = 50 * time.Millisecond
	target.Check.Retries = 1
	var rec recorder
	m := newTestMonitor(t, rec.config(Config{}))
	mustSet(t, m, target)
	equalWords(t, rec.waitTranscript(t, "web", 3), []string{"fail", "starting>unhealthy", "fail"})
	r := rec.probes("web")[0]
	if !r.TimedOut || r.Output != "probe timed out after 50ms" || r.Duration < 50*time.Millisecond {
		t.Errorf("result = %+v, want a timeout after at least 50ms", r)
	}
}

func TestMonitor_HTTPFailingPathRecoversOnNextSuccess(t *testing.T) {
	// 200 twice, then 404 three times, then 200 again: Retries (3)
	// failures exactly make it unhealthy, and the next success healthy.
	h, n := statusScript(200, 200, 404, 404, 404, 200)
	target := newHTTPServer(t, "/healthz", h)
	var rec recorder
	m := newTestMonitor(t, rec.config(Config{}))
	mustSet(t, m, target)
	equalWords(t, rec.waitTranscript(t, "web", 10), []string{
		"ok", "starting>healthy", "ok",
		"fail", "fail", "fail", "healthy>unhealthy",
		"ok", "unhealthy>healthy", "ok",
	})
	if got := int(n.Load()); got < 7 {
		t.Errorf("server saw %d requests, want at least 7", got)
	}
}

func TestMonitor_HTTPBodyClipped(t *testing.T) {
	target := newHTTPServer(t, "/", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(strings.Repeat("x", 3*MaxOutput)))
	})
	var rec recorder
	m := newTestMonitor(t, rec.config(Config{}))
	mustSet(t, m, target)
	st := waitState(t, m, "web", StateHealthy)
	if len(st.LastOutput) != MaxOutput || !strings.HasPrefix(st.LastOutput, "HTTP 200 OK: xxx") {
		t.Errorf("LastOutput has %d bytes and starts %q, want %d starting with the status", len(st.LastOutput), st.LastOutput[:20], MaxOutput)
	}
}

func TestHTTPClient_NoProxyNoKeepAlive(t *testing.T) {
	tr := newHTTPClient().Transport.(*http.Transport)
	if tr.Proxy != nil || !tr.DisableKeepAlives {
		t.Errorf("transport proxy set %v, keep-alives disabled %v; want no proxy and no keep-alives", tr.Proxy != nil, tr.DisableKeepAlives)
	}
}

// newTCPListener returns a listener on 127.0.0.1 that accepts and closes
// connections until the test ends, and its port.
func newTCPListener(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	})
	return ln.Addr().(*net.TCPAddr).Port
}

func TestMonitor_TCP(t *testing.T) {
	open := newTCPListener(t)
	// A port nobody listens on: listen, note the port, close.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().(*net.TCPAddr).Port
	ln.Close()

	up, down := fastCheck(KindTCP, 2), fastCheck(KindTCP, 2)
	up.Port, down.Port = open, closed
	var rec recorder
	m := newTestMonitor(t, rec.config(Config{}))
	mustSet(t, m, Target{ID: "up", Addr: localhost, Check: up}, Target{ID: "down", Addr: localhost, Check: down})
	equalWords(t, rec.waitTranscript(t, "up", 3), []string{"ok", "starting>healthy", "ok"})
	equalWords(t, rec.waitTranscript(t, "down", 4), []string{"fail", "fail", "starting>unhealthy", "fail"})
	if out := rec.probes("down")[0].Output; !strings.Contains(out, "connection refused") {
		t.Errorf("output %q, want connection refused", out)
	}
}

func TestMonitor_Exec(t *testing.T) {
	errBoom := errors.New("task not found")
	tests := []struct {
		name    string
		script  func(context.Context, int) (int, []byte, error)
		timeout time.Duration // zero means testTimeout
		want    []string
		wantOut string
	}{
		{
			name:    "exit 0 is healthy",
			script:  func(context.Context, int) (int, []byte, error) { return 0, []byte("fine\n"), nil },
			want:    []string{"ok", "starting>healthy", "ok"},
			wantOut: "fine\n",
		},
		{
			name:    "exit 1 fails",
			script:  func(context.Context, int) (int, []byte, error) { return 1, []byte("db down"), nil },
			want:    []string{"fail", "fail", "starting>unhealthy", "fail"},
			wantOut: "exit status 1: db down",
		},
		{
			name:    "exit 2 fails",
			script:  exitCodes(2),
			want:    []string{"fail", "fail", "starting>unhealthy"},
			wantOut: "exit status 2",
		},
		{
			name:    "an error fails",
			script:  func(context.Context, int) (int, []byte, error) { return 0, nil, errBoom },
			want:    []string{"fail", "fail", "starting>unhealthy"},
			wantOut: "exec check: task not found",
		},
		{
			name: "slower than the timeout fails",
			script: func(ctx context.Context, _ int) (int, []byte, error) {
				<-ctx.Done() // the probe's deadline must cancel it
				return 0, nil, ctx.Err()
			},
			timeout: 20 * time.Millisecond,
			want:    []string{"fail", "fail", "starting>unhealthy"},
			wantOut: "probe timed out after 20ms",
		},
		{
			name: "output is clipped",
			script: func(context.Context, int) (int, []byte, error) {
				return 0, []byte(strings.Repeat("y", 10*MaxOutput)), nil
			},
			want:    []string{"ok", "starting>healthy"},
			wantOut: strings.Repeat("y", MaxOutput),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var (
				rec    recorder
				mu     sync.Mutex
				argvOK = true
			)
			m := newTestMonitor(t, rec.config(Config{Exec: func(ctx context.Context, id string, argv []string) (int, []byte, error) {
				mu.Lock()
				argvOK = argvOK && id == "job" && len(argv) == 2 && argv[0] == "check" && argv[1] == "job"
				mu.Unlock()
				return tt.script(ctx, 1)
			}}))
			target := execTarget("job", 2)
			if tt.timeout != 0 {
				target.Check.Timeout = tt.timeout
			}
			mustSet(t, m, target)
			equalWords(t, rec.waitTranscript(t, "job", len(tt.want)), tt.want)
			if out := rec.probes("job")[0].Output; out != tt.wantOut {
				t.Errorf("output %q (%d bytes), want %q", out[:min(len(out), 40)], len(out), tt.wantOut[:min(len(tt.wantOut), 40)])
			}
			m.Close()
			mu.Lock()
			defer mu.Unlock()
			if !argvOK {
				t.Error("Exec got the wrong id or argv")
			}
		})
	}
}

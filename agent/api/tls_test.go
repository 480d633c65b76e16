package api

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orchproject/orch/internal/pki"
)

// testPKI is a CA with files for the certificates it issues, made by the
// same generator as `orch tls`.
type testPKI struct {
	dir string
	ca  *pki.Cert
	// caFile is the CA certificate's PEM file.
	caFile string
}

func newTestPKI(t *testing.T, name string) *testPKI {
	t.Helper()
	ca, err := pki.NewCA(name, 0)
	if err != nil {
		t.Fatal(err)
	}
	p := &testPKI{dir: t.TempDir(), ca: ca}
	p.caFile = filepath.Join(p.dir, "ca.pem")
	if err := os.WriteFile(p.caFile, ca.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// issue makes a certificate and writes it; it returns the cert and key
// file names.
func (p *testPKI) issue(t *testing.T, req pki.Request) (c *pki.Cert, certFile, keyFile string) {
	t.Helper()
	c, err := p.ca.Issue(req)
	if err != nil {
		t.Fatal(err)
	}
	certFile = filepath.Join(p.dir, req.Name+".pem")
	keyFile = filepath.Join(p.dir, req.Name+"-key.pem")
	if err := pki.WriteNew(certFile, keyFile, c); err != nil {
		t.Fatal(err)
	}
	return c, certFile, keyFile
}

var loopback = []netip.Addr{netip.MustParseAddr("127.0.0.1")}

// server issues a server certificate for 127.0.0.1 and loads the
// server's TLS settings, trusting clientCA for clients.
func (p *testPKI) server(t *testing.T, name string, clientCA *testPKI) *tls.Config {
	t.Helper()
	_, cf, kf := p.issue(t, pki.Request{Name: name, Usage: pki.Server, IPs: loopback})
	cfg, err := ServerTLS(cf, kf, clientCA.caFile)
	if err != nil {
		t.Fatalf("ServerTLS: %v", err)
	}
	return cfg
}

// client issues a client certificate named name and loads a client's TLS
// settings trusting serverCA for the agent.
func (p *testPKI) client(t *testing.T, name string, serverCA *testPKI) (*pki.Cert, *tls.Config) {
	t.Helper()
	c, cf, kf := p.issue(t, pki.Request{Name: name, Usage: pki.Client})
	cfg, err := ClientTLS(serverCA.caFile, cf, kf)
	if err != nil {
		t.Fatalf("ClientTLS: %v", err)
	}
	return c, cfg
}

// auditLog collects audit records. Safe for concurrent use.
type auditLog struct {
	mu   sync.Mutex
	recs []AuditRecord
}

func (a *auditLog) add(r AuditRecord) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.recs = append(a.recs, r)
}

func (a *auditLog) records() []AuditRecord {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.recs)
}

// tlsServer is a Server on a socket and 127.0.0.1:0 with TLS.
type tlsServer struct {
	*testServer
	addr  string // the TLS listener's HOST:PORT
	audit *auditLog
}

func startTLSServer(t *testing.T, b Backend, cfg *tls.Config) *tlsServer {
	t.Helper()
	al := &auditLog{}
	s, err := NewServer(ServerConfig{Socket: socketPath(t), Backend: b, TLSAddr: "127.0.0.1:0", TLS: cfg, Audit: al.add})
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	ts := runServer(t, s)
	return &tlsServer{testServer: ts, addr: s.TLSAddr().String(), audit: al}
}

func tlsClient(t *testing.T, addr string, cfg *tls.Config) *Client {
	t.Helper()
	c, err := NewTLSClient(addr, cfg)
	if err != nil {
		t.Fatalf("NewTLSClient: %v", err)
	}
	return c
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

// TestTLS_GoodClient: a client with a certificate the agent's CA signed
// reads and writes over TLS, streams work, the audit record names the
// certificate, and the socket serves the same API alongside.
func TestTLS_GoodClient(t *testing.T) {
	ca := newTestPKI(t, "orch test CA")
	fb := &fakeBackend{events: func(ctx context.Context, req EventsRequest, emit func(Event) error) error {
		for i := uint64(1); i <= 3; i++ {
			if err := emit(Event{Seq: i, Type: "member", Action: "join", Subject: fmt.Sprint("n", i)}); err != nil {
				return nil
			}
		}
		return nil
	}}
	ts := startTLSServer(t, fb, ca.server(t, "agent", ca))
	alice, cfg := ca.client(t, "alice", ca)
	c := tlsClient(t, ts.addr, cfg)

	ms, err := c.Members(ctxT(t))
	if err != nil {
		t.Fatalf("Members over TLS: %v", err)
	}
	if len(ms) != 1 || ms[0].Name != "n1" {
		t.Errorf("Members = %+v", ms)
	}
	if _, err := c.CreateService(ctxT(t), json.RawMessage(`{"name":"web"}`)); err != nil {
		t.Fatalf("CreateService over TLS: %v", err)
	}
	var seqs []uint64
	if err := c.Events(ctxT(t), EventsRequest{}, func(e Event) error { seqs = append(seqs, e.Seq); return nil }); err != nil {
		t.Fatalf("Events over TLS: %v", err)
	}
	if !slices.Equal(seqs, []uint64{1, 2, 3}) {
		t.Errorf("events over TLS: seqs %v, want 1 2 3", seqs)
	}
	// The image archive is the raw request body: it must stream over TLS
	// as it does over the socket.
	archive := strings.Repeat("x", 3<<20)
	if _, err := c.ImportImage(ctxT(t), strings.NewReader(archive)); err != nil {
		t.Fatalf("ImportImage over TLS: %v", err)
	}
	if !slices.Contains(fb.Calls(), fmt.Sprintf("ImportImage %d", len(archive))) {
		t.Errorf("backend calls %q lack the whole import", fb.Calls())
	}
	// The socket still serves, with the same handler.
	if _, err := NewClient(ts.socket).CreateService(ctxT(t), json.RawMessage(`{"name":"db"}`)); err != nil {
		t.Fatalf("CreateService on the socket: %v", err)
	}

	recs := ts.audit.records()
	if len(recs) != 3 {
		t.Fatalf("audit records = %+v, want 3 (TLS create, TLS import, socket create)", recs)
	}
	tr := recs[0]
	if tr.Method != http.MethodPost || tr.Path != "/v1/services" || tr.Status != http.StatusOK {
		t.Errorf("TLS audit record %+v: want POST /v1/services 200", tr)
	}
	if tr.CN != "alice" || tr.Fingerprint != pki.Fingerprint(alice.Cert) || len(tr.Fingerprint) != 64 {
		t.Errorf("TLS audit record names CN %q fingerprint %q; want alice, %s", tr.CN, tr.Fingerprint, pki.Fingerprint(alice.Cert))
	}
	if host, _, err := net.SplitHostPort(tr.Remote); err != nil || host != "127.0.0.1" {
		t.Errorf("TLS audit record remote = %q, want 127.0.0.1:PORT", tr.Remote)
	}
	if tr.UID != -1 || tr.GID != -1 || tr.PID != -1 {
		t.Errorf("TLS audit record uid/gid/pid = %d/%d/%d, want -1s", tr.UID, tr.GID, tr.PID)
	}
	sr := recs[2]
	if sr.CN != "" || sr.Fingerprint != "" || sr.Remote != "" || sr.UID != os.Getuid() || sr.PID != os.Getpid() {
		t.Errorf("socket audit record %+v: want this process's uid and pid and no certificate", sr)
	}
}

// TestTLS_Refused: clients the agent must not serve are refused during the
// handshake, before any handler runs, and the client says which side
// refused and why.
func TestTLS_Refused(t *testing.T) {
	ca := newTestPKI(t, "orch test CA")
	other := newTestPKI(t, "another CA")
	fb := &fakeBackend{}
	ts := startTLSServer(t, fb, ca.server(t, "agent", ca))

	t.Run("NoClientCertificate", func(t *testing.T) {
		cfg := &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: mustPool(t, ca.caFile)}
		err := rawTLSGet(t, ts.addr, cfg)
		if err == nil || !strings.Contains(err.Error(), "certificate required") {
			t.Errorf("GET without a client certificate: %v, want the agent's \"certificate required\" alert", err)
		}
	})
	t.Run("OtherCA", func(t *testing.T) {
		// Signed by another CA; the client itself trusts the agent.
		_, cf, kf := other.issue(t, pki.Request{Name: "mallory", Usage: pki.Client})
		cfg, err := ClientTLS(ca.caFile, cf, kf)
		if err != nil {
			t.Fatal(err)
		}
		_, err = tlsClient(t, ts.addr, cfg).CreateService(ctxT(t), json.RawMessage(`{}`))
		wantRefused(t, err, "unknown certificate authority")
	})
	t.Run("ServerCertificateAsClient", func(t *testing.T) {
		// The right CA, but made for a server: ClientTLS refuses to load
		// it, and the agent refuses it too.
		c, cf, kf := ca.issue(t, pki.Request{Name: "a-server", Usage: pki.Server, IPs: loopback})
		if _, err := ClientTLS(ca.caFile, cf, kf); err == nil || !strings.Contains(err.Error(), "not made for a TLS client") {
			t.Errorf("ClientTLS with a server certificate: %v, want it refused", err)
		}
		cfg := &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: mustPool(t, ca.caFile),
			Certificates: []tls.Certificate{{Certificate: [][]byte{c.Cert.Raw}, PrivateKey: c.Key}}}
		_, err := tlsClient(t, ts.addr, cfg).Members(ctxT(t))
		wantRefused(t, err, "bad certificate")
	})
	t.Run("ExpiredClientCertificate", func(t *testing.T) {
		c, cf, kf := ca.issue(t, pki.Request{Name: "late", Usage: pki.Client, NotBefore: time.Now().Add(-48 * time.Hour), Validity: 24 * time.Hour})
		if _, err := ClientTLS(ca.caFile, cf, kf); err == nil || !strings.Contains(err.Error(), "expired") {
			t.Errorf("ClientTLS with an expired certificate: %v, want it refused", err)
		}
		cfg := &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: mustPool(t, ca.caFile),
			Certificates: []tls.Certificate{{Certificate: [][]byte{c.Cert.Raw}, PrivateKey: c.Key}}}
		_, err := tlsClient(t, ts.addr, cfg).Members(ctxT(t))
		wantRefused(t, err, "expired certificate")
	})
	t.Run("TLS12", func(t *testing.T) {
		_, cfg := ca.client(t, "old", ca)
		cfg.MinVersion, cfg.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
		if err := rawTLSGet(t, ts.addr, cfg); err == nil || !strings.Contains(err.Error(), "protocol version") {
			t.Errorf("a TLS 1.2 client: %v, want a protocol version alert", err)
		}
	})
	t.Run("PlainHTTP", func(t *testing.T) {
		resp, err := http.Get("http://" + ts.addr + "/v1/members")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("plain HTTP: %s, want 400", resp.Status)
			}
		}
	})
	if calls := fb.Calls(); len(calls) > 0 {
		t.Errorf("refused clients reached the backend: %q", calls)
	}
	if recs := ts.audit.records(); len(recs) > 0 {
		t.Errorf("refused clients were audited as calls: %+v", recs)
	}
}

// TestTLS_ClientRefusesAgent: the client checks the agent's certificate
// against its CA and the address it dials.
func TestTLS_ClientRefusesAgent(t *testing.T) {
	ca := newTestPKI(t, "orch test CA")
	other := newTestPKI(t, "another CA")

	t.Run("UnknownAuthority", func(t *testing.T) {
		ts := startTLSServer(t, &fakeBackend{}, other.server(t, "agent", ca))
		_, cfg := ca.client(t, "alice", ca)
		_, err := tlsClient(t, ts.addr, cfg).Members(ctxT(t))
		var te *TLSError
		if !errors.As(err, &te) || te.Refused {
			t.Fatalf("Members against an agent of another CA = %v (%T), want a *TLSError the client raised", err, err)
		}
		var ua x509.UnknownAuthorityError
		if !errors.As(err, &ua) || !strings.Contains(err.Error(), "unknown authority") || !strings.Contains(err.Error(), "--tls-ca") {
			t.Errorf("error %q: want an unknown authority with a hint about --tls-ca", err)
		}
	})
	t.Run("WrongAddress", func(t *testing.T) {
		_, cf, kf := ca.issue(t, pki.Request{Name: "elsewhere", Usage: pki.Server, IPs: []netip.Addr{netip.MustParseAddr("192.0.2.1")}, DNSNames: []string{"n1.example"}})
		scfg, err := ServerTLS(cf, kf, ca.caFile)
		if err != nil {
			t.Fatal(err)
		}
		ts := startTLSServer(t, &fakeBackend{}, scfg)
		_, cfg := ca.client(t, "bob", ca)
		_, err = tlsClient(t, ts.addr, cfg).Members(ctxT(t))
		var he x509.HostnameError
		if !errors.As(err, &he) || !strings.Contains(err.Error(), "not valid for the address dialled") {
			t.Errorf("Members of an agent whose certificate names another address = %v, want a hostname error", err)
		}
		// The same certificate is fine for a name it holds.
		cfg.ServerName = "n1.example"
		if _, err := tlsClient(t, ts.addr, cfg).Members(ctxT(t)); err != nil {
			t.Errorf("Members with ServerName n1.example: %v", err)
		}
	})
}

// TestTLS_ConnError: nothing listening is a *ConnError naming the host and
// ORCH_HOST, not a TLS error.
func TestTLS_ConnError(t *testing.T) {
	ca := newTestPKI(t, "orch test CA")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, cfg := ca.client(t, "alice", ca)
	_, err = tlsClient(t, addr, cfg).Members(ctxT(t))
	var ce *ConnError
	if !errors.As(err, &ce) || ce.Host != "https://"+addr {
		t.Fatalf("Members with nothing listening = %v (%T), want a *ConnError for https://%s", err, err, addr)
	}
	if !strings.Contains(err.Error(), HostEnv) || !strings.Contains(err.Error(), "--api-tls-addr") {
		t.Errorf("error %q gives no hint about %s and --api-tls-addr", err, HostEnv)
	}
}

// TestTLS_Shutdown: cancelling Run closes the TLS listener too.
func TestTLS_Shutdown(t *testing.T) {
	ca := newTestPKI(t, "orch test CA")
	ts := startTLSServer(t, &fakeBackend{}, ca.server(t, "agent", ca))
	if err := ts.stop(); err != nil {
		t.Fatal(err)
	}
	if c, err := net.DialTimeout("tcp", ts.addr, time.Second); err == nil {
		c.Close()
		t.Errorf("the TLS port %s still accepts after Run returned", ts.addr)
	}
}

// TestServerTLS_Files: the listener's files are checked at start, with
// every problem reported at once.
func TestServerTLS_Files(t *testing.T) {
	ca := newTestPKI(t, "orch test CA")
	other := newTestPKI(t, "another CA")
	_, cert, key := ca.issue(t, pki.Request{Name: "agent", Usage: pki.Server, IPs: loopback})
	_, otherCert, otherKey := other.issue(t, pki.Request{Name: "agent2", Usage: pki.Server, IPs: loopback})
	_, clientCert, clientKey := ca.issue(t, pki.Request{Name: "alice", Usage: pki.Client})
	_, oldCert, oldKey := ca.issue(t, pki.Request{Name: "old", Usage: pki.Server, IPs: loopback, NotBefore: time.Now().Add(-48 * time.Hour), Validity: time.Hour})
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.pem")
	os.WriteFile(junk, []byte("not PEM at all\n"), 0o644)
	missing := filepath.Join(dir, "missing.pem")
	_ = otherCert

	tests := []struct {
		name            string
		cert, key, ca   string
		wantErrContains []string
	}{
		{"Good", cert, key, ca.caFile, nil},
		{"MissingCert", missing, key, ca.caFile, []string{"server certificate: open " + missing + ": no such file"}},
		{"MissingKey", cert, missing, ca.caFile, []string{"open " + missing}},
		{"BadPEM", junk, key, ca.caFile, []string{junk + ": no PEM certificate"}},
		{"KeyMismatch", cert, otherKey, ca.caFile, []string{"the key " + otherKey + " does not match the certificate " + cert}},
		{"KeyAsCert", key, key, ca.caFile, []string{`holds a "PRIVATE KEY" PEM block`}},
		{"ClientCertAsServer", clientCert, clientKey, ca.caFile, []string{"not made for a TLS server", "--server"}},
		{"Expired", oldCert, oldKey, ca.caFile, []string{"expired on"}},
		{"MissingCA", cert, key, missing, []string{"client CA: open " + missing}},
		{"KeyAsCA", cert, key, key, []string{"client CA: ", "PRIVATE KEY"}},
		// Both problems at once.
		{"All", junk, key, missing, []string{"no PEM certificate", "client CA: open"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := ServerTLS(tt.cert, tt.key, tt.ca)
			if tt.wantErrContains == nil {
				if err != nil {
					t.Fatalf("ServerTLS: %v", err)
				}
				if cfg.MinVersion != tls.VersionTLS13 || cfg.ClientAuth != tls.RequireAndVerifyClientCert || cfg.ClientCAs == nil {
					t.Errorf("config: min version %x, client auth %v, client CAs %v", cfg.MinVersion, cfg.ClientAuth, cfg.ClientCAs != nil)
				}
				return
			}
			if err == nil {
				t.Fatal("ServerTLS accepted it")
			}
			for _, want := range tt.wantErrContains {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
		})
	}
}

func TestNewServer_ValidateTLS(t *testing.T) {
	ca := newTestPKI(t, "orch test CA")
	good := ca.server(t, "agent", ca)
	noClientAuth := good.Clone()
	noClientAuth.ClientAuth = tls.NoClientCert
	tests := []struct {
		name    string
		addr    string
		cfg     *tls.Config
		wantErr string
	}{
		{"AddrWithoutTLS", "127.0.0.1:0", nil, "tls: required with a TLS address"},
		{"TLSWithoutAddr", "", good, "tls: given without a TLS address"},
		{"NoClientCertificates", "127.0.0.1:0", noClientAuth, "must require and verify client certificates"},
		{"Good", "127.0.0.1:0", good, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewServer(ServerConfig{Socket: "/x.sock", Backend: &fakeBackend{}, TLSAddr: tt.addr, TLS: tt.cfg})
			if tt.wantErr == "" {
				if err != nil {
					t.Errorf("NewServer: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("NewServer = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

// wantRefused checks err is the agent refusing this client's certificate,
// with the alert naming why.
func wantRefused(t *testing.T, err error, alert string) {
	t.Helper()
	var te *TLSError
	if !errors.As(err, &te) || !te.Refused {
		t.Fatalf("err = %v (%T), want a *TLSError: the agent refused the certificate", err, err)
	}
	if !strings.HasPrefix(err.Error(), "the agent refused this client certificate: ") || !strings.Contains(err.Error(), alert) {
		t.Errorf("error %q: want \"the agent refused this client certificate: …%s…\"", err, alert)
	}
}

// rawTLSGet does one GET /v1/members with cfg, which the Client could not
// be made to send, and returns the error (nil on a 200).
func rawTLSGet(t *testing.T, addr string, cfg *tls.Config) error {
	t.Helper()
	cfg = cfg.Clone()
	cfg.ServerName = "127.0.0.1"
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
	defer hc.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctxT(t), http.MethodGet, "https://"+addr+"/v1/members", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %s", resp.Status)
	}
	return nil
}

func mustPool(t *testing.T, file string) *x509.CertPool {
	t.Helper()
	p, err := pki.CertPool(file)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/orchproject/orch/agent/api"
	"github.com/orchproject/orch/internal/lab"
	"github.com/orchproject/orch/internal/pki"
)

// tlsFiles are the files `orch tls` wrote for the test.
type tlsFiles struct {
	ca, caKey           string
	server, serverKey   string
	alice, aliceKey     string
	otherCA             string
	mallory, malloryKey string
}

// makeTLSFiles makes a CA, h1's server certificate and alice's client
// certificate with the real `orch tls` commands, and a second CA with its
// own client, mallory.
func makeTLSFiles(t *testing.T, serverIP netip.Addr) tlsFiles {
	t.Helper()
	dir := t.TempDir()
	ok := func(args ...string) {
		t.Helper()
		if _, errOut, code := runCLI(t, args...); code != 0 {
			t.Fatalf("orch %s: exit %d: %s", strings.Join(args, " "), code, errOut)
		}
	}
	ca, other := filepath.Join(dir, "ca"), filepath.Join(dir, "other")
	f := tlsFiles{
		ca: filepath.Join(ca, "orch-ca.pem"), caKey: filepath.Join(ca, "orch-ca-key.pem"),
		server: filepath.Join(ca, "h1.pem"), serverKey: filepath.Join(ca, "h1-key.pem"),
		alice: filepath.Join(ca, "alice.pem"), aliceKey: filepath.Join(ca, "alice-key.pem"),
		otherCA: filepath.Join(other, "orch-ca.pem"),
		mallory: filepath.Join(other, "mallory.pem"), malloryKey: filepath.Join(other, "mallory-key.pem"),
	}
	ok("tls", "ca", "create", "--dir", ca, "--name", "e2e CA")
	ok("tls", "cert", "create", "--ca", f.ca, "--ca-key", f.caKey, "--dir", ca, "--server", "--name", "h1", "--ip", serverIP.String())
	ok("tls", "cert", "create", "--ca", f.ca, "--ca-key", f.caKey, "--dir", ca, "--client", "--name", "alice")
	ok("tls", "ca", "create", "--dir", other, "--name", "another CA")
	ok("tls", "cert", "create", "--ca", f.otherCA, "--ca-key", filepath.Join(other, "orch-ca-key.pem"), "--dir", other, "--client", "--name", "mallory")
	return f
}

// cliOn runs the orch CLI inside lab host h (another machine than the
// agent's), through nsenter.
func cliOn(t *testing.T, h *lab.Host, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := h.Command(ctx, orchBin(t), args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	if err := cmd.Run(); err != nil {
		code = cmd.ProcessState.ExitCode()
		if code < 0 {
			t.Fatalf("orch %v on %s: %v", args, h, err)
		}
	}
	return o.String(), e.String(), code
}

// TestAPITLS: the remote API end to end. Certificates come from the real
// `orch tls`; the agent serves TLS on lab host h1's address; the real CLI
// manages it from h2, another machine. Refused clients are told why and
// reach no handler, and the audit event names the certificate.
func TestAPITLS(t *testing.T) {
	l := lab.New(t, lab.Config{Hosts: 2})
	h1, h2 := l.Host(1), l.Host(2)
	f := makeTLSFiles(t, h1.Addr)

	tlsAddr := netip.AddrPortFrom(h1.Addr, 7947).String()
	n1 := newNode(h1, "h1")
	n1.start(t, "--overlay", "none", "--dns", "none",
		"--api-tls-addr", tlsAddr, "--api-tls-cert", f.server, "--api-tls-key", f.serverKey, "--api-tls-client-ca", f.ca)
	n1.waitReady(t)

	host := "https://" + tlsAddr
	alice := []string{"--host", host, "--tls-ca", f.ca, "--tls-cert", f.alice, "--tls-key", f.aliceKey}
	with := func(base []string, args ...string) []string { return append(append([]string{}, base...), args...) }

	// Reads and writes from h2.
	out, errOut, code := cliOn(t, h2, with(alice, "members", "--format", "{{.Name}} {{.Status}}")...)
	if code != 0 || strings.TrimSpace(out) != "h1 alive" {
		t.Fatalf("orch members over TLS from h2: exit %d, %q, %s", code, out, errOut)
	}
	if _, errOut, code := cliOn(t, h2, with(alice, "service", "create", "--name", "web", "busybox:stable")...); code != 0 {
		t.Fatalf("orch service create over TLS from h2: exit %d: %s", code, errOut)
	}
	if out, errOut, code := n1.cli(t, "service", "ls", "--format", "{{.Name}}"); code != 0 || strings.TrimSpace(out) != "web" {
		t.Errorf("the service created over TLS, on h1's socket: exit %d, %q, %s", code, out, errOut)
	}

	// Refused clients, each told why.
	_, errOut, code = cliOn(t, h2, "--host", host, "--tls-ca", f.ca, "--tls-cert", f.mallory, "--tls-key", f.malloryKey, "service", "rm", "web")
	if code != 1 || !strings.HasPrefix(errOut, "orch: the agent refused this client certificate: ") || !strings.Contains(errOut, "unknown certificate authority") {
		t.Errorf("a certificate of another CA: exit %d, %q; want the agent's refusal", code, errOut)
	}
	_, errOut, code = cliOn(t, h2, "--host", host, "--tls-ca", f.ca, "members")
	if code != 2 || !strings.Contains(errOut, "missing: --tls-cert FILE (or ORCH_TLS_CERT), --tls-key FILE (or ORCH_TLS_KEY)") {
		t.Errorf("a TLS host without a client certificate: exit %d, %q; want a usage error naming what is missing", code, errOut)
	}
	_, errOut, code = cliOn(t, h2, "--host", host, "--tls-ca", f.otherCA, "--tls-cert", f.alice, "--tls-key", f.aliceKey, "members")
	if code != 1 || !strings.Contains(errOut, "has a certificate signed by an unknown authority") || !strings.Contains(errOut, "--tls-ca") {
		t.Errorf("a --tls-ca that did not sign the agent's certificate: exit %d, %q", code, errOut)
	}
	// A client that sends no certificate at all (the CLI will not) is
	// refused by the handshake.
	if err := noCertGet(h2, tlsAddr, f.ca); err == nil || !strings.Contains(err.Error(), "certificate required") {
		t.Errorf("GET without a client certificate from h2: %v, want the agent's \"certificate required\" alert", err)
	}
	if out, _, _ := n1.cli(t, "service", "ls", "--format", "{{.Name}}"); strings.TrimSpace(out) != "web" {
		t.Errorf("after the refused rm, the services are %q, want web", out)
	}
	lab.Eventually(t, 5*time.Second, 100*time.Millisecond, func() error {
		b, err := os.ReadFile(n1.proc.LogPath())
		if err != nil {
			return err
		}
		if !bytes.Contains(b, []byte("TLS handshake error from "+h2.Addr.String())) {
			return fmt.Errorf("the agent's log does not record the refused handshakes from %s", h2.Addr)
		}
		return nil
	})

	// The audit trail, read over TLS from h2: one api call, alice's.
	fp := pki.Fingerprint(readCert(t, f.alice))
	ev := cliEvents(t, h2, with(alice, "events", "--since", "1h", "--filter", "type=api"))
	var calls []api.Event
	lab.Eventually(t, 10*time.Second, 100*time.Millisecond, func() error {
		calls = calls[:0]
		for _, line := range ev.lines() {
			if line == "" {
				continue
			}
			var e api.Event
			if err := json.Unmarshal([]byte(line), &e); err != nil {
				return fmt.Errorf("event line %q: %v", line, err)
			}
			calls = append(calls, e)
		}
		if len(calls) == 0 {
			return fmt.Errorf("no api call event yet")
		}
		return nil
	})
	if len(calls) != 1 {
		t.Fatalf("api call events %+v, want one: refused clients reach no handler", calls)
	}
	c := calls[0]
	if c.Subject != "POST /v1/services" || c.Attributes["caller"] != "cn=alice" || c.Attributes["cert_sha256"] != fp ||
		!strings.HasPrefix(c.Attributes["remote"], h2.Addr.String()+":") || c.Attributes["uid"] != "-1" {
		t.Errorf("api call event %+v: want POST /v1/services by cn=alice (sha256 %s) from %s, uid -1", c, fp, h2.Addr)
	}
}

// TestAPITLS_AgentRefusesBadSettings: mistakes in the TLS settings stop the
// agent before it starts, with the file or flag named.
func TestAPITLS_AgentRefusesBadSettings(t *testing.T) {
	f := makeTLSFiles(t, netip.MustParseAddr("127.0.0.1"))
	dir := t.TempDir()
	base := []string{"agent", "--name", "bad", "--data-dir", filepath.Join(dir, "data"), "--socket", filepath.Join(dir, "s.sock"),
		"--bind", "127.0.0.1:0", "--containerd", "none", "--overlay", "none", "--dns", "none", "--api-tls-addr", "127.0.0.1:0"}
	junk := filepath.Join(dir, "junk.pem")
	if err := os.WriteFile(junk, []byte("junk\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string
		wantCode int
		want     string
	}{
		{"NoClientCA", []string{"--api-tls-cert", f.server, "--api-tls-key", f.serverKey}, 2, "needs --api-tls-client-ca FILE"},
		{"MissingFile", []string{"--api-tls-cert", filepath.Join(dir, "none.pem"), "--api-tls-key", f.serverKey, "--api-tls-client-ca", f.ca}, 1, "none.pem: no such file"},
		{"BadPEM", []string{"--api-tls-cert", junk, "--api-tls-key", f.serverKey, "--api-tls-client-ca", f.ca}, 1, "no PEM certificate"},
		{"KeyMismatch", []string{"--api-tls-cert", f.server, "--api-tls-key", f.aliceKey, "--api-tls-client-ca", f.ca}, 1, "does not match the certificate"},
		{"ClientCertificate", []string{"--api-tls-cert", f.alice, "--api-tls-key", f.aliceKey, "--api-tls-client-ca", f.ca}, 1, "not made for a TLS server"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errOut, code := runCLI(t, append(append([]string{}, base...), tt.args...)...)
			if code != tt.wantCode || !strings.Contains(errOut, tt.want) {
				t.Errorf("exit %d, %q; want exit %d and %q", code, errOut, tt.wantCode, tt.want)
			}
		})
	}
}

// cliEvents streams `orch ARGS` (an events command) from lab host h until
// the test ends.
func cliEvents(t *testing.T, h *lab.Host, args []string) *eventLog {
	t.Helper()
	return startEventLog(t, func(ctx context.Context) *exec.Cmd { return h.Command(ctx, orchBin(t), args...) })
}

// noCertGet sends GET /v1/members from inside lab host h over TLS that
// trusts caFile but presents no client certificate, and returns the error.
func noCertGet(h *lab.Host, addr, caFile string) error {
	pool, err := pki.CertPool(caFile)
	if err != nil {
		return err
	}
	return inNetNS("/run/netns/"+h.NetNS, func() error {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr,
			&tls.Config{MinVersion: tls.VersionTLS13, RootCAs: pool, ServerName: strings.Split(addr, ":")[0]})
		if err != nil {
			return err
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(conn, "GET /v1/members HTTP/1.1\r\nHost: orch\r\n\r\n"); err != nil {
			return err
		}
		_, err = io.ReadAll(conn)
		return err
	})
}

func readCert(t *testing.T, file string) *x509.Certificate {
	t.Helper()
	cs, err := pki.ReadCertificates(file)
	if err != nil {
		t.Fatal(err)
	}
	return cs[0]
}

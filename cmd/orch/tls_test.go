package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/orchproject/orch/agent"
	"github.com/orchproject/orch/agent/api"
	"github.com/orchproject/orch/internal/pki"
)

// mode returns a file's permission bits.
func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// readLeaf reads the single certificate of a PEM file.
func readLeaf(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	cs, err := pki.ReadCertificates(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 1 {
		t.Fatalf("%s holds %d certificates, want 1", path, len(cs))
	}
	return cs[0]
}

// makeCA runs `orch tls ca create` into dir and returns the CA files.
func makeCA(t *testing.T, dir string, extra ...string) (caCert, caKey string) {
	t.Helper()
	r := runCLI(t, append([]string{"tls", "ca", "create", "--dir", dir}, extra...)...)
	if r.code != exitOK {
		t.Fatalf("tls ca create: %v", r)
	}
	return filepath.Join(dir, caCertFile), filepath.Join(dir, caKeyFile)
}

// makeCert runs `orch tls cert create` and returns the cert and key files.
func makeCert(t *testing.T, caCert, caKey, dir, name string, extra ...string) (cert, key string) {
	t.Helper()
	r := runCLI(t, append([]string{"tls", "cert", "create", "--ca", caCert, "--ca-key", caKey, "--name", name, "--dir", dir}, extra...)...)
	if r.code != exitOK {
		t.Fatalf("tls cert create %s: %v", name, r)
	}
	return filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
}

// TestTLSCommands: the files `orch tls` writes load, chain to the CA, are
// made for what they were asked for, name the SANs given, and are never
// overwritten.
func TestTLSCommands(t *testing.T) {
	dir := t.TempDir()
	caCert, caKey := makeCA(t, dir, "--name", "test CA", "--days", "30")
	if m := mode(t, caKey); m != 0o600 {
		t.Errorf("CA key mode %o, want 600", m)
	}
	if m := mode(t, caCert); m != 0o644 {
		t.Errorf("CA certificate mode %o, want 644", m)
	}
	ca, err := pki.LoadCA(caCert, caKey)
	if err != nil {
		t.Fatalf("the CA files do not load: %v", err)
	}
	if !ca.Cert.IsCA || ca.Cert.Subject.CommonName != "test CA" || !ca.Cert.MaxPathLenZero {
		t.Errorf("CA certificate: IsCA %v, CN %q, MaxPathLenZero %v", ca.Cert.IsCA, ca.Cert.Subject.CommonName, ca.Cert.MaxPathLenZero)
	}
	if k, ok := ca.Key.(*ecdsa.PrivateKey); !ok || k.Curve != elliptic.P256() {
		t.Errorf("CA key is %T, want ECDSA P-256", ca.Key)
	}
	if d := time.Until(ca.Cert.NotAfter); d < 29*day || d > 31*day {
		t.Errorf("CA valid for %v more, want about 30 days", d)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)

	certs := filepath.Join(dir, "certs") // created by cert create
	srvCert, srvKey := makeCert(t, caCert, caKey, certs, "n1", "--server", "--ip", "192.0.2.1", "--ip", "2001:db8::1", "--dns", "n1.example", "--days", "10")
	cliCert, cliKey := makeCert(t, caCert, caKey, certs, "alice", "--client")
	for _, k := range []string{srvKey, cliKey} {
		if m := mode(t, k); m != 0o600 {
			t.Errorf("%s mode %o, want 600", k, m)
		}
	}
	for _, pair := range [][2]string{{srvCert, srvKey}, {cliCert, cliKey}} {
		if _, err := tls.LoadX509KeyPair(pair[0], pair[1]); err != nil {
			t.Errorf("%s and %s are not a key pair: %v", pair[0], pair[1], err)
		}
	}

	srv := readLeaf(t, srvCert)
	if srv.Subject.CommonName != "n1" {
		t.Errorf("server CN %q", srv.Subject.CommonName)
	}
	wantIPs := []string{"192.0.2.1", "2001:db8::1"}
	var gotIPs []string
	for _, ip := range srv.IPAddresses {
		gotIPs = append(gotIPs, ip.String())
	}
	if !slices.Equal(gotIPs, wantIPs) || !slices.Equal(srv.DNSNames, []string{"n1.example"}) {
		t.Errorf("server SANs: IPs %v DNS %v, want %v [n1.example]", gotIPs, srv.DNSNames, wantIPs)
	}
	if d := time.Until(srv.NotAfter); d < 9*day || d > 11*day {
		t.Errorf("server certificate valid for %v more, want about 10 days", d)
	}
	for _, name := range []string{"n1.example", "192.0.2.1", "2001:db8::1"} {
		if _, err := srv.Verify(x509.VerifyOptions{Roots: roots, DNSName: name, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("the server certificate does not verify as a server for %s: %v", name, err)
		}
	}
	if _, err := srv.Verify(x509.VerifyOptions{Roots: roots, DNSName: "n2.example", KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
		t.Error("the server certificate verifies for n2.example, which it does not name")
	}
	if _, err := srv.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Error("the server certificate verifies as a client")
	}

	cli := readLeaf(t, cliCert)
	if cli.Subject.CommonName != "alice" || len(cli.IPAddresses)+len(cli.DNSNames) != 0 {
		t.Errorf("client certificate: CN %q, SANs %v %v; want alice and none", cli.Subject.CommonName, cli.IPAddresses, cli.DNSNames)
	}
	if _, err := cli.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("the client certificate does not verify as a client: %v", err)
	}
	if _, err := cli.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
		t.Error("the client certificate verifies as a server")
	}
	// Another CA's certificates do not chain to this one.
	otherCert, otherKey := makeCA(t, t.TempDir())
	stranger, _ := makeCert(t, otherCert, otherKey, t.TempDir(), "mallory", "--client")
	if _, err := readLeaf(t, stranger).Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Error("a certificate of another CA verifies against this one")
	}

	t.Run("RefuseOverwrite", func(t *testing.T) {
		before := map[string][]byte{}
		for _, f := range []string{caCert, caKey, cliCert, cliKey} {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			before[f] = b
		}
		r := runCLI(t, "tls", "ca", "create", "--dir", dir)
		if r.code != exitError || !strings.Contains(r.stderr, "already exists") || !strings.Contains(r.stderr, "refusing to overwrite") {
			t.Errorf("ca create over an existing CA: %v; want exit 1, refusing to overwrite", r)
		}
		r = runCLI(t, "tls", "cert", "create", "--ca", caCert, "--ca-key", caKey, "--client", "--name", "alice", "--dir", certs)
		if r.code != exitError || !strings.Contains(r.stderr, "already exists") {
			t.Errorf("cert create over an existing certificate: %v; want exit 1, already exists", r)
		}
		for f, b := range before {
			if got, _ := os.ReadFile(f); !bytes.Equal(got, b) {
				t.Errorf("%s changed", f)
			}
		}
	})
	t.Run("KeyOfAnotherCA", func(t *testing.T) {
		r := runCLI(t, "tls", "cert", "create", "--ca", caCert, "--ca-key", otherKey, "--client", "--name", "bob", "--dir", t.TempDir())
		if r.code != exitError || !strings.Contains(r.stderr, "does not match the certificate") {
			t.Errorf("cert create with another CA's key: %v; want a mismatch error", r)
		}
	})
	t.Run("LeafAsCA", func(t *testing.T) {
		r := runCLI(t, "tls", "cert", "create", "--ca", cliCert, "--ca-key", cliKey, "--client", "--name", "bob", "--dir", t.TempDir())
		if r.code != exitError || !strings.Contains(r.stderr, "not a CA certificate") {
			t.Errorf("cert create signed by a client certificate: %v; want it refused", r)
		}
	})
}

func TestTLSCommands_UsageErrors(t *testing.T) {
	dir := t.TempDir()
	caCert, caKey := makeCA(t, dir)
	base := []string{"tls", "cert", "create", "--ca", caCert, "--ca-key", caKey, "--dir", dir}
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"NeitherServerNorClient", []string{"--name", "x"}, "give --server (an agent's certificate) or --client"},
		{"Both", []string{"--server", "--client", "--name", "x", "--ip", "192.0.2.1"}, "give --server or --client, not both"},
		{"ServerWithoutNames", []string{"--server", "--name", "x"}, "--server needs at least one --ip or --dns"},
		{"ClientWithIP", []string{"--client", "--name", "x", "--ip", "192.0.2.1"}, "--ip and --dns are for --server certificates"},
		{"NoName", []string{"--client"}, `--name "": want`},
		{"PathInName", []string{"--client", "--name", "../x"}, `--name "../x": want`},
		{"BadIP", []string{"--server", "--name", "x", "--ip", "192.0.2"}, `--ip "192.0.2": want an IP address`},
		{"BadDNS", []string{"--server", "--name", "x", "--dns", "a b"}, `--dns "a b": want a DNS name`},
		{"ZeroDays", []string{"--client", "--name", "x", "--days", "0"}, "--days 0: want a positive number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantUsage(t, runCLI(t, append(slices.Clone(base), tt.args...)...), tt.wantErr)
		})
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Errorf("usage errors wrote files: %d entries in %s", len(ents), dir)
	}
	wantUsage(t, runCLI(t, "tls", "ca", "create", "--dir", dir, "--days", "-1"), "--days -1: want a positive number")
	wantUsage(t, runCLI(t, "tls"), "tls needs a subcommand")
}

// freeTCPAddr returns 127.0.0.1:PORT with a port free now.
func freeTCPAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestCLI_RemoteTLS runs client verbs against an in-process agent's TLS
// API with certificates made by `orch tls`, and checks the refusals.
func TestCLI_RemoteTLS(t *testing.T) {
	for _, env := range []string{api.HostEnv, tlsCAEnv, tlsCertEnv, tlsKeyEnv} {
		t.Setenv(env, "") // the caller's environment must not choose the agent
	}
	dir := t.TempDir()
	caCert, caKey := makeCA(t, dir)
	srvCert, srvKey := makeCert(t, caCert, caKey, dir, "n1", "--server", "--ip", "127.0.0.1")
	aliceCert, aliceKey := makeCert(t, caCert, caKey, dir, "alice", "--client")
	otherDir := t.TempDir()
	otherCA, otherCAKey := makeCA(t, otherDir)
	malloryCert, malloryKey := makeCert(t, otherCA, otherCAKey, otherDir, "mallory", "--client")

	addr := freeTCPAddr(t)
	n1 := startAgent(t, "n1", nil, func(c *agent.Config) {
		c.APITLSAddr, c.APITLSCert, c.APITLSKey, c.APITLSClientCA = addr, srvCert, srvKey, caCert
	})
	host := "https://" + addr
	alice := []string{"--host", host, "--tls-ca", caCert, "--tls-cert", aliceCert, "--tls-key", aliceKey}

	ms := runCLI(t, append(slices.Clone(alice), "members", "--format", "json")...)
	if ms.code != exitOK {
		t.Fatalf("members over TLS: %v", ms)
	}
	var members []api.Member
	if err := json.Unmarshal([]byte(ms.stdout), &members); err != nil || len(members) != 1 || members[0].Name != "n1" {
		t.Errorf("members over TLS: %v, %s", err, ms.stdout)
	}
	if r := runCLI(t, append(slices.Clone(alice), "service", "create", "--name", "web", "busybox:stable")...); r.code != exitOK {
		t.Fatalf("service create over TLS: %v", r)
	}
	if r := runCLI(t, "--socket", n1.socket, "service", "ls", "--format", "{{.Name}}"); r.code != exitOK || strings.TrimSpace(r.stdout) != "web" {
		t.Errorf("the service created over TLS, on the socket: %v", r)
	}

	t.Run("EventsNameTheCertificate", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), cliTimeout)
		defer cancel()
		stdout := &lineWriter{onLine: cancel} // the first api call event is enough
		var stderr bytes.Buffer
		code := run(ctx, append(slices.Clone(alice), "events", "--since", "1h", "--filter", "type=api"), stdout, &stderr)
		if code != exitOK {
			t.Fatalf("events over TLS: exit %d: %s", code, stderr.String())
		}
		var ev api.Event
		line, _, _ := strings.Cut(stdout.String(), "\n")
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("event line %q: %v", line, err)
		}
		fp := pki.Fingerprint(readLeaf(t, aliceCert))
		if ev.Subject != "POST /v1/services" || ev.Attributes["caller"] != "cn=alice" || ev.Attributes["cert_sha256"] != fp || !strings.HasPrefix(ev.Attributes["remote"], "127.0.0.1:") {
			t.Errorf("api call event %+v: want POST /v1/services by cn=alice, sha256 %s, from 127.0.0.1", ev, fp)
		}
	})
	t.Run("Environment", func(t *testing.T) {
		t.Setenv(api.HostEnv, "tcp://"+addr)
		t.Setenv(tlsCAEnv, caCert)
		t.Setenv(tlsCertEnv, aliceCert)
		t.Setenv(tlsKeyEnv, aliceKey)
		if r := runCLI(t, "members"); r.code != exitOK {
			t.Errorf("members with ORCH_HOST and ORCH_TLS_*: %v", r)
		}
		// --socket on the command line wins over ORCH_HOST.
		if r := runCLI(t, "--socket", n1.socket, "members"); r.code != exitOK {
			t.Errorf("members with --socket and ORCH_HOST: %v", r)
		}
		// Commands that talk to no agent ignore the settings.
		t.Setenv(api.HostEnv, "nonsense")
		if r := runCLI(t, "tls", "ca", "create", "--dir", t.TempDir()); r.code != exitOK {
			t.Errorf("tls ca create with a bad ORCH_HOST: %v", r)
		}
		if r := runCLI(t, "version"); r.code != exitOK {
			t.Errorf("version with a bad ORCH_HOST: %v", r)
		}
	})
	t.Run("Completion", func(t *testing.T) {
		// Completion asks the agent the flags name, over TLS too.
		r := runCLI(t, append(slices.Clone(alice), cobra.ShellCompRequestCmd, "service", "ps", "")...)
		if r.code != exitOK || !strings.HasPrefix(r.stdout, "web\n") {
			t.Errorf("completing service names over TLS: %v", r)
		}
	})
	t.Run("UnixHost", func(t *testing.T) {
		if r := runCLI(t, "--host", "unix://"+n1.socket, "members"); r.code != exitOK {
			t.Errorf("members with --host unix://: %v", r)
		}
	})
	t.Run("CertificateOfAnotherCA", func(t *testing.T) {
		r := runCLI(t, "--host", host, "--tls-ca", caCert, "--tls-cert", malloryCert, "--tls-key", malloryKey, "service", "rm", "web")
		if r.code != exitError || !strings.Contains(r.stderr, "orch: the agent refused this client certificate: ") || !strings.Contains(r.stderr, "unknown certificate authority") {
			t.Errorf("a client certificate of another CA: %v; want the agent's refusal", r)
		}
	})
	t.Run("AgentOfAnotherCA", func(t *testing.T) {
		r := runCLI(t, "--host", host, "--tls-ca", otherCA, "--tls-cert", aliceCert, "--tls-key", aliceKey, "members")
		if r.code != exitError || !strings.Contains(r.stderr, "certificate signed by an unknown authority") || !strings.Contains(r.stderr, "--tls-ca") {
			t.Errorf("an agent whose CA --tls-ca does not name: %v; want an unknown authority", r)
		}
	})
	t.Run("ServerCertificateAsClient", func(t *testing.T) {
		r := runCLI(t, "--host", host, "--tls-ca", caCert, "--tls-cert", srvCert, "--tls-key", srvKey, "members")
		if r.code != exitError || !strings.Contains(r.stderr, "not made for a TLS client") {
			t.Errorf("a server certificate as the client's: %v; want it refused before dialling", r)
		}
	})
	t.Run("UsageErrors", func(t *testing.T) {
		wantUsage(t, runCLI(t, "--host", host, "--tls-ca", caCert, "--tls-cert", aliceCert, "members"), "missing: --tls-key FILE (or ORCH_TLS_KEY)")
		wantUsage(t, runCLI(t, "--host", host, "members"), "missing: --tls-ca FILE (or ORCH_TLS_CA), --tls-cert FILE (or ORCH_TLS_CERT), --tls-key FILE (or ORCH_TLS_KEY)")
		wantUsage(t, runCLI(t, "--host", host, "--socket", n1.socket, "members"), "give --host or --socket, not both")
		wantUsage(t, runCLI(t, "--socket", n1.socket, "--tls-cert", aliceCert, "members"), "--tls-cert is for an agent's TLS API")
		wantUsage(t, runCLI(t, "--host", "http://"+addr, "members"), "the agent serves no plain HTTP")
		wantUsage(t, runCLI(t, "--host", addr, "members"), "want https://HOST:PORT")
		wantUsage(t, runCLI(t, "--host", "https://127.0.0.1", "members"), "want https://HOST:PORT")
		wantUsage(t, runCLI(t, "agent", "--host", host), "--host chooses the agent a command talks to")
	})
	t.Run("NothingListening", func(t *testing.T) {
		r := runCLI(t, "--host", "https://"+freeTCPAddr(t), "--tls-ca", caCert, "--tls-cert", aliceCert, "--tls-key", aliceKey, "members")
		if r.code != exitError || !strings.Contains(r.stderr, "cannot reach the agent at https://") || !strings.Contains(r.stderr, "ORCH_HOST") {
			t.Errorf("a host where nothing listens: %v", r)
		}
	})
}

// TestAgentFlags_APITLS: the TLS settings come from the config file, and a
// flag overrides its key; a TLS address without the client CA is a usage
// error.
func TestAgentFlags_APITLS(t *testing.T) {
	file := writeConfig(t, `{"name": "n1", "api_tls_addr": ":7947", "api_tls_cert": "/f/c.pem", "api_tls_key": "/f/k.pem", "api_tls_client_ca": "/f/ca.pem"}`)
	f, fs := parseAgentFlags(t, "--config", file, "--api-tls-cert", "/flag/c.pem")
	cfg, err := f.toConfig(fs, api.DefaultSocket, false)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.APITLSAddr != ":7947" || cfg.APITLSCert != "/flag/c.pem" || cfg.APITLSKey != "/f/k.pem" || cfg.APITLSClientCA != "/f/ca.pem" {
		t.Errorf("config: addr %q cert %q key %q ca %q", cfg.APITLSAddr, cfg.APITLSCert, cfg.APITLSKey, cfg.APITLSClientCA)
	}
	f, fs = parseAgentFlags(t, "--name", "n1", "--api-tls-addr", "127.0.0.1:7947", "--api-tls-cert", "c.pem", "--api-tls-key", "k.pem")
	_, err = f.toConfig(fs, api.DefaultSocket, false)
	var ue usageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "needs --api-tls-client-ca FILE") {
		t.Errorf("toConfig without the client CA = %v, want a usage error naming --api-tls-client-ca", err)
	}
}

func TestParseHost(t *testing.T) {
	tests := []struct {
		in                 string
		wantSocket, wantTo string
		wantErr            bool
	}{
		{in: ""},
		{in: "unix:///run/orch/orch.sock", wantSocket: "/run/orch/orch.sock"},
		{in: "https://192.0.2.1:7947", wantTo: "192.0.2.1:7947"},
		{in: "https://192.0.2.1:7947/", wantTo: "192.0.2.1:7947"},
		{in: "tcp://n1.example:7947", wantTo: "n1.example:7947"},
		{in: "https://[2001:db8::1]:7947", wantTo: "[2001:db8::1]:7947"},
		{in: "https://192.0.2.1", wantErr: true},
		{in: "https://192.0.2.1:7947/v1", wantErr: true},
		{in: "https://u@192.0.2.1:7947", wantErr: true},
		{in: "http://192.0.2.1:7947", wantErr: true},
		{in: "192.0.2.1:7947", wantErr: true},
		{in: "unix://", wantErr: true},
		{in: "ftp://x:1", wantErr: true},
	}
	for _, tt := range tests {
		socket, addr, err := parseHost(tt.in)
		if (err != nil) != tt.wantErr || socket != tt.wantSocket || addr != tt.wantTo {
			t.Errorf("parseHost(%q) = %q, %q, %v; want %q, %q, error %v", tt.in, socket, addr, err, tt.wantSocket, tt.wantTo, tt.wantErr)
		}
	}
}

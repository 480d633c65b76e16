package pki

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func newTestCA(t *testing.T, validity time.Duration) *Cert {
	t.Helper()
	ca, err := NewCA("test CA", validity)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func TestIssue_Requests(t *testing.T) {
	ca := newTestCA(t, 0)
	ip := []netip.Addr{netip.MustParseAddr("192.0.2.1")}
	tests := []struct {
		name    string
		req     Request
		wantErr string
	}{
		{"Server", Request{Name: "n1", Usage: Server, IPs: ip}, ""},
		{"ServerByName", Request{Name: "n1", Usage: Server, DNSNames: []string{"n1.example"}}, ""},
		{"Client", Request{Name: "alice", Usage: Client}, ""},
		{"ServerWithoutNames", Request{Name: "n1", Usage: Server}, "needs at least one IP address or DNS name"},
		{"ClientWithIP", Request{Name: "alice", Usage: Client, IPs: ip}, "are for server certificates"},
		{"NoUsage", Request{Name: "x"}, "want server or client"},
		{"NoName", Request{Usage: Client}, "name: required"},
		{"NegativeValidity", Request{Name: "x", Usage: Client, Validity: -time.Hour}, "must be positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ca.Issue(tt.req)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Issue = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := x509.ExtKeyUsageClientAuth
			if tt.req.Usage == Server {
				want = x509.ExtKeyUsageServerAuth
			}
			if len(c.Cert.ExtKeyUsage) != 1 || c.Cert.ExtKeyUsage[0] != want || c.Cert.IsCA {
				t.Errorf("ext key usage %v, IsCA %v; want only %v, not a CA", c.Cert.ExtKeyUsage, c.Cert.IsCA, want)
			}
			if !bytes.Equal(c.Cert.AuthorityKeyId, ca.Cert.SubjectKeyId) || len(ca.Cert.SubjectKeyId) == 0 {
				t.Errorf("authority key ID %x, want the CA's subject key ID %x", c.Cert.AuthorityKeyId, ca.Cert.SubjectKeyId)
			}
		})
	}
}

// TestIssue_NotAfterCA: a certificate never outlives the CA that signed it.
func TestIssue_NotAfterCA(t *testing.T) {
	ca := newTestCA(t, 48*time.Hour)
	c, err := ca.Issue(Request{Name: "alice", Usage: Client, Validity: 365 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if !c.Cert.NotAfter.Equal(ca.Cert.NotAfter) {
		t.Errorf("NotAfter %v, want the CA's %v", c.Cert.NotAfter, ca.Cert.NotAfter)
	}
}

// TestWriteNew_RefusesAndLeavesNothing: an existing file is never
// replaced, and a refused write leaves no half pair behind.
func TestWriteNew_RefusesAndLeavesNothing(t *testing.T) {
	ca := newTestCA(t, 0)
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "c.pem"), filepath.Join(dir, "c-key.pem")
	if err := os.WriteFile(cert, []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := WriteNew(cert, key, ca)
	if !errors.Is(err, os.ErrExist) {
		t.Fatalf("WriteNew over an existing certificate = %v, want os.ErrExist", err)
	}
	if b, _ := os.ReadFile(cert); string(b) != "mine" {
		t.Errorf("the existing file was changed to %q", b)
	}
	if _, err := os.Stat(key); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a key was left behind: %v", err)
	}
	// A fresh pair loads back as the same CA.
	cert2, key2 := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem")
	if err := WriteNew(cert2, key2, ca); err != nil {
		t.Fatal(err)
	}
	got, err := LoadCA(cert2, key2)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Cert.Equal(ca.Cert) {
		t.Error("LoadCA returned another certificate")
	}
	if fi, _ := os.Stat(key2); fi.Mode().Perm() != 0o600 {
		t.Errorf("key mode %v, want 0600", fi.Mode().Perm())
	}
}

// TestReadKey_Formats: keys of CAs made elsewhere (SEC 1, PKCS #1) load
// too, and a certificate given as a key is named as such.
func TestReadKey_Formats(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, 0)
	ecDER, err := x509.MarshalECPrivateKey(ca.Key.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		block   *pem.Block
		wantErr string
	}{
		{"SEC1", &pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER}, ""},
		{"PKCS1", &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)}, ""},
		{"Certificate", &pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw}, "holds a certificate, not a private key"},
		{"Garbled", &pem.Block{Type: "PRIVATE KEY", Bytes: []byte("junk")}, "k.pem: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, tt.name+"k.pem")
			if err := os.WriteFile(p, pem.EncodeToMemory(tt.block), 0o600); err != nil {
				t.Fatal(err)
			}
			k, err := ReadKey(p)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ReadKey = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || k == nil {
				t.Fatalf("ReadKey: %v", err)
			}
		})
	}
}
